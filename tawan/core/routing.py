"""Routing: shortest paths over the signal plan, corrected by flooded link-state adverts,
plus static routes.

Every node knows the planned network (`EngineConfig.planned`, the mission's signal plan),
and takes each planned link for up until an advert of one of its ends says otherwise. A node
floods a signed advert of its reachable neighbours and their costs only where they differ
from the plan (tawan.core.control), so a network that runs as planned sends none. With no
plan, every node advertises all its links. Each node builds the same graph from the plan and
the adverts and runs Dijkstra. Unicast goes to the first hop of the shortest path; a group
message follows the shortest-path tree rooted at its source, so each branch gets one copy
however many members lie beyond it.

Routes per class. The PACE policy (tawan.core.pace) may keep a message off some bearers (by
its precedence, or its size: no imagery over HF). A message whose class may use every
bearer the network has follows the routes above; one that may not follows shortest paths
over a graph of its class (`class_next_hop`): each edge at the cheapest of its links the
class may use, and gone where it may use none, so such a message goes round a bearer it may
not take instead of waiting at the node before it. Which bearer the links of an edge go by
is known where it matters, from the links an advert lists with its adjacency
(`restricted_links`: a neighbour's links of restricted bearers cheaper than its others,
and the cheapest of those as `*`), else from the plan's (`planned_links`); an edge nobody
lists is taken by every class at its cost. Group messages follow the trees of every class alike,
and the policy is applied at each hop (tawan.core.forwarding).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from tawan.core.frames import OTHER_BEARERS

_K = TypeVar("_K")

Graph = dict[int, dict[int, int]]
"""node -> neighbour -> cost, both ways."""
Links = Mapping[int, Mapping[str, int]]
"""A node's links by neighbour: neighbour -> bearer (the link profile's name) -> cost."""

PLANNED_REFRESH: Final = 20
"""With a signal plan, adverts (only those that differ from it) are refreshed every this
many `advert_interval`s: each crosses every link of the network, the HF nets too, and one
node's deviation refreshed every 30 s took 6 % of a 2.4 kbit/s net in a 49-node brigade."""


def differs(a: Mapping[_K, int], b: Mapping[_K, int]) -> bool:
    """Whether two views of a node's links differ enough to tell the network: another set of
    neighbours, or a cost that halved or doubled (loss measured on a jammed link moves the
    cost a little all the time; flooding each move would cost more than it gains)."""
    if a.keys() != b.keys():
        return True
    return any(max(cost, b[n]) >= 2 * min(cost, b[n]) for n, cost in a.items())


def links_differ(a: Mapping[int, Mapping[str, int]], b: Mapping[int, Mapping[str, int]]) -> bool:
    """Whether two listings of links by bearer differ enough to tell the network: other
    links (one came or went). Their costs travel with the next advert made for another
    reason: a cost that matters to routes is the cheapest of a class's links, and a class
    that may use a neighbour's cheapest link sees it in the adjacency already; a jammed HF
    net's cost moving beside a radio relay flooded an advert each time it doubled."""
    if a.keys() != b.keys():
        return True
    return any(links.keys() != b[n].keys() for n, links in a.items())


def restricted_links(
    links: Mapping[int, Mapping[str, int]], restricts: Callable[[str], bool]
) -> dict[int, dict[str, int]]:
    """Links by bearer as an advert lists them (docs/protocol.md 4.5): for each neighbour
    with a link of a bearer `restricts` names cheaper than all its others, those links, and
    the cheapest of the others under `OTHER_BEARERS`. Nothing for the rest: a class's cost
    of an edge is the cheapest link it may use, so a restricted link dearer than one every
    class may use changes no class's routes (a company's HF beside its radio relay), and
    listing it, or its coming and going under a jammer, would flood adverts for nothing."""
    listed: dict[int, dict[str, int]] = {}
    for neighbour, by_bearer in links.items():
        others = [cost for bearer, cost in by_bearer.items() if not restricts(bearer)]
        cheapest = min(others, default=None)
        kept = {
            bearer: cost for bearer, cost in by_bearer.items()
            if restricts(bearer) and (cheapest is None or cost < cheapest)
        }  # fmt: skip
        if kept:
            if cheapest is not None:
                kept[OTHER_BEARERS] = cheapest
            listed[neighbour] = kept
    return listed


