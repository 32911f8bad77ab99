"""The fault plan: a scenario's faults as the conditions of every link at every moment.

Each fault is turned once, up front, into the spans when it is active and its effect on
each link it touches. The conditions of a link at time t are computed from the set of
faults active at t alone (latencies add, throttle factors multiply, losses combine as
1-(1-a)(1-b), down wins), so a boundary never has to undo anything: `apply(t)` finds which
faults changed since the last call and recomputes the links they touch.

The jamming model and its numbers are in docs/bearers.md ("Jamming").
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from emulator.links import NOMINAL, Conditions, LinkModel, LinkState
from topologies.bearers import BEARERS
from topologies.scenario import (
    Cut,
    Destroy,
    Emcon,
    Fault,
    Jam,
    Latency,
    LossBurst,
    Restart,
    SatcomOutage,
    Scenario,
    Throttle,
)

JS_CLEAR_DB = -6.0
"""Jammer-to-signal ratio at or below which the jammer costs nothing (assumption)."""
JS_DENIED_DB = 6.0
"""At or above which nothing gets through; linear in dB between (assumption)."""
MIN_DISTANCE_KM = 0.001
"""Distances are clamped here so a jammer on top of a receiver is finite (and total)."""

NodeEventKind = Literal["destroy", "crash", "revive"]


@dataclass(frozen=True, slots=True)
class LinkSignal:
    """Carrier lost or back, seen by both ends of a wired link (a cut, a repair)."""

    link: str
    up: bool


@dataclass(frozen=True, slots=True)
class NodeEvent:
    time: float
    node: str
    kind: NodeEventKind


@dataclass(frozen=True, slots=True)
class FaultInterval:
    """One fault for plots and results: when it starts and ends (None: never)."""

    kind: str
    target: str
    start: float
    end: float | None


@dataclass(frozen=True, slots=True)
class Effect:
    """One fault's effect on one link, while it is active."""

    default: Conditions = NOMINAL
    directions: Mapping[tuple[str, str], Conditions] = field(default_factory=dict)
    silenced: frozenset[str] = frozenset()
    down_nodes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _Planned:
    interval: FaultInterval
    starts: tuple[float, ...]
    ends: tuple[float, ...]
    """Active on [starts[i], ends[i]); ends may be inf."""
    effects: Mapping[str, Effect]

    def active_at(self, t: float) -> bool:
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]


def jam_to_signal_db(
    jammer_w: float, sender_w: float, exponent: float, d_sender_km: float, d_jammer_km: float
) -> float:
    """J/S at a receiver: 10 log10(Pj/Pt) + 10 n log10(d_sender / d_jammer)."""
    d_s = max(d_sender_km, MIN_DISTANCE_KM)
    d_j = max(d_jammer_km, MIN_DISTANCE_KM)
    return 10 * math.log10(jammer_w / max(sender_w, 1e-9)) + 10 * exponent * math.log10(d_s / d_j)


def jam_loss(js_db: float) -> float:
    """Loss a jammer causes at `js_db`: 0 at or below JS_CLEAR_DB, 1 at or above
    JS_DENIED_DB, linear in dB between."""
    if js_db <= JS_CLEAR_DB:
        return 0.0
    if js_db >= JS_DENIED_DB:
        return 1.0
    return (js_db - JS_CLEAR_DB) / (JS_DENIED_DB - JS_CLEAR_DB)


