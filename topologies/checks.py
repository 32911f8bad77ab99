"""The checks pydantic cannot make: what each name in a scenario refers to.

Each problem is a key path into the file and a sentence saying what was expected and what
was found. Checks run in file order so the first problem reported is the first in the file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

from crypto.roster import NAME_RULE, valid_name  # the emulator keys every name
from tawan.core.pace import covers
from tawan.core.specs import EngineConfigError
from topologies.bearers import BEARERS
from topologies.scenario import (
    Cut,
    Destroy,
    Emcon,
    Fault,
    Jam,
    Latency,
    LossBurst,
    Numbers,
    Restart,
    SatcomOutage,
    Scenario,
    Throttle,
    Traffic,
)
from topologies.selectors import (
    RELATIVE_DESTINATIONS,
    children_of,
    destinations,
    group_members,
    selected,
    sources_of,
)

Problem = tuple[str, str]
"""(key path, text)."""

BANDS = sorted({b.band for b in BEARERS.values()})
SHARED_BEARERS = sorted(name for name, b in BEARERS.items() if b.shared)
SATCOM_BEARERS = sorted(name for name, b in BEARERS.items() if b.kind == "satcom")

MAX_MESSAGES = 1_000_000
"""The most messages all traffic entries may offer over a run (a brigade of 500 sends
about 40 000 an hour): beyond, an interval is a typo (ms for s) that would fill memory
with offers before the run got anywhere."""
MAX_JAM_PERIODS = 100_000
"""The most on/off periods one duty-cycled jammer may have in the run."""


def cross_check(scenario: Scenario) -> list[Problem]:
    return [
        *_engine(scenario),
        *_nodes(scenario),
        *_links(scenario),
        *_nets(scenario),
        *_attachment(scenario),
        *_traffic(scenario),
        *_faults(scenario),
    ]


def notices(scenario: Scenario) -> list[Problem]:
    """What is valid but does nothing in this scenario: a fault on a bearer or band no link
    or net uses, an availability window that opens after the run, traffic whose `share`
    leaves no sender. Campaign files written for several scenarios may hold such entries on
    purpose, so they are told (`tawan emulate` prints them as warnings), not refused."""
    return [*_idle_faults(scenario), *_late_windows(scenario), *_no_senders(scenario)]


def _idle_faults(s: Scenario) -> Iterator[Problem]:
    bearers = {link.bearer for link in s.links} | {net.bearer for net in s.nets}
    bands = {BEARERS[name].band for name in bearers if name in BEARERS}
    for i, fault in enumerate(s.faults):
        here = f"faults[{i}]"
        if isinstance(fault, Latency | Throttle | LossBurst) and fault.bearer is not None:
            if fault.bearer not in bearers:
                yield f"{here}.bearer", f"no link or net uses bearer {fault.bearer!r}: no effect"
        elif isinstance(fault, Jam) and not bands & set(fault.bands):
            yield f"{here}.bands", f"no link or net uses bands {list(fault.bands)}: no effect"


def _late_windows(s: Scenario) -> Iterator[Problem]:
    attached: list[tuple[str, Numbers]] = [(f"links[{i}]", link) for i, link in enumerate(s.links)]
    attached += [(f"nets[{i}]", net) for i, net in enumerate(s.nets)]
    for here, numbers in attached:
        for j, (start, _) in enumerate(numbers.available):
            if start >= s.run.duration_s:
                yield (
                    f"{here}.available[{j}]",
                    f"opens at {start} s, after the run's {s.run.duration_s} s: never used",
                )


def _no_senders(s: Scenario) -> Iterator[Problem]:
    for i, flow in enumerate(s.traffic):
        count = len(sources_of(s, flow.sources))
        if flow.share < 1 and round(count * flow.share) == 0:
            yield (
                f"traffic[{i}].share",
                f"{flow.share} of {count} source(s) rounds to no sender: sends nothing",
            )


def _engine(s: Scenario) -> Iterator[Problem]:
    """The timers within the engine's own bounds (`EngineConfig` says which and why)."""
    timers = s.engine
    try:
        timers.config()
    except EngineConfigError as exc:
        key = {"hello_interval": "hello_interval_s", "dead_interval": "dead_interval_s",
               "advert_interval": "advert_interval_s"}.get(exc.key, exc.key)  # fmt: skip
        yield f"engine.{key}", f"expected {exc.expected}, found {exc.found!r}"
    pace = timers.pace
    where = [
        (f"engine.pace.bearers.{p.name}[{j}]", name)
        for p, names in pace.bearers.items()
        for j, name in enumerate(names)
    ]
    where += [(f"engine.pace.largest.{name}", name) for name in pace.largest]  # fmt: skip
    for path, name in where:
        if not any(covers(name, bearer) for bearer in BEARERS):
            yield path, f"expected a bearer or kind, one of {PACE_NAMES}, found {name!r}"


