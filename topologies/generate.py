"""Scenarios made from a seed: a brigade or battalion laid out like a real one, a radio mesh,
or a graph drawn in another tool (GraphML).

The unit generators follow how a brigade's signals are planned. Headquarters sit on the
tactical backbone: fibre from the brigade HQ to each battalion HQ, radio relay from a
battalion HQ to each of its company HQs, and a GEO SATCOM terminal at the brigade HQ that
reaches every battalion HQ and some company HQs. Each company runs a VHF combat net radio
net (company HQ and its platoons); each battalion an HF net (battalion HQ and company HQs)
as the last resort when the rest is jammed or cut. Every output passes the loader's checks
and is the same for the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx

from topologies.bearers import BEARERS
from topologies.graph import distance_km
from topologies.load import Problem, ScenarioError, scenario_from_data
from topologies.scenario import Scenario

DEFAULT_DURATION_S = 3600.0
MAX_NODES = 5000
"""The most nodes a generator makes: past a few thousand the layout (a mesh's nearest
neighbours) and any emulation of it take hours; a count beyond is a typo."""

Data = dict[str, Any]


def standard_traffic() -> list[Data]:
    """The everyday load of a formation: reports up, orders down, the odd bulk transfer."""
    return [
        {"name": "position-report", "sources": ["all"], "to": "parent",
         "precedence": "ROUTINE", "size_bytes": 100, "interval_s": 60.0},
        {"name": "situation-report", "sources": ["all"], "to": "own-group",
         "precedence": "PRIORITY", "size_bytes": 1000, "interval_s": 600.0},
        {"name": "orders", "sources": ["role:hq"], "to": "children",
         "precedence": "IMMEDIATE", "size_bytes": 200, "interval_s": 300.0},
        {"name": "flash", "sources": ["role:hq"], "to": "own-group",
         "precedence": "FLASH", "size_bytes": 150, "interval_s": 900.0},
        {"name": "logistics", "sources": ["all"], "share": 0.1, "to": "parent",
         "precedence": "ROUTINE", "size_bytes": 50_000, "interval_s": 3600.0},
    ]  # fmt: skip


class _Plan:
    """Nodes, links and nets being laid out, as scenario data."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.nodes: list[Data] = []
        self.links: list[Data] = []
        self.nets: list[Data] = []

    def node(self, name: str, role: str, position: tuple[float, float], groups: list[str],
             parent: str | None) -> str:  # fmt: skip
        entry: Data = {"name": name, "role": role, "groups": groups,
                       "position": [round(position[0], 3), round(position[1], 3)]}  # fmt: skip
        if parent is not None:
            entry["parent"] = parent
        self.nodes.append(entry)
        return name

    def link(self, a: str, b: str, bearer: str, **extra: Any) -> None:
        self.links.append({"a": a, "b": b, "bearer": bearer, **extra})

    def net(self, name: str, bearer: str, members: list[str]) -> None:
        if len(members) >= 2:
            self.nets.append({"name": name, "bearer": bearer, "members": members})

    def around(
        self,
        centre: tuple[float, float],
        near: float,
        far: float,
        facing: float | None = None,
        spread: float = math.pi,
    ) -> tuple[float, float]:
        """A point `near`..`far` km from `centre`, within `spread` of the bearing `facing`."""
        if facing is None:
            angle = self.rng.uniform(0, 2 * math.pi)
        else:
            angle = facing + self.rng.uniform(-spread / 2, spread / 2)
        radius = self.rng.uniform(near, far)
        return centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)

    def scenario(self, name: str, seed: int, duration_s: float, traffic: bool,
                 description: str) -> Scenario:  # fmt: skip
        data: Data = {
            "run": {"name": name, "duration_s": duration_s, "seed": seed,
                    "description": description},
            "nodes": self.nodes, "links": self.links, "nets": self.nets,
            "traffic": standard_traffic() if traffic else [],
        }  # fmt: skip
        return scenario_from_data(data, name)


SATCOM_COMPANY_SHARE = 0.25
"""Company HQs with a SATCOM terminal of their own (at least one per formation)."""


