"""The wire format: every frame a node puts on a link, encoded and strictly decoded.

A frame on the wire is ``kind byte || msgpack array || link tag``. The kind byte carries the
protocol version in its high nibble and the frame type in its low nibble; the array holds the
fields as small integers and byte strings, never maps or text; the 8-byte link tag (added and
checked by `tawan.core.linkauth`) follows. This module handles the part before the tag.

Decoding untrusted bytes raises `FrameDecodeError` and nothing else, and never allocates more
than the input's size: msgpack is told the largest container and string it may build, and
every field's type and range is checked before a frame object exists.
docs/protocol.md describes each frame byte by byte.
"""

from __future__ import annotations

import enum
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import msgpack

from tawan.core.precedence import Precedence
from transports.profile import BEARER_NAME

VERSION: Final = 1
MAX_FRAME_BYTES: Final = 65535
MAX_MESSAGE_BYTES: Final = (1 << 20) + 1024  # largest ciphertext: 1 MiB payload, tag, signature
MAX_FRAGMENTS: Final = 65535
MAX_HOPS: Final = 255
MAX_ACKS: Final = 256
MAX_BATCH: Final = 64  # messages in one BATCH frame: bounds what one frame asks of a receiver
MAX_NET_RECEIVERS: Final = 32  # receivers of one NET frame, each with a counter and a tag
AEAD_TAG_BYTES: Final = 16
KEM_CIPHERTEXT_BYTES: Final = 1088
SIGNATURE_BYTES: Final = 64
U16: Final = 0xFFFF
U32: Final = 0xFFFF_FFFF

TICKS_PER_SECOND: Final = 10
"""Creation times travel in tenths of a second since the mission start (t0): as many bytes as
whole seconds would take for the first 13 years of a mission, and latency measured to 0.1 s."""

MessageId = tuple[int, int, int]
"""(source address, epoch, sequence number): unique for every message ever sent."""


class FrameDecodeError(ValueError):
    """Bytes from the network that are not a valid tawan frame (the peer's fault)."""


class FrameType(enum.IntEnum):
    DATA = 0
    FRAG = 1
    ACK = 2
    HELLO = 3
    ROUTE = 4
    SETUP = 5
    REVOKE = 6
    BATCH = 7
    NET = 8
    NET_FRAG = 9


class Flags(enum.IntFlag):
    """Message flags, stored above the 3 precedence bits of the `pf` field."""

    NONE = 0
    RECEIPT_REQUESTED = 1
    SIGNED = 2
    COMPRESSED = 4
    CONTROL = 8  # the payload is a control body (an end-to-end receipt), not application data


_FLAG_MASK: Final = 0xF


@dataclass(frozen=True, slots=True)
class Message:
    """One end-to-end message as relays see it: a clear header and a sealed payload.

    The header fields before `hops` are authenticated end to end as associated data; `hops`
    changes at every relay and is protected hop by hop only.
    """

    src: int
    dst: int
    seq: int
    precedence: Precedence
    flags: Flags
    created: int  # mission time in ticks (TICKS_PER_SECOND) at the origin
    ttl: int  # seconds
    hops: int
    ciphertext: bytes

    def __post_init__(self) -> None:
        try:
            _check_message_fields(self.fields())
        except FrameDecodeError as exc:  # a local caller's values, not the peer's bytes
            raise ValueError(str(exc)) from None

    @classmethod
    def _from_checked(cls, fields: tuple[object, ...]) -> Message:
        """Build from fields already validated by the decoder, without checking twice."""
        message = object.__new__(cls)
        src, dst, seq, precedence, flags, created, ttl, hops, ciphertext = fields
        put = object.__setattr__  # frozen: every field set as the dataclass's __init__ does
        put(message, "src", src)
        put(message, "dst", dst)
        put(message, "seq", seq)
        put(message, "precedence", precedence)
        put(message, "flags", flags)
        put(message, "created", created)
        put(message, "ttl", ttl)
        put(message, "hops", hops)
        put(message, "ciphertext", ciphertext)
        return message

    @property
    def expires(self) -> int:
        """Mission second at which the message expires."""
        return self.created // TICKS_PER_SECOND + self.ttl

    @property
    def created_seconds(self) -> float:
        return self.created / TICKS_PER_SECOND

    def mid(self, epoch_seconds: int) -> MessageId:
        return (self.src, epoch_of_ticks(self.created, epoch_seconds), self.seq)

    def header_fields(self) -> list[int]:
        return [
            self.src,
            self.dst,
            self.seq,
            pf_field(self.precedence, self.flags),
            self.created,
            self.ttl,
        ]

    def associated_data(self) -> bytes:
        return associated_data(*self.header_fields())

    def fields(self) -> list[object]:
        # `header_fields()`, then the hop count and the ciphertext (one list, not two: every
        # message taken into custody is encoded from these).
        pf = pf_field(self.precedence, self.flags)
        return [
            self.src, self.dst, self.seq, pf, self.created, self.ttl, self.hops, self.ciphertext
        ]  # fmt: skip

    def encode(self) -> bytes:
        """The message alone, as stored and as reassembled from fragments."""
        return msgpack.packb(self.fields())

    def with_hops(self, hops: int) -> Message:
        """The same message with another hop count (checked here: every other field was
        checked when this message was built)."""
        if type(hops) is not int or not 0 <= hops <= MAX_HOPS:
            raise ValueError(f"message hop count: expected 0..{MAX_HOPS}, found {hops!r}")
        fields = (self.src, self.dst, self.seq, self.precedence, self.flags, self.created,
                  self.ttl, hops, self.ciphertext)  # fmt: skip
        return Message._from_checked(fields)