PACE_NAMES = sorted({*BEARERS, *(name.split("-")[0] for name in BEARERS)})


def _nodes(s: Scenario) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for i, node in enumerate(s.nodes):
        if not valid_name(node.name):
            yield f"nodes[{i}].name", f"expected {NAME_RULE}, found {node.name!r}"
        for j, group in enumerate(node.groups):
            if not valid_name(group):
                yield f"nodes[{i}].groups[{j}]", f"expected {NAME_RULE}, found {group!r}"
        if node.name in first:
            yield (
                f"nodes[{i}].name",
                f"expected a new name, found {node.name!r} (also nodes[{first[node.name]}])",
            )
        first.setdefault(node.name, i)
    names = set(first)
    for i, node in enumerate(s.nodes):
        if node.parent is None:
            continue
        if node.parent == node.name:
            yield (
                f"nodes[{i}].parent",
                f"expected another node, found the node itself {node.parent!r}",
            )
        elif node.parent not in names:
            yield f"nodes[{i}].parent", f"expected a node name, found {node.parent!r}"
    yield from _parent_cycles(s)


def _parent_cycles(s: Scenario) -> Iterator[Problem]:
    parent = {node.name: node.parent for node in s.nodes}
    reported: set[str] = set()
    for i, node in enumerate(s.nodes):
        seen = [node.name]
        up = parent.get(node.name)
        while up is not None and up in parent and up not in seen and up != node.name:
            seen.append(up)
            up = parent[up]
        if up == node.name and len(seen) > 1 and node.name not in reported:
            reported.update(seen)
            chain = " -> ".join([*seen, node.name])
            yield (
                f"nodes[{i}].parent",
                f"expected a chain ending at a top headquarters, found a loop {chain}",
            )


def _bearer(path: str, name: str) -> Iterator[Problem]:
    if name not in BEARERS:
        yield path, f"expected one of {sorted(BEARERS)}, found {name!r}"


def _windows(here: str, windows: tuple[tuple[float, float], ...]) -> Iterator[Problem]:
    previous_end = -1.0
    for j, (start, end) in enumerate(windows):
        if end <= start:
            yield f"{here}.available[{j}]", f"expected start < end, found [{start}, {end}]"
        elif start < previous_end:
            yield (
                f"{here}.available[{j}]",
                f"expected windows in order, not overlapping, found {start} < {previous_end}",
            )
        previous_end = max(previous_end, end)


def _links(s: Scenario) -> Iterator[Problem]:
    names = {node.name for node in s.nodes}
    seen: dict[str, str] = {}
    for i, link in enumerate(s.links):
        here = f"links[{i}]"
        yield from _windows(here, link.available)
        for end in ("a", "b"):
            value = getattr(link, end)
            if value not in names:
                yield f"{here}.{end}", f"expected a node name, found {value!r}"
        if link.a == link.b:
            yield f"{here}.b", f"expected a node other than a, found {link.b!r} at both ends"
        yield from _bearer(f"{here}.bearer", link.bearer)
        name = Scenario.link_name(link)
        if name in seen:
            yield f"{here}.name", f"expected a new link name, found {name!r} (also {seen[name]})"
        seen.setdefault(name, here)
    for i, net in enumerate(s.nets):
        here = f"nets[{i}]"
        yield from _windows(here, net.available)
        if net.name in seen:
            yield (
                f"{here}.name",
                f"expected a new link or net name, found {net.name!r} (also {seen[net.name]})",
            )
        seen.setdefault(net.name, here)