def _battalion(plan: _Plan, b: int, origin: tuple[float, float], facing: float | None,
               companies: int, platoons: int, upper: list[str],
               parent: str | None) -> tuple[str, list[str]]:  # fmt: skip
    """Lay out battalion `b`; returns its HQ and its company HQs."""
    bn = f"bn-{b}"
    hq = plan.node(f"{bn}-hq", "hq", origin, [bn, *upper], parent)
    company_hqs = []
    for c in range(1, companies + 1):
        coy = f"coy-{b}-{c}"
        # Companies a few to tens of km out, inside radio relay's reach of their battalion,
        # each in its own sector (facing away from the brigade HQ when there is one).
        arc = 2 * math.pi if facing is None else 2.4
        sector = (facing or 0.0) + arc * ((c - 0.5) / companies - 0.5)
        where = plan.around(origin, 8.0, 22.0, sector, spread=0.5 * arc / companies)
        coy_hq = plan.node(f"{coy}-hq", "hq", where, [coy, bn], hq)
        company_hqs.append(coy_hq)
        plan.link(hq, coy_hq, "radio-relay")
        members = [coy_hq]
        for p in range(1, platoons + 1):
            # Platoons within a few km: every two of them well inside VHF range.
            members.append(plan.node(f"pl-{b}-{c}-{p}", "unit", plan.around(where, 1.0, 5.0),
                                     [coy], coy_hq))  # fmt: skip
        plan.net(f"vhf-{coy}", "vhf", members)
    plan.net(f"hf-{bn}", "hf", [hq, *company_hqs])
    return hq, company_hqs


def _satcom(plan: _Plan, hub: str, hqs: list[str], company_hqs: list[str]) -> None:
    chosen = [c for c in company_hqs if plan.rng.random() < SATCOM_COMPANY_SHARE]
    if not chosen and company_hqs:
        chosen = [plan.rng.choice(company_hqs)]
    for end in [*hqs, *chosen]:
        plan.link(hub, end, "satcom-geo", beam="geo-1")


def battalion(seed: int, companies: int = 4, platoons: int = 3, *, traffic: bool = True,
              duration_s: float = DEFAULT_DURATION_S) -> Scenario:  # fmt: skip
    """One battalion: its HQ on top, `companies` companies of `platoons` platoons each."""
    _at_least_one(companies=companies, platoons=platoons)
    _at_most_max(brigade_size(1, companies, platoons) - 1)
    plan = _Plan(seed)
    hq, company_hqs = _battalion(plan, 1, (0.0, 0.0), None, companies, platoons, [], None)
    _satcom(plan, hq, [], company_hqs)
    about = f"a battalion of {companies} companies of {platoons} platoons"
    return plan.scenario(f"battalion-s{seed}", seed, duration_s, traffic, about)


def brigade_size(battalions: int, companies: int, platoons: int) -> int:
    """Nodes in a brigade of this shape: its HQ, and each battalion's HQ, companies, platoons."""
    return 1 + battalions * (1 + companies * (1 + platoons))


def brigade_shape(nodes: int, battalions: int | None = None, companies: int | None = None,
                  platoons: int | None = None) -> tuple[int, int, int]:  # fmt: skip
    """Battalions, companies, platoons giving close to `nodes` nodes, in a plausible shape.

    Within 2 % of the target, the shape closest to 4 of each (battalions, companies per
    battalion, platoons per company) wins over an exact count; counts passed in are kept."""
    if nodes < brigade_size(1, 1, 1):
        raise ValueError(
            f"brigade nodes: expected at least {brigade_size(1, 1, 1)}, found {nodes}"
        )
    if nodes > MAX_NODES:
        raise ValueError(f"brigade nodes: expected at most {MAX_NODES}, found {nodes}")
    _at_least_one(battalions=battalions, companies=companies, platoons=platoons)
    tolerance = max(1, round(nodes * 0.02))

    def score(shape: tuple[int, int, int]) -> tuple[int, float]:
        miss = abs(brigade_size(*shape) - nodes)
        # Every count grows alike from 4 (log scale): 30 battalions of 3 platoons is no brigade.
        odd = sum(abs(math.log(count / 4)) for count in shape)
        return max(0, miss - tolerance), odd + miss / nodes

    shapes = [
        (b, c, p)
        for b in ([battalions] if battalions is not None else range(1, 31))
        for c in ([companies] if companies is not None else range(1, 9))
        for p in ([platoons] if platoons is not None else range(1, 9))
    ]
    best = min(shapes, key=score)
    if score(best)[0] > 0 and battalions is companies is platoons is None:
        # No shape comes within 2 % (beyond 30 x 8 x 8); counts given are kept regardless.
        raise ValueError(
            f"brigade nodes: expected a count some brigade shape comes within 2 % of,"
            f" found {nodes} (the nearest is {brigade_size(*best)} nodes)"
        )
    return best


