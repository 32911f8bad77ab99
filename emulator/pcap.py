"""Frames on emulated links as pcap files, and a scapy dissector that reads them back.

Each record is a frame as it went on the air, behind a small pseudo link-layer header that
names the link, the sender and the receiver (pcap linktype 147, DLT_USER0, registered with
scapy here). Names rather than made-up IP addresses: a radio net has many members, a capture
may be merged with another link's, and the names are what the scenario and the results use.

What a dissector can read without keys is nearly everything: a tawan frame is a kind byte,
a msgpack array of small integers and byte strings, and an 8-byte link tag (docs/protocol.md,
section 3). Only a message's payload is encrypted; it shows as bytes. Bytes that are not a
well-formed frame never raise: the layer that cannot be read becomes scapy's Raw.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final

import msgpack
from scapy.config import conf
from scapy.error import Scapy_Exception
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteField,
    ConditionalField,
    Field,
    FieldLenField,
    PacketListField,
    StrLenField,
)
from scapy.packet import Packet, bind_layers
from scapy.plist import PacketList
from scapy.utils import PcapWriter, rdpcap

from crypto.schedule import LINK_TAG_BYTES
from tawan.core.frames import FrameType, HelloFlags
from tawan.core.precedence import Precedence

__all__ = [
    "DLT_USER0",
    "PSEUDO_HEADER_VERSION",
    "PcapRecorder",
    "Tawan",
    "TawanAck",
    "TawanData",
    "TawanFrag",
    "TawanHello",
    "TawanLink",
    "TawanRevoke",
    "TawanRoute",
    "TawanSetup",
    "dissect",
    "pseudo_header",
]

DLT_USER0: Final = 147
"""The first of the link types libpcap reserves for private use (DLT_USER0..DLT_USER15)."""
PSEUDO_HEADER_VERSION: Final = 1
SNAPLEN: Final = 1 << 18  # above the largest frame (65535 bytes, tag) and the pseudo header
_MAX_NAME_BYTES: Final = 255


class DissectError(Scapy_Exception):
    """Bytes a field cannot read; scapy turns the layer into Raw (never seen by a caller)."""


# ================================================================== msgpack fields
_UNSIGNED: Final = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_SIGNED: Final = {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}  # any width is valid if not negative
_ARRAYS: Final = {0xDC: 2, 0xDD: 4}
_BINS: Final = {0xC4: 1, 0xC5: 2, 0xC6: 4}


def _take(s: bytes, width: int, what: str) -> tuple[bytes, bytes]:
    if len(s) < width:
        raise DissectError(f"{what}: expected {width} bytes, found {len(s)}")
    return s[width:], s[:width]


def _read_uint(s: bytes, what: str) -> tuple[bytes, int]:
    """One non-negative msgpack integer, in whichever width the sender used."""
    if not s:
        raise DissectError(f"{what}: expected a msgpack integer, found the end of the frame")
    head, s = s[0], s[1:]
    if head < 0x80:
        return s, head
    width = _UNSIGNED.get(head) or _SIGNED.get(head)
    if width is None:
        raise DissectError(f"{what}: expected a msgpack integer, found byte 0x{head:02x}")
    s, raw = _take(s, width, what)
    value = int.from_bytes(raw, "big", signed=head in _SIGNED)
    if value < 0:
        raise DissectError(f"{what}: expected a non-negative integer, found {value}")
    return s, value


def _read_array_length(s: bytes, what: str) -> tuple[bytes, int]:
    if not s:
        raise DissectError(f"{what}: expected a msgpack array, found the end of the frame")
    head, s = s[0], s[1:]
    if 0x90 <= head <= 0x9F:
        return s, head & 0x0F
    width = _ARRAYS.get(head)
    if width is None:
        raise DissectError(f"{what}: expected a msgpack array, found byte 0x{head:02x}")
    s, raw = _take(s, width, what)
    return s, int.from_bytes(raw, "big")


def _read_bin(s: bytes, what: str) -> tuple[bytes, bytes]:
    if not s:
        raise DissectError(f"{what}: expected msgpack bytes, found the end of the frame")
    head, s = s[0], s[1:]
    width = _BINS.get(head)
    if width is None:
        raise DissectError(f"{what}: expected msgpack bytes, found byte 0x{head:02x}")
    s, raw = _take(s, width, what)
    return _take(s, int.from_bytes(raw, "big"), what)


class MsgpackUIntField(Field[int, int]):
    """A non-negative msgpack integer; built in its shortest form, read in any width."""

    def __init__(self, name: str, default: int | None = 0) -> None:
        super().__init__(name, default)

    def addfield(self, pkt: Packet, s: bytes, val: int | None) -> bytes:
        return s + msgpack.packb(self.i2m(pkt, val))

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, int]:
        return _read_uint(s, self.name)

    def i2m(self, pkt: Packet | None, x: int | None) -> int:
        return 0 if x is None else int(x)

    def i2len(self, pkt: Packet, x: Any) -> int:
        return len(msgpack.packb(self.i2m(pkt, x)))


class MsgpackArrayField(MsgpackUIntField):
    """A msgpack array header: its number of items, counted from the packet when None."""

    __slots__ = ("count",)

    def __init__(self, name: str, count: Callable[[Packet], int]) -> None:
        super().__init__(name, None)
        self.count = count

    def addfield(self, pkt: Packet, s: bytes, val: int | None) -> bytes:
        items = self.i2m(pkt, val)
        if items < 16:
            return s + bytes([0x90 | items])
        if items <= 0xFFFF:
            return s + b"\xdc" + struct.pack(">H", items)
        return s + b"\xdd" + struct.pack(">I", items)

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, int]:
        return _read_array_length(s, self.name)

    def i2m(self, pkt: Packet | None, x: int | None) -> int:
        if x is not None:
            return int(x)
        return 0 if pkt is None else self.count(pkt)


class MsgpackBinField(Field[bytes, bytes]):
    """A msgpack byte string (bin 8/16/32), shown as its length and first bytes in hex."""

    def __init__(self, name: str, default: bytes = b"") -> None:
        super().__init__(name, default)

    def addfield(self, pkt: Packet, s: bytes, val: bytes | None) -> bytes:
        return s + msgpack.packb(bytes(val or b""))

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, bytes]:
        return _read_bin(s, self.name)

    def i2len(self, pkt: Packet, x: Any) -> int:
        return len(msgpack.packb(bytes(x or b"")))

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        shown = x[:16].hex() + ("..." if len(x) > 16 else "")
        return f"<{len(x)} bytes> {shown}"


class _PrecedenceFlagsField(MsgpackUIntField):
    def i2repr(self, pkt: Packet | None, x: int) -> str:
        return f"0x{x:02x} ({_describe_pf(x)})"


class _HelloFlagsField(MsgpackUIntField):
    def i2repr(self, pkt: Packet | None, x: int) -> str:
        return f"{x} ({HelloFlags(x & 15).name or 'NONE'})"


def _describe_pf(pf: int) -> str:
    rank = pf & 7
    precedence = Precedence(rank).name if rank <= max(Precedence) else f"precedence {rank}"
    flags = [name for name, bit in _MESSAGE_FLAGS.items() if pf >> 3 & bit]
    return "|".join([precedence, *flags])


_MESSAGE_FLAGS: Final = {"RECEIPT_REQUESTED": 1, "SIGNED": 2, "COMPRESSED": 4, "CONTROL": 8}


class _TagField(Field[bytes, bytes]):
    """The link tag: the last 8 bytes of the frame, after the body. `Tawan` sets it aside
    before its fields are read and puts it back last when built; in place it takes no bytes."""

    def __init__(self, name: str) -> None:
        super().__init__(name, b"")

    def addfield(self, pkt: Packet, s: bytes, val: bytes | None) -> bytes:
        return s

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, bytes]:
        return s, b""

    def i2repr(self, pkt: Packet | None, x: bytes) -> str:
        return x.hex()


def _groups(count: int, size: int, what: str) -> int:
    if count % size:
        raise DissectError(f"{what}: expected a multiple of {size} items, found {count}")
    return count // size


# ================================================================== the layers
class TawanLink(Packet):
    """The pseudo link-layer header of linktype 147: which link, who sent, who receives."""

    name = "tawan link"
    fields_desc = [  # noqa: RUF012 (scapy's class attribute)
        ByteField("version", PSEUDO_HEADER_VERSION),
        FieldLenField("link_len", None, length_of="link", fmt="B"),
        StrLenField("link", b"", length_from=lambda p: p.link_len),
        FieldLenField("sender_len", None, length_of="sender", fmt="B"),
        StrLenField("sender", b"", length_from=lambda p: p.sender_len),
        FieldLenField("receiver_len", None, length_of="receiver", fmt="B"),
        StrLenField("receiver", b"", length_from=lambda p: p.receiver_len),
    ]


_FIELD_COUNTS: Final = {
    FrameType.DATA: 10, FrameType.FRAG: 8, FrameType.ACK: 4, FrameType.HELLO: 7,
    FrameType.ROUTE: 6, FrameType.SETUP: 8, FrameType.REVOKE: 3, FrameType.BATCH: 3,
}  # fmt: skip


def _frame_items(pkt: Packet) -> int:
    if pkt.type == FrameType.ROUTE and isinstance(pkt.payload, TawanRoute):
        return _FIELD_COUNTS[FrameType.ROUTE] + bool(pkt.payload.fields.get("links"))
    return _FIELD_COUNTS.get(pkt.type, 2)


class Tawan(Packet):
    """The clear header every frame starts with, and its link tag (docs/protocol.md, 3)."""

    name = "tawan"
    fields_desc = [  # noqa: RUF012
        BitField("version", 1, 4),
        BitEnumField("type", 0, 4, {int(t): t.name for t in FrameType}),
        MsgpackArrayField("items", _frame_items),
        MsgpackUIntField("sender", 1),
        MsgpackUIntField("counter", 0),
        _TagField("tag"),
    ]

    def do_dissect(self, s: bytes) -> bytes:
        if s and s[0] & 0xF in (FrameType.NET, FrameType.NET_FRAG):
            # Field 1 is the receiver list, and a tag per receiver follows the array
            # (docs/protocol.md 4.9): version, type and sender here, the rest as Raw.
            for f in self.fields_desc[:4]:
                s, value = f.getfield(self, s)
                self.fields[f.name] = value
            self.fields["counter"], self.fields["tag"] = 0, b""
            return s
        # The tag ends the frame: set it aside, so that the body's layer ends with the array
        # and anything between the two shows as Raw.
        body, tag = (s[:-LINK_TAG_BYTES], s[-LINK_TAG_BYTES:]) if len(s) > 10 else (s, b"")
        rest: bytes = super().do_dissect(body)
        self.fields["tag"] = tag
        return rest

    def self_build(self) -> bytes:
        if self.type in (FrameType.NET, FrameType.NET_FRAG):  # no counter, tags in the rest
            built: Any = b""
            for f in self.fields_desc[:4]:
                built = f.addfield(self, built, self.getfieldval(f.name))
            return bytes(built)
        whole: bytes = super().self_build()
        return whole

    def do_build(self) -> bytes:
        built: bytes = super().do_build()
        return built + bytes(self.tag or b"")


class TawanMessageId(Packet):
    """(source, epoch, sequence, count): a run of `count` consecutive message ids inside an
    ACK, from `seq` on."""

    name = "message id run"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("src", 1),
        MsgpackUIntField("epoch", 0),
        MsgpackUIntField("seq", 0),
        MsgpackUIntField("count", 1),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class TawanFragState(Packet):
    """Which fragments of a message an ACK's sender holds (bit i of `bitmap`: fragment i)."""

    name = "fragment state"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("src", 1),
        MsgpackUIntField("epoch", 0),
        MsgpackUIntField("seq", 0),
        MsgpackBinField("bitmap"),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class TawanAdjacency(Packet):
    name = "adjacency"
    fields_desc = [MsgpackUIntField("neighbour", 1), MsgpackUIntField("cost", 1)]  # noqa: RUF012

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class TawanData(Packet):
    """A whole message: its clear header, then the sealed payload as bytes."""

    name = "tawan data"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("src", 1),
        MsgpackUIntField("dst", 1),
        MsgpackUIntField("seq", 0),
        _PrecedenceFlagsField("pf", 0),
        MsgpackUIntField("created", 0),
        MsgpackUIntField("ttl", 1),
        MsgpackUIntField("hops", 0),
        MsgpackBinField("ciphertext"),
    ]

    @property
    def precedence(self) -> int:
        return int(self.pf) & 7

    @property
    def flags(self) -> int:
        return int(self.pf) >> 3


