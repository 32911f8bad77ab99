"""What a full store owes others: a signal of room to the neighbours it refused, and a
notice to the origin of each message it evicted.

Refusing custody is backpressure: the refused neighbour keeps its copy and retries with its
retransmission backoff, which grows to `retransmit_ceiling` (tens of seconds). `Refusals`
remembers, per neighbour, the smallest message refused (no room, or its fair share used),
so that once such a message would be taken again the engine sends the neighbour a HELLO with
the ROOM flag and it sends at once (docs/protocol.md, section 4.4). A signal goes only after
a refusal and only once what refused it has changed, so it never brings the same refusal
straight back.

Evictions are told to the origin in notices (receipt kind "evicted", tawan.core.receipts),
gathered for `delay` seconds per origin and carrying up to `MAX_NOTICE_MIDS` ids each, so a
burst of evictions costs a few small messages on the network, not one per eviction. The
number pending is bounded (`MAX_PENDING`): beyond it an eviction goes untold, and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import msgpack

from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence
from tawan.core.receipts import MAX_NOTICE_MIDS

__all__ = ["MAX_PENDING", "EvictionNotices", "Notice", "Refusals"]

MAX_PENDING: Final = 4096


class Refusals:
    """Neighbours refused custody for want of room, and the least room each one needs."""

    def __init__(self) -> None:
        self._smallest: dict[int, int] = {}  # neighbour -> bytes of its smallest refusal

    def __bool__(self) -> bool:
        return bool(self._smallest)

    def refused(self, neighbour: int, size: int) -> None:
        known = self._smallest.get(neighbour)
        self._smallest[neighbour] = size if known is None else min(known, size)

    def owed(self, has_room: Callable[[int, int], bool]) -> list[int]:
        """The neighbours whose smallest refused message would be taken now
        (`has_room(neighbour, size)`); forgotten once told."""
        ready = [n for n, size in self._smallest.items() if has_room(n, size)]
        for neighbour in ready:
            del self._smallest[neighbour]
        return sorted(ready)


@dataclass(frozen=True, slots=True)
class Notice:
    """One notice of eviction to send: to `origin`, about `mids` (all of that origin)."""

    origin: int
    mids: tuple[MessageId, ...]
    precedence: Precedence  # the highest of the messages it reports on
    ttl: int


@dataclass(slots=True)
class _Pending:
    since: float
    mids: list[MessageId]
    precedence: Precedence
    ttl: int


class EvictionNotices:
    """Evictions waiting to be told to their origins, gathered per origin."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._pending: dict[int, _Pending] = {}
        self._count = 0

    def __bool__(self) -> bool:
        return bool(self._pending)

    def add(self, mid: MessageId, precedence: Precedence, ttl: int, now: float) -> bool:
        """Gather one eviction; False when too many wait already (it is never told)."""
        if self._count >= MAX_PENDING:
            return False
        origin = mid[0]
        pending = self._pending.get(origin)
        if pending is None:
            self._pending[origin] = _Pending(now, [mid], precedence, ttl)
        else:
            pending.mids.append(mid)
            pending.precedence = max(pending.precedence, precedence)
            pending.ttl = max(pending.ttl, ttl)
        self._count += 1
        return True

    def to_bytes(self) -> bytes:
        """What waits, for the store's state row (written with the evictions it reports)."""
        return msgpack.packb(
            [[p.since, [list(m) for m in p.mids], int(p.precedence), p.ttl]
             for p in self._pending.values()]
        )  # fmt: skip

    @classmethod
    def from_bytes(cls, data: bytes | None, delay: float) -> EvictionNotices:
        """The notices `to_bytes` wrote (None: none wait)."""
        notices = cls(delay)
        for since, mids, precedence, ttl in msgpack.unpackb(data) if data else ():
            pending = _Pending(
                since, [(m[0], m[1], m[2]) for m in mids], Precedence(precedence), ttl
            )
            notices._pending[pending.mids[0][0]] = pending
            notices._count += len(pending.mids)
        return notices

    def deadline(self) -> float | None:
        """When the next notice is due: `delay` after its first eviction, or at once when
        one origin has a full notice waiting."""
        if not self._pending:
            return None
        return min(
            float("-inf") if len(p.mids) >= MAX_NOTICE_MIDS else p.since + self.delay
            for p in self._pending.values()
        )

    def take(self, now: float) -> list[Notice]:
        """The notices due now, each of at most MAX_NOTICE_MIDS ids, oldest origin first."""
        due = []
        for origin, pending in list(self._pending.items()):
            if len(pending.mids) < MAX_NOTICE_MIDS and now < pending.since + self.delay:
                continue
            del self._pending[origin]
            self._count -= len(pending.mids)
            for start in range(0, len(pending.mids), MAX_NOTICE_MIDS):
                mids = tuple(pending.mids[start : start + MAX_NOTICE_MIDS])
                due.append(Notice(origin, mids, pending.precedence, pending.ttl))
        return due
