"""The cheap look at a datagram before any crypto: can it be a frame of a known sender?

A link hands every datagram to `FrameScreen` while it still sits in the receive buffer. The
screen reads a few header bytes (`tawan.core.frames` describes them: the version nibble, the
frame type, the field array, the sender's address) and drops what no honest node could have
sent, so a flood of junk costs a handful of byte comparisons per datagram instead of a copy,
a queue, a decode and a MAC. What passes still goes through decoding and authentication: the
screen only refuses, it never vouches.

Only what our encoder writes passes: the field array as msgpack writes it (a fixarray, or an
array 16 header, of exactly the type's field count) and the sender as a msgpack integer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from crypto.schedule import LINK_TAG_BYTES
from tawan.core.frames import FIELD_COUNTS, OPTIONAL_FIELDS, U16, VERSION

TOO_SHORT: Final = "too-short"
BAD_VERSION: Final = "bad-version"
BAD_TYPE: Final = "bad-type"
BAD_SHAPE: Final = "bad-shape"
UNKNOWN_SENDER: Final = "unknown-sender"
WRONG_SENDER: Final = "wrong-sender"
SCREEN_REASONS: Final = (TOO_SHORT, BAD_VERSION, BAD_TYPE, BAD_SHAPE, UNKNOWN_SENDER, WRONG_SENDER)
"""Drop reasons the screen gives (metric labels), in the order it checks."""


def _field_counts(nibble: int) -> frozenset[int]:
    for ftype, count in FIELD_COUNTS.items():
        if ftype == nibble:
            return frozenset(range(count, count + OPTIONAL_FIELDS.get(ftype, 0) + 1))
    return frozenset()


_COUNTS: Final = tuple(_field_counts(i) for i in range(16))
"""Field counts by type nibble (a ROUTE may have a seventh), empty for a nibble that is no
frame type."""
_UINT_WIDTH: Final = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
"""msgpack integer markers and their widths; a signed one holding a negative is no address."""


class FrameScreen:
    """A `transports.link.Screen` for tawan frames.

    `known(address)`: is it a node of the roster? `expected`: the node each configured peer
    endpoint is, where the configuration says; a frame from that endpoint must name it.
    """

    __slots__ = ("expected", "known")

    def __init__(self, known: Callable[[int], bool], expected: Mapping[str, int]) -> None:
        self.known = known
        self.expected = expected

    def __call__(self, peer: str | None, buffer: bytearray, size: int) -> str | None:
        if size < 1:
            return TOO_SHORT
        kind = buffer[0]
        if kind >> 4 != VERSION:
            return BAD_VERSION
        counts = _COUNTS[kind & 0xF]
        if not counts:
            return BAD_TYPE
        # Every field takes at least a byte: kind, array header, fields, link tag.
        if size < 2 + min(counts) + LINK_TAG_BYTES:
            return TOO_SHORT
        head = buffer[1]
        if head & 0xF0 == 0x90 and head & 0xF in counts:
            at = 2
        elif head == 0xDC and buffer[2] == 0 and buffer[3] in counts:
            at = 4
        else:
            return BAD_SHAPE
        sender = _address_at(buffer, at, size)
        if sender is None:
            return BAD_SHAPE
        if not self.known(sender):
            return UNKNOWN_SENDER
        if peer is not None and self.expected.get(peer, sender) != sender:
            return WRONG_SENDER
        return None

    def prefixes(self, peer: str | None) -> frozenset[bytes]:
        """What every frame our encoder writes begins with, for a kernel-side filter
        (`transports.sockfilter`): the kind byte and the field array header, and where
        `peer` is a configured endpoint of known node, that node as the sender (msgpack's
        shortest form, which is what the encoder writes). Stricter than the screen itself,
        which also takes a longer integer form, so that the kernel refuses the same junk
        with a few byte comparisons and the screen remains the one that counts reasons."""
        sender = b""
        if peer is not None and (node := self.expected.get(peer)) is not None:
            sender = _shortest_uint(node)
        found: set[bytes] = set()
        for kind, counts in enumerate(_COUNTS):
            for count in counts:
                head = VERSION << 4 | kind
                found.add(bytes((head, 0x90 | count)) + sender)
                found.add(bytes((head, 0xDC, 0, count)) + sender)
        return frozenset(found)


def _shortest_uint(value: int) -> bytes:
    """A node address as msgpack writes it: a fixint, or the narrowest unsigned form."""
    if value < 0x80:
        return bytes((value,))
    if value <= 0xFF:
        return bytes((0xCC, value))
    return b"\xcd" + value.to_bytes(2, "big")


def _address_at(buffer: bytearray, at: int, size: int) -> int | None:
    """The msgpack integer at `at` if it is a node address (1..65535), else None."""
    marker = buffer[at]
    if marker <= 0x7F:
        return marker or None
    width = _UINT_WIDTH.get(marker)
    if width is None or at + 1 + width > size:
        return None
    value = int.from_bytes(buffer[at + 1 : at + 1 + width], "big", signed=marker >= 0xD0)
    return value if 1 <= value <= U16 else None
