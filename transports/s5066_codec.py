"""STANAG 5066 Ed.3 Annex A S_primitives: the ones a SIS client needs, encoded and decoded.

No I/O here: `encode` turns a primitive into the bytes of one generic element, and
`decode_body` turns the TYPE byte and body of one element (as split from the stream by
`transports.s5066_stream.SisDecoder`) into a primitive. Ed.1.2, Ed.3 and, as far as is
known, Ed.4 share this layout: `90 EB` preamble, version `00`, a 2-byte big-endian size
counting the bytes after it, the TYPE byte, then the body, every field MSB first.

Bytes from the server are the server's fault when wrong: decoding raises `SisDecodeError`
(a ValueError naming the primitive, what was expected and what was found) and nothing else.
Types a client does not use (hard links, management, expedited data) decode to
`OtherPrimitive`, so a client can skip and count them instead of failing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeAlias, TypeVar

PREAMBLE: Final = b"\x90\xeb"
VERSION: Final = 0
HEADER: Final = PREAMBLE + bytes([VERSION])
"""What every element starts with; the stream decoder resynchronises on it."""
HEADER_BYTES: Final = 5  # preamble, version, size
ADDRESS_MAX: Final = 0x0FFF_FFFF  # 28 bits
TTL_UNIT_S: Final = 2
TTL_MAX_UNITS: Final = 648_000  # about 15 days; 0 means "the server's default maximum"
ROCKWELL_PAD: Final = 4
"""Rockwell Collins servers up to 2.1 put 4 zero bytes after the size in UNIDATA_INDICATION."""


class SisDecodeError(ValueError):
    """Bytes from the SIS server that are no valid S_primitive (the server's fault)."""


class PrimitiveType(enum.IntEnum):
    BIND_REQUEST = 1
    UNBIND_REQUEST = 2
    BIND_ACCEPTED = 3
    BIND_REJECTED = 4
    UNBIND_INDICATION = 5
    HARD_LINK_ESTABLISH = 6
    HARD_LINK_TERMINATE = 7
    HARD_LINK_ESTABLISHED = 8
    HARD_LINK_REJECTED = 9
    HARD_LINK_TERMINATED = 10
    HARD_LINK_INDICATION = 11
    HARD_LINK_ACCEPT = 12
    HARD_LINK_REJECT = 13
    SUBNET_AVAILABILITY = 14
    DATA_FLOW_ON = 15
    DATA_FLOW_OFF = 16
    KEEP_ALIVE = 17
    MANAGEMENT_MSG_REQUEST = 18
    MANAGEMENT_MSG_INDICATION = 19
    UNIDATA_REQUEST = 20
    UNIDATA_INDICATION = 21
    UNIDATA_REQUEST_CONFIRM = 22
    UNIDATA_REQUEST_REJECTED = 23
    EXPEDITED_UNIDATA_REQUEST = 24
    EXPEDITED_UNIDATA_INDICATION = 25
    EXPEDITED_UNIDATA_REQUEST_CONFIRM = 26
    EXPEDITED_UNIDATA_REQUEST_REJECTED = 27


class TxMode(enum.IntEnum):
    DEFAULT = 0  # "whatever was bound": invalid in a BIND
    ARQ = 1
    NON_ARQ = 2  # broadcast
    NON_ARQ_WITH_ERRORS = 3


class Confirm(enum.IntEnum):
    NONE = 0
    NODE = 1
    CLIENT = 2  # ARQ only


class BindRejectReason(enum.IntEnum):
    NOT_ENOUGH_RESOURCES = 1
    INVALID_SAP = 2
    SAP_ALREADY_ALLOCATED = 3
    ARQ_UNSUPPORTABLE_DURING_BROADCAST = 4


class UnbindReason(enum.IntEnum):
    PREEMPTED_BY_HIGHER_RANK = 1
    KEEP_ALIVE_TIMEOUT = 2
    TOO_MANY_INVALID_PRIMITIVES = 3
    TOO_MANY_EXPEDITED_REQUESTS = 4
    ARQ_UNSUPPORTABLE_DURING_BROADCAST = 5


class RejectReason(enum.IntEnum):
    TTL_EXPIRED = 1
    DESTINATION_SAP_NOT_BOUND = 2
    DESTINATION_NODE_NOT_RESPONDING = 3
    UPDU_LARGER_THAN_MTU = 4
    TX_MODE_NOT_SPECIFIED = 5


def _check_range(what: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}: expected an integer in {low}..{high}, found {value!r}")


@dataclass(frozen=True, slots=True)
class Address:
    """A 5066 node address: 28 bits, and whether it names a group (broadcast) or one node.

    On the wire (Fig. A-28) the top 3 bits give the address size in half-bytes (always sent
    as 7 here), the next bit the group flag, the low 28 bits the address. Decoding ignores
    the size: servers disagree on what a shorter size means, the value bits do not.
    """

    value: int
    group: bool = False

    def __post_init__(self) -> None:
        _check_range("5066 address", self.value, 0, ADDRESS_MAX)

    def encode(self) -> bytes:
        return ((7 << 29) | (int(self.group) << 28) | self.value).to_bytes(4, "big")

    @classmethod
    def decode(cls, data: bytes) -> Address:
        word = int.from_bytes(data[:4], "big")
        return cls(word & ADDRESS_MAX, bool(word & (1 << 28)))

    def __str__(self) -> str:
        dotted = ".".join(str(b) for b in self.value.to_bytes(4, "big"))
        return f"group:{dotted}" if self.group else dotted


def parse_address(text: str | int, *, group: bool = False) -> Address:
    """An address from config: an int, "a.b.c.d" (the 28 bits as 4 bytes, as Wireshark shows
    them, so the first byte is at most 15), or the same with a "group:" prefix."""
    if isinstance(text, int) and not isinstance(text, bool):
        return Address(text, group)
    if not isinstance(text, str):
        raise TypeError(f"5066 address: expected an int or 'a.b.c.d', found {text!r}")
    body = text.strip()
    if body.startswith("group:"):
        group, body = True, body[len("group:") :]
    parts = body.split(".")
    if len(parts) == 1 and parts[0].isdigit():
        value = int(parts[0])
    elif len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts):
        value = int.from_bytes(bytes(int(p) for p in parts), "big")
    else:
        raise ValueError(f"5066 address: expected an int or 'a.b.c.d', found {text!r}")
    if value > ADDRESS_MAX:
        raise ValueError(
            f"5066 address: expected at most 28 bits (15.255.255.255), found {text!r}"
        )
    return Address(value, group)


