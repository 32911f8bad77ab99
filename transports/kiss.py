"""KISS framing between a host and a TNC, without I/O.

Every frame is FEND, a type byte (high nibble: TNC port 0-15, low nibble: command), the
escaped content, FEND. Inside a frame a data 0xC0 travels as DB DC and a data 0xDB as DB DD.
The decoder accepts any chunking of the byte stream, throws away what precedes the first
FEND (line noise, a TNC's text banner), treats runs of FENDs as one (TNCs send C0 C0 to flush),
and drops a frame with a bad escape or one over its size limit, counting both: bad input from
the TNC never raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

FEND = 0xC0
FESC = 0xDB
TFEND = 0xDC
TFESC = 0xDD

_FEND = bytes([FEND])
_FESC = bytes([FESC])

DROP_BAD_ESCAPE = "bad-escape"
DROP_OVERSIZE = "oversize"

DEFAULT_MAX_PAYLOAD = 2048
"""Direwolf's MAX_KISS_LEN: no frame it sends or takes is longer."""

PORT_MAX = 15
_BYTE_MAX = 255


class Command(IntEnum):
    """The low nibble of the type byte (KISS spec; PK-232 manual appendix B)."""

    DATA = 0x0
    TXDELAY = 0x1
    PERSISTENCE = 0x2
    SLOT_TIME = 0x3
    TX_TAIL = 0x4
    FULL_DUPLEX = 0x5
    SET_HARDWARE = 0x6
    RETURN = 0xF  # only as the whole type byte 0xFF, i.e. on port 15


@dataclass(frozen=True, slots=True)
class KissFrame:
    """One frame as the decoder found it: `command` is a plain int, since a TNC may send
    commands this module has no name for."""

    port: int
    command: int
    payload: bytes


def escape(content: bytes) -> bytes:
    # DB first: escaping C0 first would make DB DC, whose DB the second pass escapes again.
    return content.replace(_FESC, b"\xdb\xdd").replace(_FEND, b"\xdb\xdc")


def kiss_encode(payload: bytes, *, port: int = 0, command: int = Command.DATA) -> bytes:
    """One KISS frame carrying `payload` to TNC `port` (0-15) as `command` (0-15)."""
    if not 0 <= port <= PORT_MAX:
        raise ValueError(f"kiss_encode port: expected 0..{PORT_MAX}, found {port!r}")
    if not 0 <= command <= PORT_MAX:
        raise ValueError(f"kiss_encode command: expected 0..{PORT_MAX}, found {command!r}")
    # The type byte is escaped with the rest: port 12 data is 0xC0 itself.
    return _FEND + escape(bytes([port << 4 | command]) + payload) + _FEND


def kiss_return() -> bytes:
    """Leave KISS mode (the whole type byte 0xFF; Direwolf ignores it)."""
    return kiss_encode(b"", port=PORT_MAX, command=Command.RETURN)


def _byte_parameter(name: str, value: int, command: Command, port: int) -> bytes:
    if not 0 <= value <= _BYTE_MAX:
        raise ValueError(f"KISS {name}: expected 0..{_BYTE_MAX}, found {value!r}")
    return kiss_encode(bytes([value]), port=port, command=command)


def _tens_of_ms(name: str, ms: int) -> int:
    if ms % 10 or not 0 <= ms <= _BYTE_MAX * 10:
        raise ValueError(f"KISS {name}: expected a multiple of 10 ms in 0..2550, found {ms!r}")
    return ms // 10


def kiss_txdelay(ms: int, *, port: int = 0) -> bytes:
    """Key-up delay before the first flag, in 10 ms units on the wire (spec default 500 ms)."""
    return _byte_parameter("txdelay", _tens_of_ms("txdelay_ms", ms), Command.TXDELAY, port)


def kiss_persistence(value: int, *, port: int = 0) -> bytes:
    """p-persistence byte P = p*256 - 1 (spec default 63, p = 0.25)."""
    return _byte_parameter("persistence", value, Command.PERSISTENCE, port)


def kiss_slot_time(ms: int, *, port: int = 0) -> bytes:
    """CSMA slot, in 10 ms units on the wire (spec default 100 ms)."""
    return _byte_parameter("slot_time", _tens_of_ms("slot_ms", ms), Command.SLOT_TIME, port)


def kiss_tx_tail(ms: int, *, port: int = 0) -> bytes:
    """Hold-off after the last flag, in 10 ms units (obsolete in the spec, Direwolf honours it)."""
    return _byte_parameter("tx_tail", _tens_of_ms("txtail_ms", ms), Command.TX_TAIL, port)