@dataclass(frozen=True, slots=True)
class DataFrame:
    """A whole message on one link."""

    sender: int
    counter: int
    message: Message
    TYPE = FrameType.DATA


@dataclass(frozen=True, slots=True)
class FragFrame:
    """One piece of an encoded `Message` too large for the link's MTU."""

    sender: int
    counter: int
    mid: MessageId
    index: int
    count: int
    chunk: bytes
    TYPE = FrameType.FRAG


@dataclass(frozen=True, slots=True)
class FragState:
    """Which fragments of a message the receiver holds: bit i of `bitmap` is fragment i."""

    mid: MessageId
    bitmap: bytes

    def has(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bitmap) and bool(self.bitmap[byte] & (1 << (index & 7)))


@dataclass(frozen=True, slots=True)
class AckFrame:
    """Custody acknowledgements: these messages are durably stored by `sender`."""

    sender: int
    counter: int
    acks: tuple[MessageId, ...]  # a set: kept sorted, each once, as the wire carries it
    partial: tuple[FragState, ...] = ()
    TYPE = FrameType.ACK

    def __post_init__(self) -> None:
        acks = tuple(sorted(set(self.acks)))
        if acks != self.acks:
            object.__setattr__(self, "acks", acks)


class HelloFlags(enum.IntFlag):
    NONE = 0
    REPLY_REQUESTED = 1
    # The sender restarted lately: its replay windows resume above blocks it saved, so the
    # receiver of this flag skips its counters towards the sender past such a block.
    RESTARTED = 2
    # The sender refused custody of the receiver's messages for want of room, and has room
    # again: the receiver sends what waits for the sender now, not at its next retry.
    ROOM = 4
    # The sender goes under emission control on this link: it still hears, it will not
    # answer. Keep it up and keep sending; it acknowledges once it speaks again.
    SILENT = 8


_HELLO_FLAGS: Final = int(
    HelloFlags.REPLY_REQUESTED | HelloFlags.RESTARTED | HelloFlags.ROOM | HelloFlags.SILENT
)


@dataclass(frozen=True, slots=True)
class HelloFrame:
    """Neighbour liveness and link measurement (round-trip time, loss)."""

    sender: int
    counter: int
    time_ms: int  # sender's clock, milliseconds modulo 2**32
    echo_ms: int  # time_ms of the last hello received from the peer (0: none yet)
    held_ms: int  # how long ago that hello arrived, so the peer can subtract it
    rx_loss: int  # loss of the peer's frames on this link seen here, per mille
    flags: HelloFlags = HelloFlags.NONE
    sent: int = 0  # frames the sender put on this link for the peer before this one, mod 2**32
    TYPE = FrameType.HELLO


@dataclass(frozen=True, slots=True)
class RouteFrame:
    """A link-state advertisement of `origin`, flooded: its neighbours and link costs,
    signed by the origin (`advert_signed_bytes`), so no other node can forge or outbid it."""

    sender: int
    counter: int
    origin: int
    lsa_seq: int
    adjacency: tuple[tuple[int, int], ...]  # (neighbour address, cost)
    signature: bytes = b""
    # (neighbour, bearer, cost) of the links `routing.restricted_links` lists: a neighbour's
    # links of restricted bearers cheaper than its others, and the cheapest of those others
    # as bearer "*"; () for none, and then the frame has no seventh field.
    links: tuple[tuple[int, str, int], ...] = ()
    TYPE = FrameType.ROUTE