class TawanFrag(Packet):
    name = "tawan fragment"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("mid_src", 1),
        MsgpackUIntField("mid_epoch", 0),
        MsgpackUIntField("mid_seq", 0),
        MsgpackUIntField("index", 0),
        MsgpackUIntField("count", 2),
        MsgpackBinField("chunk"),
    ]


class TawanAck(Packet):
    name = "tawan ack"
    fields_desc = [  # noqa: RUF012
        MsgpackArrayField("acks_items", lambda p: 4 * len(p.acks)),
        PacketListField(
            "acks", [], TawanMessageId,
            count_from=lambda p: _groups(p.acks_items, 4, "acknowledgements"),
        ),
        MsgpackArrayField("states_items", lambda p: 4 * len(p.states)),
        PacketListField(
            "states", [], TawanFragState,
            count_from=lambda p: _groups(p.states_items, 4, "fragment states"),
        ),
    ]  # fmt: skip


class TawanHello(Packet):
    name = "tawan hello"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("time_ms", 0),
        MsgpackUIntField("echo_ms", 0),
        MsgpackUIntField("held_ms", 0),
        MsgpackUIntField("rx_loss", 0),
        _HelloFlagsField("flags", 0),
        MsgpackUIntField("sent", 0),
    ]


class TawanRouteLink(Packet):
    """One up link of an advert's origin: (neighbour, bearer, cost) (docs/protocol.md 4.5)."""

    name = "link"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("neighbour", 1),
        MsgpackBinField("bearer"),
        MsgpackUIntField("cost", 1),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