@dataclass(frozen=True, slots=True)
class ServiceType:
    """The 2-byte service type of a BIND and delivery mode of a UNIDATA_REQUEST (Figs. A-3,
    A-29): transmission mode, confirmation, delivery order and, non-ARQ only, the minimum
    number of retransmissions. TTL's top nibble shares the second byte; the request adds it.
    """

    txmode: TxMode
    confirm: Confirm = Confirm.NONE
    in_order: bool = True
    min_retx: int = 0

    def __post_init__(self) -> None:
        _check_range("service type min_retx", self.min_retx, 0, 15)
        if self.confirm == Confirm.CLIENT and self.txmode != TxMode.ARQ:
            raise ValueError(
                f"service type: client confirmation needs txmode ARQ, found {self.txmode.name}"
            )

    def encode(self, low_nibble: int = 0) -> bytes:
        first = (self.txmode << 4) | (self.confirm << 2) | (int(not self.in_order) << 1)
        return bytes([first, (self.min_retx << 4) | low_nibble])

    @classmethod
    def decode(cls, data: bytes, where: str) -> ServiceType:
        txmode = _enum(TxMode, data[0] >> 4, f"{where} txmode")
        confirm = _enum(Confirm, (data[0] >> 2) & 3, f"{where} delivery confirmation")
        try:
            return cls(txmode, confirm, not data[0] & 2, data[1] >> 4)
        except ValueError as exc:
            raise SisDecodeError(f"{where}: {exc}") from None


@dataclass(frozen=True, slots=True)
class BindRequest:
    sap: int
    rank: int
    service: ServiceType

    def __post_init__(self) -> None:
        _check_range("BIND_REQUEST sap", self.sap, 0, 15)
        _check_range("BIND_REQUEST rank", self.rank, 0, 15)


@dataclass(frozen=True, slots=True)
class UnbindRequest:
    pass