class FaultPlan:
    """Every fault of a run, ready to set link conditions at any time."""

    def __init__(
        self,
        planned: list[_Planned],
        links: Mapping[str, LinkModel],
        node_events: list[NodeEvent],
        duration_s: float,
    ) -> None:
        self._planned = planned
        self._links = links
        self.node_events = node_events
        self.duration_s = duration_s
        self._faults_of: dict[str, tuple[int, ...]] = {
            name: tuple(i for i, p in enumerate(planned) if name in p.effects) for name in links
        }
        times = {0.0}
        for p in planned:
            times.update(t for t in (*p.starts, *p.ends) if 0 <= t <= duration_s)
        self.boundaries = sorted(times)
        self._active: frozenset[int] = frozenset()
        self._carrier = dict.fromkeys(links, True)
        self._states: dict[tuple[str, frozenset[int]], LinkState] = {}

    def _active_at(self, t: float, among: Iterable[int]) -> frozenset[int]:
        return frozenset(i for i in among if self._planned[i].active_at(t))

    def state_of(self, link: str, active: frozenset[int]) -> LinkState:
        """The state of `link` while exactly the faults `active` are in force (the same
        object for the same faults: a duty-cycled jam builds its two states once)."""
        planned = self._planned
        mine = frozenset(i for i in active if link in planned[i].effects)
        key = (link, mine)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._combine(link, mine)
        return state

    def _combine(self, link: str, active: frozenset[int]) -> LinkState:
        planned = self._planned
        effects = [planned[i].effects[link] for i in sorted(active)]
        if not effects:
            return LinkState()
        default = NOMINAL
        per: dict[tuple[str, str], Conditions] = {}
        silenced: set[str] = set()
        down: set[str] = set()
        for effect in effects:
            default = default.combine(effect.default)
            for key, cond in effect.directions.items():
                per[key] = per[key].combine(cond) if key in per else cond
            silenced |= effect.silenced
            down |= effect.down_nodes
        directions: dict[str, dict[str, Conditions]] = {}
        for (s, r), cond in per.items():
            directions.setdefault(s, {})[r] = default.combine(cond)
        return LinkState(default, directions, frozenset(silenced), frozenset(down))

    def apply(self, t: float) -> list[LinkSignal]:
        """Set every link's conditions in force from `t`; the wired links whose carrier
        changed, by name."""
        active = self._active_at(t, range(len(self._planned)))
        changed = active ^ self._active
        self._active = active
        dirty = sorted({name for i in changed for name in self._planned[i].effects})
        signals = []
        for name in dirty:
            model = self._links[name]
            state = self.state_of(name, active)
            model.advance(t)  # the frames themselves read the schedule (`install`)
            if model.bearer.kind == "wired" and state.default.up != self._carrier[name]:
                self._carrier[name] = state.default.up
                signals.append(LinkSignal(name, state.default.up))
        return signals

    def carrier(self, link: str) -> bool:
        """Whether a wired link's carrier is up as of the last `apply` (True otherwise)."""
        return self._carrier[link]

    def install(self) -> None:
        """Give every link its schedule of conditions for the whole run."""
        for name, model in self._links.items():
            model.set_schedule(self.link_states(name))

    def link_states(self, link: str) -> list[tuple[float, LinkState]]:
        """The states of `link` over [0, duration], each with the time it starts."""
        mine = self._faults_of[link]
        times = {0.0}
        for i in mine:
            p = self._planned[i]
            times.update(t for t in (*p.starts, *p.ends) if 0 <= t <= self.duration_s)
        return [(t, self.state_of(link, self._active_at(t, mine))) for t in sorted(times)]

    def intervals(self) -> list[FaultInterval]:
        """One entry per fault, in scenario order (a duty-cycled jam: its whole span)."""
        return [p.interval for p in self._planned]