def _has_links(pkt: Packet) -> bool:
    """A ROUTE with its optional field: its links follow the signature. Dissected, the
    frame's count of items says; built from fields, whether links were given."""
    under = pkt.underlayer
    if under is None or under.items is None:
        return bool(pkt.fields.get("links"))
    return bool(under.items == _FIELD_COUNTS[FrameType.ROUTE] + 1)


class TawanRoute(Packet):
    name = "tawan route"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("origin", 1),
        MsgpackUIntField("lsa_seq", 0),
        MsgpackArrayField("adjacency_items", lambda p: 2 * len(p.adjacency)),
        PacketListField(
            "adjacency", [], TawanAdjacency,
            count_from=lambda p: _groups(p.adjacency_items, 2, "route adjacency"),
        ),
        MsgpackBinField("signature"),
        ConditionalField(MsgpackArrayField("link_items", lambda p: 3 * len(p.links)), _has_links),
        ConditionalField(
            PacketListField(
                "links", [], TawanRouteLink,
                count_from=lambda p: _groups(p.link_items, 3, "route links"),
            ),
            _has_links,
        ),
    ]  # fmt: skip


class TawanSetup(Packet):
    name = "tawan setup"
    fields_desc = [  # noqa: RUF012
        MsgpackUIntField("src", 1),
        MsgpackUIntField("dst", 1),
        MsgpackUIntField("created", 0),
        MsgpackUIntField("hops", 0),
        MsgpackBinField("kem_ciphertext"),
        MsgpackBinField("signature"),
    ]