ADVERT_LABEL: Final = b"tawan/advert/v1"
ADVERT_LINKS_LABEL: Final = b"tawan/advert/v2"
MAX_ADVERT_NEIGHBOURS: Final = 256
MAX_ADVERT_LINKS: Final = 1024
MAX_BEARER_NAME: Final = 32  # bytes, as `transports.profile.BEARER_NAME` allows
MAX_ADVERT_BEARERS: Final = 16  # distinct bearer names in one advert's links
_BEARER_NAME: Final = re.compile(BEARER_NAME.encode("ascii") + rb"|\*")
OTHER_BEARERS: Final = "*"
"""The bearer name of a listed link that stands for a neighbour's links by bearers no class
is kept off: the cheapest of them (docs/protocol.md 4.5)."""


def advert_signed_bytes(
    origin: int, lsa_seq: int, adjacency: Sequence[tuple[int, int]],
    links: Sequence[tuple[int, str, int]] = (),
) -> bytes:  # fmt: skip
    """What the origin of an advert signs: a label, then its fields as in the frame (the
    label of version 2, and the links, when it has links)."""
    flat = [n for pair in adjacency for n in pair]
    if not links:
        return ADVERT_LABEL + msgpack.packb([origin, lsa_seq, flat])
    return ADVERT_LINKS_LABEL + msgpack.packb([origin, lsa_seq, flat, _flat_links(links)])


def _flat_links(links: Sequence[tuple[int, str, int]]) -> list[object]:
    return [x for n, bearer, cost in links for x in (n, bearer.encode("ascii"), cost)]


@dataclass(frozen=True, slots=True)
class RevokeFrame:
    """A revocation notice of the mission authority, flooded (crypto.revocation)."""

    sender: int
    counter: int
    notice: bytes
    TYPE = FrameType.REVOKE


MAX_NOTICE_BYTES: Final = 1024


@dataclass(frozen=True, slots=True)
class SetupFrame:
    """On-air pairwise key setup for a node added after deployment (see docs/keys.md)."""

    sender: int
    counter: int
    src: int
    dst: int
    created: int
    hops: int
    kem_ciphertext: bytes
    signature: bytes
    TYPE = FrameType.SETUP


@dataclass(frozen=True, slots=True)
class BatchFrame:
    """Several whole messages for one neighbour in one frame, so that the kind byte, sender,
    counter and link tag are paid once (a queue of short messages on 2.4 kbit/s HF). Each
    message is received, acknowledged and retransmitted as if it had come in a DATA frame of
    its own: the batch is only packaging."""

    sender: int
    counter: int
    messages: tuple[Message, ...]
    TYPE = FrameType.BATCH

    def __post_init__(self) -> None:
        if not 2 <= len(self.messages) <= MAX_BATCH:  # one message is a DATA frame
            raise ValueError(
                f"batch: expected 2..{MAX_BATCH} messages, found {len(self.messages)}"
            )


@dataclass(frozen=True, slots=True)
class NetFrame:
    """One copy of a message, or of one fragment of it, for several neighbours on one link
    (the members of a radio net a group message goes to): one transmission heard by all of
    them. Each receiver has its own counter in the frame and its own link tag after it, and
    takes it as if it had come in a DATA or FRAG frame of its own (`for_receiver`):
    acknowledged, numbered and retransmitted per receiver, as ever. `inner` is that frame
    with counter 0. Tags are added and checked by tawan.core.linkauth."""

    sender: int
    receivers: tuple[tuple[int, int], ...]  # (address, counter), in the order of the tags
    inner: DataFrame | FragFrame

    @property
    def TYPE(self) -> FrameType:  # noqa: N802 - the frame classes' TYPE
        return FrameType.NET if isinstance(self.inner, DataFrame) else FrameType.NET_FRAG

    def __post_init__(self) -> None:
        _check_receivers(len(self.receivers))

    def index_of(self, address: int) -> int | None:
        """Where `address` is among the receivers (the position of its tag), or None."""
        for i, (receiver, _) in enumerate(self.receivers):
            if receiver == address:
                return i
        return None

    def for_receiver(self, index: int) -> DataFrame | FragFrame:
        """The frame receiver `index` takes this as: `inner` with its own counter."""
        counter = self.receivers[index][1]
        inner = self.inner
        if isinstance(inner, DataFrame):
            return DataFrame(self.sender, counter, inner.message)
        return FragFrame(self.sender, counter, inner.mid, inner.index, inner.count, inner.chunk)


Frame = (
    DataFrame | FragFrame | AckFrame | HelloFrame | RouteFrame | SetupFrame | RevokeFrame
    | BatchFrame
)  # fmt: skip


def epoch_of_ticks(created: int, epoch_seconds: int) -> int:
    """The key epoch of a creation time."""
    return created // (epoch_seconds * TICKS_PER_SECOND)


def pf_field(precedence: int, flags: int) -> int:
    """Precedence in the low 3 bits, flags above: one byte on the wire."""
    return int(precedence) | (int(flags) << 3)


# ---------------------------------------------------------------------------------- encoding


