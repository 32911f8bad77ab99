"""The forwarding decision: for each message, its next hops and, for each, the link.

This is the one place that decides where a message goes from this node (docs/engine.md,
"Forwarding"). The router says which neighbours lead to a destination; this module picks
the link to each of them per message, and hands the message to the transmitter, which only
paces and sends what it is handed. The link is the neighbour's best up link (lowest
cost, then highest rate), cached per neighbour and recomputed when one of its links changes
or it reports its loss, unless the PACE policy (tawan.core.pace) keeps the message off that
bearer: then the best link the policy allows, and none up, the message waits for one.

With a contact plan (`EngineConfig.contacts`), a unicast message may instead be given to the
first hop of the plan's earliest-arrival route, when that beats the path now
(tawan.core.contact_routing): on the contact's link while the contact lasts, or held until
the contact opens. `deadline` tells the engine when a held message may leave or a contact
ends, and `due` what to do then (docs/contacts.md, "How the engine uses a plan").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from crypto.roster import Roster
from tawan.core.contact_routing import ContactChoice, ContactRouting, Parcel, names_link
from tawan.core.contacts import ContactPlan
from tawan.core.frames import MessageId
from tawan.core.neighbours import Adjacency, NeighbourTable
from tawan.core.pace import DEFAULT_PACE, PacePolicy
from tawan.core.precedence import Precedence
from tawan.core.queues import Outgoing
from tawan.core.routing import Router
from tawan.core.transmitter import Transmitter


@dataclass(frozen=True, slots=True)
class Pin:
    """A message given to `neighbour` by the plan: it takes one of `links` until `until`
    (the contact's end), then whatever link-state gives it."""

    neighbour: int
    links: frozenset[str]
    until: float


class Forwarding:
    floods: ClassVar[bool] = False
    """Copies may reach a node by several paths (tawan.core.flooding): a copy seen before
    is a duplicate, never carried again."""

    def __init__(
        self, me: int, router: Router, neighbours: NeighbourTable, tx: Transmitter,
        pace: PacePolicy = DEFAULT_PACE, contacts: ContactPlan | None = None,
    ) -> None:  # fmt: skip
        self.me = me
        self.pace = pace
        self.router = router
        self.neighbours = neighbours
        self.tx = tx
        self._best: dict[int, Adjacency | None] = {}
        self._costs: dict[int, tuple[int, ...]] = {}  # of each neighbour's links, last seen
        self.silent: frozenset[str] = frozenset()  # links under emission control
        self.contacts = None if contacts is None else ContactRouting(me, contacts, router, pace)
        self._pins: dict[MessageId, Pin] = {}
        self._wakes: dict[int, float] = {}  # destination -> when a message held for it may go
        # Route classes by (precedence, which largest sizes it is over), for these bearers.
        self._class_bearers: frozenset[str] | None = None
        self._classes: dict[tuple[Precedence, tuple[bool, ...]], frozenset[str] | None] = {}
        self._restricts = False  # whether the policy restricts one of `_class_bearers`

    # ------------------------------------------------------------------ next hops
    def next_hops(
        self, roster: Roster, src: int, dst: int, came_from: int | None,
        parcel: Parcel | None = None, now: float = 0.0,
    ) -> set[int]:  # fmt: skip
        """Neighbours to hand a message from `src` to `dst` to (none: hold it). Given the
        `parcel` and the time, a unicast message may go by the contact plan."""
        if roster.is_group(dst):
            members = [m for m in roster.members(dst) if m != src]
            return self.router.group_next_hops(src, members, came_from)
        hop = self.hop(dst, parcel)
        if self.contacts is not None and parcel is not None:
            choice = self.by_plan(dst, hop, parcel, now)
            if choice is not None:
                return self._follow(dst, choice, parcel, now)
        return set() if hop is None else {hop}

    def hop(self, dst: int, parcel: Parcel | None) -> int | None:
        """The next hop of a unicast message for `dst`: by the routes of its class when the
        PACE policy keeps it off a bearer the network has (core/routing.py, "Routes per
        class"), else by the routes of all."""
        cls = None if parcel is None else self.route_class(parcel.precedence, parcel.size)
        if cls is None:
            return self.router.next_hop(dst)
        return self.router.class_next_hop(dst, cls, cls.__contains__)

    def wants_parcel(self) -> bool:
        """Whether a message's precedence and size may change its next hop: a contact plan,
        or a bearer of the network that the policy restricts (routes per class)."""
        if self.contacts is not None:
            return True
        self._bearers_now()
        return self._restricts

    def _bearers_now(self) -> frozenset[str]:
        """The network's bearers; when they changed, the classes are found afresh."""
        bearers = self.router.bearers()
        if bearers is not self._class_bearers:
            self._class_bearers, self._classes = bearers, {}
            self._restricts = any(self.pace.restricts(b) for b in bearers)
        return bearers

    def route_class(self, precedence: Precedence, size: int) -> frozenset[str] | None:
        """The bearers of the network a message of `precedence` and `size` may use, or
        None when that is all of them (the common case: it routes as any other)."""
        bearers, pace = self._bearers_now(), self.pace
        key = (precedence, tuple(size > most for most in pace.largest.values()))
        if key not in self._classes:
            allowed = frozenset(b for b in bearers if pace.allows(b, precedence, size))
            self._classes[key] = None if allowed == bearers else allowed
        return self._classes[key]

    # ------------------------------------------------------------------ the contact plan
    def by_plan(
        self, dst: int, hop: int | None, parcel: Parcel, now: float
    ) -> ContactChoice | None:
        """The plan's route when it reaches `dst` strictly before the path now (via `hop`)
        would; None: the path now (or holding, if there is none) as without a plan."""
        contacts = self.contacts
        if contacts is None:
            return None
        found = contacts.best_route(dst, parcel.size, parcel.precedence, now)
        if found is None or not found.hops:
            return None
        rival = math.inf
        if hop is not None:
            adj = self._allowed_best(hop, parcel)
            if adj is not None:
                rival = contacts.path_now_arrival(dst, hop, adj.profile, parcel.size, now)
        if found.arrival_s >= rival:
            return None
        first = found.hops[0]
        neighbour = int(first.contact.receiver)  # the plan names nodes by address
        return ContactChoice(neighbour, first.contact, first.depart_s, found.arrival_s, rival)

    def _follow(self, dst: int, choice: ContactChoice, parcel: Parcel, now: float) -> set[int]:
        """Hold the message until the contact opens, or pin it to the contact's links."""
        links = frozenset(
            a.link for a in self.neighbours.of(choice.neighbour)
            if names_link(choice.contact, a.link, a.profile)
        )  # fmt: skip
        if not links:  # the plan names a link this node does not have: not its to follow
            hop = self.hop(dst, parcel)
            return set() if hop is None else {hop}
        if choice.waits(now):
            self._wakes[dst] = min(self._wakes.get(dst, math.inf), choice.depart_s)
            return set()
        self._pins[parcel.mid] = Pin(choice.neighbour, links, choice.contact.end)
        return {choice.neighbour}

    def pinned(self) -> set[tuple[int, str]]:
        """(neighbour, link) of every contact a message is pinned to now."""
        return {(pin.neighbour, link) for pin in self._pins.values() for link in pin.links}

    def unpin(self, mid: MessageId) -> None:
        """`mid` left this node (acknowledged, dropped): its pin, if any, goes with it."""
        if self._pins:
            self._pins.pop(mid, None)

    def deadline(self) -> float | None:
        """When `due` must run next: a held message's contact opens, or a contact ends."""
        if not self._wakes and not self._pins:
            return None  # no plan, or nothing waiting on one: every `get_timer` asks
        times = [*self._wakes.values(), *(pin.until for pin in self._pins.values())]
        return min(times) if times else None

    def due(self, now: float) -> tuple[set[int], bool]:
        """Destinations whose held messages may leave now (the engine places them again),
        and whether a contact messages were pinned to has ended. Those are handed again to
        whatever link the neighbour has; the engine then moves any whose neighbour has none
        (`Engine._reroute`): a contact that did not happen strands nothing."""
        ready = {dst for dst, at in self._wakes.items() if at <= now}
        for dst in ready:
            del self._wakes[dst]
        ended = {mid: pin for mid, pin in self._pins.items() if pin.until <= now}
        for mid in ended:
            del self._pins[mid]
        for neighbour in {pin.neighbour for pin in ended.values()}:
            for item in self.tx.waiting(neighbour):
                if item.mid in ended:
                    self.hand(neighbour, item)
        return ready, bool(ended)

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
        waits). One the plan pinned to a contact takes that contact's link, or waits for it
        until the contact ends."""
        pin = self._pins.get(item.mid)
        if pin is not None and pin.neighbour == neighbour:
            on = [a for a in self.neighbours.of(neighbour) if a.link in pin.links]
            adj = self._best_of(on, item.precedence, item.size)
            return "" if adj is None else adj.link
        adj = self._allowed_best(neighbour, item)
        return "" if adj is None else adj.link

    def _allowed_best(self, neighbour: int, item: Outgoing | Parcel) -> Adjacency | None:
        """The neighbour's best up link if the policy allows it for `item`, else the best
        one it allows (None: none up)."""
        adj = self.best(neighbour)
        if adj is None or self.pace.allows(adj.profile.name, item.precedence, item.size):
            return adj
        return self._best_of(self.neighbours.of(neighbour), item.precedence, item.size)

    def _best_of(
        self, adjacencies: list[Adjacency], precedence: Precedence, size: int
    ) -> Adjacency | None:
        """Of these links, the best up one, not silenced, that the policy allows."""
        allows = self.pace.allows
        allowed = [
            a for a in adjacencies
            if a.up and a.peer is not None and a.link not in self.silent
            and allows(a.profile.name, precedence, size)
        ]  # fmt: skip
        if not allowed:
            return None
        return min(allowed, key=lambda a: (a.cost, -a.profile.rate_bps, a.link))

    def hand(self, neighbour: int, item: Outgoing) -> None:
        """Give `item` to the transmitter, on the link chosen for it."""
        self.tx.hand(neighbour, self.link_for(neighbour, item), item)

    def costs_measured(self, neighbour: int) -> bool:
        """A hello brought the loss measured on `neighbour`'s links: choose again only if
        a link's cost moved since (most hellos change nothing). True when one did."""
        costs = tuple(a.cost for a in self.neighbours.of(neighbour))
        if self._costs.get(neighbour) == costs:
            return False
        self._costs[neighbour] = costs
        self.neighbour_changed(neighbour)
        return True

    def neighbour_changed(self, neighbour: int) -> None:
        """A link to `neighbour` went up or down, or its measured cost moved: choose again
        for what waits (what is in flight goes on as it went, until it needs a new turn)."""
        old = self._best.pop(neighbour, None)
        same = self.best(neighbour) is old
        for item in self.tx.waiting(neighbour):
            if not same or not item.via:  # a changed best, or one the policy kept waiting
                self.hand(neighbour, item)
