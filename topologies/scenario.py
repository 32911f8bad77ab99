"""A scenario as typed objects: the network, its traffic, its faults, how long and which seed.

One TOML file (docs/scenarios.md documents every key) is validated once, at the edge, by
`topologies.load.load_scenario`; everything past it (generators, analysis, the emulator)
sees only these frozen models. Times are seconds from the start of the run; positions are
kilometres on a flat map.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from tawan.core.pace import HF_LARGEST, PacePolicy
from tawan.core.precedence import Precedence
from tawan.core.specs import EngineConfig, RoutingMode
from transports.profile import HELLO_MAX_S, RATE_MAX_BPS


class _Strict(BaseModel):
    # No inf or nan (TOML has both, and 1e400 reads as inf): a run of inf seconds never
    # ends, a node at nan km is in nobody's range. Numbers are numbers (_NUMBER): true is no
    # duration and "60" no interval.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)


def _number_only(value: object) -> object:
    """A TOML number as it is (an integer field still takes 1e6, not 1.5); a boolean or a
    string, which pydantic would convert, refused."""
    if isinstance(value, bool | str):
        raise ValueError("expected a number, not true, false or text")  # noqa: TRY004  # pydantic reports ValueError only
    return value


_NUMBER = BeforeValidator(_number_only)
Number = Annotated[float, _NUMBER]
"""A float or an integer, finite; not a bool or a string."""
Seconds = Annotated[float, _NUMBER, Field(ge=0)]
Chance = Annotated[float, _NUMBER, Field(ge=0, le=1)]
Position = tuple[Number, Number]

EPOCH_S = 3600
GRACE_EPOCHS = 24
"""The emulator's missions: keys of an hour, kept 24 hours (emulator.mission)."""
TTL_MAX_S = EPOCH_S * GRACE_EPOCHS
"""The longest time to live a message of the emulation may have: a node refuses to send
one that would outlive the keys its destination needs to open it."""

RUN_MAX_S = 7 * 86400.0
"""The longest run: a week of virtual time (a 3-node run takes about a wall second per
hour of it, a brigade far more); a longer one is a typo (seconds for minutes) or would not
end in useful time."""


def _precedence(value: object) -> object:
    """Scenario files name a precedence ("FLASH"); the model keeps the enum."""
    if isinstance(value, str) and value.upper() in Precedence.__members__:
        return Precedence[value.upper()]
    return value


PrecedenceName = Annotated[Precedence, BeforeValidator(_precedence)]


