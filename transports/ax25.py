"""AX.25 UI frames: the envelope a KISS TNC expects around every data frame.

Direwolf parses each KISS data frame as AX.25 and refuses what is not, so a tawan frame
travels as the info field of a UI frame (control 0x03, PID 0xF0 "no layer 3") from the
sender's callsign to the receiver's, or to a broadcast alias everyone on the net listens to.
Each address is six characters shifted left one bit, space padded, then an SSID byte; the
low bit of the last address byte says "last address". No FCS: the TNC adds it on air.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTROL_UI = 0x03
POLL_FINAL = 0x10
PID_NO_LAYER_3 = 0xF0

ADDRESS_BYTES = 7
MAX_DIGIPEATERS = 8
HEADER_BYTES = 2 * ADDRESS_BYTES + 2
"""Destination, source, control, PID: the overhead of a UI frame without digipeaters."""
MAX_HEADER_BYTES = HEADER_BYTES + MAX_DIGIPEATERS * ADDRESS_BYTES

SSID_MAX = 15
_CALL_LENGTH = 6
_SSID_MASK = 0x1E
_RESERVED_BITS = 0x60  # set to 1 by convention in every SSID byte
_COMMAND_BIT = 0x80  # C bit on the destination (and H bit on a digipeater)
_LAST_ADDRESS = 0x01

_CALL = re.compile(r"[A-Z0-9]{1,6}")
_TEXT = re.compile(r"(?P<call>[A-Z0-9]{1,6})(?:-(?P<ssid>[1-9]|1[0-5]))?")

DROP_SHORT = "ax25-short"
DROP_BAD_ADDRESS = "ax25-bad-address"
DROP_NOT_UI = "ax25-not-ui"
DROP_FOREIGN_PID = "ax25-foreign-pid"


@dataclass(frozen=True, slots=True)
class Callsign:
    """A station address: 1-6 upper-case letters or digits and an SSID 0-15.

    Its text form is "CALL" for SSID 0 and "CALL-N" otherwise, and is the only spelling
    `parse` takes, so one station never goes by two names.
    """

    call: str
    ssid: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.call, str) or not _CALL.fullmatch(self.call):
            raise ValueError(
                f"Callsign.call: expected 1-6 upper-case letters or digits, found {self.call!r}"
            )
        is_int = isinstance(self.ssid, int) and not isinstance(self.ssid, bool)
        if not is_int or not 0 <= self.ssid <= SSID_MAX:
            raise ValueError(f"Callsign.ssid: expected an integer 0..15, found {self.ssid!r}")

    @classmethod
    def parse(cls, text: str, where: str = "callsign") -> Callsign:
        """ "N0CALL-3" -> Callsign("N0CALL", 3); `where` names the setting in errors."""
        match = _TEXT.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(
                f"{where}: expected CALL or CALL-SSID (1-6 upper-case letters or digits, "
                f"SSID 1..15 without leading zero), found {text!r}"
            )
        ssid = match["ssid"]
        return cls(match["call"], int(ssid) if ssid else 0)

    def __str__(self) -> str:
        return f"{self.call}-{self.ssid}" if self.ssid else self.call

    def encode(self, *, last: bool, high_bit: bool) -> bytes:
        """The 7 address bytes; `high_bit` is C on dest/source, H on a digipeater."""
        chars = bytes(ord(c) << 1 for c in self.call.ljust(_CALL_LENGTH))
        ssid = _RESERVED_BITS | self.ssid << 1
        ssid |= _COMMAND_BIT if high_bit else 0
        ssid |= _LAST_ADDRESS if last else 0
        return chars + bytes([ssid])


@dataclass(frozen=True, slots=True)
class UiFrame:
    destination: Callsign
    source: Callsign
    info: bytes
    digipeaters: tuple[Callsign, ...] = ()


@dataclass(frozen=True, slots=True)
class Ax25Drop:
    """Why bytes from the TNC are not a tawan UI frame: `reason` is a metric label."""

    reason: str
    detail: str


def encode_ui(frame: UiFrame) -> bytes:
    """The UI frame as a command (C bit on the destination, as AX.25 2.0 sends them)."""
    if len(frame.digipeaters) > MAX_DIGIPEATERS:
        raise ValueError(
            f"encode_ui digipeaters: expected at most {MAX_DIGIPEATERS}, "
            f"found {len(frame.digipeaters)}"
        )
    addresses = [frame.destination, frame.source, *frame.digipeaters]
    parts = [
        address.encode(last=index == len(addresses) - 1, high_bit=index == 0)
        for index, address in enumerate(addresses)
    ]
    parts.append(bytes([CONTROL_UI, PID_NO_LAYER_3]))
    parts.append(frame.info)
    return b"".join(parts)


def decode_ui(data: bytes) -> UiFrame | Ax25Drop:
    """The UI frame in `data`, or why it is not one (never raises on bad input)."""
    addresses: list[Callsign] = []
    offset = 0
    while True:
        if len(data) < offset + ADDRESS_BYTES:
            return Ax25Drop(DROP_SHORT, f"{len(data)} bytes end inside address {len(addresses)}")
        chunk = data[offset : offset + ADDRESS_BYTES]
        address = _decode_address(chunk)
        if address is None:
            return Ax25Drop(DROP_BAD_ADDRESS, f"address {len(addresses)}: {chunk.hex()}")
        addresses.append(address)
        offset += ADDRESS_BYTES
        if chunk[-1] & _LAST_ADDRESS:
            break
        if len(addresses) == 2 + MAX_DIGIPEATERS:
            return Ax25Drop(DROP_BAD_ADDRESS, "no last-address bit in 10 addresses")
    if len(addresses) < 2:
        return Ax25Drop(DROP_BAD_ADDRESS, "last-address bit on the destination")
    if len(data) < offset + 2:
        return Ax25Drop(DROP_SHORT, f"{len(data)} bytes end before control and PID")
    control, pid = data[offset], data[offset + 1]
    if control & ~POLL_FINAL != CONTROL_UI:
        return Ax25Drop(DROP_NOT_UI, f"control 0x{control:02x}, expected 0x03")
    if pid != PID_NO_LAYER_3:
        return Ax25Drop(DROP_FOREIGN_PID, f"PID 0x{pid:02x}, expected 0xf0")
    return UiFrame(addresses[0], addresses[1], data[offset + 2 :], tuple(addresses[2:]))


def _decode_address(chunk: bytes) -> Callsign | None:
    if any(byte & 1 for byte in chunk[:_CALL_LENGTH]):
        return None  # an extension bit inside the characters: not an address field
    call = bytes(byte >> 1 for byte in chunk[:_CALL_LENGTH]).decode("ascii").rstrip(" ")
    if not _CALL.fullmatch(call):
        return None  # inner spaces, lower case, punctuation, or all blank
    return Callsign(call, (chunk[-1] & _SSID_MASK) >> 1)