@dataclass(frozen=True, slots=True)
class BindAccepted:
    sap: int
    mtu: int

    def __post_init__(self) -> None:
        _check_range("BIND_ACCEPTED sap", self.sap, 0, 15)
        _check_range("BIND_ACCEPTED mtu", self.mtu, 0, 0xFFFF)


@dataclass(frozen=True, slots=True)
class BindRejected:
    reason: BindRejectReason


@dataclass(frozen=True, slots=True)
class UnbindIndication:
    reason: UnbindReason


@dataclass(frozen=True, slots=True)
class SubnetAvailability:
    """Status 0 off .. 5 tx-only, reason 0 .. 2; both implementation-dependent, kept raw."""

    status: int
    reason: int


@dataclass(frozen=True, slots=True)
class DataFlowOn:
    pass


@dataclass(frozen=True, slots=True)
class DataFlowOff:
    pass


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """Both the keep-alive and its answer: Ed.3 has one type for the two (A.2.1.17)."""


@dataclass(frozen=True, slots=True)
class UnidataRequest:
    priority: int
    dest_sap: int
    dest: Address
    mode: ServiceType
    ttl_units: int  # 2 s each; 0 is the server's default maximum
    data: bytes

    def __post_init__(self) -> None:
        _check_range("UNIDATA_REQUEST priority", self.priority, 0, 15)
        _check_range("UNIDATA_REQUEST dest_sap", self.dest_sap, 0, 15)
        _check_range("UNIDATA_REQUEST ttl_units", self.ttl_units, 0, TTL_MAX_UNITS)
        _check_range("UNIDATA_REQUEST size", len(self.data), 0, 0xFFFF - 13)


@dataclass(frozen=True, slots=True)
class UnidataIndication:
    """A U_PDU from `source`. `errors` is True for txmode 3 (delivered with errors: the
    error and non-received blocks are parsed and dropped); `padded` marks the Rockwell quirk."""

    priority: int
    dest_sap: int
    dest: Address
    txmode: TxMode
    source_sap: int
    source: Address
    data: bytes
    errors: bool = False
    padded: bool = False


@dataclass(frozen=True, slots=True)
class UnidataConfirm:
    """The server delivered (node confirmation) a U_PDU; `data` is its first bytes only."""

    dest_sap: int
    dest: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class UnidataRejected:
    reason: RejectReason
    dest_sap: int
    dest: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class OtherPrimitive:
    """A valid element of a type a client does not act on (or does not know): skip it."""

    type_code: int
    body: bytes

    @property
    def name(self) -> str:
        try:
            return PrimitiveType(self.type_code).name
        except ValueError:
            return f"TYPE_{self.type_code}"


Primitive: TypeAlias = (
    BindRequest
    | UnbindRequest
    | BindAccepted
    | BindRejected
    | UnbindIndication
    | SubnetAvailability
    | DataFlowOn
    | DataFlowOff
    | KeepAlive
    | UnidataRequest
    | UnidataIndication
    | UnidataConfirm
    | UnidataRejected
    | OtherPrimitive
)


def element(type_code: int, body: bytes = b"") -> bytes:
    """One generic element: header, size (TYPE byte plus body), TYPE, body."""
    size = 1 + len(body)
    if size > 0xFFFF:
        raise ValueError(f"S_primitive: expected a body of at most 65534 bytes, found {size - 1}")
    return HEADER + size.to_bytes(2, "big") + bytes([type_code]) + body


def encode(primitive: Primitive) -> bytes:
    """The bytes of one S_primitive, ready for the SIS socket."""
    return element(*_type_and_body(primitive))


