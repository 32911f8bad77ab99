"""How robust a planned network is, before any run: what one lost bearer or node cuts off.

For each bearer alone and for the whole mix: connected components, articulation points
(nodes whose loss splits the network) and bridges (links or nets whose loss does). For each
node with a parent: how many paths to its headquarters exist that share no bearer (the
PACE depth a planner can count on), and which single bearers, jammed or down, leave a
node with no path at all.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import networkx as nx
from rich import box
from rich.console import Console
from rich.table import Table

from topologies.draw import draw, draw_bytes
from topologies.graph import bearer_subgraph, network_graph
from topologies.scenario import Scenario

__all__ = [
    "Analysis",
    "Connectivity",
    "analysis_json",
    "analyze",
    "draw",
    "draw_bytes",
    "render_analysis",
]


@dataclass(frozen=True, slots=True)
class Connectivity:
    components: tuple[tuple[str, ...], ...]
    """Largest first; each sorted by name. Per bearer: only nodes that use the bearer."""
    articulation_points: tuple[str, ...]
    bridges: tuple[str, ...]
    """Link or net names; an edge doubled by another link between the same nodes is none."""


@dataclass(frozen=True, slots=True)
class Analysis:
    scenario: str
    nodes: int
    bearers: tuple[str, ...]
    """The bearers the scenario uses, sorted."""
    mix: Connectivity
    by_bearer: Mapping[str, Connectivity]
    disjoint_paths: Mapping[str, int]
    """Per node with a parent: paths to the parent no two of which share a bearer."""
    cut_off_by: Mapping[str, tuple[str, ...]]
    """Per bearer: the nodes with a path to their parent that lose it without the bearer."""
    unreachable: tuple[str, ...]
    """Nodes with a parent and no path to it even with every bearer up."""


def analyze(scenario: Scenario) -> Analysis:
    graph = network_graph(scenario)
    bearers = tuple(sorted({data["bearer"] for _, _, data in graph.edges(data=True)}))
    by_bearer = {}
    for name in bearers:
        sub = bearer_subgraph(graph, {name})
        sub.remove_nodes_from([n for n in list(sub) if sub.degree(n) == 0])
        by_bearer[name] = _connectivity(sub)
    reach = _Reach(graph, bearers)
    everything = (1 << len(bearers)) - 1
    children = [(node.name, node.parent) for node in scenario.nodes if node.parent]
    unreachable = tuple(n for n, p in children if not reach.connected(everything, n, p))
    cut_off_by = {
        name: tuple(
            n
            for n, p in children
            if n not in unreachable and not reach.connected(everything & ~(1 << i), n, p)
        )
        for i, name in enumerate(bearers)
    }
    return Analysis(
        scenario=scenario.run.name,
        nodes=len(scenario.nodes),
        bearers=bearers,
        mix=_connectivity(graph),
        by_bearer=by_bearer,
        disjoint_paths={n: reach.disjoint_paths(n, p) for n, p in children},
        cut_off_by=cut_off_by,
        unreachable=unreachable,
    )


def _connectivity(graph: nx.MultiGraph) -> Connectivity:
    simple = nx.Graph(graph)
    components = sorted(
        (tuple(sorted(c)) for c in nx.connected_components(simple)), key=lambda c: (-len(c), c)
    )
    bridges = []
    for a, b in nx.bridges(simple):
        edges = graph.get_edge_data(a, b)
        if len(edges) == 1:
            bridges.append(next(iter(edges.values()))["link"])
    return Connectivity(
        components=tuple(components),
        articulation_points=tuple(sorted(nx.articulation_points(simple))),
        bridges=tuple(sorted(set(bridges))),
    )


class _Reach:
    """Which nodes are connected using only a subset of bearers (a bit mask), memoised.

    Bearers are few (seven in the catalogue), so every subset can be tried: that makes
    the bearer-disjoint path count exact, where max-flow would count paths, not bearers."""

    def __init__(self, graph: nx.MultiGraph, bearers: Sequence[str]) -> None:
        self._index = {name: i for i, name in enumerate(bearers)}
        self._nodes = list(graph)
        self._edges = [
            (a, b, self._index[data["bearer"]]) for a, b, data in graph.edges(data=True)
        ]
        self._bearers = len(bearers)
        self._labels: dict[int, dict[str, str]] = {}

    def labels(self, mask: int) -> dict[str, str]:
        if mask not in self._labels:
            root = {n: n for n in self._nodes}

            def find(n: str) -> str:
                while root[n] != n:
                    root[n] = root[root[n]]
                    n = root[n]
                return n

            for a, b, i in self._edges:
                if mask >> i & 1:
                    root[find(a)] = find(b)
            self._labels[mask] = {n: find(n) for n in self._nodes}
        return self._labels[mask]

    def connected(self, mask: int, a: str, b: str) -> bool:
        labels = self.labels(mask)
        return labels[a] == labels[b]

    def disjoint_paths(self, a: str, b: str) -> int:
        """The most bearer sets, pairwise disjoint, each of which alone connects a and b."""
        everything = (1 << self._bearers) - 1
        connecting = [m for m in range(1, everything + 1) if self.connected(m, a, b)]
        found = set(connecting)
        minimal = [
            m
            for m in connecting
            if not any(m >> i & 1 and m & ~(1 << i) in found for i in range(self._bearers))
        ]

        @cache
        def best(available: int) -> int:
            return max(
                (1 + best(available & ~m) for m in minimal if m & available == m), default=0
            )

        return best(everything)


def render_analysis(analysis: Analysis) -> str:
    """Plain-text tables for a terminal or a log."""
    out = io.StringIO()
    console = Console(file=out, width=110, color_system=None, force_terminal=False)
    console.print(
        f"{analysis.scenario}: {analysis.nodes} nodes, bearers {', '.join(analysis.bearers)}"
    )
    table = Table(box=box.ASCII, title="Connectivity per bearer and for the whole mix")
    for column in (
        "bearer",
        "components",
        "largest",
        "articulation points",
        "bridges",
        "cuts off",
    ):
        table.add_column(column, overflow="fold")
    rows = [
        *((name, analysis.by_bearer[name]) for name in analysis.bearers),
        ("mix", analysis.mix),
    ]
    for name, conn in rows:
        cut = analysis.cut_off_by.get(name)
        table.add_row(
            name,
            str(len(conn.components)),
            str(len(conn.components[0]) if conn.components else 0),
            _few(conn.articulation_points),
            _few(conn.bridges),
            _few(analysis.unreachable if cut is None else cut),
        )
    console.print(table)
    depth = Table(box=box.ASCII, title="Bearer-disjoint paths to headquarters")
    depth.add_column("paths", justify="right")
    depth.add_column("nodes", justify="right")
    depth.add_column("which")
    counts = Counter(analysis.disjoint_paths.values())
    for paths in sorted(counts):
        which = [n for n, k in analysis.disjoint_paths.items() if k == paths]
        depth.add_row(str(paths), str(counts[paths]), _few(which))
    console.print(depth)
    return out.getvalue()


def _few(names: Sequence[str], shown: int = 6) -> str:
    if not names:
        return "-"
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" (+{more})" if more > 0 else "")


def analysis_json(analysis: Analysis) -> dict[str, Any]:
    def conn(c: Connectivity) -> dict[str, Any]:
        return {
            "components": [list(x) for x in c.components],
            "articulation_points": list(c.articulation_points),
            "bridges": list(c.bridges),
        }

    return {
        "format": "tawan-analysis/1",
        "scenario": analysis.scenario,
        "nodes": analysis.nodes,
        "bearers": list(analysis.bearers),
        "mix": conn(analysis.mix),
        "by_bearer": {name: conn(c) for name, c in analysis.by_bearer.items()},
        "disjoint_paths": dict(analysis.disjoint_paths),
        "cut_off_by": {name: list(nodes) for name, nodes in analysis.cut_off_by.items()},
        "unreachable": list(analysis.unreachable),
    }