def brigade(seed: int, nodes: int | None = None, battalions: int | None = None,
            companies: int | None = None, platoons: int | None = None, *,
            traffic: bool = True, duration_s: float = DEFAULT_DURATION_S) -> Scenario:  # fmt: skip
    """A brigade; by default 3 battalions of 4 companies of 3 platoons (52 nodes).

    With `nodes`, the counts not given are chosen to come close to that many nodes."""
    if nodes is None:
        shape = (
            3 if battalions is None else battalions,
            4 if companies is None else companies,
            3 if platoons is None else platoons,
        )
    else:
        shape = brigade_shape(nodes, battalions, companies, platoons)
    b_count, c_count, p_count = shape
    _at_least_one(battalions=b_count, companies=c_count, platoons=p_count)
    _at_most_max(brigade_size(*shape))
    plan = _Plan(seed)
    top = plan.node("bde-hq", "hq", (0.0, 0.0), ["bde"], None)
    battalion_hqs: list[str] = []
    all_company_hqs: list[str] = []
    for b in range(1, b_count + 1):
        facing = 2 * math.pi * (b - 1) / b_count + plan.rng.uniform(-0.3, 0.3)
        origin = plan.around((0.0, 0.0), 25.0, 45.0, facing, spread=0.4)
        hq, company_hqs = _battalion(plan, b, origin, facing, c_count, p_count, ["bde"], top)
        plan.link(top, hq, "fibre")
        battalion_hqs.append(hq)
        all_company_hqs.extend(company_hqs)
    _satcom(plan, top, battalion_hqs, all_company_hqs)
    size = brigade_size(*shape)
    return plan.scenario(f"brigade-{size}-s{seed}", seed, duration_s, traffic,
                         f"a brigade of {b_count} battalions of {c_count} companies "
                         f"of {p_count} platoons")  # fmt: skip


def _at_least_one(**counts: int | None) -> None:
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ValueError(f"{name}: expected at least 1, found {value}")


def _at_most_max(nodes: int) -> None:
    if nodes > MAX_NODES:
        raise ValueError(f"nodes: expected at most {MAX_NODES}, found {nodes} in that shape")


def mesh(seed: int, nodes: int, area_km: float, bearer: str = "uhf", *, traffic: bool = True,
         duration_s: float = DEFAULT_DURATION_S) -> Scenario:  # fmt: skip
    """`nodes` radios at random in a square `area_km` wide, connected as far as range allows.

    Each radio is placed within reach of one placed before it when a few random draws
    allow, so the mesh is connected unless the square is too small to keep them apart.
    A shared bearer makes one net of every node (the range decides who hears whom);
    another bearer links each node to its nearest neighbours in range."""
    if bearer not in BEARERS:
        raise ValueError(f"mesh bearer: expected one of {sorted(BEARERS)}, found {bearer!r}")
    if nodes < 2:
        raise ValueError(f"mesh nodes: expected at least 2, found {nodes}")
    if nodes > MAX_NODES:
        raise ValueError(f"mesh nodes: expected at most {MAX_NODES}, found {nodes}")
    if not 0 < area_km < math.inf:
        raise ValueError(f"mesh area_km: expected a finite number more than 0, found {area_km}")
    plan = _Plan(seed)
    reach = BEARERS[bearer].range_km or math.inf
    points = list(_mesh_points(plan.rng, nodes, area_km, reach))
    centre = (area_km / 2, area_km / 2)
    hub = min(range(nodes), key=lambda i: distance_km(points[i], centre))
    names = [f"n-{i + 1:03d}" for i in range(nodes)]
    for i, point in enumerate(points):
        hq = i == hub
        plan.node(names[i], "hq" if hq else "unit", point, ["mesh"], None if hq else names[hub])
    if BEARERS[bearer].shared:
        plan.net(f"mesh-{bearer}", bearer, names)
    else:
        for a, b in _nearest_pairs(points, reach):
            plan.link(names[a], names[b], bearer)
    return plan.scenario(f"mesh-{nodes}-s{seed}", seed, duration_s, traffic,
                         f"{nodes} {bearer} radios in {area_km} km square")  # fmt: skip


MESH_TRIES = 30