def encode_frame(frame: Frame, counter: int | None = None) -> bytes:
    """Kind byte and msgpack array: everything but the link tag.

    `counter` overrides the frame's own: frames are built before they are numbered.
    """
    kind = bytes([(VERSION << 4) | frame.TYPE])
    number = frame.counter if counter is None else counter
    return kind + msgpack.packb([frame.sender, number, *_body(frame)])


_DATA_KIND: Final = bytes([(VERSION << 4) | FrameType.DATA, 0x90 | 10])


def encode_data_frame(sender: int, counter: int, encoded_message: bytes) -> bytes:
    """A DATA frame straight from a stored message encoding, without decoding it again.

    The stored message is a msgpack array of 8; the frame's array of 10 is the same fields
    preceded by sender and counter.
    """
    if encoded_message[:1] != b"\x98":
        raise ValueError("encoded message must be a msgpack array of 8 fields")
    # Sender and counter packed as an array of two, its one-byte header (0x92) cut off.
    return _DATA_KIND + msgpack.packb((sender, counter))[1:] + encoded_message[1:]


def _check_receivers(count: int) -> None:
    if not 2 <= count <= MAX_NET_RECEIVERS:
        raise ValueError(f"net frame: expected 2..{MAX_NET_RECEIVERS} receivers, found {count}")


_NET_KIND: Final = bytes([(VERSION << 4) | FrameType.NET, 0x90 | 10])
NET_KIND_BYTE: Final = (VERSION << 4) | FrameType.NET
NET_FRAG_KIND_BYTE: Final = (VERSION << 4) | FrameType.NET_FRAG
NET_TAG_BYTES: Final = 8  # one link tag per receiver (crypto.schedule.LINK_TAG_BYTES)


def encode_net_frame(
    sender: int, receivers: Sequence[tuple[int, int]], encoded_message: bytes
) -> bytes:
    """A NET frame without its tags, straight from a stored message encoding: `receivers`
    (address, counter) in the order their tags will follow."""
    _check_receivers(len(receivers))
    if encoded_message[:1] != b"\x98":
        raise ValueError("encoded message must be a msgpack array of 8 fields")
    flat = [n for pair in receivers for n in pair]
    return _NET_KIND + msgpack.packb((sender, flat))[1:] + encoded_message[1:]


def encode_net_frag(sender: int, receivers: Sequence[tuple[int, int]], frag: FragFrame) -> bytes:
    """A NET_FRAG frame without its tags: `frag`'s fields for `receivers` (address,
    counter) in the order their tags will follow."""
    _check_receivers(len(receivers))
    flat = [n for pair in receivers for n in pair]
    kind = bytes([NET_FRAG_KIND_BYTE])
    return kind + msgpack.packb([sender, flat, *frag.mid, frag.index, frag.count, frag.chunk])


def decode_net_frame(data: bytes) -> tuple[NetFrame, int]:
    """Parse a NET or NET_FRAG frame with its tags: the frame and where its tags begin (the
    bytes before are what each tag covers). Raises FrameDecodeError for anything invalid,
    including tags that are not exactly one per receiver."""
    if len(data) < 2 or len(data) > MAX_FRAME_BYTES:
        raise FrameDecodeError(f"frame: expected 2..{MAX_FRAME_BYTES} bytes, found {len(data)}")
    if data[0] not in (NET_KIND_BYTE, NET_FRAG_KIND_BYTE):
        raise FrameDecodeError(
            f"net frame: expected kind {NET_KIND_BYTE:#04x} or {NET_FRAG_KIND_BYTE:#04x}, "
            f"found {data[0]:#04x}"
        )
    ftype = FrameType.NET if data[0] == NET_KIND_BYTE else FrameType.NET_FRAG
    expected = _FIELD_COUNTS[ftype]
    unpacker = msgpack.Unpacker(  # the bounds of `_unpack`
        raw=True, strict_map_key=True, max_buffer_size=len(data), max_bin_len=len(data),
        max_str_len=0, max_array_len=len(data), max_map_len=0, max_ext_len=0,
    )  # fmt: skip
    unpacker.feed(data[1:])
    try:
        fields = unpacker.unpack()
    except Exception as exc:  # msgpack raises many types; they all mean "not a frame"
        raise FrameDecodeError(f"not valid msgpack: {exc}") from None
    end = 1 + unpacker.tell()
    if type(fields) is not list or len(fields) != expected:
        found = f"{len(fields)} fields" if type(fields) is list else type(fields).__name__
        raise FrameDecodeError(
            f"{ftype.name} frame: expected an array of {expected} fields, found {found}"
        )
    sender = _int(fields[0], "frame sender", 1, U16)
    flat = _list(fields[1], "net receivers", 2, 2 * MAX_NET_RECEIVERS)
    if len(flat) < 4:
        raise FrameDecodeError(
            f"net receivers: expected 2..{MAX_NET_RECEIVERS} receivers, found {len(flat) // 2}"
        )
    receivers = tuple(
        (_int(flat[i], "net receiver", 1, U16), _int(flat[i + 1], "net receiver counter", 0, U32))
        for i in range(0, len(flat), 2)
    )
    addresses = {address for address, _ in receivers}
    if len(addresses) != len(receivers) or sender in addresses:
        raise FrameDecodeError("net receivers: expected distinct addresses other than the sender")
    tags = len(data) - end
    if tags != NET_TAG_BYTES * len(receivers):
        raise FrameDecodeError(
            f"net frame: expected {NET_TAG_BYTES * len(receivers)} bytes of tags for "
            f"{len(receivers)} receivers, found {tags}"
        )
    if ftype is FrameType.NET:
        inner: DataFrame | FragFrame = DataFrame(sender, 0, _check_message_fields(fields[2:]))
    else:
        inner = _decode_frag(sender, 0, fields[2:])
    return NetFrame(sender, receivers, inner), end


