"""Per-neighbour transmit queues, one heap per link: highest precedence first, then oldest.

A message too large for the link goes out as fragments, one per turn. The queue is consulted
before every fragment, so a FLASH message that arrives in the middle of a long ROUTINE
transfer goes next, at the next fragment boundary, and the transfer then resumes (preemption
as the doctrine asks). A message leaves the queue once every piece is on the air, and waits
in flight for the neighbour's custody acknowledgement; a timeout or a report of missing
fragments puts it back.

Memory does not grow with the store. A queue given a `TurnSource` (the store) keeps at most
`limit` messages waiting in memory, as small references without their bodies once they are
off the air; the rest wait only on disk, where the store's turn index keeps them in the same
order. Every message kept in memory ranks ahead of every one left on disk (a new message that
would not is left on disk, or the last one kept goes back there to make room for it), so the
next turn is always in memory; when fewer than half of `limit` wait, the next ones are read
back (`refill`). A body is read from the store when its message's turn comes, unless the
message was handed over with it (just taken into custody) while fewer than `BODIES_KEPT` wait,
and is short (`BODY_KEPT_BYTES`): a relay that forwards at once reads nothing back, and what
a backlog keeps of bodies stays bounded (such a queue keeps no more than that many). The body of a
fragmented message is dropped once every piece is on the air (a retransmission reads it
again), so a window of large messages in flight does not pin them in memory. Messages that
were sent (in flight, or back for another attempt) always stay in memory; there are at most
a window of them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence
from tawan.core.states import Input, Lifecycle, State
from tawan.core.store_types import wire_id

DEFAULT_LIMIT: Final = 1024  # messages waiting in memory per neighbour, beyond: on disk only
BODIES_KEPT: Final = 32  # fresh messages handed over with their body, kept while fewer wait
BODY_KEPT_BYTES: Final = 2048  # and only bodies this short: the rest are read at their turn


class TurnSource(Protocol):
    """Where the messages a queue does not keep in memory wait: the store (store_custody)."""

    def pending_for(
        self, hop: int, precedence: int, after: tuple[int, int], limit: int
    ) -> list[tuple[MessageId, int, int, int]]: ...

    def pending_counts_for(self, hop: int) -> dict[int, int]: ...

    def body_of(self, mid: MessageId) -> bytes | None: ...


def _ignore(neighbour: int) -> None:
    return None


@dataclass(slots=True)
class Outgoing:
    """One message on its way to one neighbour."""

    mid: MessageId
    precedence: Precedence
    created: int
    encoded: bytes | None  # None: not in memory, read from the store when its turn comes
    chunk_size: int = 0  # 0: whole message in one DATA frame
    to_send: list[int] = field(default_factory=list)  # fragment indices still to put on air
    attempts: int = 0
    deadline: float = 0.0  # retransmission deadline while in flight
    sent_at: float = 0.0  # when its last piece went on the air
    link: str = ""  # the link the current plan was made for ("": not planned yet)
    tries_here: int = 0  # times sent whole over `link` since it was planned for it
    first_here: float = 0.0  # when the first of those began
    via: str = ""  # the link the forwarding decision gave it for its next turn
    wire: MessageId | None = None  # its id on the wire, when kept under another (a slot)
    size: int = 0  # bytes of the encoded message (taken from `encoded` when given)

    def __post_init__(self) -> None:
        if self.encoded is not None:
            self.size = len(self.encoded)

    @property
    def wire_mid(self) -> MessageId:
        return self.wire or self.mid

    @property
    def fresh(self) -> bool:
        """Never put on the air: it may wait on disk instead of in memory."""
        return self.attempts == 0 and not self.link

    @property
    def turn(self) -> tuple[int, int]:
        """Its place in the queue: lower goes first (highest precedence, then oldest)."""
        return (-self.precedence, self.created)

    @property
    def fragment_count(self) -> int:
        if self.chunk_size == 0:
            return 1
        return -(-self.size // self.chunk_size)

    def plan(self, chunk_size: int) -> None:
        """(Re)start the transfer for a link whose MTU allows `chunk_size` bytes a piece."""
        self.chunk_size = chunk_size
        self.to_send = list(range(self.fragment_count)) if chunk_size else [0]

    def loaded(self) -> bytes:
        """The encoded message, read into memory for its turn (`NeighbourQueue.body`)."""
        if self.encoded is None:
            raise ValueError(f"message {self.mid}: expected its body loaded, found none")
        return self.encoded

    def chunk(self, index: int) -> bytes:
        start = index * self.chunk_size
        return self.loaded()[start : start + self.chunk_size]


@dataclass(slots=True)
class NeighbourQueue:
    """Messages waiting for one neighbour, each on the link the forwarding decision gave it,
    and those in flight to it (on whichever link they went)."""

    neighbour: int
    on_change: Callable[[int], None] = _ignore  # told after every change (ready sets)
    # Each (message, hop) state; the moves of every message are made only when it is strict
    # (tests): otherwise the table follows nothing, and a node in the field makes no call.
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    _heaps: dict[str, list[tuple[int, int, int, MessageId]]] = field(default_factory=dict)
    waiting: dict[MessageId, Outgoing] = field(default_factory=dict)
    in_flight: dict[MessageId, Outgoing] = field(default_factory=dict)
    # wire id -> the one copy under it sent to this neighbour and not yet acknowledged: its
    # acknowledgement names the wire id, so two copies of one id never fly at once
    flying: dict[MessageId, MessageId] = field(default_factory=dict)
    # Copies kept off the heaps while their twin flies: wire id -> them, back when it lands.
    _parked: dict[MessageId, list[Outgoing]] = field(default_factory=dict)
    _order: itertools.count[int] = field(default_factory=itertools.count)
    source: TurnSource | None = None  # None: every message waits in memory
    limit: int = DEFAULT_LIMIT
    # Precedence -> (created, rowid) from which messages of that precedence wait on disk
    # only (inclusive; those in memory are skipped when read back).
    _disk: dict[int, tuple[int, int]] = field(default_factory=dict)
    _worst: Outgoing | None = None  # the fresh waiting message with the last turn, if known
    _worst_known: bool = True
    _refilling: bool = False

    def push(self, item: Outgoing, via: str) -> None:
        """Wait for a turn on link `via` ("": no link reaches the neighbour now)."""
        again = self.in_flight.pop(item.mid, None) is not None
        if self.waiting.get(item.mid) is item and item.via == via:
            return
        if item.encoded is not None and not again and self._sheds_body(item):
            item.encoded = None  # read from the store when its turn comes
        if self.lifecycle.strict:
            why = Input.REQUEUED if again else Input.QUEUED
            self.lifecycle.move((item.mid, self.neighbour), why)
        if not again and item.fresh and self.waiting.get(item.mid) is None and self._full():
            worst = self._last_fresh()
            if worst is not None and item.turn >= worst.turn:
                self._to_disk(item)
                return
            if worst is not None:
                self._drop_waiting(worst)
                self._to_disk(worst)
        self._add(item, via)

    def _sheds_body(self, item: Outgoing) -> bool:
        """A fresh message handed over with its body keeps it only while fewer than
        `BODIES_KEPT` wait and when short; a queue without a source keeps every body."""
        return (
            self.source is not None and item.fresh and self.waiting.get(item.mid) is None
            and (len(self.waiting) >= BODIES_KEPT or item.size > BODY_KEPT_BYTES)
        )  # fmt: skip

    def _add(self, item: Outgoing, via: str) -> None:
        item.via = via
        self.waiting[item.mid] = item
        later = self._worst is None or item.turn >= self._worst.turn
        if item.fresh and self._worst_known and later:
            self._worst = item
        rank = (-item.precedence, item.created, next(self._order), item.mid)
        heapq.heappush(self._heaps.setdefault(via, []), rank)
        self.on_change(self.neighbour)

    # ---- what waits on disk ----------------------------------------------------------------

    def _full(self) -> bool:
        return self.source is not None and len(self.waiting) >= self.limit

    def _last_fresh(self) -> Outgoing | None:
        """The fresh waiting message whose turn comes last (a scan only when not known)."""
        if not self._worst_known or (self._worst is not None and not self._worst.fresh):
            fresh = [item for item in self.waiting.values() if item.fresh]
            self._worst = max(fresh, key=lambda item: item.turn, default=None)
            self._worst_known = True
        return self._worst

    def _drop_waiting(self, item: Outgoing) -> None:
        """`item` leaves the waiting set (its heap entry dies lazily)."""
        if self.waiting.get(item.mid) is item:
            del self.waiting[item.mid]
        if item is self._worst:
            self._worst, self._worst_known = None, False

    def _to_disk(self, item: Outgoing) -> None:
        """`item` waits on disk only (the store holds it pending for this neighbour)."""
        start = (item.created, 0)
        resume = self._disk.get(item.precedence)
        self._disk[item.precedence] = start if resume is None else min(resume, start)

    def on_disk(self) -> bool:
        """Some messages for this neighbour wait on disk only."""
        return bool(self._disk)

    def all_on_disk(self) -> None:
        """After a restart: everything pending for this neighbour is on disk, none in memory."""
        self._disk = {int(p): (-(1 << 62), 0) for p in Precedence}

    def forget_disk(self) -> None:
        """What waited on disk for this neighbour went elsewhere (routes changed)."""
        self._disk.clear()

    def wants_refill(self) -> bool:
        return bool(self._disk) and not self._refilling and len(self.waiting) < self.limit // 2

    def refill(self, via: str) -> None:
        """Read the next turns back from disk, up to `limit` waiting, onto link `via`."""
        source = self.source
        if source is None:
            return
        self._refilling = True
        try:
            for precedence in sorted(self._disk, reverse=True):
                want = self.limit - len(self.waiting)
                if want <= 0:
                    break
                self._refill_one(source, precedence, want, via)
        finally:
            self._refilling = False

    def _refill_one(self, source: TurnSource, precedence: int, want: int, via: str) -> None:
        asked = want + len(self.waiting) + len(self.in_flight)  # those are skipped
        rows = source.pending_for(self.neighbour, precedence, self._disk[precedence], asked)
        last = None
        for mid, created, size, rowid in rows:
            if mid in self.waiting or mid in self.in_flight:
                continue
            item = Outgoing(mid, Precedence(precedence), created, None, wire=wire_id(mid),
                            size=size)  # fmt: skip
            self.lifecycle.move((mid, self.neighbour), Input.QUEUED)
            self._add(item, via)
            last = (created, rowid)
            want -= 1
            if want == 0:
                break
        if len(rows) < asked and want > 0:
            del self._disk[precedence]  # all of it is in memory now
        elif last is not None:
            self._disk[precedence] = last

    def counts_by_precedence(self) -> dict[str, int]:
        """Messages waiting or in flight, by precedence name (read from disk when some wait
        there only)."""
        counts = {p.name.lower(): 0 for p in Precedence}
        if self.source is not None and self._disk:
            for precedence, count in self.source.pending_counts_for(self.neighbour).items():
                counts[Precedence(precedence).name.lower()] += count
            return counts
        for item in self.all_items():
            counts[item.precedence.name.lower()] += 1
        return counts

    def body(self, item: Outgoing) -> bytes | None:
        """`item`'s encoded message, read from the store when not in memory; None: it is
        no longer stored."""
        if item.encoded is None and self.source is not None:
            item.encoded = self.source.body_of(item.mid)
        return item.encoded

    # ---- turns ---------------------------------------------------------------------------

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
        return list(filter(self._heaps.get, self._heaps))  # those whose heap is not empty

    def sent_all(self, item: Outgoing, now: float, deadline: float) -> None:
        """Every piece of `item` is on the air: wait for the acknowledgement."""
        self._drop_waiting(item)
        if self.source is not None and item.chunk_size:
            item.encoded = None  # a large one is read again if it must be sent again
        item.sent_at = now
        item.deadline = deadline
        item.attempts += 1
        item.tries_here += 1
        if self.lifecycle.strict:
            self.lifecycle.move((item.mid, self.neighbour), Input.ALL_SENT)
        self.in_flight[item.mid] = item
        self.flying[item.wire or item.mid] = item.mid  # its `wire_mid`, without the call
        self.on_change(self.neighbour)

    def remove(self, mid: MessageId, why: Input = Input.ACKNOWLEDGED) -> Outgoing | None:
        """Acknowledged, moved, expired, evicted or dropped (`why`): forget it (heap
        entries die lazily)."""
        item = self.in_flight.pop(mid, None)
        waiting = self.waiting.get(mid)
        if waiting is not None:
            self._drop_waiting(waiting)
        gone = item or waiting
        if gone is None and self.lifecycle.state((mid, self.neighbour)) is State.WAITING:
            self.lifecycle.move((mid, self.neighbour), why)  # it waited on disk only
        if gone is not None:
            if self.lifecycle.strict:
                self.lifecycle.move((mid, self.neighbour), why)
            wire = gone.wire_mid
            if self.flying.get(wire) == mid:
                del self.flying[wire]
                self._unpark(wire)
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
        mid = item.mid
        return self.flying.get(item.wire or mid, mid) != mid  # `wire_mid`, without the call

    def get(self, mid: MessageId) -> Outgoing | None:
        return self.in_flight.get(mid) or self.waiting.get(mid)

    def all_items(self) -> list[Outgoing]:
        return [*self.waiting.values(), *self.in_flight.values()]

    def __len__(self) -> int:
        """Messages waiting or in flight: a scan of the store when some wait only there,
        so for status, never per frame."""
        return sum(self.counts_by_precedence().values())

    def __bool__(self) -> bool:
        # A queue exists or not; `if queue:` must never cost a scan of the store (__len__).
        return True
