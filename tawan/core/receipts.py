"""End-to-end receipts: a small control body, sealed like any message, back to the origin.

A receipt reports on one message; a notice of eviction (kind EVICTED) may report on up to
`MAX_NOTICE_MIDS` messages of the same origin at once, so a burst of evictions costs a few
messages on the network, not one per eviction (docs/protocol.md, section 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgpack

from tawan.core.frames import U16, U32, FrameDecodeError, MessageId

DELIVERED: Final = 0
EXPIRED: Final = 1
EVICTED: Final = 2
KINDS: Final = {DELIVERED: "delivered", EXPIRED: "expired", EVICTED: "evicted"}
MAX_NOTICE_MIDS: Final = 32
_FIELDS: Final = 5  # kind, src, epoch, seq, at; then (epoch, seq) pairs for a notice


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    kind: int
    mid: MessageId
    at: int  # mission seconds at the reporter
    also: tuple[MessageId, ...] = ()  # more messages of mid's source (EVICTED only)

    def __post_init__(self) -> None:
        if self.also and self.kind != EVICTED:
            raise ValueError(f"receipt kind {self.kind}: expected one message, found more")
        if len(self.also) >= MAX_NOTICE_MIDS:
            raise ValueError(
                f"notice of eviction: expected at most {MAX_NOTICE_MIDS} messages, "
                f"found {len(self.also) + 1}"
            )
        if any(m[0] != self.mid[0] for m in self.also):
            raise ValueError(f"notice of eviction: messages of sources other than {self.mid[0]}")

    @property
    def mids(self) -> tuple[MessageId, ...]:
        return (self.mid, *self.also)


def encode_receipt(body: ReceiptBody) -> bytes:
    more = [v for _, epoch, seq in body.also for v in (epoch, seq)]
    return msgpack.packb([body.kind, *body.mid, body.at, *more])


def decode_receipt(data: bytes) -> ReceiptBody:
    """Raises FrameDecodeError for anything that is not a receipt body."""
    longest = _FIELDS + 2 * (MAX_NOTICE_MIDS - 1)
    try:
        fields = msgpack.unpackb(
            data, max_bin_len=0, max_str_len=0, max_array_len=longest, max_map_len=0,
            max_ext_len=0,
        )  # fmt: skip
    except Exception as exc:  # msgpack's many error types all mean "not a receipt"
        raise FrameDecodeError(f"receipt: not valid msgpack: {exc}") from None
    if type(fields) is not list or len(fields) < _FIELDS or len(fields) % 2 != 1:
        raise FrameDecodeError("receipt: expected an array of 5 integers (and pairs beyond)")
    if any(type(f) is not int for f in fields):
        raise FrameDecodeError("receipt: expected integers only")
    kind, src, epoch, seq, at, *more = fields
    if (
        kind not in KINDS
        or (more and kind != EVICTED)
        or not 1 <= src <= U16
        or not all(0 <= v <= U32 for v in (epoch, seq, at, *more))
    ):
        raise FrameDecodeError(f"receipt: field out of range in {fields}")
    also = tuple((src, more[i], more[i + 1]) for i in range(0, len(more), 2))
    return ReceiptBody(kind, (src, epoch, seq), at, also)
