"""End-to-end protection of one message: compress, sign, seal; and the reverse.

The payload is compressed (raw DEFLATE, via zlib) when that makes it smaller, signed with
the source's Ed25519 key when asked (non-repudiation) and always when it goes to a group,
then sealed with ChaCha20-Poly1305 under the pairwise or group key of the message's epoch.
The clear header is the associated data, so a relay can read what it needs to route but can
neither read the payload nor alter the header.

Every member of a group holds the group key, so the AEAD alone cannot tell which member
sealed a group message: only the signature binds it to its source.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final, Protocol

from crypto import sealing as aead
from tawan.core.frames import (
    SIGNATURE_BYTES,
    Flags,
    Message,
    associated_data,
    epoch_of_ticks,
    pf_field,
)
from tawan.core.specs import Submission

MAX_PAYLOAD_BYTES: Final = 1 << 20
_COMPRESS_LEVEL: Final = 6
_WINDOW_BITS: Final = 12
_RECEIPT: Final = int(Flags.RECEIPT_REQUESTED)
_SIGNED: Final = int(Flags.SIGNED)
_COMPRESSED: Final = int(Flags.COMPRESSED)
_CONTROL: Final = int(Flags.CONTROL)


class GroupLookup(Protocol):
    """The part of the roster that sealing needs."""

    def is_group(self, address: int) -> bool: ...


class MessageKeys(Protocol):
    """The part of the keyring that sealing needs."""

    address: int
    epoch_seconds: int

    @property
    def roster(self) -> GroupLookup: ...

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None: ...
    def sign(self, data: bytes) -> bytes: ...
    def verify(self, address: int, data: bytes, signature: bytes) -> bool: ...


class SealError(ValueError):
    """The local caller asked for something that cannot be sealed (no key, too large)."""


class OpenError(ValueError):
    """A received message that does not open: wrong key, tampered, bad signature, bomb."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Opened:
    payload: bytes
    signed: bool
    control: bool


def seal_message(
    keys: MessageKeys, submission: Submission, *, seq: int, created: int, control: bool = False
) -> Message:
    """Seal `submission` from this node (`keys.address`) under message id `seq`, created at
    `created` (mission ticks); `control` marks an engine-made message (a receipt)."""
    dst, payload, precedence, ttl = (
        submission.dst, submission.payload, submission.precedence, submission.ttl
    )  # fmt: skip
    receipt, sign = submission.receipt, submission.sign
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SealError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    epoch = epoch_of_ticks(created, keys.epoch_seconds)
    key = keys.message_key(keys.address, dst, epoch)
    if key is None:
        raise SealError(f"no end-to-end key for destination {dst} in epoch {epoch}")
    sign = sign or keys.roster.is_group(dst)  # docs/protocol.md 5.4: group messages are signed
    # plain ints: IntFlag arithmetic costs more than the cipher on short messages
    flags = (_RECEIPT if receipt else 0) | (_CONTROL if control else 0) | (_SIGNED if sign else 0)
    inner = payload
    compressed = _compress(payload) if len(payload) > 32 else payload
    if len(compressed) < len(payload):
        flags |= _COMPRESSED
        inner = compressed
    # The header is fixed before sealing: the signature and the AEAD both cover it.
    header = associated_data(keys.address, dst, seq, pf_field(precedence, flags), created, ttl)
    if sign:
        inner = keys.sign(header + payload) + inner
    ciphertext = aead.seal_message(key, keys.address, created, seq, header, inner)
    return Message(keys.address, dst, seq, precedence, Flags(flags), created, ttl, 0, ciphertext)


def open_message(keys: MessageKeys, message: Message) -> Opened:
    epoch = epoch_of_ticks(message.created, keys.epoch_seconds)
    key = keys.message_key(message.src, message.dst, epoch)
    if key is None:
        raise OpenError("no-key", f"no key for {message.src}->{message.dst} in epoch {epoch}")
    header = message.associated_data()
    inner = aead.open_message(
        key, message.src, message.created, message.seq, header, message.ciphertext
    )
    if inner is None:  # tampered, or not sealed for us
        raise OpenError("e2e-auth", f"message {message.src}/{message.seq} fails AEAD")
    signature = b""
    flags = int(message.flags)
    if not flags & _SIGNED and keys.roster.is_group(message.dst):
        # Any member could have sealed it, under any source address.
        raise OpenError("unsigned-group", f"group message {message.src}/{message.seq} unsigned")
    if flags & _SIGNED:
        if len(inner) < SIGNATURE_BYTES:
            raise OpenError("bad-signature", "signed message shorter than a signature")
        signature, inner = inner[:SIGNATURE_BYTES], inner[SIGNATURE_BYTES:]
    payload = _decompress(inner) if flags & _COMPRESSED else inner
    if signature and not keys.verify(message.src, header + payload, signature):
        raise OpenError("bad-signature", f"signature of {message.src} does not verify")
    return Opened(payload, bool(signature), bool(flags & _CONTROL))


def _compress(data: bytes) -> bytes:
    """Raw DEFLATE (RFC 1951) with a 4 KiB window: no zlib header or checksum on the air (the
    AEAD already authenticates), and a small state, so short orders cost microseconds."""
    deflater = zlib.compressobj(_COMPRESS_LEVEL, zlib.DEFLATED, -_WINDOW_BITS, 4)
    return deflater.compress(data) + deflater.flush()


def _decompress(data: bytes) -> bytes:
    """Inflate at most MAX_PAYLOAD_BYTES: a compression bomb is refused, not expanded."""
    inflater = zlib.decompressobj(-_WINDOW_BITS)
    try:
        out = inflater.decompress(data, MAX_PAYLOAD_BYTES)
    except zlib.error as exc:
        raise OpenError("bad-compression", str(exc)) from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise OpenError("bad-compression", "payload inflates beyond the limit or is truncated")
    if inflater.unused_data:
        raise OpenError(
            "bad-compression",
            f"expected nothing after the final DEFLATE block, found "
            f"{len(inflater.unused_data)} bytes",
        )
    return out
