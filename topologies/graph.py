"""A scenario's network as a networkx multigraph: who can reach whom, over which bearer.

One edge per point-to-point link; for a radio net, one edge between every two members
that are within the bearer's range of each other (the net's own `range_km` first), since
only those hear each other. Edges between the same two nodes over different links stay
apart (a MultiGraph keyed by link or net name), so analysis can take one bearer away.
"""

from __future__ import annotations

import math
from itertools import combinations

import networkx as nx

from topologies.bearers import BEARERS
from topologies.scenario import Position, Scenario


def distance_km(a: Position, b: Position) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


def network_graph(scenario: Scenario) -> nx.MultiGraph:
    """Nodes carry role, position, groups, parent; edges link, bearer, band, shared and
    distance_km (kilometres between the ends)."""
    graph = nx.MultiGraph(name=scenario.run.name)
    for node in scenario.nodes:
        graph.add_node(
            node.name,
            role=node.role,
            position=node.position,
            groups=node.groups,
            parent=node.parent,
        )
    position = {node.name: node.position for node in scenario.nodes}
    for link in scenario.links:
        name = Scenario.link_name(link)
        bearer = BEARERS[link.bearer]
        graph.add_edge(
            link.a,
            link.b,
            key=name,
            link=name,
            bearer=link.bearer,
            band=bearer.band,
            shared=False,
            distance_km=distance_km(position[link.a], position[link.b]),
        )
    for net in scenario.nets:
        bearer = BEARERS[net.bearer]
        reach = net.range_km if net.range_km is not None else bearer.range_km
        for a, b in combinations(net.members, 2):
            far = distance_km(position[a], position[b])
            if reach is None or far <= reach:
                graph.add_edge(
                    a,
                    b,
                    key=net.name,
                    link=net.name,
                    bearer=net.bearer,
                    band=bearer.band,
                    shared=True,
                    distance_km=far,
                )
    return graph


def bearer_subgraph(graph: nx.MultiGraph, bearers: set[str] | frozenset[str]) -> nx.MultiGraph:
    """The same nodes, only the edges over `bearers`."""
    kept = nx.MultiGraph()
    kept.add_nodes_from(graph.nodes(data=True))
    kept.add_edges_from(
        (a, b, key, data)
        for a, b, key, data in graph.edges(keys=True, data=True)
        if data["bearer"] in bearers
    )
    return kept
