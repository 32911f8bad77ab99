"""Per-neighbour transmit queues, one heap per link: highest precedence first, then oldest.

A message too large for the link goes out as fragments, one per turn. The queue is consulted
before every fragment, so a FLASH message that arrives in the middle of a long ROUTINE
transfer goes next, at the next fragment boundary, and the transfer then resumes (preemption
as the doctrine asks). A message leaves the queue once every piece is on the air, and waits
in flight for the neighbour's custody acknowledgement; a timeout or a report of missing
fragments puts it back.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence
from tawan.core.states import Input, Lifecycle


def _ignore(neighbour: int) -> None:
    return None


@dataclass(slots=True)
class Outgoing:
    """One message on its way to one neighbour."""

    mid: MessageId
    precedence: Precedence
    created: int
    encoded: bytes
    chunk_size: int = 0  # 0: whole message in one DATA frame
    to_send: list[int] = field(default_factory=list)  # fragment indices still to put on air
    attempts: int = 0
    deadline: float = 0.0  # retransmission deadline while in flight
    sent_at: float = 0.0  # when its last piece went on the air
    link: str = ""  # the link the current plan was made for ("": not planned yet)
    via: str = ""  # the link the forwarding decision gave it for its next turn
    wire: MessageId | None = None  # its id on the wire, when kept under another (a slot)

    @property
    def wire_mid(self) -> MessageId:
        return self.wire or self.mid

    @property
    def fragment_count(self) -> int:
        if self.chunk_size == 0:
            return 1
        return -(-len(self.encoded) // self.chunk_size)

    def plan(self, chunk_size: int) -> None:
        """(Re)start the transfer for a link whose MTU allows `chunk_size` bytes a piece."""
        self.chunk_size = chunk_size
        self.to_send = list(range(self.fragment_count)) if chunk_size else [0]

    def chunk(self, index: int) -> bytes:
        start = index * self.chunk_size
        return self.encoded[start : start + self.chunk_size]


@dataclass(slots=True)
class NeighbourQueue:
    """Messages waiting for one neighbour, each on the link the forwarding decision gave it,
    and those in flight to it (on whichever link they went)."""

    neighbour: int
    on_change: Callable[[int], None] = _ignore  # told after every change (ready sets)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # each (message, hop) state
    _heaps: dict[str, list[tuple[int, int, int, MessageId]]] = field(default_factory=dict)
    waiting: dict[MessageId, Outgoing] = field(default_factory=dict)
    in_flight: dict[MessageId, Outgoing] = field(default_factory=dict)
    # wire id -> the one copy under it sent to this neighbour and not yet acknowledged: its
    # acknowledgement names the wire id, so two copies of one id never fly at once
    flying: dict[MessageId, MessageId] = field(default_factory=dict)
    # Copies kept off the heaps while their twin flies: wire id -> them, back when it lands.
    _parked: dict[MessageId, list[Outgoing]] = field(default_factory=dict)
    _order: itertools.count[int] = field(default_factory=itertools.count)

    def push(self, item: Outgoing, via: str) -> None:
        """Wait for a turn on link `via` ("": no link reaches the neighbour now)."""
        again = self.in_flight.pop(item.mid, None) is not None
        if self.waiting.get(item.mid) is item and item.via == via:
            return
        self.lifecycle.move((item.mid, self.neighbour), Input.REQUEUED if again else Input.QUEUED)
        item.via = via
        self.waiting[item.mid] = item
        rank = (-item.precedence, item.created, next(self._order), item.mid)
        heapq.heappush(self._heaps.setdefault(via, []), rank)
        self.on_change(self.neighbour)

    def peek(self, via: str) -> Outgoing | None:
        """The message that should get the next turn on link `via`."""
        heap = self._heaps.get(via)
        while heap:
            item = self.waiting.get(heap[0][3])
            if item is not None and item.via == via:
                if not self.blocked(item):
                    return item
                self._parked.setdefault(item.wire_mid, []).append(item)  # the rest go first
            heapq.heappop(heap)  # sent, acknowledged, dropped, moved or parked since pushed
        return None

    def links(self) -> list[str]:
        """Links with (possibly stale) entries waiting; `peek` says which hold one."""
        return [via for via, heap in self._heaps.items() if heap]

    def sent_all(self, item: Outgoing, now: float, deadline: float) -> None:
        """Every piece of `item` is on the air: wait for the acknowledgement."""
        self.waiting.pop(item.mid, None)
        item.sent_at = now
        item.deadline = deadline
        item.attempts += 1
        self.lifecycle.move((item.mid, self.neighbour), Input.ALL_SENT)
        self.in_flight[item.mid] = item
        self.flying[item.wire_mid] = item.mid
        self.on_change(self.neighbour)

    def remove(self, mid: MessageId, why: Input = Input.ACKNOWLEDGED) -> Outgoing | None:
        """Acknowledged, moved, expired, evicted or dropped (`why`): forget it (heap
        entries die lazily)."""
        item = self.in_flight.pop(mid, None)
        waiting = self.waiting.pop(mid, None)
        gone = item or waiting
        if gone is not None:
            self.lifecycle.move((mid, self.neighbour), why)
            if self.flying.get(gone.wire_mid) == mid:
                del self.flying[gone.wire_mid]
                self._unpark(gone.wire_mid)
            self.on_change(self.neighbour)
        return gone

    def _unpark(self, wire: MessageId) -> None:
        """The twin that flew is gone: its parked copies wait their turn again."""
        for item in self._parked.pop(wire, []):
            if self.waiting.get(item.mid) is item:
                rank = (-item.precedence, item.created, next(self._order), item.mid)
                heapq.heappush(self._heaps.setdefault(item.via, []), rank)

    def blocked(self, item: Outgoing) -> bool:
        """Another copy under the same wire id flies to this neighbour: wait for its fate."""
        return self.flying.get(item.wire_mid, item.mid) != item.mid

    def get(self, mid: MessageId) -> Outgoing | None:
        return self.in_flight.get(mid) or self.waiting.get(mid)

    def all_items(self) -> list[Outgoing]:
        return [*self.waiting.values(), *self.in_flight.values()]

    def __len__(self) -> int:
        return len(self.waiting) + len(self.in_flight)

    def counts_by_precedence(self) -> dict[str, int]:
        counts = {p.name.lower(): 0 for p in Precedence}
        for item in self.all_items():
            counts[item.precedence.name.lower()] += 1
        return counts