def plan_faults(scenario: Scenario, links: Mapping[str, LinkModel]) -> FaultPlan:
    """The scenario's faults against `links` (from `build_links`); ValueError names a
    fault whose target does not exist."""
    duration = scenario.run.duration_s
    nodes = {node.name for node in scenario.nodes}
    planned: list[_Planned] = []
    events: list[NodeEvent] = []
    for fault in scenario.faults:
        end = math.inf if fault.duration_s is None else fault.at_s + fault.duration_s
        interval_end = None if fault.duration_s is None else end
        if isinstance(fault, Destroy | Restart | Emcon):
            _check_node(fault, fault.node, nodes)
        effects = _effects(fault, links)
        spans: list[tuple[float, float]] = [(fault.at_s, end)]
        if isinstance(fault, Jam) and fault.duty_cycle < 1:
            spans = _duty_spans(fault.at_s, min(end, duration), fault.period_s, fault.duty_cycle)
        if isinstance(fault, Destroy):
            spans = [(fault.at_s, math.inf)]
            interval_end = None
            events.append(NodeEvent(fault.at_s, fault.node, "destroy"))
        elif isinstance(fault, Restart):
            back = fault.at_s + (fault.duration_s or 0.0)
            spans = [(fault.at_s, back)] if back > fault.at_s else []
            events += [NodeEvent(fault.at_s, fault.node, "crash")]
            events += [NodeEvent(back, fault.node, "revive")]
            interval_end = back
        interval = FaultInterval(fault.kind, _target(fault), fault.at_s, interval_end)
        planned.append(
            _Planned(interval, tuple(s for s, _ in spans), tuple(e for _, e in spans), effects)
        )
    planned += _unavailable(scenario, links)
    order = {"destroy": 0, "crash": 1, "revive": 2}
    events.sort(key=lambda e: (e.time, e.node, order[e.kind]))
    plan = FaultPlan(planned, links, events, duration)
    plan.install()
    return plan


def _unavailable(scenario: Scenario, links: Mapping[str, LinkModel]) -> list[_Planned]:
    """Each link or net with availability windows is down between and around them."""
    planned = []
    entries = [(Scenario.link_name(link), link.available) for link in scenario.links]
    entries += [(net.name, net.available) for net in scenario.nets]
    for name, windows in entries:
        if not windows or name not in links:
            continue
        gaps, at = [], 0.0
        for start, end in windows:
            if start > at:
                gaps.append((at, start))
            at = max(at, end)
        if at < scenario.run.duration_s:
            gaps.append((at, math.inf))
        effect = {name: Effect(Conditions(up=False))}
        for start, end in gaps:  # one entry each, so plots shade each gap
            interval = FaultInterval("unavailable", name, start, None if end == math.inf else end)
            planned.append(_Planned(interval, (start,), (end,), effect))
    return planned


def _duty_spans(
    start: float, stop: float, period: float, duty: float
) -> list[tuple[float, float]]:
    """On for the first `duty * period` of each period from `start`, until `stop`."""
    spans = []
    k = 0
    while start + k * period < stop:
        on = start + k * period
        spans.append((on, min(on + duty * period, stop)))
        k += 1
    return spans


def _check_node(fault: Fault, node: str, nodes: set[str]) -> None:
    if node not in nodes:
        raise ValueError(f"fault {fault.kind} at {fault.at_s}s: expected a node, found {node!r}")


def _target(fault: Fault) -> str:
    if isinstance(fault, Jam):
        return fault.name or f"jam:{'+'.join(fault.bands)}"
    if isinstance(fault, Cut):
        return fault.link
    if isinstance(fault, Latency | Throttle | LossBurst):
        return fault.link or f"bearer:{fault.bearer}"
    if isinstance(fault, SatcomOutage):
        return (fault.beam and f"beam:{fault.beam}") or fault.bearer or "satcom"
    return fault.node


