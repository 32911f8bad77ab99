"""Reassembly of fragmented messages, in the store so that a restart keeps what arrived.

Fragments are hop by hop: this node collects a neighbour's FRAG frames for one message until
it holds every index, then hands the whole encoded message on. Each (neighbour, message) is a
transfer of its own, so a second neighbour sending the same message, cut for another link,
neither mixes its fragments in nor makes this node drop the first one's. Store space held for
incomplete messages is bounded: the transfer idle longest goes first, and the engine's
housekeeping drops, with `expire`, those no fragment has been added to for a while.
"""

from __future__ import annotations

from dataclasses import dataclass

from tawan.core.frames import FragFrame, FragState
from tawan.core.store import Store, StoreError


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

    def add(self, frame: FragFrame, *, neighbour: int = 0, now: float = 0.0) -> Assembled:
        """Take one fragment of `frame.mid` that `neighbour` sent at `now`."""
        mid, store = frame.mid, self.store
        try:
            held = store.put_fragment(neighbour, mid, frame.index, frame.count, frame.chunk, now)
        except StoreError:
            # The neighbour re-cut the message for another link (a different count): what is
            # held of its transfer belongs to the old plan. Keep the new fragment.
            store.drop_fragments(neighbour, mid)
            held = store.put_fragment(neighbour, mid, frame.index, frame.count, frame.chunk, now)
        if held > self.max_bytes:
            store.drop_fragments(neighbour, mid)
            return Assembled(refused="reassembly-limit")
        indices = store.fragment_indices(neighbour, mid)
        if len(indices) < frame.count:
            self._bound()
            if frame.index == frame.count - 1:  # the end of a pass: say what is missing
                return Assembled(report=FragState(mid, _bitmap(indices, frame.count)))
            return Assembled()
        pieces = store.fragments(neighbour, mid)
        store.drop_fragments(neighbour, mid)
        return Assembled(message=b"".join(pieces[i] for i in range(frame.count)))

    def expire(self, older_than: float) -> int:
        """Drop every transfer whose newest fragment came before `older_than` (abandoned: a
        sender still sending keeps its transfer); returns how many were dropped."""
        stale = self.store.partials_older_than(older_than)
        for neighbour, mid in stale:
            self.store.drop_fragments(neighbour, mid)
        return len(stale)

    def _bound(self) -> None:
        while self.store.fragment_bytes() > self.max_bytes:
            oldest = self.store.oldest_partial()
            if oldest is None:
                return
            self.store.drop_fragments(*oldest)


def _bitmap(indices: set[int], count: int) -> bytes:
    bitmap = bytearray((count + 7) // 8)
    for i in indices:
        bitmap[i >> 3] |= 1 << (i & 7)
    return bytes(bitmap)
