"""Reassembly of fragmented messages, in the store so that a restart keeps what arrived.

Fragments are hop by hop: this node collects a neighbour's FRAG frames for one message until
it holds every index, then hands the whole encoded message on. Memory (store space) held for
incomplete messages is bounded; the oldest partial message goes first.
"""

from __future__ import annotations

from dataclasses import dataclass

from tawan.frames import FragFrame, FragState
from tawan.store import Store, StoreError


@dataclass(frozen=True, slots=True)
class Assembled:
    """What one fragment led to: the whole message, a map of what is missing to report to
    the sender, a refusal, or nothing yet."""

    message: bytes | None = None
    report: FragState | None = None
    refused: str | None = None


class Reassembly:
    def __init__(self, store: Store, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    def add(self, frame: FragFrame) -> Assembled:
        mid, store = frame.mid, self.store
        try:
            held = store.put_fragment(mid, frame.index, frame.count, frame.chunk)
        except StoreError:
            # The sender re-cut the message for another link (a different count): what is
            # held belongs to the old plan. Keep the new fragment.
            store.drop_fragments(mid)
            held = store.put_fragment(mid, frame.index, frame.count, frame.chunk)
        if held > self.max_bytes:
            store.drop_fragments(mid)
            return Assembled(refused="reassembly-limit")
        indices = store.fragment_indices(mid)
        if len(indices) < frame.count:
            self._bound()
            if frame.index == frame.count - 1:  # the end of a pass: say what is missing
                return Assembled(report=FragState(mid, _bitmap(indices, frame.count)))
            return Assembled()
        pieces = store.fragments(mid)
        store.drop_fragments(mid)
        return Assembled(message=b"".join(pieces[i] for i in range(frame.count)))

    def _bound(self) -> None:
        while self.store.fragment_bytes() > self.max_bytes:
            oldest = self.store.oldest_partial()
            if oldest is None:
                return
            self.store.drop_fragments(oldest)


def _bitmap(indices: set[int], count: int) -> bytes:
    bitmap = bytearray((count + 7) // 8)
    for i in indices:
        bitmap[i >> 3] |= 1 << (i & 7)
    return bytes(bitmap)