def _nets(s: Scenario) -> Iterator[Problem]:
    names = {node.name for node in s.nodes}
    for i, net in enumerate(s.nets):
        here = f"nets[{i}]"
        if net.bearer not in BEARERS:
            yield f"{here}.bearer", f"expected one of {SHARED_BEARERS}, found {net.bearer!r}"
        elif not BEARERS[net.bearer].shared:
            yield (
                f"{here}.bearer",
                f"expected a shared radio bearer, one of {SHARED_BEARERS}, found {net.bearer!r}",
            )
        first: dict[str, int] = {}
        for j, member in enumerate(net.members):
            if member not in names:
                yield f"{here}.members[{j}]", f"expected a node name, found {member!r}"
            elif member in first:
                yield (
                    f"{here}.members[{j}]",
                    f"expected each member once, found {member!r} again"
                    f" (also members[{first[member]}])",
                )
            first.setdefault(member, j)


def _attachment(s: Scenario) -> Iterator[Problem]:
    attached = {end for link in s.links for end in (link.a, link.b)}
    attached.update(member for net in s.nets for member in net.members)
    for i, node in enumerate(s.nodes):
        if node.name not in attached:
            yield (
                f"nodes[{i}]",
                f"expected the node in a link or a net, found {node.name!r} in none",
            )


def _traffic(s: Scenario) -> Iterator[Problem]:
    total = 0.0
    for i, flow in enumerate(s.traffic):
        count = _messages(s, flow)
        total += count
        if total > MAX_MESSAGES:
            yield (
                f"traffic[{i}].interval_s",
                f"expected at most {MAX_MESSAGES} messages from all traffic over the run, "
                f"found {flow.interval_s} s giving {count:.3g} here ({total:.3g} in all)",
            )
            break
    for i, flow in enumerate(s.traffic):
        here = f"traffic[{i}]"
        picked: list[str] = []
        for j, selector in enumerate(flow.sources):
            names = selected(s, selector)
            if not names:
                yield (
                    f"{here}.sources[{j}]",
                    f"expected a selector that picks a node ({SELECTORS}), found {selector!r}",
                )
            picked.extend(names)
        if picked:
            yield from _destination(s, here, flow, picked)
        if flow.stop_s is not None and flow.stop_s <= flow.start_s:
            yield (
                f"{here}.stop_s",
                f"expected a time after start_s ({flow.start_s}), found {flow.stop_s}",
            )
        if flow.start_s >= s.run.duration_s:
            yield (
                f"{here}.start_s",
                f"expected a time before run.duration_s ({s.run.duration_s}),"
                f" found {flow.start_s}",
            )


SELECTORS = '"all", "role:ROLE", "group:NAME" or a node name'


def _messages(s: Scenario, flow: Traffic) -> float:
    """How many messages `flow` offers over the run at most: each sender's destinations
    (as `emulator.traffic` counts them) times its sends; with a `share`, the senders with
    the most destinations, since which ones the seed draws is not known here."""
    nodes = {node.name: node for node in s.nodes}
    sources = sources_of(s, flow.sources)
    senders = len(sources) if flow.share >= 1 else round(len(sources) * flow.share)
    counts = sorted((len(destinations(s, nodes[n], flow.to)) for n in sources), reverse=True)
    end = min(s.run.duration_s if flow.stop_s is None else flow.stop_s, s.run.duration_s)
    sends = math.ceil(max(0.0, end - flow.start_s) / flow.interval_s)
    return float(sum(counts[:senders])) * sends


def _destination(s: Scenario, here: str, flow: Traffic, picked: list[str]) -> Iterator[Problem]:
    to = flow.to
    nodes = {node.name: node for node in s.nodes}
    sources = [nodes[name] for name in picked]
    if to == "parent" and not any(node.parent for node in sources):
        yield (
            f"{here}.to",
            "expected sources with a parent, found none of the selected sources has one",
        )
    elif to == "children" and not any(children_of(s, node.name) for node in sources):
        yield (
            f"{here}.to",
            "expected sources with children, found none of the selected sources is a parent",
        )
    elif to == "own-group" and not any(
        len(group_members(s, node.groups[0])) > 1 for node in sources if node.groups
    ):
        yield f"{here}.to", "expected sources in a group with other members, found none"
    elif to.startswith("group:") and not group_members(s, to[len("group:") :]):
        groups = sorted({g for node in s.nodes for g in node.groups})
        yield f"{here}.to", f"expected a group, one of {groups}, found {to[len('group:') :]!r}"
    elif to not in RELATIVE_DESTINATIONS and not to.startswith("group:") and to not in nodes:
        yield (
            f"{here}.to",
            'expected "parent", "children", "own-group", "group:NAME" or a node name,'
            f" found {to!r}",
        )
    elif not any(destinations(s, node, to) for node in sources):
        yield (
            f"{here}.to",
            f"expected someone besides the sources, found {to!r} (no selected source"
            " would send: each is the destination, or alone in it)",
        )