def kiss_full_duplex(on: bool, *, port: int = 0) -> bytes:
    return _byte_parameter("full_duplex", int(on), Command.FULL_DUPLEX, port)


@dataclass(frozen=True, slots=True)
class TncParameters:
    """Channel-access settings sent to the TNC when the link connects; None leaves the
    TNC's own setting alone (Direwolf's come from its config file)."""

    txdelay_ms: int | None = None
    persistence: int | None = None
    slot_ms: int | None = None
    txtail_ms: int | None = None
    full_duplex: bool | None = None

    def __post_init__(self) -> None:
        self.frames()  # each encoder validates its value; fail at configuration time

    def frames(self, port: int = 0) -> list[bytes]:
        """The parameter frames for TNC `port`, in the order the fields are declared."""
        out = []
        if self.txdelay_ms is not None:
            out.append(kiss_txdelay(self.txdelay_ms, port=port))
        if self.persistence is not None:
            out.append(kiss_persistence(self.persistence, port=port))
        if self.slot_ms is not None:
            out.append(kiss_slot_time(self.slot_ms, port=port))
        if self.txtail_ms is not None:
            out.append(kiss_tx_tail(self.txtail_ms, port=port))
        if self.full_duplex is not None:
            out.append(kiss_full_duplex(self.full_duplex, port=port))
        return out


class KissDecoder:
    """Splits a TNC byte stream into KissFrames, whatever the chunking.

    Memory stays bounded: once the escaped bytes of a frame could no longer unescape to at
    most `max_payload` bytes, they are discarded and the rest of the frame is skipped.
    """

    def __init__(
        self,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        *,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        if max_payload < 0:
            raise ValueError(f"KissDecoder.max_payload: expected >= 0, found {max_payload}")
        self._max_payload = max_payload
        self._raw_limit = 2 * (max_payload + 1)  # every byte escaped, type byte included
        self._on_drop = on_drop
        self._synced = False
        self._pending = bytearray()
        self._skipping = False
        self.drops: Counter[str] = Counter()
        self.noise_bytes = 0
        """Bytes thrown away before the first FEND."""

    def feed(self, data: bytes | bytearray) -> list[KissFrame]:
        """The frames that `data` completes, in order; partial frames wait for more bytes."""
        frames: list[KissFrame] = []
        start = 0
        if not self._synced:
            first = data.find(_FEND)
            if first < 0:
                self.noise_bytes += len(data)
                return frames
            self.noise_bytes += first
            self._synced = True
            start = first + 1
        while (end := data.find(_FEND, start)) >= 0:
            self._collect(data, start, end)
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
            start = end + 1
        self._collect(data, start, len(data))
        return frames

    @property
    def buffered(self) -> int:
        """Escaped bytes of an unfinished frame held."""
        return len(self._pending)

    def _collect(self, data: bytes | bytearray, start: int, end: int) -> None:
        if self._skipping or start == end:
            return
        self._pending += data[start:end]
        if len(self._pending) > self._raw_limit:
            self._pending.clear()
            self._skipping = True

    def _finish(self) -> KissFrame | None:
        """Close the frame at a FEND: None for a FEND run, or a dropped frame."""
        if self._skipping:
            self._skipping = False
            self._drop(DROP_OVERSIZE)
            return None
        if not self._pending:
            return None  # back-to-back FENDs: not an empty frame
        content = _unescape(bytes(self._pending))
        self._pending.clear()
        if content is None:
            self._drop(DROP_BAD_ESCAPE)
            return None
        if len(content) - 1 > self._max_payload:
            self._drop(DROP_OVERSIZE)
            return None
        return KissFrame(port=content[0] >> 4, command=content[0] & 0x0F, payload=content[1:])

    def _drop(self, reason: str) -> None:
        self.drops[reason] += 1
        if self._on_drop is not None:
            self._on_drop(reason)


_UNESCAPED = {TFEND: _FEND, TFESC: _FESC}


def _unescape(raw: bytes) -> bytes | None:
    """The frame content, or None if a FESC is not followed by TFEND or TFESC."""
    if FESC not in raw:
        return raw
    head, *escaped = raw.split(_FESC)
    parts = [head]
    for part in escaped:
        if not part or part[0] not in _UNESCAPED:
            return None
        parts.append(_UNESCAPED[part[0]])
        parts.append(part[1:])
    return b"".join(parts)