class Node(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    role: Literal["hq", "unit", "relay"] = "unit"
    position: Position = (0.0, 0.0)
    groups: tuple[str, ...] = ()
    parent: str | None = None
    """The headquarters this node reports to ("parent" in traffic, paths in analysis)."""


class Numbers(_Strict):
    """Per-link or per-net overrides of the bearer's catalogue numbers; unset keeps them."""

    rate_bps: Annotated[int, _NUMBER, Field(gt=0, le=RATE_MAX_BPS)] | None = None
    delay_s: Seconds | None = None
    jitter_s: Seconds | None = None
    loss: Chance | None = None
    mtu: Annotated[int, _NUMBER, Field(ge=128, le=65507)] | None = None
    queue_bytes: Annotated[int, _NUMBER, Field(gt=0)] | None = None
    range_km: Annotated[float, _NUMBER, Field(gt=0)] | None = None
    hello_s: Annotated[float, _NUMBER, Field(ge=0, le=HELLO_MAX_S)] | None = None
    """The shortest hello interval the bearer asks for (0: the engine's)."""
    bursts: bool = True
    """False: none of the catalogue's Gilbert-Elliott loss bursts (only `loss`, if any)."""
    available: tuple[tuple[Seconds, Seconds], ...] = ()
    """Availability windows [start, end): outside them the link is down (a satellite
    pass, a scheduled HF slot). Empty: always available (faults aside)."""


class Link(Numbers):
    """A point-to-point link between two nodes over one bearer."""

    a: str
    b: str
    bearer: str
    name: str | None = None
    """Defaults to "a-b-bearer"; see `Scenario.link_name`."""
    beam: str | None = None
    """SATCOM: the beam it uses (jamming and outages per beam)."""


class Net(Numbers):
    """A radio net: one shared half-duplex channel; each frame is heard by members in range."""

    name: str
    bearer: str
    members: Annotated[tuple[str, ...], Field(min_length=2)]
    priority_access: bool | None = None
    """Whether the channel goes to the waiting frame of highest precedence (None: the
    bearer's `priority_access`)."""


Selector = str
"""Which nodes: "all", "role:hq", "group:coy-a", or a node name."""

Destination = str
"""Where to: "parent", "children" (each node whose parent it is, one message each),
"own-group" (the source's first group, one group message), "group:NAME", or a node name."""


class Traffic(_Strict):
    name: str | None = None
    sources: Annotated[tuple[Selector, ...], Field(min_length=1)] = ("all",)
    share: Chance = 1.0
    """The fraction of the selected sources that send (drawn from the seed)."""
    to: Destination
    precedence: PrecedenceName = Precedence.ROUTINE
    size_bytes: Annotated[int, _NUMBER, Field(ge=1, le=1 << 20)]
    interval_s: Annotated[float, _NUMBER, Field(gt=0)]
    process: Literal["periodic", "poisson"] = "periodic"
    start_s: Seconds = 0.0
    stop_s: Seconds | None = None
    ttl_s: Annotated[int, _NUMBER, Field(ge=1, le=TTL_MAX_S)] = 3600
    receipt: bool = False


class _Fault(_Strict):
    at_s: Seconds
    duration_s: Annotated[float, _NUMBER, Field(gt=0)] | None = None
    """None: until the end of the run (a cut never repaired)."""


class _Targeted(_Fault):
    """A fault on one link or net (`link`, by name) or on every link of a bearer."""

    link: str | None = None
    bearer: str | None = None


class Jam(_Fault):
    kind: Literal["jam"]
    name: str | None = None
    position: Position = (0.0, 0.0)
    bands: Annotated[tuple[str, ...], Field(min_length=1)]
    power_w: Annotated[float, _NUMBER, Field(gt=0)] = 100.0
    reach_km: Annotated[float, _NUMBER, Field(gt=0)] | None = None
    """Given: total loss for every receiver within reach, none beyond; the J/S model else."""
    duty_cycle: Annotated[float, _NUMBER, Field(gt=0, le=1)] = 1.0
    period_s: Annotated[float, _NUMBER, Field(gt=0)] = 60.0
    beam: str | None = None
    """Band "satcom": the uplink beam jammed (every link on it)."""


class Cut(_Fault):
    kind: Literal["cut"]
    link: str


class Latency(_Targeted):
    kind: Literal["latency"]
    add_s: Annotated[float, _NUMBER, Field(gt=0)]


class Throttle(_Targeted):
    kind: Literal["throttle"]
    factor: Annotated[float, _NUMBER, Field(gt=0, le=1)]
    """The share of the nominal rate left."""


class LossBurst(_Targeted):
    kind: Literal["loss"]
    loss: Chance


class SatcomOutage(_Fault):
    kind: Literal["satcom-outage"]
    bearer: str | None = None
    beam: str | None = None


class Destroy(_Fault):
    kind: Literal["destroy"]
    node: str


class Restart(_Fault):
    kind: Literal["restart"]
    node: str
    """Crashes at `at_s` (what it had not committed is lost) and runs again after
    `duration_s` (default: at once) on its surviving store."""


class Emcon(_Fault):
    kind: Literal["emcon"]
    node: str
    bands: tuple[str, ...] = ()
    """Empty: every radio band of the node (receive only)."""


Fault = Annotated[
    Jam | Cut | Latency | Throttle | LossBurst | SatcomOutage | Destroy | Restart | Emcon,
    Field(discriminator="kind"),
]


class Run(_Strict):
    name: str = "scenario"
    duration_s: Annotated[float, _NUMBER, Field(gt=0, le=RUN_MAX_S)]
    seed: Annotated[int, _NUMBER] = 1
    description: str = ""


class Pace(_Strict):
    """The PACE policy of every node (tawan.core.pace): per precedence the bearers it may
    use (not listed: all), and per bearer the largest message it carries."""

    bearers: dict[PrecedenceName, tuple[str, ...]] = {}
    largest: dict[str, Annotated[int, _NUMBER, Field(ge=1)]] = {"hf": HF_LARGEST}

    def policy(self) -> PacePolicy:
        return PacePolicy(
            bearers={p: frozenset(names) for p, names in self.bearers.items()},
            largest=dict(self.largest),
        )


class Engine(_Strict):
    """The engines' protocol timers, the same for every node of the run (the daemon's
    defaults unless set): how often hellos and adverts go out, when a silent neighbour
    counts as gone; and how they choose next hops."""

    hello_interval_s: Annotated[float, _NUMBER, Field(gt=0)] = 2.0
    dead_interval_s: Annotated[float, _NUMBER, Field(gt=0)] = 7.0
    advert_interval_s: Annotated[float, _NUMBER, Field(gt=0)] = 30.0
    hello_share: Annotated[float, _NUMBER, Field(gt=0, le=1)] = 0.006
    planned: bool = True
    """The nodes know the signal plan (this file's links and nets) and advertise only
    where their links differ from it; false, every node advertises all its links."""
    contacts: bool = False
    """The nodes know a contact plan made of this file's links and nets (those with
    `available` windows open in them, the others over the whole run) and may hold a
    message for a contact that gets it there sooner than the path now (docs/contacts.md);
    false, they route by link-state alone."""
    pace: Pace = Pace()
    routing: RoutingMode = "link-state"
    """"flood": every engine floods instead of routing (the baseline of bench/survival.py)."""

    def config(self) -> EngineConfig:
        """The engines' configuration: the daemon's defaults with these settings (the plan
        is added by the emulator, which knows the nodes' addresses)."""
        return EngineConfig(
            hello_interval=self.hello_interval_s,
            dead_interval=self.dead_interval_s,
            advert_interval=self.advert_interval_s,
            hello_share=self.hello_share,
            pace=self.pace.policy(),
            routing=self.routing,
        )


class Scenario(_Strict):
    run: Run
    engine: Engine = Engine()
    nodes: Annotated[tuple[Node, ...], Field(min_length=1)]
    links: tuple[Link, ...] = ()
    nets: tuple[Net, ...] = ()
    traffic: tuple[Traffic, ...] = ()
    faults: tuple[Fault, ...] = ()

    @staticmethod
    def link_name(link: Link) -> str:
        return link.name or f"{link.a}-{link.b}-{link.bearer}"