def _mesh_points(rng: random.Random, count: int, area: float,
                 reach: float) -> Iterator[tuple[float, float]]:  # fmt: skip
    placed: list[tuple[float, float]] = []
    for _ in range(count):
        point = (rng.uniform(0, area), rng.uniform(0, area))
        for _ in range(MESH_TRIES):
            if not placed or any(distance_km(point, p) <= reach for p in placed):
                break
            point = (rng.uniform(0, area), rng.uniform(0, area))
        else:
            # No random draw fell in reach: put it near a placed radio, inside the square.
            near = rng.choice(placed)
            radius = rng.uniform(0.3, 0.9) * min(reach, area)
            angle = rng.uniform(0, 2 * math.pi)
            point = (min(area, max(0.0, near[0] + radius * math.cos(angle))),
                     min(area, max(0.0, near[1] + radius * math.sin(angle))))  # fmt: skip
        placed.append(point)
        yield point


MESH_NEIGHBOURS = 3


def _nearest_pairs(points: list[tuple[float, float]], reach: float) -> list[tuple[int, int]]:
    """Each node to its nearest few in reach, plus its nearest earlier one (connectivity)."""
    pairs: set[tuple[int, int]] = set()
    for i, p in enumerate(points):
        by_distance = sorted((distance_km(p, q), j) for j, q in enumerate(points) if j != i)
        for far, j in by_distance[:MESH_NEIGHBOURS]:
            if far <= reach:
                pairs.add((min(i, j), max(i, j)))
        earlier = [(far, j) for far, j in by_distance if j < i and far <= reach]
        if earlier:
            j = min(earlier)[1]
            pairs.add((j, i))
    return sorted(pairs)


def from_graphml(path: str | Path, *, traffic: bool = False,
                 duration_s: float = DEFAULT_DURATION_S, seed: int = 1) -> Scenario:  # fmt: skip
    """A scenario from a GraphML file: node attributes role, x, y (km), groups (comma
    separated), parent, all optional; edge attribute bearer required, name and beam
    optional, and net: edges with the same net form one radio net of their ends."""
    path = Path(path)
    try:
        graph = nx.read_graphml(path)
    except (nx.NetworkXError, ValueError, SyntaxError) as exc:  # ElementTree's ParseError
        raise ScenarioError(path.name, [Problem("", f"expected GraphML, found: {exc}")]) from None
    problems: list[Problem] = []
    nodes = [_graphml_node(str(n), data, problems) for n, data in graph.nodes(data=True)]
    links: list[Data] = []
    nets: dict[str, Data] = {}
    for a, b, data in graph.edges(data=True):
        where = f"edge {a}-{b}"
        bearer = data.get("bearer")
        if not isinstance(bearer, str) or not bearer:
            problems.append(Problem(where, "expected attribute 'bearer', found none"))
            continue
        if "net" in data:
            net = nets.setdefault(str(data["net"]), {"name": str(data["net"]), "bearer": bearer,
                                                     "members": []})  # fmt: skip
            if net["bearer"] != bearer:
                expected = f"expected {net['bearer']!r} like the net's other edges"
                problems.append(Problem(f"{where}.bearer", f"{expected}, found {bearer!r}"))
            net["members"].extend(m for m in (str(a), str(b)) if m not in net["members"])
            continue
        link: Data = {"a": str(a), "b": str(b), "bearer": bearer}
        link.update({key: str(data[key]) for key in ("name", "beam") if key in data})
        links.append(link)
    if problems:
        raise ScenarioError(path.name, problems)
    data = {
        "run": {"name": path.stem, "duration_s": duration_s, "seed": seed},
        "nodes": nodes, "links": links, "nets": list(nets.values()),
        "traffic": standard_traffic() if traffic else [],
    }  # fmt: skip
    return scenario_from_data(data, path.name)


def _graphml_node(name: str, data: dict[str, Any], problems: list[Problem]) -> Data:
    node: Data = {"name": name}
    if "role" in data:
        node["role"] = str(data["role"])
    coordinates = []
    for axis in ("x", "y"):
        try:
            coordinates.append(float(data.get(axis, 0.0)))
        except (TypeError, ValueError):
            problems.append(
                Problem(f"node {name}.{axis}", f"expected a number (km), found {data[axis]!r}")
            )
            coordinates.append(0.0)
    node["position"] = coordinates
    if "groups" in data:
        node["groups"] = [g.strip() for g in str(data["groups"]).split(",") if g.strip()]
    if "parent" in data and str(data["parent"]):
        node["parent"] = str(data["parent"])
    return node