def _faults(s: Scenario) -> Iterator[Problem]:
    links = {Scenario.link_name(link) for link in s.links}
    nets = {net.name for net in s.nets}
    nodes = {node.name for node in s.nodes}
    beams = sorted({link.beam for link in s.links if link.beam})
    for i, fault in enumerate(s.faults):
        here = f"faults[{i}]"
        if fault.at_s >= s.run.duration_s:
            yield (
                f"{here}.at_s",
                f"expected a time before run.duration_s ({s.run.duration_s}), found {fault.at_s}",
            )
        yield from _fault_target(here, fault, links, nets, nodes, beams)
        if isinstance(fault, Jam) and fault.duty_cycle < 1:
            end = s.run.duration_s if fault.duration_s is None else fault.at_s + fault.duration_s
            periods = (min(end, s.run.duration_s) - fault.at_s) / fault.period_s
            if periods > MAX_JAM_PERIODS:
                yield (
                    f"{here}.period_s",
                    f"expected at most {MAX_JAM_PERIODS} periods in the jam, found"
                    f" {fault.period_s} s giving {periods:.3g}",
                )
    yield from _node_downtimes(s)


def _node_downtimes(s: Scenario) -> Iterator[Problem]:
    """A node can be restarted or destroyed only while it runs: one down span at a time."""
    spans: dict[str, list[tuple[float, float, int]]] = {}
    for i, fault in enumerate(s.faults):
        if isinstance(fault, Restart):
            end = fault.at_s + (fault.duration_s or 0.0)
        elif isinstance(fault, Destroy):
            end = float("inf")
        else:
            continue
        spans.setdefault(fault.node, []).append((fault.at_s, end, i))
    for node, down in spans.items():
        down.sort()
        for (_, end, first), (start, _, later) in itertools.pairwise(down):
            if start <= end:
                yield (
                    f"faults[{later}].at_s",
                    f"expected {node!r} running (down from faults[{first}] until "
                    f"{'the end' if end == float('inf') else end}), found {start}",
                )


def _fault_target(
    here: str, fault: Fault, links: set[str], nets: set[str], nodes: set[str], beams: list[str]
) -> Iterator[Problem]:
    if isinstance(fault, Cut):
        if fault.link in nets:
            yield (
                f"{here}.link",
                f"expected a point-to-point link (a radio net has no cable),"
                f" found net {fault.link!r}",
            )
        elif fault.link not in links:
            yield (
                f"{here}.link",
                f"expected a link name, one of {sorted(links)}, found {fault.link!r}",
            )
    elif isinstance(fault, Latency | Throttle | LossBurst):
        if fault.link is not None and fault.bearer is not None:
            yield f"{here}.bearer", "expected either link or bearer, found both"
        elif fault.link is None and fault.bearer is None:
            yield here, "expected link or bearer, found neither"
        elif fault.link is not None and fault.link not in links | nets:
            yield f"{here}.link", f"expected a link or net name, found {fault.link!r}"
        elif fault.bearer is not None:
            yield from _bearer(f"{here}.bearer", fault.bearer)
    elif isinstance(fault, Jam):
        yield from _bands(here, fault.bands)
        if fault.beam is not None and fault.beam not in beams:
            yield (
                f"{here}.beam",
                f"expected a beam of a link, one of {beams}, found {fault.beam!r}",
            )
    elif isinstance(fault, SatcomOutage):
        if fault.bearer is not None and fault.bearer not in SATCOM_BEARERS:
            yield f"{here}.bearer", f"expected one of {SATCOM_BEARERS}, found {fault.bearer!r}"
        if fault.beam is not None and fault.beam not in beams:
            yield (
                f"{here}.beam",
                f"expected a beam of a link, one of {beams}, found {fault.beam!r}",
            )
    elif isinstance(fault, Destroy | Restart | Emcon):
        if fault.node not in nodes:
            yield f"{here}.node", f"expected a node name, found {fault.node!r}"
        if isinstance(fault, Emcon):
            yield from _bands(here, fault.bands)


def _bands(here: str, bands: tuple[str, ...]) -> Iterator[Problem]:
    for j, band in enumerate(bands):
        if band not in BANDS:
            yield f"{here}.bands[{j}]", f"expected one of {BANDS}, found {band!r}"