@dataclass(slots=True)
class Advert:
    seq: int
    adjacency: dict[int, int]
    received_at: float
    signature: bytes = b""  # the origin's, kept so the advert can be handed on as it came
    links: dict[int, dict[str, int]] = field(default_factory=dict)  # as it lists them


def seq_newer(a: int, b: int) -> bool:
    """True when advert sequence `a` is newer than `b` in u32 serial arithmetic (RFC 1982):
    comparisons survive the wrap from 2**32 - 1 to 0."""
    return 0 < (a - b) % (1 << 32) < (1 << 31)


@dataclass(slots=True)
class Router:
    address: int
    static_routes: Mapping[int, int] = field(default_factory=dict)  # destination -> via
    planned: Mapping[int, Mapping[int, int]] = field(default_factory=dict)  # the signal plan
    planned_links: Mapping[int, Links] = field(default_factory=dict)  # the plan's, by bearer
    adverts: dict[int, Advert] = field(default_factory=dict)
    my_adjacency: dict[int, int] = field(default_factory=dict)
    my_links: dict[int, dict[str, int]] = field(default_factory=dict)  # every up link of ours
    # What the network holds of our links: our last advert (None: none sent, the plan).
    published: dict[int, int] | None = None
    version: int = 0
    _graph: Graph | None = None
    _shared: Graph | None = None
    _first_hops: dict[int, int] | None = None
    _own_tree: Tree | None = None
    _trees: dict[int, Tree] = field(default_factory=dict)  # src -> its tree on shared_graph
    _class_hops: dict[Hashable, dict[int, int]] = field(default_factory=dict)
    _class_allows: dict[Hashable, Callable[[str], bool]] = field(default_factory=dict)
    _class_seen: dict[Hashable, dict[int, int]] = field(default_factory=dict)
    _bearers: frozenset[str] | None = None
    _bearers_before: frozenset[str] = frozenset()  # what the classes asked for were made of

    # ------------------------------------------------------------------ updates
    def update_local(self, adjacency: Mapping[int, int], links: Links | None = None) -> bool:
        """Our own reachable neighbours changed (and, given, our up links by bearer); True
        if anything differs."""
        mine = {n: dict(b) for n, b in links.items()} if links is not None else self.my_links
        if dict(adjacency) == self.my_adjacency and mine == self.my_links:
            return False
        if mine != self.my_links:
            self.my_links = mine
            self._links_changed()
        if dict(adjacency) != self.my_adjacency:
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
        links: Iterable[tuple[int, str, int]] = (),
    ) -> bool:
        """A flooded advert; True if it is new (and must be flooded on)."""
        if origin == self.address:
            return False
        known = self.adverts.get(origin)
        if known is not None and not seq_newer(seq, known.seq):
            return False
        before, links_before = self.view(origin), self.links_of(origin)
        by_neighbour: dict[int, dict[str, int]] = {}
        for neighbour, bearer, cost in links:
            by_neighbour.setdefault(neighbour, {})[bearer] = cost
        self.adverts[origin] = Advert(seq, dict(adjacency), now, signature, by_neighbour)
        if by_neighbour != links_before:
            self._links_changed()
        self._view_changed(origin, before)
        return True

    def expire_adverts(self, older_than: float) -> bool:
        """Drop adverts received before `older_than` (their origins fall back to the plan);
        True if any was dropped."""
        stale = [o for o, a in self.adverts.items() if a.received_at < older_than]
        for origin in stale:
            self._drop_advert(origin)
        return bool(stale)

    def forget(self, node: int) -> None:
        """A revoked node: its adverts no longer count."""
        if node in self.adverts:
            self._drop_advert(node)

    def _drop_advert(self, origin: int) -> None:
        """`origin`'s view falls back to the plan: its links, and its listing of them."""
        advert = self.adverts.pop(origin)
        if advert.links != self.links_of(origin):
            self._links_changed()
        self._view_changed(origin, advert.adjacency)

    def publish(self, adjacency: Mapping[int, int]) -> bool:
        """Our advert `adjacency` went out: the network takes our links to be that. True
        when that changed what it held (a refresh of the same advert changes nothing)."""
        if self.published is not None and dict(adjacency) == self.published:
            return False
        self.published = dict(adjacency)
        self._invalidate()
        return True

    def _invalidate(self) -> None:
        self.version += 1
        self._graph = None
        self._routes_changed()

    def _routes_changed(self) -> None:
        """Every route and tree is computed again when next asked for (the graph stands)."""
        self._shared = None
        self._first_hops = None
        self._own_tree = None
        self._trees.clear()
        self._class_hops.clear()

    def _links_changed(self) -> None:
        """Some node's links by bearer changed: the routes of each class, and the bearers
        the network has, are computed again when next asked for (`bearers`)."""
        self._class_hops.clear()
        self._bearers = None

    def _view_changed(self, origin: int, before: Mapping[int, int]) -> None:
        """`origin`'s links as this node takes them went from `before` to `view(origin)`.
        Only the edges between `origin` and the neighbours either names can change: the
        graph is mended there instead of built again, and routes are computed again only
        when an edge did change (a refreshed advert that says what the last one said, the
        common case in a brigade, costs nothing). An edge to this node is first-hand in
        `graph`, so there only the common view (`shared_graph`) can change."""
        after = self.view(origin)
        if after == before:
            return
        me, graph = self.address, self._graph
        edges: list[tuple[int, int, int | None, int | None]] = []
        shared = False
        for nbr in before.keys() | after.keys():
            if nbr == me:
                shared = before.get(me) != after.get(me)
                continue
            was, now = before.get(nbr), after.get(nbr)
            if nbr == origin:  # a loop it claims to itself: both ends are the one view
                old, new = was, now
            else:
                back = self.view(nbr).get(origin)
                old = None if was is None or back is None else max(was, back)
                new = None if now is None or back is None else max(now, back)
            if old != new:
                edges.append((origin, nbr, old, new))
        if shared:
            self._shared = None  # our own edge to `origin` as the network holds it
            self._trees.clear()
        if not edges:
            return
        self.version += 1
        self._class_hops.clear()
        common = self._shared
        for a, b, _, new in edges:
            if graph is not None:
                _set_edge(graph, a, b, new)
            if common is not None and common is not graph:
                _set_edge(common, a, b, new)  # the same edge there: only ours differ
        # A tree survives a change of edges off it that makes no path shorter (nor one as
        # short that its ties would prefer): most trees, for a change far from their root.
        if self._own_tree is not None and not self._own_tree.survives(edges):
            self._own_tree = None
            self._first_hops = None
        for src in [s for s, tree in self._trees.items() if not tree.survives(edges)]:
            del self._trees[src]

    # ------------------------------------------------------------------ queries
    def view(self, origin: int) -> Mapping[int, int]:
        """What this node takes `origin`'s links to be: its advert, else the plan."""
        advert = self.adverts.get(origin)
        if advert is not None:
            return advert.adjacency
        return self.planned.get(origin, {})

    def graph(self) -> Graph:
        """Edges both ends claim (our own edges we know first-hand)."""
        if self._graph is not None:
            return self._graph
        me = self.address
        graph: Graph = {me: dict(self.my_adjacency)}
        for nbr, cost in self.my_adjacency.items():
            graph.setdefault(nbr, {})[me] = cost
        views = {o: self.view(o) for o in self.adverts.keys() | self.planned.keys() if o != me}
        for origin, view in views.items():
            for nbr, cost in view.items():
                if nbr == me or nbr < origin:
                    continue  # each pair once, from its lower end (both ends must claim it)
                back = views.get(nbr)
                back_cost = None if back is None else back.get(origin)
                if back_cost is not None:
                    weight = cost if cost > back_cost else back_cost
                    graph.setdefault(origin, {})[nbr] = weight
                    graph.setdefault(nbr, {})[origin] = weight
        self._graph = graph
        return graph

    def shared_graph(self) -> Graph:
        """The graph as every node holds it: our own up links at the cost the network knows
        (our last advert, else the plan), not at the cost measured here since. Trees are
        computed from it so that every node computes the same tree: a group copy or an
        advert handed down a tree that only its sender believes in would stop at a node
        that thinks itself a leaf. Our first-hand cost stands only for a link the network
        has no cost for."""
        if self._shared is not None:
            return self._shared
        graph = self.graph()
        held = self.published if self.published is not None else self.planned.get(self.address)
        if held:
            graph = {node: dict(edges) for node, edges in graph.items()}
            mine = graph[self.address]
            for nbr, cost in held.items():
                # As the network holds it, also a link down since that it still believes
                # in: the branches beyond it stay ours until our advert says otherwise
                # (a copy for them waits here, then goes round), never nobody's. A link
                # up and not advertised yet keeps its first-hand cost, as in `graph`.
                back = self.view(nbr).get(self.address)
                weight = cost if back is None else max(cost, back)
                mine[nbr] = graph.setdefault(nbr, {})[self.address] = weight
        self._shared = graph
        return graph

    def links_of(self, origin: int) -> Links:
        """`origin`'s links by bearer as this node knows them: those its advert lists,
        else the plan's (a neighbour not named: by bearers no class is kept off)."""
        if origin == self.address:
            return self.my_links
        advert = self.adverts.get(origin)
        if advert is not None:
            return advert.links
        return self.planned_links.get(origin, {})

    def bearers(self) -> frozenset[str]:
        """Every bearer a link of the network is known to go by (ours, the adverts', the
        plan's): a class that may use them all routes as a message of no class. Classes are
        named by the bearers they may use: with other bearers known they are other classes,
        and those asked for before are forgotten (adverts naming ever new bearers would
        otherwise keep a Dijkstra per name at every change of routes)."""
        if self._bearers is None:
            names = self._bearer_names()
            if names != self._bearers_before:
                self._class_allows.clear()
                self._class_seen.clear()
            self._bearers = self._bearers_before = names
        return self._bearers

    def _bearer_names(self) -> frozenset[str]:
        names = {b for links in self.my_links.values() for b in links}
        for origin in self.adverts.keys() | self.planned_links.keys():
            names.update(b for links in self.links_of(origin).values() for b in links)
        return frozenset(names - {OTHER_BEARERS})

    def class_next_hop(self, dst: int, key: Hashable, allows: Callable[[str], bool]) -> int | None:
        """`next_hop` for a message of a class that may use only the bearers `allows`
        accepts (`key` names the class, for the cache): shortest paths over the edges
        it may take, at the cost of the cheapest link of each it may use."""
        via = self.static_routes.get(dst)
        if via is not None and via in self.my_adjacency:
            return via
        hops = self._class_hops.get(key)
        if hops is None:
            self._class_allows[key] = allows
            hops = self._class_hops[key] = self._first_hops_over(self._class_graph(allows))
            self._class_seen.setdefault(key, hops)  # a class new since the last change
        return hops.get(dst)

    def forget_class_routes_seen(self) -> None:
        """Nothing waits for a class's routes: the next change has nothing to compare them
        with, and the routes it is first asked for after it are what to compare next."""
        self._class_seen.clear()

    def class_route_changes(self) -> list[tuple[dict[int, int], dict[int, int]]]:
        """For every class asked for so far, its first hops as at the last call (or as
        first computed since) and as the routes are now: what a change of routes moved,
        class by class (`Engine._redirect`)."""
        changes = []
        for key, allows in self._class_allows.items():
            now = self._class_hops.get(key)
            if now is None:
                now = self._class_hops[key] = self._first_hops_over(self._class_graph(allows))
            changes.append((self._class_seen.get(key, now), now))
            self._class_seen[key] = now
        return changes

    def _class_graph(self, allows: Callable[[str], bool]) -> Graph:
        """`graph` with each edge some node lists links of at the cost of the cheapest its
        class may use (both ends must claim it, at the dearer of their costs, as in
        `graph`; our own edges first-hand), and without those it may use none of."""
        me, base = self.address, self.graph()
        graph = dict(base)  # each node's edges copied only where an edge of it changes
        copied: set[int] = set()

        def claim(a: int, b: int) -> int | None:
            listed = self.links_of(a).get(b)
            if listed is None:
                return None if a == me else self.view(a).get(b)
            costs = [
                c for bearer, c in listed.items() if bearer == OTHER_BEARERS or allows(bearer)
            ]
            return min(costs) if costs else None

        for origin in {me, *self.adverts, *self.planned_links}:
            edges = base.get(origin, _NO_EDGES)
            for nbr in self.links_of(origin):
                if nbr not in edges or (nbr == me and origin != me):
                    continue  # no edge to narrow; or ours, taken first-hand from our links
                if origin == me:
                    weight = claim(me, nbr)
                else:
                    here, there = claim(origin, nbr), claim(nbr, origin)
                    weight = None if here is None or there is None else max(here, there)
                if weight == edges[nbr]:
                    continue
                for node in (origin, nbr):
                    if node not in copied and node in graph:
                        graph[node] = dict(graph[node])
                        copied.add(node)
                _set_edge(graph, origin, nbr, weight)
        return graph

    def _first_hops_over(self, graph: Graph) -> dict[int, int]:
        return self._first_hops_of(Tree(graph, self.address).parents)

    def _first_hops_of(self, parents: Mapping[int, int]) -> dict[int, int]:
        """First hop to every node a tree rooted here reaches."""
        hops: dict[int, int] = {}
        for dst in parents:
            if dst != self.address:
                hops[dst] = self._first_hop(parents, dst, hops)
        return hops

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
            self._first_hops = self._first_hops_of(self.own_tree())
        return self._first_hops

    def own_tree(self) -> dict[int, int]:
        """Our own shortest paths (node -> parent), on what we know first-hand of our
        links: what unicast follows. `tree` is the network's common view, for group
        copies and adverts."""
        if self._own_tree is None:
            self._own_tree = Tree(self.graph(), self.address)
        return self._own_tree.parents

    def _first_hop(self, parents: Mapping[int, int], dst: int, known: dict[int, int]) -> int:
        trail = []
        node = dst
        while parents[node] != self.address and node not in known:
            trail.append(node)
            node = parents[node]
        hop = known.get(node, node)
        for passed in trail:
            known[passed] = hop
        return hop

    def group_next_hops(self, src: int, members: Iterable[int], came_from: int | None) -> set[int]:
        """Neighbours to copy a group message to: our children in the tree rooted at `src`
        that lead to members. A member the tree reaches by another branch is not ours to
        serve. Only off the tree (our view does not join `src` to us, or to the member:
        views differ) do we fall back to our own shortest paths, never back to where it
        came from."""
        parents = self.tree(src)
        on_tree = self.address in parents
        hops: set[int] = set()
        for member in members:
            if member == self.address:
                continue
            if on_tree and member in parents:
                child = self._child_towards(parents, member)
                if child is not None:
                    hops.add(child)
                continue  # on another branch of the tree: its own relays carry it
            hop = self.next_hop(member)
            if hop is not None:
                hops.add(hop)
        hops.discard(self.address)
        if came_from is not None:
            hops.discard(came_from)
        return hops

    def branch(self, src: int, member: int) -> int | None:
        """Our child on the path from `src` to `member` in the common tree (`tree`), or
        None: the member is on another branch, or the tree does not reach it."""
        parents = self.tree(src)
        return self._child_towards(parents, member) if member in parents else None

    def _child_towards(self, parents: Mapping[int, int], member: int) -> int | None:
        """Our child on the tree path from its root to `member`, or None when we are not
        on that path."""
        node = member
        while node in parents:
            parent = parents[node]
            if parent == self.address:
                return node
            if parent == node:
                return None  # the root, reached without passing us
            node = parent
        return None

    def tree(self, src: int) -> dict[int, int]:
        """Shortest-path tree rooted at `src`: node -> parent (the root its own parent), as
        `group_next_hops` and the flooding of adverts use it. Ties go to the lower (cost,
        address), so every node computes the same tree."""
        tree = self._trees.get(src)
        if tree is None:
            tree = self._trees[src] = Tree(self.shared_graph(), src)
        return tree.parents

    def reached(self) -> set[int]:
        """Every destination a next hop reaches now: by the adverts, a neighbour itself, or
        a static route whose neighbour is up (`next_hop` gives one for each)."""
        static = {dst for dst, via in self.static_routes.items() if via in self.my_adjacency}
        return set(self._hops()) | set(self.my_adjacency) | static

    def reachable(self) -> Collection[int]:
        """Destinations a route reaches now (a view, not a copy: cheap per message)."""
        return self._hops().keys()


