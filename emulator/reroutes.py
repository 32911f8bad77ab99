"""How long routing takes to get round a dead link: from the moment a point-to-point link
stops carrying anything until every node that routed over it routes around it.

At the start of each failure of a point-to-point link (both directions down, or losing
everything), the nodes whose own shortest paths (`Router.own_tree`, what unicast follows)
use the link's edge are noted. After every call into one of their engines the emulator asks
again (`after`); the failure's reroute time is when the last of them stopped using it. A
node that goes down meanwhile no longer routes and is struck off. A failure that ends before
every node got round it has no reroute time (None), nor has one that no node routed over,
nor one of a link beside which another link or net joins the same two nodes (they stay
neighbours, or are again once that one carries: their choice of link is the failover, not a
change of routes).

This reads the engines' routing tables, which only the emulator can: the nodes themselves
learn of the failure from missing hellos (or a lost carrier) and from adverts carried over
the links, and the time this takes is what is measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from emulator.links import LinkModel, LinkState
from tawan.core.engine import Engine


@dataclass(slots=True)
class Reroute:
    """One failure of one link and the nodes still routing over it."""

    link: str
    start: float
    routed_over: int
    """Nodes that used the link when it failed."""
    pending: set[str] = field(default_factory=set)
    end: float | None = None
    """When the failure ended (None: not yet, or not within the run)."""
    done: float | None = None
    """When the last of them routed around it (None: not before the failure ended)."""

    @property
    def seconds(self) -> float | None:
        return None if self.done is None else self.done - self.start


def uses(engine: Engine, a: int, b: int) -> bool:
    """Whether `engine`'s own shortest paths cross the edge a-b (either way)."""
    tree = engine.router.own_tree()
    return tree.get(b) == a != b or tree.get(a) == b != a


def failed(state: LinkState, model: LinkModel) -> bool:
    """A point-to-point link that carries nothing either way under `state`."""
    a, b = model.members
    if a in state.down_nodes or b in state.down_nodes:
        return False  # a node down: its own failure, not the link's
    return all(not c.up or c.loss >= 1 for c in (state.of(a, b), state.of(b, a)))


class Reroutes:
    """The failures of the point-to-point links of one emulation, with their reroute times."""

    def __init__(
        self, links: Mapping[str, LinkModel], addresses: Mapping[str, int],
        engines: Callable[[], Mapping[str, Engine]], alive: Mapping[str, bool],
    ) -> None:  # fmt: skip
        self._links = {n: m for n, m in links.items() if not m.shared and len(m.members) == 2}
        # Other links or nets joining the same two nodes: while one of them carries on, the
        # two stay neighbours and nothing is to be routed round (the ends choose another
        # link: `failover_s`).
        self._parallel = {
            name: [
                other for other in links.values()
                if other.name != name and set(model.members) <= set(other.members)
            ]
            for name, model in self._links.items()
        }  # fmt: skip
        self._addresses = addresses
        self._engines = engines  # the live engines (a restart replaces one)
        self._alive = alive
        self.failures: list[Reroute] = []
        self._open: dict[str, Reroute] = {}  # link -> its failure going on now
        self._watching: list[Reroute] = []  # failures with nodes still routing over them

    def boundary(self, t: float) -> None:
        """The links' conditions may have changed at `t`: failures start and end."""
        for name, model in self._links.items():
            down = failed(model.state_at(t), model)
            current = self._open.get(name)
            if down and current is None:
                self._start(name, model, t)
            elif not down and current is not None:
                current.end = t
                del self._open[name]
                if current in self._watching:
                    self._watching.remove(current)

    def _start(self, name: str, model: LinkModel, t: float) -> None:
        a, b = (self._addresses[m] for m in model.members)
        engines = self._engines()
        over = {n for n, e in engines.items() if self._alive[n] and uses(e, a, b)}
        if self._parallel[name]:
            # Another link or net joins the same two nodes: they stay neighbours over it, or
            # are again once it carries (a net jammed on and off), and routes over the pair
            # stay right; nothing is to be routed round (the ends choose another link:
            # `failover_s`). Measured while that other was jammed, the nodes "routing over"
            # the pair would wait for the dead link's return: 2,100 s in one run.
            over = set()
        failure = Reroute(name, t, len(over), over)
        self.failures.append(failure)
        self._open[name] = failure
        if over:
            self._watching.append(failure)

    def after(self, node: str, t: float) -> None:
        """`node`'s engine was called at `t`: has it got round the failures it was on?"""
        if not self._watching:
            return
        engine = self._engines()[node]
        for failure in list(self._watching):
            if node not in failure.pending:
                continue
            a, b = (self._addresses[m] for m in self._links[failure.link].members)
            if not self._alive[node] or not uses(engine, a, b):
                failure.pending.discard(node)
            if not failure.pending:
                failure.done = t
                self._watching.remove(failure)

    def node_down(self, node: str, t: float) -> None:
        """`node` crashed or was destroyed: it routes over nothing any more."""
        for failure in list(self._watching):
            failure.pending.discard(node)
            if not failure.pending:
                failure.done = t
                self._watching.remove(failure)

    def for_link(self, name: str) -> list[Reroute]:
        return [f for f in self.failures if f.link == name]
