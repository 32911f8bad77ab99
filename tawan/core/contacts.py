"""Contact plans and contact graph routing: when can a message reach a node, and how.

A contact is a scheduled window in which one node can send to another (a LEO pass, a SATCOM
slot, a courier or drone leaving one site for another): one way, with a rate and a one-way
delay. A plan is the set of contacts the mission expects. Routing over it answers "sent
from `source` at `at`, when does a message of `size_bytes` reach `dest` at the earliest,
and over which contacts", which is what a node needs to choose a next hop for a message no
path carries now.

The rules, which `route` applies exactly:

- A contact is open over [start, end). A transmission on it starts no earlier than the
  contact's start and no earlier than the moment the message is at the sender.
- Transmission takes size_bytes * 8 / rate_bps seconds, and must finish no later than the
  contact's end: depart + size*8/rate <= end, compared exactly (no slack), so a message
  that fits to the last bit is sent and one a bit longer waits for a later contact. It
  must also start before the end (this matters only for an empty message).
- It arrives at the receiver owlt_s (one-way light time, or a courier's travel) after its
  transmission ends: arrive = depart + tx + owlt_s.
- A node may hold a message for as long as it likes (store, carry, forward): a later,
  faster contact can beat taking a slow one now.
- Residual volume: by default every contact carries the whole message as if alone. Given
  `booked` (bytes already committed to contacts, e.g. by `book` for earlier messages), a
  contact first sends its booked bytes from its start, so this message departs no earlier
  than start + booked*8/rate: the queue ahead drains, the window shrinks.
- Confidence is carried (a route's is the product of its hops') and not used to choose.

The search is Dijkstra on earliest arrival. Because a node may wait and a later departure
on a contact never arrives earlier (FIFO), the earliest time a message can be at a node
dominates every later one, so one label per node gives the same arrival as the contact-graph
formulation (one label per contact) while relaxing each contact at most once. Contacts are
kept per sender sorted by end, so contacts already over when a node is reached are skipped
by bisection. Cost: O(C log C) for C contacts in the worst case; docs/contacts.md has a
measured figure.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class ContactPlanError(ValueError):
    """A contact or a plan that breaks the rules above (the plan's author's fault)."""


@dataclass(frozen=True, slots=True)
class Contact:
    """One way, one window: `sender` can send to `receiver` over [start, end) at rate_bps."""

    start: float
    end: float
    sender: str
    receiver: str
    rate_bps: float
    owlt_s: float = 0.0
    confidence: float = 1.0
    bearer: str | None = None

    def __post_init__(self) -> None:
        problem = contact_problem(self)
        if problem is not None:
            raise ContactPlanError(problem)

    def transmission_s(self, size_bytes: int) -> float:
        return size_bytes * 8 / self.rate_bps


def contact_problem(c: Contact) -> str | None:
    """What is wrong with a contact, as "field: expected ..., found ...", or None."""
    checks: list[tuple[str, bool, str, object]] = [
        ("start", math.isfinite(c.start), "a finite number of seconds", c.start),
        ("end", c.end > c.start, f"greater than start ({c.start})", c.end),
        ("sender", isinstance(c.sender, str) and c.sender != "", "a node name", c.sender),
        ("receiver", isinstance(c.receiver, str) and c.receiver != "", "a node name", c.receiver),
        ("receiver", c.receiver != c.sender, "a node other than the sender", c.receiver),
        ("rate_bps", 0 < c.rate_bps < math.inf, "a finite rate above 0", c.rate_bps),
        ("owlt_s", 0 <= c.owlt_s < math.inf, "a finite delay of 0 or more", c.owlt_s),
        ("confidence", 0 < c.confidence <= 1, "a number in (0, 1]", c.confidence),
    ]
    for name, ok, expected, found in checks:
        if not ok:  # NaN fails every comparison above, so it lands here too
            return f"{name}: expected {expected}, found {found!r}"
    return None


@dataclass(frozen=True, slots=True)
class _SenderIndex:
    """One sender's contacts sorted by end, with the ends apart for bisecting."""

    ends: tuple[float, ...]
    contacts: tuple[Contact, ...]


@dataclass(frozen=True, slots=True)
class ContactPlan:
    """A validated set of contacts (no exact duplicates), indexed by sender."""

    contacts: tuple[Contact, ...]
    _by_sender: dict[str, _SenderIndex] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: dict[Contact, int] = {}
        for index, c in enumerate(self.contacts):
            if not isinstance(c, Contact):
                raise ContactPlanError(f"contact {index}: expected a Contact, found {c!r}")
            if c in seen:
                raise ContactPlanError(
                    f"contact {index}: expected a contact not already in the plan, "
                    f"found a copy of contact {seen[c]}"
                )
            seen[c] = index
        grouped: dict[str, list[Contact]] = {}
        for c in self.contacts:
            grouped.setdefault(c.sender, []).append(c)
        index_of = {}
        for sender, found in grouped.items():
            found.sort(key=lambda c: (c.end, c.start, c.receiver))
            index_of[sender] = _SenderIndex(tuple(c.end for c in found), tuple(found))
        object.__setattr__(self, "_by_sender", index_of)

    @classmethod
    def of(cls, contacts: Iterable[Contact]) -> ContactPlan:
        return cls(tuple(contacts))

    def nodes(self) -> frozenset[str]:
        return frozenset(c.sender for c in self.contacts) | {c.receiver for c in self.contacts}

    def from_sender(self, sender: str) -> tuple[Contact, ...]:
        """The sender's contacts, by end time."""
        index = self._by_sender.get(sender)
        return () if index is None else index.contacts

    def open_after(self, sender: str, t: float) -> tuple[Contact, ...]:
        """The sender's contacts that end after t (the only ones a message there at t can
        still use), by end time."""
        index = self._by_sender.get(sender)
        if index is None:
            return ()
        return index.contacts[bisect_right(index.ends, t) :]


