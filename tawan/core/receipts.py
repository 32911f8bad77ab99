"""End-to-end receipts: a small control body, sealed like any message, back to the origin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import msgpack

from tawan.core.frames import U16, U32, FrameDecodeError, MessageId

DELIVERED: Final = 0
EXPIRED: Final = 1
KINDS: Final = {DELIVERED: "delivered", EXPIRED: "expired"}


@dataclass(frozen=True, slots=True)
class ReceiptBody:
    kind: int
    mid: MessageId
    at: int  # mission seconds at the reporter


def encode_receipt(body: ReceiptBody) -> bytes:
    return msgpack.packb([body.kind, *body.mid, body.at])


def decode_receipt(data: bytes) -> ReceiptBody:
    """Raises FrameDecodeError for anything that is not a receipt body."""
    try:
        fields = msgpack.unpackb(
            data, max_bin_len=0, max_str_len=0, max_array_len=5, max_map_len=0, max_ext_len=0
        )
    except Exception as exc:  # msgpack's many error types all mean "not a receipt"
        raise FrameDecodeError(f"receipt: not valid msgpack: {exc}") from None
    if type(fields) is not list or len(fields) != 5:
        raise FrameDecodeError("receipt: expected an array of 5 integers")
    if any(type(f) is not int for f in fields):
        raise FrameDecodeError("receipt: expected integers only")
    kind, src, epoch, seq, at = fields
    if (
        kind not in KINDS
        or not 1 <= src <= U16
        or not all(0 <= v <= U32 for v in (epoch, seq, at))
    ):
        raise FrameDecodeError(f"receipt: field out of range in {fields}")
    return ReceiptBody(kind, (src, epoch, seq), at)
