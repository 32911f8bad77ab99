"""Traffic generators: who sends what to whom, when; the same seed, the same messages."""

from __future__ import annotations

import itertools
import statistics

from emulator.traffic import Offer, destinations, streams
from tawan.core.precedence import Precedence
from topologies.scenario import Scenario

NODES = [
    {"name": "hq", "role": "hq", "groups": ["bn"]},
    {"name": "a", "parent": "hq", "groups": ["coy-a", "bn"]},
    {"name": "b", "parent": "hq", "groups": ["coy-a"]},
    {"name": "c", "parent": "a", "groups": ["coy-a"]},
]


def scenario(*traffic: dict[str, object], duration: float = 3600) -> Scenario:
    return Scenario.model_validate(
        {"run": {"duration_s": duration}, "nodes": NODES, "traffic": list(traffic)}
    )


def run(s: Scenario, seed: int = 1) -> list[tuple[float, Offer]]:
    """Every offer of every stream, in time order, as the emulator's heap would fire them."""
    out: list[tuple[float, Offer]] = []
    for stream in streams(s, seed):
        while not stream.done:
            at = stream.next_at
            out.extend((at, offer) for offer in stream.fire())
    return sorted(out, key=lambda item: (item[0], item[1].source, item[1].destination))


def test_destinations() -> None:
    s = scenario()
    a = s.nodes[1]
    assert destinations(s, a, "parent") == ("hq",)
    assert destinations(s, s.nodes[0], "parent") == ()
    assert destinations(s, s.nodes[0], "children") == ("a", "b")
    assert destinations(s, a, "own-group") == ("group:coy-a",)
    assert destinations(s, a, "a") == ()  # nobody sends to itself


def test_periodic_stream_fires_every_interval_within_the_run() -> None:
    s = scenario({"sources": ["c"], "to": "parent", "size_bytes": 100, "interval_s": 60},
                 duration=600)  # fmt: skip
    offers = run(s)
    times = [t for t, _ in offers]
    assert len(offers) == 10
    assert all(abs(b - a - 60) < 1e-9 for a, b in itertools.pairwise(times))
    assert 0 <= times[0] < 60 and times[-1] < 600
    assert {o.destination for _, o in offers} == {"a"}
    assert {o.precedence for _, o in offers} == {Precedence.ROUTINE}


def test_children_get_one_message_each() -> None:
    s = scenario({"sources": ["role:hq"], "to": "children", "size_bytes": 200,
                  "interval_s": 300, "precedence": "IMMEDIATE"}, duration=300)  # fmt: skip
    offers = run(s)
    assert sorted(o.destination for _, o in offers) == ["a", "b"]
    assert {o.precedence for _, o in offers} == {Precedence.IMMEDIATE}


def test_poisson_mean_gap_is_the_interval() -> None:
    s = scenario({"sources": ["b"], "to": "parent", "size_bytes": 10, "interval_s": 5,
                  "process": "poisson"}, duration=50_000)  # fmt: skip
    times = [t for t, _ in run(s)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # ~10,000 exponential gaps of mean 5: standard error 0.05; seeded, so fixed
    assert abs(statistics.fmean(gaps) - 5) < 0.15
    assert statistics.stdev(gaps) > 4  # not periodic


def test_share_picks_that_fraction_of_sources_from_the_seed() -> None:
    spec = {"sources": ["all"], "share": 0.5, "to": "parent", "size_bytes": 10, "interval_s": 60}
    picked = {seed: {o.source for _, o in run(scenario(spec), seed)} for seed in range(8)}
    # 3 of the 4 nodes have a parent; half of the 4 selected, those without a parent send nothing
    assert all(len(sources) <= 2 for sources in picked.values())
    assert len({frozenset(v) for v in picked.values()}) > 1  # the seed decides who


def test_same_seed_same_offers_and_start_stop_respected() -> None:
    spec = {"sources": ["all"], "to": "own-group", "size_bytes": 10, "interval_s": 7,
            "start_s": 100, "stop_s": 200, "process": "poisson"}  # fmt: skip
    first, again = run(scenario(spec), 3), run(scenario(spec), 3)
    assert first == again
    assert all(100 <= t < 200 for t, _ in first)
    assert run(scenario(spec), 4) != first
