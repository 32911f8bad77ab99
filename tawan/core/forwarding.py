"""The forwarding decision: for each message, its next hops and, for each, the link.

This is the one place that decides where a message goes from this node (docs/engine.md,
"Forwarding"). The router says which neighbours lead to a destination; this module picks
the link to each of them per message, and hands the message to the transmitter, which only
paces and sends what it is handed. The link is the neighbour's best up link (lowest
cost, then highest rate), cached per neighbour and recomputed when one of its links changes
or it reports its loss, unless the PACE policy (tawan.core.pace) keeps the message off that
bearer: then the best link the policy allows, and none up, the message waits for one.
"""

from __future__ import annotations

from typing import ClassVar

from crypto.roster import Roster
from tawan.core.neighbours import Adjacency, NeighbourTable
from tawan.core.pace import DEFAULT_PACE, PacePolicy
from tawan.core.queues import Outgoing
from tawan.core.routing import Router
from tawan.core.transmitter import Transmitter


class Forwarding:
    floods: ClassVar[bool] = False
    """Copies may reach a node by several paths (tawan.core.flooding): a copy seen before
    is a duplicate, never carried again."""

    def __init__(
        self, me: int, router: Router, neighbours: NeighbourTable, tx: Transmitter,
        pace: PacePolicy = DEFAULT_PACE,
    ) -> None:  # fmt: skip
        self.me = me
        self.pace = pace
        self.router = router
        self.neighbours = neighbours
        self.tx = tx
        self._best: dict[int, Adjacency | None] = {}
        self.silent: frozenset[str] = frozenset()  # links under emission control

    # ------------------------------------------------------------------ next hops
    def next_hops(self, roster: Roster, src: int, dst: int, came_from: int | None) -> set[int]:
        """Neighbours to hand a message from `src` to `dst` to (none: hold it)."""
        if roster.is_group(dst):
            members = [m for m in roster.members(dst) if m != src]
            return self.router.group_next_hops(src, members, came_from)
        hop = self.router.next_hop(dst)
        return set() if hop is None else {hop}

    def unreached(self, roster: Roster, dst: int) -> bool:
        """A group with members no route reaches now: some copy must wait for them."""
        if not roster.is_group(dst):
            return False
        reached = self.router.reached()
        return any(m != self.me and m not in reached for m in roster.members(dst))

    def covered(self, roster: Roster, dst: int) -> bool:
        """A copy with no next hop here needs none: a group whose other members all have
        routes (this node is a leaf of its tree)."""
        return roster.is_group(dst) and not self.unreached(roster, dst)

    # ------------------------------------------------------------------ links
    def best(self, neighbour: int) -> Adjacency | None:
        """The neighbour's best up link now (cached; see `neighbour_changed`)."""
        if neighbour not in self._best:
            best = self.neighbours.best_link(neighbour)
            if best is not None and best.link in self.silent:
                best = self.neighbours.best_link(neighbour, avoid=self.silent)
            self._best[neighbour] = best
        return self._best[neighbour]

    def link_for(self, neighbour: int, item: Outgoing) -> str:
        """The link `item` takes to `neighbour` ("": none up now that the policy allows, it
        waits)."""
        adj = self.best(neighbour)
        if adj is None:
            return ""
        allows = self.pace.allows
        if allows(adj.profile.name, item.precedence, item.size):
            return adj.link
        allowed = [
            a for a in self.neighbours.of(neighbour)
            if a.up and a.peer is not None and a.link not in self.silent
            and allows(a.profile.name, item.precedence, item.size)
        ]  # fmt: skip
        if not allowed:
            return ""
        return min(allowed, key=lambda a: (a.cost, -a.profile.rate_bps, a.link)).link

    def hand(self, neighbour: int, item: Outgoing) -> None:
        """Give `item` to the transmitter, on the link chosen for it."""
        self.tx.hand(neighbour, self.link_for(neighbour, item), item)

    def neighbour_changed(self, neighbour: int) -> None:
        """A link to `neighbour` went up or down, or its measured cost moved: choose again
        for what waits (what is in flight goes on as it went, until it needs a new turn)."""
        old = self._best.pop(neighbour, None)
        same = self.best(neighbour) is old
        for item in self.tx.waiting(neighbour):
            if not same or not item.via:  # a changed best, or one the policy kept waiting
                self.hand(neighbour, item)