def _type_and_body(p: Primitive) -> tuple[int, bytes]:
    t = PrimitiveType
    match p:
        case BindRequest():
            return t.BIND_REQUEST, bytes([p.sap << 4 | p.rank]) + p.service.encode()
        case UnbindRequest():
            return t.UNBIND_REQUEST, b""
        case BindAccepted():
            return t.BIND_ACCEPTED, bytes([p.sap << 4]) + p.mtu.to_bytes(2, "big")
        case BindRejected():
            return t.BIND_REJECTED, bytes([p.reason])
        case UnbindIndication():
            return t.UNBIND_INDICATION, bytes([p.reason])
        case SubnetAvailability():
            return t.SUBNET_AVAILABILITY, bytes([p.status, p.reason])
        case DataFlowOn():
            return t.DATA_FLOW_ON, b""
        case DataFlowOff():
            return t.DATA_FLOW_OFF, b""
        case KeepAlive():
            return t.KEEP_ALIVE, b""
        case UnidataRequest():
            mode = p.mode.encode(p.ttl_units >> 16)
            head = bytes([p.priority << 4 | p.dest_sap]) + p.dest.encode() + mode
            tail = (p.ttl_units & 0xFFFF).to_bytes(2, "big") + len(p.data).to_bytes(2, "big")
            return t.UNIDATA_REQUEST, head + tail + p.data
        case UnidataIndication():
            if p.errors:
                raise ValueError("UNIDATA_INDICATION: encoding error blocks is not supported")
            head = bytes([p.priority << 4 | p.dest_sap]) + p.dest.encode()
            source = bytes([p.txmode << 4 | p.source_sap]) + p.source.encode()
            pad = bytes(ROCKWELL_PAD) if p.padded else b""
            size = len(p.data).to_bytes(2, "big")
            return t.UNIDATA_INDICATION, head + source + size + pad + p.data
        case UnidataConfirm():
            return t.UNIDATA_REQUEST_CONFIRM, _answer(0, p.dest_sap, p.dest, p.data)
        case UnidataRejected():
            return t.UNIDATA_REQUEST_REJECTED, _answer(p.reason, p.dest_sap, p.dest, p.data)
        case OtherPrimitive():
            return p.type_code, p.body


def _answer(high: int, sap: int, dest: Address, data: bytes) -> bytes:
    return bytes([high << 4 | sap]) + dest.encode() + len(data).to_bytes(2, "big") + data