class Hop(NamedTuple):
    contact: Contact
    depart_s: float
    arrive_s: float


@dataclass(frozen=True, slots=True)
class Route:
    hops: tuple[Hop, ...]
    arrival_s: float

    @property
    def confidence(self) -> float:
        return math.prod(hop.contact.confidence for hop in self.hops)

    @property
    def first(self) -> Contact | None:
        """The contact the message leaves the source on (None: it is already there)."""
        return self.hops[0].contact if self.hops else None


def hop_over(
    contact: Contact, ready_s: float, size_bytes: int, booked_bytes: float = 0
) -> Hop | None:
    """The hop a message at the sender from `ready_s` makes on `contact`, or None if it does
    not fit (the rules in the module docstring)."""
    opens = contact.start + max(booked_bytes, 0) * 8 / contact.rate_bps
    depart = max(ready_s, opens)
    done = depart + contact.transmission_s(size_bytes)
    if depart >= contact.end or done > contact.end:
        return None
    return Hop(contact, depart, done + contact.owlt_s)


def route(
    plan: ContactPlan,
    source: str,
    dest: str,
    at: float,
    size_bytes: int,
    *,
    exclude: Collection[Contact] = (),
    booked: Mapping[Contact, float] | None = None,
) -> Route | None:
    """The earliest-arrival route from `source` (holding the message from `at`) to `dest`,
    or None if no sequence of contacts gets it there. Ties go to fewer hops."""
    if size_bytes < 0:
        raise ContactPlanError(f"size_bytes: expected 0 or more, found {size_bytes}")
    if source == dest:
        return Route((), at)
    excluded = set(exclude)
    load = booked or {}
    best: dict[str, tuple[float, int]] = {source: (at, 0)}  # (arrival, hops) per node
    came_by: dict[str, Hop] = {}
    settled: set[str] = set()
    heap: list[tuple[float, int, int, str]] = [(at, 0, 0, source)]
    pushed = 1  # a counter, so the heap never compares node names: order stays by insertion
    while heap:
        ready, hops, _, node = heapq.heappop(heap)
        if node in settled:
            continue
        settled.add(node)
        if node == dest:
            return Route(_path(came_by, source, dest), ready)
        for contact in plan.open_after(node, ready):
            if contact.receiver in settled or contact in excluded:
                continue
            hop = hop_over(contact, ready, size_bytes, load.get(contact, 0))
            if hop is None:
                continue
            label = (hop.arrive_s, hops + 1)
            if label >= best.get(contact.receiver, (math.inf, 0)):
                continue
            best[contact.receiver] = label
            came_by[contact.receiver] = hop
            heapq.heappush(heap, (hop.arrive_s, hops + 1, pushed, contact.receiver))
            pushed += 1
    return None


def _path(came_by: Mapping[str, Hop], source: str, dest: str) -> tuple[Hop, ...]:
    hops: list[Hop] = []
    node = dest
    while node != source:
        hop = came_by[node]
        hops.append(hop)
        node = hop.contact.sender
    return tuple(reversed(hops))


def routes(
    plan: ContactPlan,
    source: str,
    dest: str,
    at: float,
    size_bytes: int,
    *,
    k: int = 3,
    exclude: Collection[Contact] = (),
    booked: Mapping[Contact, float] | None = None,
) -> tuple[Route, ...]:
    """Up to k routes, best first, each leaving on a different first contact: the best, then
    the best without the first contacts of those already found (alternatives for the
    engine's next-hop choice, in the spirit of CGR's route lists, not Yen's k-shortest)."""
    if k < 0:
        raise ContactPlanError(f"k: expected 0 or more, found {k}")
    excluded = set(exclude)
    found: list[Route] = []
    while len(found) < k:
        best = route(plan, source, dest, at, size_bytes, exclude=excluded, booked=booked)
        if best is None or best.first is None:
            if best is not None:
                found.append(best)
            break
        found.append(best)
        excluded.add(best.first)
    return tuple(found)


def book(booked: Mapping[Contact, float], chosen: Route, size_bytes: int) -> dict[Contact, float]:
    """`booked` with `size_bytes` more on each contact of `chosen` (a new dict)."""
    updated = dict(booked)
    for hop in chosen.hops:
        updated[hop.contact] = updated.get(hop.contact, 0) + size_bytes
    return updated
