"""Scenarios made from scenarios: the same network with fewer bearers, another routing mode,
a shorter run. Pure functions; each result is checked again as a loaded file is
(`topologies.load.scenario_from_data`), so what they return always runs.

`bench/survival.py` runs each campaign as written and through these, on the same seeds.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from tawan.core.specs import RoutingMode
from topologies.load import scenario_from_data
from topologies.scenario import (
    Cut,
    Fault,
    Jam,
    Latency,
    LossBurst,
    SatcomOutage,
    Scenario,
    Throttle,
)

PRIMARY_BEARERS: Final = frozenset({"radio-relay", "vhf", "uhf"})
"""The terrestrial tactical radio network every node of a generated force relies on: radio
relay between headquarters, VHF (or UHF) within a company. Fibre, SATCOM and HF are the
alternates a mix of means adds."""


class TransformError(ValueError):
    """A transform that cannot give a usable scenario (it names the node or value)."""


def primary_only(scenario: Scenario, keep: Collection[str] = PRIMARY_BEARERS) -> Scenario:
    """`scenario` with only the links and nets of the bearers in `keep`, and without the
    faults that named what is gone (cuts of removed links, SATCOM outages with no SATCOM
    left, latency, throttle and loss on removed links or bearers, jams of a removed beam).
    Jams by band stay: they name no link, and hit whatever radios are left in their reach.

    A node that would keep no link at all is an error: it relies on no primary bearer."""
    links = tuple(link for link in scenario.links if link.bearer in keep)
    nets = tuple(net for net in scenario.nets if net.bearer in keep)
    linked = {n for link in links for n in (link.a, link.b)} | {
        m for net in nets for m in net.members
    }
    stranded = [node.name for node in scenario.nodes if node.name not in linked]
    if stranded:
        raise TransformError(
            f"primary_only(keep={sorted(keep)}): expected every node on a kept bearer, "
            f"found {stranded} with none"
        )
    names = {Scenario.link_name(link) for link in links} | {net.name for net in nets}
    beams = {link.beam for link in links if link.beam}
    bearers = {link.bearer for link in links} | {net.bearer for net in nets}
    faults = tuple(f for f in scenario.faults if _still_aimed(f, names, beams, bearers))
    return _checked(scenario, links=links, nets=nets, faults=faults)


def _still_aimed(fault: Fault, names: set[str], beams: set[str], bearers: set[str]) -> bool:
    """The fault's target is still in the scenario."""
    if isinstance(fault, Cut):
        return fault.link in names
    if isinstance(fault, Latency | Throttle | LossBurst):
        return fault.link in names if fault.link is not None else fault.bearer in bearers
    if isinstance(fault, SatcomOutage):
        kept = fault.bearer in bearers if fault.bearer else bool(bearers & _SATCOM)
        return kept and (fault.beam is None or fault.beam in beams)
    if isinstance(fault, Jam):
        return fault.beam is None or fault.beam in beams
    return True


_SATCOM: Final = frozenset({"satcom-geo", "satcom-leo"})


def with_routing(scenario: Scenario, routing: RoutingMode) -> Scenario:
    """`scenario` with every engine choosing next hops by `routing`."""
    engine = scenario.engine.model_copy(update={"routing": routing})
    return _checked(scenario, engine=engine)


def compressed(scenario: Scenario, duration_s: float) -> Scenario:
    """`scenario` run for `duration_s` with its whole timeline scaled to fit: every fault's
    start and length, traffic start and stop times and availability windows times
    `duration_s / run.duration_s`. Traffic intervals and ttls stay: a shorter run offers
    fewer messages under the same campaign, compressed."""
    if not duration_s > 0:
        raise TransformError(f"compressed: expected a duration > 0 s, found {duration_s!r}")
    factor = duration_s / scenario.run.duration_s

    def scaled(value: float | None) -> float | None:
        return None if value is None else value * factor

    def windows(item: object) -> dict[str, object]:
        available = getattr(item, "available", ())
        return {"available": tuple((a * factor, b * factor) for a, b in available)}

    return _checked(
        scenario,
        run=scenario.run.model_copy(update={"duration_s": duration_s}),
        faults=tuple(
            f.model_copy(update={"at_s": f.at_s * factor, "duration_s": scaled(f.duration_s)})
            for f in scenario.faults
        ),
        traffic=tuple(
            t.model_copy(update={"start_s": t.start_s * factor, "stop_s": scaled(t.stop_s)})
            for t in scenario.traffic
        ),
        links=tuple(link.model_copy(update=windows(link)) for link in scenario.links),
        nets=tuple(net.model_copy(update=windows(net)) for net in scenario.nets),
    )


def _checked(scenario: Scenario, **update: object) -> Scenario:
    """The scenario with `update`, validated as a file would be (model_copy checks nothing)."""
    changed = scenario.model_copy(update=update)
    return scenario_from_data(changed.model_dump(mode="python"), f"{scenario.run.name} (derived)")