def _set_edge(graph: Graph, a: int, b: int, cost: int | None) -> None:
    """The edge a-b (both ways) at `cost`, or none; a node left without edges is dropped,
    as `Router.graph` never lists one."""
    if cost is not None:
        graph.setdefault(a, {})[b] = cost
        graph.setdefault(b, {})[a] = cost
        return
    for x, y in ((a, b), (b, a)):
        edges = graph.get(x)
        if edges is not None:
            edges.pop(y, None)
            if not edges:
                del graph[x]


class Tree:
    """The shortest paths from `root` over a graph: `parents` (node -> parent, the root its
    own parent; a node it does not reach is absent) and `dist` (node -> distance).

    A node is settled when first popped (its parent then written); of equal distances the
    lower (node, parent) pops first, and a neighbour's entry is replaced only by a strictly
    shorter one. So each node's parent is, of its neighbours p, the one with the least
    (dist[p] + cost, dist[p], p): the tree depends on the graph alone, not on the order of
    its dicts, and `survives` can tell which changes of edges leave it as it is."""

    __slots__ = ("dist", "parents")

    def __init__(self, graph: Graph, root: int) -> None:
        parents: dict[int, int] = {}
        dist: dict[int, int] = {}
        self.parents, self.dist = parents, dist
        if root not in graph:
            return
        best = {root: 0}
        heap = [(0, root, root)]
        pop, push, edges_of = heapq.heappop, heapq.heappush, graph.get
        while heap:
            d, node, parent = pop(heap)
            if node in parents:
                continue
            parents[node], dist[node] = parent, d
            for nbr, cost in edges_of(node, _NO_EDGES).items():
                if nbr in parents:
                    continue
                total = d + cost
                known = best.get(nbr)
                if known is None or total < known:
                    best[nbr] = total
                    push(heap, (total, nbr, node))

    def survives(self, edges: Iterable[tuple[int, int, int | None, int | None]]) -> bool:
        """Whether the tree computed again after these changes of edges (a, b, cost before,
        cost after; None: no edge) would be this one. An edge of the tree that changed
        changes it; an edge off it that got dearer or went changes nothing; one that got
        cheaper or came changes it if it now offers either end a better parent."""
        parents, dist = self.parents, self.dist
        if not parents:
            return False  # its root was in no edge (cheap to compute again)
        for a, b, old, new in edges:
            if old is not None and (parents.get(b) == a or parents.get(a) == b):
                return False  # the edge the tree took (at its old cost)
            if new is None or (old is not None and new >= old):
                continue
            if new <= 0:
                return False  # (never an advert's) a free edge may tie with a later node
            for x, y in ((a, b), (b, a)):
                if x not in dist:
                    continue  # no path through x, so none through this edge from x
                if y not in dist:
                    return False  # y is reached now
                via = (dist[x] + new, dist[x], x)
                parent = parents[y]
                if parent == y or via >= (dist[y], dist[parent], parent):
                    continue  # the root, or its parent stays the better
                return False
        return True


_NO_EDGES: Final[dict[int, int]] = {}