def decode_body(type_code: int, body: bytes) -> Primitive:
    """The primitive in one element, from its TYPE byte and the bytes after it."""
    decoder = _DECODERS.get(type_code)
    if decoder is None:
        return OtherPrimitive(type_code, bytes(body))
    name = PrimitiveType(type_code).name
    expected = _FIXED_SIZES.get(type_code)
    if expected is not None and len(body) != expected:
        raise SisDecodeError(f"{name}: expected a {expected}-byte body, found {len(body)} bytes")
    return decoder(body, name)


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(kind: type[_E], value: int, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        valid = ", ".join(f"{m.value} {m.name}" for m in kind)
        raise SisDecodeError(f"{where}: expected one of {valid}; found {value}") from None


def _bind_request(b: bytes, name: str) -> Primitive:
    return BindRequest(b[0] >> 4, b[0] & 15, ServiceType.decode(b[1:3], name))


def _bind_accepted(b: bytes, name: str) -> Primitive:
    return BindAccepted(b[0] >> 4, int.from_bytes(b[1:3], "big"))


def _bind_rejected(b: bytes, name: str) -> Primitive:
    return BindRejected(_enum(BindRejectReason, b[0], f"{name} reason"))


def _unbind_indication(b: bytes, name: str) -> Primitive:
    return UnbindIndication(_enum(UnbindReason, b[0], f"{name} reason"))


def _subnet_availability(b: bytes, name: str) -> Primitive:
    return SubnetAvailability(b[0], b[1])


def _unidata_request(b: bytes, name: str) -> Primitive:
    _need(b, 11, name, "header")  # 12 with the TYPE byte
    mode = ServiceType.decode(b[5:7], name)
    ttl = (b[6] & 15) << 16 | int.from_bytes(b[7:9], "big")
    data = _sized(b, 9, name)
    if ttl > TTL_MAX_UNITS:
        raise SisDecodeError(f"{name}: expected a TTL of at most {TTL_MAX_UNITS}, found {ttl}")
    return UnidataRequest(b[0] >> 4, b[0] & 15, Address.decode(b[1:5]), mode, ttl, data)


def _unidata_indication(b: bytes, name: str) -> Primitive:
    _need(b, 12, name, "header")
    txmode = _enum(TxMode, b[5] >> 4, f"{name} txmode")
    size = int.from_bytes(b[10:12], "big")
    start, errors, padded = 12, False, False
    if txmode == TxMode.NON_ARQ_WITH_ERRORS:
        start, errors = _skip_error_blocks(b, name), True
    elif len(b) == start + size + ROCKWELL_PAD:
        start, padded = start + ROCKWELL_PAD, True
    if len(b) != start + size:
        raise SisDecodeError(
            f"{name}: U_PDU size field says {size} bytes, found {len(b) - start} after it"
        )
    return UnidataIndication(
        priority=b[0] >> 4,
        dest_sap=b[0] & 15,
        dest=Address.decode(b[1:5]),
        txmode=txmode,
        source_sap=b[5] & 15,
        source=Address.decode(b[6:10]),
        data=bytes(b[start:]),
        errors=errors,
        padded=padded,
    )


def _skip_error_blocks(b: bytes, name: str) -> int:
    """txmode 3 adds two lists of (pointer, length) pairs before the U_PDU: skip them."""
    at = 12
    for what in ("error blocks", "non-received blocks"):
        _need(b, at + 2, name, f"{what} count")
        count = int.from_bytes(b[at : at + 2], "big")
        at += 2 + 4 * count
        _need(b, at, name, what)
    return at


def _answer_of(b: bytes, name: str) -> tuple[int, int, Address, bytes]:
    _need(b, 7, name, "header")
    return b[0] >> 4, b[0] & 15, Address.decode(b[1:5]), _sized(b, 5, name)


def _confirm(b: bytes, name: str) -> Primitive:
    _, sap, dest, data = _answer_of(b, name)
    return UnidataConfirm(sap, dest, data)


def _rejected(b: bytes, name: str) -> Primitive:
    reason, sap, dest, data = _answer_of(b, name)
    return UnidataRejected(_enum(RejectReason, reason, f"{name} reason"), sap, dest, data)


def _need(b: bytes, size: int, name: str, what: str) -> None:
    if len(b) < size:
        raise SisDecodeError(f"{name}: expected {size} bytes up to its {what}, found {len(b)}")


def _sized(b: bytes, at: int, name: str) -> bytes:
    """The U_PDU after a 2-byte size at `at`, which must end exactly at the element's end."""
    size = int.from_bytes(b[at : at + 2], "big")
    if len(b) != at + 2 + size:
        raise SisDecodeError(
            f"{name}: U_PDU size field says {size} bytes, found {len(b) - at - 2} after it"
        )
    return bytes(b[at + 2 :])


_Decoder: TypeAlias = Callable[[bytes, str], Primitive]


def _empty(kind: type[UnbindRequest | DataFlowOn | DataFlowOff | KeepAlive]) -> _Decoder:
    return lambda b, name: kind()


_DECODERS: dict[int, _Decoder] = {
    PrimitiveType.BIND_REQUEST: _bind_request,
    PrimitiveType.UNBIND_REQUEST: _empty(UnbindRequest),
    PrimitiveType.BIND_ACCEPTED: _bind_accepted,
    PrimitiveType.BIND_REJECTED: _bind_rejected,
    PrimitiveType.UNBIND_INDICATION: _unbind_indication,
    PrimitiveType.SUBNET_AVAILABILITY: _subnet_availability,
    PrimitiveType.DATA_FLOW_ON: _empty(DataFlowOn),
    PrimitiveType.DATA_FLOW_OFF: _empty(DataFlowOff),
    PrimitiveType.KEEP_ALIVE: _empty(KeepAlive),
    PrimitiveType.UNIDATA_REQUEST: _unidata_request,
    PrimitiveType.UNIDATA_INDICATION: _unidata_indication,
    PrimitiveType.UNIDATA_REQUEST_CONFIRM: _confirm,
    PrimitiveType.UNIDATA_REQUEST_REJECTED: _rejected,
}

_FIXED_SIZES: dict[int, int] = {
    PrimitiveType.BIND_REQUEST: 3,
    PrimitiveType.UNBIND_REQUEST: 0,
    PrimitiveType.BIND_ACCEPTED: 3,
    PrimitiveType.BIND_REJECTED: 1,
    PrimitiveType.UNBIND_INDICATION: 1,
    PrimitiveType.SUBNET_AVAILABILITY: 2,
    PrimitiveType.DATA_FLOW_ON: 0,
    PrimitiveType.DATA_FLOW_OFF: 0,
    PrimitiveType.KEEP_ALIVE: 0,
}
