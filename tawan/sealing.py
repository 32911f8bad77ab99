"""End-to-end protection of one message: compress, sign, seal; and the reverse.

The payload is compressed (zlib) when that makes it smaller, optionally signed with the
source's Ed25519 key (non-repudiation), then sealed with ChaCha20-Poly1305 under the pairwise
or group key of the message's epoch. The clear header is the associated data, so a relay can
read what it needs to route but can neither read the payload nor alter the header.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Final, Protocol

from crypto.schedule import message_nonce, open_sealed, seal
from tawan.frames import SIGNATURE_BYTES, Flags, Message
from tawan.precedence import Precedence

MAX_PAYLOAD_BYTES: Final = 1 << 20
_COMPRESS_LEVEL: Final = 6


class MessageKeys(Protocol):
    """The part of the keyring that sealing needs."""

    address: int
    epoch_seconds: int

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
    keys: MessageKeys,
    *,
    dst: int,
    seq: int,
    precedence: Precedence,
    created: int,
    ttl: int,
    payload: bytes,
    receipt: bool = False,
    sign: bool = False,
    control: bool = False,
) -> Message:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SealError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    epoch = created // keys.epoch_seconds
    key = keys.message_key(keys.address, dst, epoch)
    if key is None:
        raise SealError(f"no end-to-end key for destination {dst} in epoch {epoch}")
    flags = Flags.NONE
    flags |= Flags.RECEIPT_REQUESTED if receipt else Flags.NONE
    flags |= Flags.CONTROL if control else Flags.NONE
    flags |= Flags.SIGNED if sign else Flags.NONE
    inner = payload
    compressed = zlib.compress(payload, _COMPRESS_LEVEL) if len(payload) > 32 else payload
    if len(compressed) < len(payload):
        flags |= Flags.COMPRESSED
        inner = compressed
    # The header is fixed before sealing: the signature and the AEAD both cover it.
    header = Message(
        keys.address, dst, seq, precedence, flags, created, ttl, 0, b"\0" * 16
    ).associated_data()
    if sign:
        inner = keys.sign(header + payload) + inner
    ciphertext = seal(key, message_nonce(keys.address, seq), inner, header)
    return Message(keys.address, dst, seq, precedence, flags, created, ttl, 0, ciphertext)


def open_message(keys: MessageKeys, message: Message) -> Opened:
    epoch = message.created // keys.epoch_seconds
    key = keys.message_key(message.src, message.dst, epoch)
    if key is None:
        raise OpenError("no-key", f"no key for {message.src}->{message.dst} in epoch {epoch}")
    header = message.associated_data()
    try:
        inner = open_sealed(
            key, message_nonce(message.src, message.seq), message.ciphertext, header
        )
    except Exception:  # cryptography's InvalidTag: tampered, or not sealed for us
        raise OpenError("e2e-auth", f"message {message.src}/{message.seq} fails AEAD") from None
    signature = b""
    if message.flags & Flags.SIGNED:
        if len(inner) < SIGNATURE_BYTES:
            raise OpenError("bad-signature", "signed message shorter than a signature")
        signature, inner = inner[:SIGNATURE_BYTES], inner[SIGNATURE_BYTES:]
    payload = _decompress(inner) if message.flags & Flags.COMPRESSED else inner
    if signature and not keys.verify(message.src, header + payload, signature):
        raise OpenError("bad-signature", f"signature of {message.src} does not verify")
    return Opened(payload, bool(signature), bool(message.flags & Flags.CONTROL))


def _decompress(data: bytes) -> bytes:
    """Inflate at most MAX_PAYLOAD_BYTES: a compression bomb is refused, not expanded."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_PAYLOAD_BYTES)
    except zlib.error as exc:
        raise OpenError("bad-compression", str(exc)) from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise OpenError("bad-compression", "payload inflates beyond the limit or is truncated")
    return out