def _effects(fault: Fault, links: Mapping[str, LinkModel]) -> dict[str, Effect]:
    if isinstance(fault, Jam):
        return _jam_effects(fault, links)
    if isinstance(fault, Cut):
        if fault.link not in links:
            raise ValueError(f"cut at {fault.at_s}s: expected a link, found {fault.link!r}")
        return {fault.link: Effect(Conditions(up=False))}
    if isinstance(fault, Latency | Throttle | LossBurst):
        if isinstance(fault, Latency):
            cond = Conditions(extra_delay_s=fault.add_s)
        elif isinstance(fault, Throttle):
            cond = Conditions(rate_factor=fault.factor)
        else:
            cond = Conditions(loss=fault.loss)
        return {name: Effect(cond) for name in _targeted(fault, links)}
    if isinstance(fault, SatcomOutage):
        _check_bearer(fault, fault.bearer)
        return {
            name: Effect(Conditions(up=False))
            for name, m in links.items()
            if m.bearer.kind == "satcom"
            and fault.bearer in (None, m.bearer.name)
            and fault.beam in (None, m.beam)
        }
    if isinstance(fault, Destroy):
        return {
            name: Effect(Conditions(up=False))
            if not m.shared
            else Effect(down_nodes=frozenset({fault.node}))
            for name, m in links.items()
            if fault.node in m.members
        }
    if isinstance(fault, Restart):
        return {
            name: Effect(down_nodes=frozenset({fault.node}))
            for name, m in links.items()
            if fault.node in m.members
        }
    return {
        name: Effect(silenced=frozenset({fault.node}))
        for name, m in links.items()
        if fault.node in m.members
        and m.bearer.kind != "wired"
        and (m.bearer.band in fault.bands or (not fault.bands and m.bearer.kind == "radio"))
    }


def _check_bearer(fault: Fault, name: str | None) -> None:
    if name is not None and name not in BEARERS:
        raise ValueError(
            f"fault {fault.kind} at {fault.at_s}s: expected a bearer of {sorted(BEARERS)}, "
            f"found {name!r}"
        )


def _targeted(fault: Latency | Throttle | LossBurst, links: Mapping[str, LinkModel]) -> list[str]:
    if fault.link is None and fault.bearer is None:
        raise ValueError(
            f"fault {fault.kind} at {fault.at_s}s: expected `link` or `bearer`, found neither"
        )
    if fault.link is not None and fault.link not in links:
        raise ValueError(
            f"fault {fault.kind} at {fault.at_s}s: expected a link, found {fault.link!r}"
        )
    _check_bearer(fault, fault.bearer)
    return [
        name
        for name, m in links.items()
        if fault.link in (None, name) and fault.bearer in (None, m.bearer.name)
    ]


def _jam_effects(jam: Jam, links: Mapping[str, LinkModel]) -> dict[str, Effect]:
    effects: dict[str, Effect] = {}
    bands = set(jam.bands)
    for name, model in links.items():
        b = model.bearer
        if b.band not in bands or b.kind == "wired":
            continue
        if b.kind == "satcom":
            effect = _jam_satcom(jam, model)
        else:
            directions = {
                (s, r): Conditions(loss=loss)
                for s in model.members
                for r in model.heard_by(s)
                if (loss := _jam_direction(jam, model, s, r)) > 0
            }
            effect = Effect(directions=directions) if directions else None
        if effect is not None:
            effects[name] = effect
    return effects


def _jam_satcom(jam: Jam, model: LinkModel) -> Effect | None:
    """A beam named: every link on it loses everything; else terminals within reach (no
    reach: every SATCOM link)."""
    if jam.beam is not None:
        return Effect(Conditions(loss=1.0)) if model.beam == jam.beam else None
    if jam.reach_km is None:
        return Effect(Conditions(loss=1.0))
    reach = jam.reach_km
    directions = {
        (s, r): Conditions(loss=1.0)
        for s in model.members
        for r in model.heard_by(s)
        if math.dist(jam.position, model.positions[r]) <= reach
    }
    return Effect(directions=directions) if directions else None


def _jam_direction(jam: Jam, model: LinkModel, sender: str, receiver: str) -> float:
    """The loss the jammer causes on frames from `sender` heard at `receiver`."""
    d_jammer = math.dist(jam.position, model.positions[receiver])
    if jam.reach_km is not None:
        return 1.0 if d_jammer <= jam.reach_km else 0.0
    b = model.bearer
    js = jam_to_signal_db(
        jam.power_w,
        b.tx_power_w,
        b.path_loss_exponent,
        model.distance_km(sender, receiver),
        d_jammer,
    )
    return jam_loss(js)
