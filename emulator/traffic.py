"""Traffic: the scenario's generators expanded into streams of messages to offer.

Each (generator, source) pair is one stream with its own random source, so adding a
generator does not move the messages of another. A stream fires at its start, then every
`interval_s` (periodic) or after exponential gaps of that mean (Poisson), until it stops.
The emulator keeps one heap entry per stream, not one per message.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tawan.core.precedence import Precedence
from topologies.scenario import Node, Scenario, Traffic
from topologies.selectors import children_of, sources_of


@dataclass(frozen=True, slots=True)
class Offer:
    """One message to submit: from `source` to `destination` (a node, or "group:NAME")."""

    source: str
    destination: str
    size: int
    precedence: Precedence
    ttl_s: int
    receipt: bool
    generator: str


@dataclass(slots=True)
class Stream:
    """One source's share of one generator."""

    spec: Traffic
    generator: str
    source: str
    destinations: tuple[str, ...]
    rng: random.Random
    next_at: float
    end: float

    def fire(self) -> list[Offer]:
        """The messages due now; moves `next_at` on (past `end`: the stream is done)."""
        offers = [
            Offer(
                self.source, dst, self.spec.size_bytes, self.spec.precedence,
                self.spec.ttl_s, self.spec.receipt, self.generator,
            )
            for dst in self.destinations
        ]  # fmt: skip
        gap = self.spec.interval_s
        if self.spec.process == "poisson":
            gap = self.rng.expovariate(1 / gap)
        self.next_at += gap
        return offers

    @property
    def done(self) -> bool:
        return self.next_at >= self.end


def destinations(scenario: Scenario, source: Node, to: str) -> tuple[str, ...]:
    """Where one send goes, as the engine is told: node names, or "group:NAME" for a group
    message (its receivers: `topologies.selectors.destinations`); empty when there is
    none (no parent, no group)."""
    if to == "parent":
        return (source.parent,) if source.parent else ()
    if to == "children":
        return children_of(scenario, source.name)
    if to == "own-group":
        return (f"group:{source.groups[0]}",) if source.groups else ()
    if to.startswith("group:"):
        return (to,)
    return (to,) if to != source.name else ()


def streams(scenario: Scenario, seed: int) -> list[Stream]:
    """Every stream of the scenario's traffic, each seeded from (seed, generator, source)."""
    out: list[Stream] = []
    for index, spec in enumerate(scenario.traffic):
        generator = spec.name or f"traffic[{index}]"
        by_name = {node.name: node for node in scenario.nodes}
        sources = [by_name[name] for name in sources_of(scenario, spec.sources)]
        if spec.share < 1:
            chooser = random.Random(f"{seed}/{generator}/share")
            count = round(len(sources) * spec.share)
            sources = sorted(chooser.sample(sources, count), key=sources.index)
        end = min(spec.stop_s if spec.stop_s is not None else scenario.run.duration_s,
                  scenario.run.duration_s)  # fmt: skip
        for node in sources:
            dsts = destinations(scenario, node, spec.to)
            if not dsts:
                continue
            rng = random.Random(f"{seed}/{generator}/{node.name}")
            # Streams of one generator do not all fire on the same instant.
            first = spec.start_s + rng.random() * spec.interval_s
            out.append(Stream(spec, generator, node.name, dsts, rng, first, end))
    return out