_BATCH_KIND: Final = bytes([(VERSION << 4) | FrameType.BATCH, 0x90 | 3])


def encode_batch_frame(sender: int, counter: int, encoded_messages: Sequence[bytes]) -> bytes:
    """A BATCH frame straight from stored message encodings, without decoding them again:
    each is already the msgpack array of 8 fields the frame's item array holds."""
    count = len(encoded_messages)
    if not 2 <= count <= MAX_BATCH:
        raise ValueError(f"batch: expected 2..{MAX_BATCH} messages, found {count}")
    if any(encoded[:1] != b"\x98" for encoded in encoded_messages):
        raise ValueError("encoded message must be a msgpack array of 8 fields")
    items = bytes([0x90 | count]) if count < 16 else b"\xdc" + count.to_bytes(2, "big")
    return _BATCH_KIND + msgpack.packb((sender, counter))[1:] + items + b"".join(encoded_messages)


def _body(frame: Frame) -> list[object]:
    if isinstance(frame, DataFrame):
        return frame.message.fields()
    if isinstance(frame, BatchFrame):
        return [[message.fields() for message in frame.messages]]
    if isinstance(frame, FragFrame):
        return [*frame.mid, frame.index, frame.count, frame.chunk]
    if isinstance(frame, AckFrame):
        acks = _runs(frame.acks)
        partial: list[object] = []
        for state in frame.partial:
            partial.extend((*state.mid, state.bitmap))
        return [acks, partial]
    if isinstance(frame, HelloFrame):
        return [
            frame.time_ms, frame.echo_ms, frame.held_ms, frame.rx_loss, int(frame.flags),
            frame.sent,
        ]  # fmt: skip
    if isinstance(frame, RouteFrame):
        flat = [n for pair in frame.adjacency for n in pair]
        fields = [frame.origin, frame.lsa_seq, flat, frame.signature]
        if frame.links:
            fields.append(_flat_links(frame.links))
        return fields
    if isinstance(frame, RevokeFrame):
        return [frame.notice]
    return [
        frame.src,
        frame.dst,
        frame.created,
        frame.hops,
        frame.kem_ciphertext,
        frame.signature,
    ]


# ---------------------------------------------------------------------------------- decoding


