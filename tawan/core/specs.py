"""The engine's configuration and the interfaces it is given: plain typed data, validated once."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol, get_args

from crypto.revocation import Revocation
from crypto.roster import Roster
from tawan.core.contact_routing import plan_problem
from tawan.core.contacts import ContactPlan
from tawan.core.frames import MAX_ADVERT_NEIGHBOURS, MAX_HOPS, MAX_MESSAGE_BYTES, OTHER_BEARERS
from tawan.core.pace import DEFAULT_PACE, PacePolicy
from tawan.core.precedence import Precedence
from transports.profile import BEARER_NAME, BearerProfile


class Keys(Protocol):
    """What the engine needs of `crypto.keyring.Keyring`."""

    address: int
    t0: float
    epoch_seconds: int
    roster: Roster

    def epoch_of(self, mission_seconds: float) -> int: ...
    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None: ...
    def link_key(self, sender: int, receiver: int, epoch: int) -> bytes | None: ...
    def sign(self, data: bytes) -> bytes: ...
    def verify(self, address: int, data: bytes, signature: bytes) -> bool: ...
    def advance(self, current_epoch: int, *, erase: bool = True) -> bool: ...
    def update_roster(self, roster: Roster) -> None: ...
    def apply_revocation(self, notice: Revocation) -> bool: ...


MAX_REF_BYTES = 64


class SubmitError(ValueError):
    """The application asked for something the engine cannot send (its fault, not the net's)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A message the application hands its node: one type from the API to the engine.

    Checked when built, so a submission that exists is well formed; whether its
    destination and ttl suit the mission is the engine's to say (`Engine.submit`).

    `ref`, the client's own reference (1..MAX_REF_BYTES bytes): a submission carrying the
    ref of an earlier one that has not expired is that one again, answered with its
    message id and not sent twice (`tawan.core.store_refs`)."""

    dst: int
    payload: bytes
    precedence: Precedence = Precedence.ROUTINE
    ttl: int = 3600
    receipt: bool = False
    sign: bool = False
    ref: bytes | None = None

    def __post_init__(self) -> None:
        ref = self.ref
        ref_ok = ref is None or (isinstance(ref, bytes) and 1 <= len(ref) <= MAX_REF_BYTES)
        checks = (
            (type(self.dst) is int and 1 <= self.dst <= 0xFFFF, "dst", "an address 1..65535"),
            (isinstance(self.payload, bytes), "payload", "bytes"),
            (isinstance(self.precedence, Precedence), "precedence", "a Precedence"),
            (type(self.ttl) is int and self.ttl >= 1, "ttl", "an integer >= 1 (seconds)"),
            (type(self.receipt) is bool, "receipt", "a bool"),
            (type(self.sign) is bool, "sign", "a bool"),
            (ref_ok, "ref", f"None or 1..{MAX_REF_BYTES} bytes"),
        )
        for ok, field_name, expected in checks:
            if not ok:
                found = getattr(self, field_name)
                shown = f"{type(found).__name__} {found!r}"[:60]
                raise SubmitError(f"submission {field_name}: expected {expected}, found {shown}")


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """A neighbour configured on a link; `endpoint` None: learnt when it first speaks."""

    node: int
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class LinkSpec:
    name: str
    profile: BearerProfile
    peers: tuple[PeerSpec, ...] = ()


RoutingMode = Literal["link-state", "flood"]
ROUTING_MODES: Final = get_args(RoutingMode)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    hello_interval: float = 2.0  # the shortest; slow links say hello less (core/liveness.py)
    dead_interval: float = 7.0  # per link, in the same ratio to that link's hello interval
    hello_share: float = 0.006  # the most of a link's nominal rate its hellos may take
    hello_ceiling: float = 1800.0  # the longest between hellos, however slow the link
    ack_delay: float = 0.005
    commit_interval: float = 0.01  # longest a write waits for a group commit
    retransmit_floor: float = 0.2
    retransmit_ceiling: float = 60.0
    max_hops: int = 16
    advert_interval: float = 30.0
    advert_min_interval: float = 0.2
    housekeeping_interval: float = 1.0
    max_reassembly_bytes: int = 16 << 20
    reassembly_timeout: float = 600.0  # a partial message not added to for this long is dropped
    max_clock_skew: float = 300.0  # a message created further ahead of our clock is refused
    # Follow every (message, next hop) and raise StateError on a transition the table of
    # tawan.core.states does not allow (the test harness sets it; off, it costs nothing).
    strict_states: bool = False
    # Messages sent to one neighbour and not yet acknowledged: a window, so a fast sender
    # is clocked by its neighbour's acknowledgements instead of overrunning it.
    window: int = 256
    # How next hops are chosen: "link-state", shortest paths over the flooded adverts
    # (tawan.core.routing); "flood", every message to every up neighbour but the one it
    # came from (tawan.core.flooding), a baseline to measure routing against.
    routing: RoutingMode = "link-state"
    static_routes: Mapping[int, int] = field(default_factory=dict)
    # The signal plan: each node's planned neighbours and their link costs. Nodes take the
    # planned links for up until an advert says otherwise, and advertise only where they
    # differ from it (core/routing.py); empty, every node advertises all its links.
    planned: Mapping[int, Mapping[int, int]] = field(default_factory=dict)
    # And the plan's links by bearer, node -> neighbour -> bearer -> cost, as adverts list
    # them (core/routing.py, "Routes per class", `restricted_links`): an edge it leaves out
    # is taken by every class at its planned cost.
    planned_links: Mapping[int, Mapping[int, Mapping[str, int]]] = field(default_factory=dict)
    pace: PacePolicy = DEFAULT_PACE  # which bearers each precedence and size may take
    # The contact plan: scheduled windows (LEO passes, SATCOM slots, couriers) between node
    # addresses, on the engine's clock. Given, a unicast message may wait for a contact
    # that gets it there sooner than the path now (core/contact_routing.py); None: not.
    contacts: ContactPlan | None = None

    def __post_init__(self) -> None:
        for key, ok, expected in _engine_checks(self):
            if not ok:
                raise EngineConfigError(key, expected, getattr(self, key))
        if self.contacts is not None and (problem := plan_problem(self.contacts)):
            raise EngineConfigError("contacts", *problem)
        if found := _routes_problem(self):
            raise EngineConfigError(*found)


class EngineConfigError(ValueError):
    """An engine setting outside its bounds; `key`, `expected` and `found` let the config
    loader name the file and table the value came from."""

    def __init__(self, key: str, expected: str, found: object) -> None:
        super().__init__(f"EngineConfig.{key}: expected {expected}, found {found!r}")
        self.key = key
        self.expected = expected
        self.found = found


HOUR: Final = 3600.0
DAY: Final = 86400.0
# A message as reassembled: its ciphertext and at most 31 bytes of msgpack header fields.
LARGEST_MESSAGE_BYTES: Final = MAX_MESSAGE_BYTES + 32


Check = tuple[str, bool, str]  # (key, within bounds, expected: the bounds and why)


def _engine_checks(c: EngineConfig) -> Iterator[Check]:
    """Every bound of every setting, each with the reason for it.

    Lazy and in order: a check runs only once the settings it refers to have passed, so
    `dead_interval` is compared with a `hello_interval` already known to be a number."""
    # fmt: off
    yield _seconds("hello_interval", c, 0.05, HOUR,
                   "more often only loads the bearer; less often, a lost neighbour goes "
                   "unnoticed for an hour")
    yield _seconds("dead_interval", c, "hello_interval", DAY,
                   "a neighbour is gone only once it missed a hello", above=True)
    yield ("hello_share", type(c.hello_share) in (int, float) and 0 < c.hello_share <= 1,
           "a share of the link rate, 0 < hello_share <= 1")
    yield _seconds("hello_ceiling", c, "hello_interval", DAY,
                   "the longest gap between hellos on the slowest link")
    yield _seconds("retransmit_floor", c, 0.01, HOUR,
                   "a shorter timer resends before an acknowledgement can come back")
    yield _seconds("retransmit_ceiling", c, "retransmit_floor", HOUR,
                   "the backoff grows from the floor to the ceiling; a neighbour back from "
                   "an outage waits at most this long")
    yield _seconds("ack_delay", c, 0, "retransmit_floor",
                   "an acknowledgement held that long comes after the sender resent",
                   below=True)
    yield _seconds("commit_interval", c, 0, 1,
                   "a write held longer gains nothing from grouping and is redone after a "
                   "crash")
    yield _integer("max_hops", c, 1, MAX_HOPS, "the hop count is one byte on the wire")
    yield _seconds("advert_interval", c, 1, DAY,
                   "adverts flood to every node and expire after three intervals")
    yield _seconds("advert_min_interval", c, 0, "advert_interval",
                   "the shortest gap between adverts cannot exceed the periodic one")
    yield _seconds("housekeeping_interval", c, 0.01, 60,
                   "expired messages and stale fragments are swept this often")
    yield _integer("max_reassembly_bytes", c, LARGEST_MESSAGE_BYTES, None,
                   "room for the largest message: 1 MiB of payload, sealed and framed")
    yield _seconds("reassembly_timeout", c, "retransmit_ceiling", DAY,
                   "a lost fragment is resent within the ceiling; a partial message "
                   "dropped sooner never completes", above=True)
    yield _seconds("max_clock_skew", c, 1, DAY,
                   "less refuses messages from clocks that drift a little; a day off is a "
                   "wrong clock, not skew")
    yield "strict_states", type(c.strict_states) is bool, "true or false"
    yield _integer("window", c, 1, 0xFFFF, "messages in flight to one neighbour")
    yield ("routing", c.routing in ROUTING_MODES,
           f"one of {', '.join(map(repr, ROUTING_MODES))} (shortest paths, or the flooding "
           "baseline)")
    # fmt: on


def _routes_problem(c: EngineConfig) -> tuple[str, str, object] | None:
    """What is wrong with the static routes, the signal plan or its links by bearer, as
    (key, expected, found), or None. The plan stands in for adverts every node would
    otherwise take from the air, so it is held to the rules of an advert (docs/protocol.md
    4.5): addresses and costs of the wire's range, no node its own neighbour, at most 256
    neighbours a node (the advert of a node that differs from the plan lists them all), and
    links that name planned neighbours at their planned cost, the cheapest of their links.
    The plan's links are not held to an advert's limits on links: an advert lists only some
    of them, by bearer (`routing.restricted_links`)."""
    address = "an address, an integer 1..65535"
    for dst, via in _items(c, "static_routes"):
        if not (_is_u16(dst) and _is_u16(via)):
            return "static_routes", f"destination -> next hop, each {address}", (dst, via)
    for node, neighbours in _items(c, "planned"):
        if not _is_u16(node) or not isinstance(neighbours, Mapping):
            return "planned", f"node -> {{neighbour: cost}}, the node {address}", node
        if len(neighbours) > MAX_ADVERT_NEIGHBOURS:
            return (
                "planned",
                f"at most {MAX_ADVERT_NEIGHBOURS} neighbours of {node}, as an advert lists",
                len(neighbours),
            )
        for neighbour, cost in neighbours.items():
            if not _is_u16(neighbour) or neighbour == node:
                return "planned", f"neighbours of {node}: {address}, not {node}", neighbour
            if not _is_u16(cost):
                return "planned", f"cost of {node} -> {neighbour}: {COST}", cost
    for node, listed in _items(c, "planned_links"):
        mine = c.planned.get(node) if type(node) is int else None
        if mine is None or not isinstance(listed, Mapping):
            return "planned_links", "node -> neighbour -> {bearer: cost}, a planned node", node
        for neighbour, links in listed.items():
            if neighbour not in mine or not isinstance(links, Mapping) or not links:
                return (
                    "planned_links",
                    f"links of {node}: neighbour -> {{bearer: cost}}, a planned neighbour",
                    neighbour,
                )
            for bearer, cost in links.items():
                if not isinstance(bearer, str) or _BEARER.fullmatch(bearer) is None:
                    return "planned_links", f"bearers of {node} -> {neighbour}: {NAME}", bearer
                if not _is_u16(cost):
                    return "planned_links", f"cost of {node} -> {neighbour}: {COST}", cost
            if min(links.values()) != mine[neighbour]:
                return (
                    "planned_links",
                    f"links of {node} -> {neighbour} whose cheapest costs what the plan gives "
                    f"({mine[neighbour]})",
                    dict(links),
                )
    return None


COST: Final = "an integer 1..65535, as an advert carries it"
NAME: Final = "a bearer name (lower-case letters, digits and dashes) or *"
_BEARER: Final = re.compile(f"{BEARER_NAME}|\\{OTHER_BEARERS}")


def _items(c: EngineConfig, key: str) -> Iterator[tuple[object, object]]:
    value = getattr(c, key)
    if not isinstance(value, Mapping):
        raise EngineConfigError(key, "a mapping", value)
    yield from value.items()


def _is_u16(value: object) -> bool:
    """An address or a cost as the wire carries them (bool is no number)."""
    return type(value) is int and 1 <= value <= 0xFFFF


def _seconds(
    key: str, c: EngineConfig, low: float | str, high: float | str, why: str,
    *, above: bool = False, below: bool = False,
) -> Check:  # fmt: skip
    """`key` a finite number from `low` to `high`, either of them another setting by name;
    `above`, `below`: that end itself excluded."""
    lowest, highest = (getattr(c, b) if isinstance(b, str) else b for b in (low, high))
    value = getattr(c, key)
    ok = type(value) in (int, float) and math.isfinite(value)  # bool is no number of seconds
    if ok:
        ok = (value > lowest if above else value >= lowest) and (
            value < highest if below else value <= highest
        )
    low_op, high_op = "<" if above else "<=", "<" if below else "<="
    span = f"{_bound(low, c)} {low_op} {key} {high_op} {_bound(high, c)}"
    return key, ok, f"seconds, {span} ({why})"


def _integer(key: str, c: EngineConfig, low: int, high: int | None, why: str) -> Check:
    value = getattr(c, key)
    ok = type(value) is int and value >= low and (high is None or value <= high)
    span = f"{low} <= {key} <= {high}" if high is not None else f"{key} >= {low}"
    return key, ok, f"an integer, {span} ({why})"


def _bound(bound: float | str, c: EngineConfig) -> str:
    return f"{bound} ({getattr(c, bound):g})" if isinstance(bound, str) else f"{bound:g}"