class TawanRevoke(Packet):
    name = "tawan revoke"
    fields_desc = [MsgpackBinField("notice")]  # noqa: RUF012


_BODIES: Final[dict[FrameType, type[Packet]]] = {
    FrameType.DATA: TawanData,
    FrameType.FRAG: TawanFrag,
    FrameType.ACK: TawanAck,
    FrameType.HELLO: TawanHello,
    FrameType.ROUTE: TawanRoute,
    FrameType.SETUP: TawanSetup,
    FrameType.REVOKE: TawanRevoke,
}

bind_layers(TawanLink, Tawan)
for _type, _body in _BODIES.items():
    # Only version 1 is read: a frame of another version shows its body as Raw.
    bind_layers(Tawan, _body, version=1, type=int(_type))
conf.l2types.register(DLT_USER0, TawanLink)


# ================================================================== writing and reading
def pseudo_header(link: str, sender: str, receiver: str) -> bytes:
    """The bytes of the link-layer header `TawanLink` reads."""
    out = bytearray([PSEUDO_HEADER_VERSION])
    for what, name in (("link", link), ("sender", sender), ("receiver", receiver)):
        encoded = name.encode()
        if len(encoded) > _MAX_NAME_BYTES:
            raise ValueError(
                f"{what} name {name[:20]!r}...: expected at most {_MAX_NAME_BYTES} bytes "
                f"of UTF-8, found {len(encoded)}"
            )
        out.append(len(encoded))
        out += encoded
    return bytes(out)