def _unpack(data: bytes) -> object:
    """msgpack with every size bounded by the input: no allocation beyond len(data)."""
    try:
        return msgpack.unpackb(
            data,
            use_list=True,
            raw=True,
            strict_map_key=True,
            max_bin_len=len(data),
            max_str_len=0,
            max_array_len=len(data),
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types; they all mean "not a frame"
        raise FrameDecodeError(f"not valid msgpack: {exc}") from None


def _int(value: object, name: str, low: int, high: int) -> int:
    if type(value) is not int:
        raise FrameDecodeError(f"{name}: expected an integer, found {type(value).__name__}")
    if not low <= value <= high:
        raise FrameDecodeError(f"{name}: expected {low}..{high}, found {value}")
    return value


def _bytes(value: object, name: str, low: int, high: int) -> bytes:
    if type(value) is not bytes:
        raise FrameDecodeError(f"{name}: expected bytes, found {type(value).__name__}")
    if not low <= len(value) <= high:
        raise FrameDecodeError(f"{name}: expected {low}..{high} bytes, found {len(value)}")
    return value


def _list(value: object, name: str, multiple: int, most: int) -> list[object]:
    if type(value) is not list:
        raise FrameDecodeError(f"{name}: expected an array, found {type(value).__name__}")
    if len(value) % multiple or len(value) > most:
        raise FrameDecodeError(
            f"{name}: expected a multiple of {multiple} items, at most {most}, found {len(value)}"
        )
    return value


def _check_message_fields(fields: Sequence[object]) -> Message:
    """Validate [src, dst, seq, pf, created, ttl, hops, ciphertext] into a Message.

    Every message received passes here, so the checks are first made inline, in one
    expression; only a message failing one of them takes the path that names the field
    (`_explain_message_fields`, the same checks, one by one)."""
    src, dst, seq, pf, created, ttl, hops, ct = fields
    if (
        type(src) is int and 1 <= src <= U16
        and type(dst) is int and 1 <= dst <= U16
        and type(seq) is int and 0 <= seq <= U32
        and type(pf) is int and 0 <= pf <= 0x7F and pf & 7 <= Precedence.OVERRIDE
        and type(created) is int and 0 <= created <= U32
        and type(ttl) is int and 1 <= ttl <= U32
        and type(hops) is int and 0 <= hops <= MAX_HOPS
        and type(ct) is bytes and AEAD_TAG_BYTES <= len(ct) <= MAX_MESSAGE_BYTES
    ):  # fmt: skip
        return Message._from_checked(
            (src, dst, seq, _PRECEDENCE[pf & 7], _FLAGS[pf >> 3], created, ttl, hops, ct)
        )
    return _explain_message_fields(fields)


def _explain_message_fields(fields: Sequence[object]) -> Message:
    """`_check_message_fields` one field at a time: raises FrameDecodeError naming the first
    field that fails."""
    src = _int(fields[0], "message source", 1, U16)
    dst = _int(fields[1], "message destination", 1, U16)
    seq = _int(fields[2], "message sequence", 0, U32)
    pf = _int(fields[3], "message precedence and flags", 0, 0x7F)
    if pf & 7 > Precedence.OVERRIDE:
        raise FrameDecodeError(f"message precedence: expected 0..4, found {pf & 7}")
    created = _int(fields[4], "message creation time", 0, U32)
    ttl = _int(fields[5], "message time to live", 1, U32)
    hops = _int(fields[6], "message hop count", 0, MAX_HOPS)
    ct = _bytes(fields[7], "message ciphertext", AEAD_TAG_BYTES, MAX_MESSAGE_BYTES)
    return Message._from_checked(
        (src, dst, seq, _PRECEDENCE[pf & 7], _FLAGS[pf >> 3], created, ttl, hops, ct)
    )


_PRECEDENCE: Final = tuple(Precedence)
_FLAGS: Final = tuple(Flags(i) for i in range(16))
_HELLO_FLAG_VALUES: Final = tuple(HelloFlags(i) for i in range(_HELLO_FLAGS + 1))


def associated_data(src: int, dst: int, seq: int, pf: int, created: int, ttl: int) -> bytes:
    """The bytes the end-to-end AEAD authenticates: version byte and header fields."""
    return bytes([VERSION]) + msgpack.packb([src, dst, seq, pf, created, ttl])


def decode_message(data: bytes) -> Message:
    """A message as stored or reassembled from fragments."""
    fields = _unpack(data)
    fields = _list(fields, "message", 8, 8)
    if len(fields) != 8:
        raise FrameDecodeError(f"message: expected 8 fields, found {len(fields)}")
    return _check_message_fields(fields)


def decode_frame(data: bytes) -> Frame:
    """Parse a frame without its link tag; raises FrameDecodeError for anything invalid."""
    size = len(data)
    if size < 2 or size > MAX_FRAME_BYTES:
        raise FrameDecodeError(f"frame: expected 2..{MAX_FRAME_BYTES} bytes, found {size}")
    kind = data[0]
    if kind >> 4 != VERSION:
        raise FrameDecodeError(f"frame version: expected {VERSION}, found {kind >> 4}")
    ftype = _FRAME_TYPES.get(kind & 0xF)
    if ftype is None:
        raise FrameDecodeError(f"frame type: unknown type {kind & 0xF}")
    if ftype in _NET_TYPES:
        raise FrameDecodeError(f"{ftype.name} frame: its tags follow its array (decode_net_frame)")
    fields = _unpack(data[1:])
    if type(fields) is not list:
        raise FrameDecodeError(f"frame: expected an array, found {type(fields).__name__}")
    expected = _FIELD_COUNTS[ftype]
    if len(fields) != expected and len(fields) != expected + OPTIONAL_FIELDS.get(ftype, 0):
        also = " (7 with links)" if ftype is FrameType.ROUTE else ""
        raise FrameDecodeError(
            f"{ftype.name} frame: expected {expected}{also} fields, found {len(fields)}"
        )
    sender, counter = fields[0], fields[1]
    if not (
        type(sender) is int and 1 <= sender <= U16 and type(counter) is int and 0 <= counter <= U32
    ):  # checked inline first, as `_mid` does: only a bad frame takes the path that says why
        sender = _int(sender, "frame sender", 1, U16)
        counter = _int(counter, "frame counter", 0, U32)
    return _DECODERS[ftype](sender, counter, fields[2:])


def _decode_data(sender: int, counter: int, f: list[object]) -> DataFrame:
    return DataFrame(sender, counter, _check_message_fields(f))


def _mid(f: Sequence[object], name: str) -> MessageId:
    src, epoch, seq = f[0], f[1], f[2]
    if (
        type(src) is int and 1 <= src <= U16
        and type(epoch) is int and 0 <= epoch <= U32
        and type(seq) is int and 0 <= seq <= U32
    ):  # fmt: skip
        return (src, epoch, seq)
    return (
        _int(f[0], f"{name} source", 1, U16),
        _int(f[1], f"{name} epoch", 0, U32),
        _int(f[2], f"{name} sequence", 0, U32),
    )


def _decode_frag(sender: int, counter: int, f: list[object]) -> FragFrame:
    mid = _mid(f, "fragment")
    count = _int(f[4], "fragment count", 2, MAX_FRAGMENTS)
    index = _int(f[3], "fragment index", 0, count - 1)
    chunk = _bytes(f[5], "fragment chunk", 1, MAX_FRAME_BYTES)
    return FragFrame(sender, counter, mid, index, count, chunk)


def _runs(acks: Sequence[MessageId]) -> list[int]:
    """Acknowledged ids as runs, flat: [src, epoch, first seq, count, ...], each run the
    consecutive sequence numbers of one source and epoch: a queue of messages from one
    origin costs one run, not an id each (the 2.4 kbit/s HF budget)."""
    flat: list[int] = []
    for src, epoch, seq in acks:  # sorted, each once (AckFrame)
        if flat and flat[-4] == src and flat[-3] == epoch and flat[-2] + flat[-1] == seq:
            flat[-1] += 1
        else:
            flat.extend((src, epoch, seq, 1))
    return flat


def _decode_ack(sender: int, counter: int, f: list[object]) -> AckFrame:
    flat = _list(f[0], "acknowledgements", 4, 4 * MAX_ACKS)
    acks: list[MessageId] = []
    for i in range(0, len(flat), 4):
        src, epoch, seq = _mid(flat[i : i + 3], "acknowledged message")
        count = _int(flat[i + 3], "acknowledged run length", 1, MAX_ACKS - len(acks))
        if seq + count - 1 > U32:
            raise FrameDecodeError(
                f"acknowledged run: expected seq + length - 1 <= {U32}, found {seq} + {count} - 1"
            )
        acks.extend([(src, epoch, seq + k) for k in range(count)])
    flat = _list(f[1], "fragment states", 4, 4 * MAX_ACKS)
    partial = tuple(
        FragState(
            _mid(flat[i : i + 3], "fragment state"),
            _bytes(flat[i + 3], "fragment bitmap", 1, MAX_FRAGMENTS // 8 + 1),
        )
        for i in range(0, len(flat), 4)
    )
    return AckFrame(sender, counter, tuple(acks), partial)


def _decode_hello(sender: int, counter: int, f: list[object]) -> HelloFrame:
    return HelloFrame(
        sender,
        counter,
        _int(f[0], "hello time", 0, U32),
        _int(f[1], "hello echo", 0, U32),
        _int(f[2], "hello hold time", 0, U32),
        _int(f[3], "hello loss", 0, 1000),
        _HELLO_FLAG_VALUES[_int(f[4], "hello flags", 0, _HELLO_FLAGS)],
        _int(f[5], "hello sent", 0, U32),
    )


def _decode_route(sender: int, counter: int, f: list[object]) -> RouteFrame:
    origin = _int(f[0], "route origin", 1, U16)
    lsa_seq = _int(f[1], "route sequence", 0, U32)
    flat = _list(f[2], "route adjacency", 2, 2 * MAX_ADVERT_NEIGHBOURS)
    adjacency = tuple(
        (_int(flat[i], "route neighbour", 1, U16), _int(flat[i + 1], "route cost", 1, U16))
        for i in range(0, len(flat), 2)
    )
    for (a, _), (b, _) in itertools.pairwise(adjacency):
        if a >= b:
            # One encoding per advert: a node handing on the adverts it holds to a new
            # neighbour sends them as stored, sorted; its origin must have signed that one.
            raise FrameDecodeError(
                f"route adjacency: expected in order of neighbour, each once, found {b} after {a}"
            )
    signature = _bytes(f[3], "route signature", SIGNATURE_BYTES, SIGNATURE_BYTES)
    links = _decode_links(f[4]) if len(f) > 4 else ()
    return RouteFrame(sender, counter, origin, lsa_seq, adjacency, signature, links)


def _decode_links(value: object) -> tuple[tuple[int, str, int], ...]:
    flat = _list(value, "route links", 3, 3 * MAX_ADVERT_LINKS)
    if not flat:  # one encoding per advert: no links, no seventh field
        raise FrameDecodeError("route links: expected at least one link in a seventh field")
    links = []
    for i in range(0, len(flat), 3):
        name = _bytes(flat[i + 1], "route link bearer", 1, MAX_BEARER_NAME)
        if _BEARER_NAME.fullmatch(name) is None:
            raise FrameDecodeError(
                f"route link bearer: expected lower-case letters, digits and dashes, or *, "
                f"found {name!r}"
            )
        neighbour = _int(flat[i], "route link neighbour", 1, U16)
        cost = _int(flat[i + 2], "route link cost", 1, U16)
        links.append((neighbour, name.decode("ascii"), cost))
    keys = [(n, b) for n, b, _ in links]
    for before, after in itertools.pairwise(keys):  # one encoding: its origin signed that one
        if before >= after:
            raise FrameDecodeError(
                f"route links: expected in order of (neighbour, bearer), each once, "
                f"found {after} after {before}"
            )
    if len({b for _, b in keys}) > MAX_ADVERT_BEARERS:
        raise FrameDecodeError(f"route links: more than {MAX_ADVERT_BEARERS} bearers named")
    return tuple(links)


def _decode_batch(sender: int, counter: int, f: list[object]) -> BatchFrame:
    items = f[0]
    if type(items) is not list:
        raise FrameDecodeError(f"batch messages: expected an array, found {type(items).__name__}")
    if not 2 <= len(items) <= MAX_BATCH:
        raise FrameDecodeError(
            f"batch messages: expected 2..{MAX_BATCH} messages, found {len(items)}"
        )
    messages = []
    for i, item in enumerate(items):
        if type(item) is not list or len(item) != 8:
            found = f"{len(item)} fields" if type(item) is list else type(item).__name__
            raise FrameDecodeError(
                f"batch message {i}: expected a message array of 8 fields, found {found}"
            )
        try:
            messages.append(_check_message_fields(item))
        except FrameDecodeError as exc:  # the whole frame goes: no message of it is taken
            raise FrameDecodeError(f"batch message {i}: {exc}") from None
    return BatchFrame(sender, counter, tuple(messages))


def _decode_revoke(sender: int, counter: int, f: list[object]) -> RevokeFrame:
    return RevokeFrame(sender, counter, _bytes(f[0], "revocation notice", 1, MAX_NOTICE_BYTES))


def _decode_setup(sender: int, counter: int, f: list[object]) -> SetupFrame:
    return SetupFrame(
        sender,
        counter,
        _int(f[0], "setup source", 1, U16),
        _int(f[1], "setup destination", 1, U16),
        _int(f[2], "setup creation time", 0, U32),
        _int(f[3], "setup hop count", 0, MAX_HOPS),
        _bytes(f[4], "setup KEM ciphertext", KEM_CIPHERTEXT_BYTES, KEM_CIPHERTEXT_BYTES),
        _bytes(f[5], "setup signature", SIGNATURE_BYTES, SIGNATURE_BYTES),
    )


_FRAME_TYPES: Final = {int(t): t for t in FrameType}
_NET_TYPES: Final = frozenset((FrameType.NET, FrameType.NET_FRAG))  # their tags follow them
_FIELD_COUNTS: Final = {
    FrameType.DATA: 10,
    FrameType.FRAG: 8,
    FrameType.ACK: 4,
    FrameType.HELLO: 8,
    FrameType.ROUTE: 6,
    FrameType.SETUP: 8,
    FrameType.REVOKE: 3,
    FrameType.BATCH: 3,
    FrameType.NET: 10,
    FrameType.NET_FRAG: 8,
}
FIELD_COUNTS: Final[Mapping[FrameType, int]] = _FIELD_COUNTS
"""Fields in each frame type's array (sender and counter included): what `tawan.core.screen`
checks before any decoding."""
OPTIONAL_FIELDS: Final[Mapping[FrameType, int]] = {FrameType.ROUTE: 1}
"""Fields a frame type may have beyond `FIELD_COUNTS`, at the end: a ROUTE's links."""

_DECODERS: Final[dict[FrameType, Callable[[int, int, list[object]], Frame]]] = {
    FrameType.DATA: _decode_data,
    FrameType.FRAG: _decode_frag,
    FrameType.ACK: _decode_ack,
    FrameType.HELLO: _decode_hello,
    FrameType.ROUTE: _decode_route,
    FrameType.SETUP: _decode_setup,
    FrameType.REVOKE: _decode_revoke,
    FrameType.BATCH: _decode_batch,
}
