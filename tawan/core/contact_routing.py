"""The engine's use of a contact plan: wait for a better contact, or take the path now.

For one unicast message at this node, contact graph routing (tawan.core.contacts) gives the
earliest arrival the plan allows, waiting included; link-state routing gives a next hop now,
whose arrival is estimated here as the sum of each hop's transmission and delay. The plan's
route is chosen only when it arrives strictly earlier; otherwise, and whenever the plan has
nothing (no route, a first hop this node has no link to), the decision is link-state's as
without a plan. docs/contacts.md, "How the engine uses a plan", gives the rules in words.

A plan handed to the engine (`EngineConfig.contacts`) names nodes by their addresses in
decimal ("12") and keeps time on the engine's clock (the `now` of every entry point):
`plan_for_engine` turns a plan read from a file (roster names, seconds from its own
epoch) into one.

Routes are cached per (destination, size, precedence). A route found from `at` is the
route from any later moment up to its first departure (a message that may wait there
arrives no earlier and no later), so it is reused until then; no route from `at` means no
route from any later moment (the plan is fixed), so that answer is kept for good.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from tawan.core.contacts import Contact, ContactPlan, ContactPlanError, Route, route
from tawan.core.pace import PacePolicy, covers
from tawan.core.precedence import Precedence
from tawan.core.routing import Router
from transports.profile import BearerProfile

CACHE_LIMIT: Final = 4096
"""Routes kept at most; past it the cache starts afresh (each entry is recomputed once)."""


@dataclass(frozen=True, slots=True)
class Parcel:
    """What the choice needs of one message: its id, its size as sent, its precedence."""

    mid: tuple[int, int, int]
    size: int
    precedence: Precedence


@dataclass(frozen=True, slots=True)
class ContactChoice:
    """The plan's route beat the path now: go to `neighbour` on `contact` at `depart_s`
    (now, or later: the message is held until then)."""

    neighbour: int
    contact: Contact
    depart_s: float
    arrival_s: float
    rival_s: float  # the path now's estimated arrival (inf: no path now)

    def waits(self, now: float) -> bool:
        return self.depart_s > now


def address_of(name: str) -> int | None:
    """A plan node name as an address ("12" -> 12); None when it is not one."""
    if not name.isdecimal() or name != str(int(name)):
        return None
    value = int(name)
    return value if 1 <= value <= 0xFFFF else None


def plan_problem(plan: object) -> tuple[str, object] | None:
    """What makes `plan` unfit for the engine, as (expected, found), or None."""
    if not isinstance(plan, ContactPlan):
        return "None or a ContactPlan", plan
    for name in sorted(plan.nodes()):
        if address_of(name) is None:
            return "contacts between node addresses 1..65535 written in decimal", name
    return None


def plan_for_engine(
    plan: ContactPlan, resolve: Callable[[str], int | None], epoch: float
) -> ContactPlan:
    """`plan` with each node's name replaced by its address (`resolve`: None when it names
    no node) and `epoch` (the engine-clock time at which the plan's clock reads 0) added to
    every time. ContactPlanError names the first name that resolves to nothing."""
    shifted = []
    for index, c in enumerate(plan.contacts):
        ends = []
        for role, name in (("sender", c.sender), ("receiver", c.receiver)):
            address = resolve(name)
            if address is None:
                raise ContactPlanError(
                    f"contacts[{index}]: {role}: expected a node of the roster or an "
                    f"address, found {name!r}"
                )
            ends.append(str(address))
        shifted.append(
            Contact(
                c.start + epoch, c.end + epoch, ends[0], ends[1], c.rate_bps, c.owlt_s,
                c.confidence, c.bearer,
            )
        )  # fmt: skip
    return ContactPlan.of(shifted)


def names_link(contact: Contact, link: str, profile: BearerProfile) -> bool:
    """Whether a contact may use this link: it names no bearer, or names the link itself or
    its bearer profile (as PACE names bearers: "satcom" covers "satcom-leo")."""
    bearer = contact.bearer
    return bearer is None or bearer == link or covers(bearer, profile.name)


class ContactRouting:
    """The plan's routes from this node, cached, and the estimate of the path now."""

    def __init__(self, me: int, plan: ContactPlan, router: Router, pace: PacePolicy) -> None:
        self.me = str(me)
        self.plan = plan
        self.router = router
        self.pace = pace
        self._routes: dict[tuple[int, int, int], tuple[Route | None, float]] = {}
        self._refused: dict[tuple[int, int], frozenset[Contact]] = {}
        self.searches = 0  # routes computed (not served from the cache)

    def best_route(self, dst: int, size: int, precedence: Precedence, now: float) -> Route | None:
        """The earliest-arrival route from here at `now` over contacts PACE allows."""
        key = (dst, size, int(precedence))
        cached = self._routes.get(key)
        if cached is not None and now <= cached[1]:
            return cached[0]
        self.searches += 1
        found = route(
            self.plan, self.me, str(dst), now, size, exclude=self._refused_for(precedence, size)
        )
        valid_until = math.inf if found is None or not found.hops else found.hops[0].depart_s
        if len(self._routes) >= CACHE_LIMIT:
            self._routes.clear()
        self._routes[key] = (found, valid_until)
        return found

    def _refused_for(self, precedence: Precedence, size: int) -> frozenset[Contact]:
        """Contacts whose bearer PACE keeps this message off (cached per precedence, size)."""
        key = (int(precedence), size)
        refused = self._refused.get(key)
        if refused is None:
            if len(self._refused) >= CACHE_LIMIT:
                self._refused.clear()
            allows = self.pace.allows
            refused = frozenset(
                c for c in self.plan.contacts
                if c.bearer is not None and not allows(c.bearer, precedence, size)
            )  # fmt: skip
            self._refused[key] = refused
        return refused

    def path_now_arrival(
        self, dst: int, hop: int, first: BearerProfile, size: int, now: float
    ) -> float:
        """When a message handed to `hop` over a link of profile `first` now reaches `dst`:
        transmission and delay per hop, the first from the link, the rest along this
        node's own shortest paths (`Router.own_tree`), each from the plan's fastest
        contact between the two nodes open then. A hop the plan has no contact for counts
        as instant: the estimate is optimistic for the path now, so the node waits only
        where the plan shows it is worth it. Queues ahead of the message are not counted
        on either side."""
        t = now + first.transmit_time_s(size)
        parents = self.router.own_tree()
        path: list[int] = []
        node = dst
        while node in parents and node != hop and len(path) <= len(parents):
            path.append(node)
            node = parents[node]
        if node != hop:
            return t  # a static route or a direct neighbour: the first hop is all it knows
        sender = hop
        for receiver in reversed(path):
            t += _hop_time(self.plan, sender, receiver, size, t)
            sender = receiver
        return t


def _hop_time(plan: ContactPlan, sender: int, receiver: int, size: int, t: float) -> float:
    """Transmission and delay on the plan's fastest contact sender -> receiver open at t
    (0 when none is)."""
    want = str(receiver)
    open_now = [c for c in plan.open_after(str(sender), t) if c.receiver == want and c.start <= t]
    if not open_now:
        return 0.0
    return min(c.transmission_s(size) + c.owlt_s for c in open_now)


def by_address(names: Mapping[str, int]) -> Callable[[str], int | None]:
    """A resolver for `plan_for_engine`: a known name, else a name that is an address."""

    def resolve(name: str) -> int | None:
        return names.get(name, address_of(name))

    return resolve