class PcapRecorder:
    """One pcap file per chosen link (`out_dir / f"{link}.pcap"`), frames in the order given.

    Timestamps are the run's virtual times (seconds from its start, so 1970 to a reader).
    Frames of other links are ignored, so the recorder can be handed every frame of a run.
    """

    def __init__(self, out_dir: Path, links: Collection[str]) -> None:
        for link in links:
            if not link or "/" in link or "\\" in link or link in (".", ".."):
                raise ValueError(f"link name {link!r}: expected a plain file name")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.paths = {link: out_dir / f"{link}.pcap" for link in links}
        self._writers: dict[str, PcapWriter] | None = {
            link: PcapWriter(str(path), linktype=DLT_USER0, snaplen=SNAPLEN)
            for link, path in self.paths.items()
        }

    def frame(self, time: float, link: str, sender: str, receiver: str, data: bytes) -> None:
        if self._writers is None:
            raise ValueError(f"frame at {time} on {link}: this recorder is closed")
        writer = self._writers.get(link)
        if writer is None:
            return
        if time < 0:
            raise ValueError(f"frame time on {link}: expected seconds >= 0, found {time}")
        # scapy gives bytes a zero fraction unless told: split the time ourselves
        seconds = int(time)
        micros = round((time - seconds) * 1_000_000)
        if micros == 1_000_000:
            seconds, micros = seconds + 1, 0
        record = pseudo_header(link, sender, receiver) + data
        if not writer.header_present:
            writer.write_header(record)
        writer.write_packet(record, sec=seconds, usec=micros)

    def close(self) -> None:
        """Flush and close every file (a link without frames gets a valid empty capture)."""
        if self._writers is None:
            return
        for writer in self._writers.values():
            writer.close()
        self._writers = None

    def __enter__(self) -> PcapRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dissect(path: Path | str) -> list[Packet]:
    """Every record of a capture written by `PcapRecorder`, dissected down to its fields."""
    packets: PacketList = rdpcap(str(path))
    return list(packets)
