"""Which 5066 peers are up, and which unanswered frame each CONFIRM or REJECTED answers.

No I/O and no clock of its own (callers pass `now`), so the rule below is tested directly.

Matching. A server's answer carries the destination and only the first bytes of the U_PDU
(its `U_PDU_response_frag_size`, possibly 0), and tawan adds no link header on an HF
bearer, so an answer is matched to the oldest outstanding frame to that destination whose
first bytes it repeats. ARQ delivers in order, so the oldest is the right one when two
frames share their first bytes.

The rule. After a BIND every configured peer is up. A peer goes down (PeerDown) when the
server rejects a frame to it for TTL expiry (1), destination SAP not bound (2) or
destination node not responding (3), unless a frame sent to it after the rejected one was
already confirmed (then the rejection is old news). It comes up again (PeerUp) when a frame
to it is confirmed, a frame from it is received, or `retry_after` seconds pass: the node
then tries again, and a second rejection puts it down again. Rejections for size (4) or
mode (5) are this client's fault, not the peer's: counted, no state change. Group
destinations are sent without confirmation and never go down.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass

from transports.link import PeerDown, PeerUp
from transports.s5066_codec import Address, RejectReason

KEPT_HEAD = 64
"""Bytes of each outstanding frame kept for matching; servers echo about 100 at most."""

PEER_FAULTS = frozenset(
    {
        RejectReason.TTL_EXPIRED,
        RejectReason.DESTINATION_SAP_NOT_BOUND,
        RejectReason.DESTINATION_NODE_NOT_RESPONDING,
    }
)


@dataclass(frozen=True, slots=True)
class _Outstanding:
    seq: int
    head: bytes
    size: int
    expires: float

    def answered_by(self, prefix: bytes) -> bool:
        if len(prefix) > self.size:
            return False
        n = min(len(prefix), len(self.head))
        return self.head[:n] == prefix[:n]


class PeerBook:
    """The peers of one S5066Link: names, addresses, up/down state and unanswered frames."""

    def __init__(
        self,
        peers: Mapping[str, Address],
        groups: Mapping[str, Address],
        *,
        retry_after: float,
        answer_within: float,
        max_outstanding: int = 1024,
    ) -> None:
        self._by_name = {**peers, **groups}
        self._unicast = {address.value: name for name, address in peers.items()}
        self._groups = set(groups)
        self._retry_after = retry_after
        self._answer_within = answer_within
        self._max_outstanding = max_outstanding
        self._up: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._outstanding: dict[str, deque[_Outstanding]] = {name: deque() for name in peers}
        self._count = 0
        self._seq = 0
        self._last_confirmed: dict[str, int] = {}
        self.confirmed = 0
        self.rejected: Counter[str] = Counter()
        self.unmatched_answers = 0
        self.unanswered = 0
        """Frames neither confirmed nor rejected in time, or pushed out by newer ones."""

    def address_of(self, name: str) -> Address | None:
        return self._by_name.get(name)

    def name_of(self, source: Address) -> str | None:
        """The peer a U_PDU came from (sources are node addresses, never groups)."""
        return self._unicast.get(source.value)

    def is_up(self, name: str) -> bool:
        return name in self._up

    @property
    def up(self) -> frozenset[str]:
        return frozenset(self._up)

    def bound(self) -> list[PeerUp]:
        """The SAP is bound: every peer is worth a try."""
        self._retry_at.clear()
        fresh = [name for name in self._by_name if name not in self._up]
        self._up.update(fresh)
        return [PeerUp(name) for name in fresh]

    def unbound(self) -> list[PeerDown]:
        """The session ended: nobody can be reached, and no answer will come."""
        down = [PeerDown(name) for name in self._by_name if name in self._up]
        self._up.clear()
        self._retry_at.clear()
        for queue in self._outstanding.values():
            self.unanswered += len(queue)
            queue.clear()
        self._count = 0
        return down

    def sent(self, name: str, frame: bytes, now: float) -> None:
        """Remember a frame sent with node confirmation, until its answer or `answer_within`."""
        queue = self._outstanding.get(name)
        if queue is None:
            return  # a group: no confirmation asked
        self.expire(now)
        if self._count >= self._max_outstanding:
            self._evict_oldest()
        self._seq += 1
        queue.append(
            _Outstanding(self._seq, frame[:KEPT_HEAD], len(frame), now + self._answer_within)
        )
        self._count += 1

    def confirmed_to(self, dest: Address, prefix: bytes, now: float) -> list[PeerUp]:
        match = self._match(dest, prefix, now)
        if match is None:
            return []
        name, entry = match
        self.confirmed += 1
        self._last_confirmed[name] = max(entry.seq, self._last_confirmed.get(name, 0))
        return self._bring_up(name)

    def rejected_to(
        self, dest: Address, reason: RejectReason, prefix: bytes, now: float
    ) -> list[PeerDown]:
        match = self._match(dest, prefix, now)
        if match is None:
            return []
        name, entry = match
        self.rejected[reason.name] += 1
        if reason not in PEER_FAULTS or name not in self._up:
            return []
        if self._last_confirmed.get(name, 0) > entry.seq:
            return []  # a later frame got through: the peer is reachable
        self._up.discard(name)
        self._retry_at[name] = now + self._retry_after
        return [PeerDown(name)]

    def heard_from(self, name: str) -> list[PeerUp]:
        return self._bring_up(name)

    def next_retry(self) -> float | None:
        return min(self._retry_at.values(), default=None)

    def retry_due(self, now: float) -> list[PeerUp]:
        due = [name for name, at in self._retry_at.items() if at <= now]
        return [event for name in due for event in self._bring_up(name)]

    def expire(self, now: float) -> None:
        for queue in self._outstanding.values():
            while queue and queue[0].expires <= now:
                queue.popleft()
                self._count -= 1
                self.unanswered += 1

    def _bring_up(self, name: str) -> list[PeerUp]:
        self._retry_at.pop(name, None)
        if name in self._up:
            return []
        self._up.add(name)
        return [PeerUp(name)]

    def _match(self, dest: Address, prefix: bytes, now: float) -> tuple[str, _Outstanding] | None:
        self.expire(now)
        name = self._unicast.get(dest.value)
        queue = self._outstanding.get(name) if name is not None else None
        if name is None or queue is None:
            self.unmatched_answers += 1
            return None
        for index, entry in enumerate(queue):
            if entry.answered_by(prefix):
                del queue[index]
                self._count -= 1
                return name, entry
        self.unmatched_answers += 1
        return None

    def _evict_oldest(self) -> None:
        oldest = min(
            (queue for queue in self._outstanding.values() if queue),
            key=lambda queue: queue[0].seq,
        )
        oldest.popleft()
        self._count -= 1
        self.unanswered += 1
