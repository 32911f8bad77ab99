"""Routing for now: shortest paths over a flooded link-state database, plus static routes.

Every node floods a link-state advert (its reachable neighbours and their costs); each node
builds the same graph from the same adverts and runs Dijkstra (networkx). Unicast goes to the
first hop of the shortest path; a group message follows the shortest-path tree rooted at its
source, so each branch gets one copy however many members lie beyond it. The `Router`
interface (`next_hop`, `group_next_hops`, `update_*`) is what a later, bearer-aware router
replaces.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx


def _networkx() -> Any:
    """networkx, imported on first use: it pulls in much of the standard library (email,
    socket) through importlib.metadata, which the core must not load just by being imported."""
    import networkx  # noqa: PLC0415

    return networkx


@dataclass(slots=True)
class Advert:
    seq: int
    adjacency: dict[int, int]
    received_at: float
    signature: bytes = b""  # the origin's, kept so the advert can be handed on as it came


def seq_newer(a: int, b: int) -> bool:
    """True when advert sequence `a` is newer than `b` in u32 serial arithmetic (RFC 1982):
    comparisons survive the wrap from 2**32 - 1 to 0."""
    return 0 < (a - b) % (1 << 32) < (1 << 31)


@dataclass(slots=True)
class Router:
    address: int
    static_routes: Mapping[int, int] = field(default_factory=dict)  # destination -> via
    adverts: dict[int, Advert] = field(default_factory=dict)
    my_adjacency: dict[int, int] = field(default_factory=dict)
    version: int = 0
    _graph: nx.Graph | None = None
    _first_hops: dict[int, int] | None = None
    _trees: dict[int, dict[int, list[int]]] = field(default_factory=dict)

    # ------------------------------------------------------------------ updates
    def update_local(self, adjacency: Mapping[int, int]) -> bool:
        """Our own reachable neighbours changed; True if anything differs."""
        if dict(adjacency) == self.my_adjacency:
            return False
        self.my_adjacency = dict(adjacency)
        self._invalidate()
        return True

    def update_advert(
        self,
        origin: int,
        seq: int,
        adjacency: Iterable[tuple[int, int]],
        now: float,
        signature: bytes = b"",
    ) -> bool:
        """A flooded advert; True if it is new (and must be flooded on)."""
        if origin == self.address:
            return False
        known = self.adverts.get(origin)
        if known is not None and not seq_newer(seq, known.seq):
            return False
        self.adverts[origin] = Advert(seq, dict(adjacency), now, signature)
        self._invalidate()
        return True

    def expire_adverts(self, older_than: float) -> bool:
        stale = [o for o, a in self.adverts.items() if a.received_at < older_than]
        for origin in stale:
            del self.adverts[origin]
        if stale:
            self._invalidate()
        return bool(stale)

    def forget(self, node: int) -> None:
        """A revoked node: its adverts no longer count."""
        if self.adverts.pop(node, None) is not None:
            self._invalidate()

    def _invalidate(self) -> None:
        self.version += 1
        self._graph = None
        self._first_hops = None
        self._trees.clear()

    # ------------------------------------------------------------------ queries
    def graph(self) -> nx.Graph:
        """Edges both ends advertise (our own edges we know first-hand), in a fixed order."""
        if self._graph is not None:
            return self._graph
        nx = _networkx()
        graph = nx.Graph()
        graph.add_node(self.address)
        for nbr, cost in sorted(self.my_adjacency.items()):
            graph.add_edge(self.address, nbr, weight=cost)
        for origin in sorted(self.adverts):
            for nbr, cost in sorted(self.adverts[origin].adjacency.items()):
                if self.address in (nbr, origin):
                    continue
                back = self.adverts.get(nbr)
                if back is not None and origin in back.adjacency:
                    weight = max(cost, back.adjacency[origin])
                    graph.add_edge(min(origin, nbr), max(origin, nbr), weight=weight)
        self._graph = graph
        return graph

    def next_hop(self, dst: int) -> int | None:
        """The neighbour to hand a unicast message for `dst` to, or None (hold it)."""
        via = self.static_routes.get(dst)
        if via is not None and via in self.my_adjacency:
            return via
        if dst in self.my_adjacency:
            return dst
        return self._hops().get(dst)

    def _hops(self) -> dict[int, int]:
        """First hop to every reachable destination, computed once per change of view."""
        if self._first_hops is None:
            paths = _networkx().single_source_dijkstra_path(self.graph(), self.address)
            self._first_hops = {dst: path[1] for dst, path in paths.items() if len(path) > 1}
        return self._first_hops

    def group_next_hops(self, src: int, members: Iterable[int], came_from: int | None) -> set[int]:
        """Neighbours to copy a group message to: our children in the tree rooted at `src`
        that lead to members. Off the tree (inconsistent views), fall back to our own
        shortest paths, never back to where it came from."""
        tree = self._tree(src)
        hops: set[int] = set()
        for member in members:
            if member == self.address:
                continue
            path = tree.get(member)
            if path is not None and self.address in path:
                position = path.index(self.address)
                if position + 1 < len(path):
                    hops.add(path[position + 1])
                continue
            hop = self.next_hop(member)
            if hop is not None:
                hops.add(hop)
        hops.discard(self.address)
        if came_from is not None:
            hops.discard(came_from)
        return hops

    def _tree(self, src: int) -> dict[int, list[int]]:
        tree = self._trees.get(src)
        if tree is None:
            graph = self.graph()
            dijkstra = _networkx().single_source_dijkstra_path
            tree = dijkstra(graph, src) if src in graph else {}
            self._trees[src] = tree
        return tree

    def reached(self) -> set[int]:
        """Every destination a next hop reaches now: by the adverts, a neighbour itself, or
        a static route whose neighbour is up (`next_hop` gives one for each)."""
        static = {dst for dst, via in self.static_routes.items() if via in self.my_adjacency}
        return set(self._hops()) | set(self.my_adjacency) | static

    def reachable(self) -> Collection[int]:
        """Destinations a route reaches now (a view, not a copy: cheap per message)."""
        return self._hops().keys()
