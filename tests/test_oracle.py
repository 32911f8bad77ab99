"""The oracle bound on small timelines whose answers are worked out by hand."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from emulator.oracle import TimelineError, earliest_arrivals, oracle_summary
from emulator.stats import latency_summary, percentile, ratio

Iv = tuple[float, float, bool, float, float, float]
"""(start, end, up, rate_bps, delay_s, loss)"""


def always(rate: float = 8000.0, delay: float = 0.5, end: float = 1000.0) -> list[Iv]:
    return [(0.0, end, True, rate, delay, 0.0)]


def timeline(
    directions: Mapping[tuple[str, str], Sequence[Iv]],
    messages: list[dict[str, Any]],
    *,
    down: dict[str, list[list[float]]] | None = None,
    duration: float = 1000.0,
) -> dict[str, Any]:
    names = sorted({n for pair in directions for n in pair} | set(down or {}))
    return {
        "format": "tawan-timeline/1",
        "scenario": "hand",
        "seed": 0,
        "duration_s": duration,
        "nodes": [{"name": n, "down": (down or {}).get(n, [])} for n in names],
        "links": [
            {
                "name": f"{a}-{b}",
                "bearer": "vhf",
                "shared": False,
                "members": [a, b],
                "directions": [
                    {
                        "from": a,
                        "to": b,
                        "intervals": [
                            {
                                "start": s,
                                "end": e,
                                "up": up,
                                "rate_bps": r,
                                "delay_s": d,
                                "loss": loss,
                            }
                            for s, e, up, r, d, loss in ivs
                        ],
                    }
                ],
            }
            for (a, b), ivs in directions.items()
        ],
        "messages": messages,
    }


def msg(
    mid: str,
    src: str,
    dst: str | list[str],
    *,
    at: float = 0.0,
    size: int = 1000,
    ttl: float = 10_000.0,
    precedence: str = "ROUTINE",
) -> dict[str, Any]:
    return {
        "id": mid,
        "src": src,
        "dst": [dst] if isinstance(dst, str) else dst,
        "size": size,
        "precedence": precedence,
        "time": at,
        "ttl_s": ttl,
    }


def one(tl: dict[str, Any], mid: str = "m", dst: str = "B") -> float | None:
    return earliest_arrivals(tl)[mid, dst]


def test_direct_link() -> None:
    # 1000 bytes at 8000 bit/s: 1 s on the air, then 0.5 s of delay.
    tl = timeline({("A", "B"): always()}, [msg("m", "A", "B", at=10.0)])
    assert one(tl) == pytest.approx(11.5)


def test_two_hops_beat_a_slow_direct_link() -> None:
    tl = timeline(
        {
            ("A", "B"): always(8000, 0.5),
            ("B", "C"): always(16000, 0.25),
            ("A", "C"): always(800, 0.0),  # 10 s on the air
        },
        [msg("m", "A", "C")],
    )
    # A->B: 1 + 0.5 = 1.5; B->C: 0.5 + 0.25 -> 2.25
    assert one(tl, dst="C") == pytest.approx(2.25)


def test_waits_at_a_node_for_its_link() -> None:
    tl = timeline(
        {
            ("A", "B"): always(),
            ("B", "C"): [
                (0.0, 100.0, False, 8000, 0.5, 0.0),
                (100.0, 1000.0, True, 8000, 0.5, 0.0),
            ],
        },
        [msg("m", "A", "C", at=10.0)],
    )
    # B holds it from 11.5 until the link comes up at 100: 100 + 1 + 0.5
    assert one(tl, dst="C") == pytest.approx(101.5)


def test_a_transmission_that_does_not_fit_waits_for_the_next_window() -> None:
    tl = timeline(
        {
            ("A", "B"): [
                (0.0, 10.5, True, 8000, 0.5, 0.0),
                (10.5, 20.0, False, 8000, 0.5, 0.0),
                (20.0, 1000.0, True, 8000, 0.5, 0.0),
            ]
        },
        [msg("m", "A", "B", at=10.0), msg("early", "A", "B", at=9.5)],
    )
    found = earliest_arrivals(tl)
    assert found["m", "B"] == pytest.approx(21.5)  # 1 s needed, 0.5 s left: wait until 20
    assert found["early", "B"] == pytest.approx(11.0)  # fits exactly: done at 10.5


def test_a_transmission_spans_two_intervals_at_different_rates() -> None:
    tl = timeline(
        {
            ("A", "B"): [
                (0.0, 10.0, True, 8000, 0.5, 0.0),
                (10.0, 1000.0, True, 16000, 0.1, 0.2),
            ]
        },
        [msg("m", "A", "B", at=9.0, size=2000)],
    )
    # 16000 bits: 8000 by t=10, the other 8000 at 16000 bit/s take 0.5 s; the delay is the
    # second interval's, where it ends.
    assert one(tl) == pytest.approx(10.6)


def test_ending_on_a_boundary_takes_the_earlier_intervals_delay() -> None:
    tl = timeline(
        {
            ("A", "B"): [
                (0.0, 10.0, True, 8000, 0.5, 0.0),
                (10.0, 1000.0, True, 8000, 3.0, 0.0),
            ]
        },
        [msg("m", "A", "B", at=9.0)],
    )
    assert one(tl) == pytest.approx(10.5)


def test_loss_of_one_is_unusable_and_below_one_is_usable() -> None:
    tl = timeline(
        {
            ("A", "B"): [
                (0.0, 50.0, True, 8000, 0.5, 1.0),
                (50.0, 60.0, True, 8000, 0.5, 1.5),
                (60.0, 1000.0, True, 8000, 0.5, 0.99),
            ]
        },
        [msg("m", "A", "B", at=0.0)],
    )
    assert one(tl) == pytest.approx(61.5)


def test_a_zero_rate_interval_is_unusable() -> None:
    tl = timeline(
        {
            ("A", "B"): [
                (0.0, 30.0, True, 0.0, 0.5, 0.0),
                (30.0, 1000.0, True, 8000, 0.5, 0.0),
            ]
        },
        [msg("m", "A", "B")],
    )
    assert one(tl) == pytest.approx(31.5)


def test_a_down_relay_loses_what_it_holds() -> None:
    late: list[Iv] = [(0.0, 20.0, False, 8000, 0.5, 0.0), (20.0, 1000.0, True, 8000, 0.5, 0.0)]
    dirs = {("A", "B"): always(), ("B", "C"): late}
    tl = timeline(dirs, [msg("m", "A", "C")], down={"B": [[5.0, 50.0]]})
    # B has it at 1.5 but goes down at 5, before B->C opens at 20: that copy is lost. A still
    # holds the message and resends once B is back at 50: B at 51.5, C at 53.
    assert one(tl, dst="C") == pytest.approx(53.0)
    # Without the down span, B would forward at 20.
    assert one(timeline(dirs, [msg("m", "A", "C")]), dst="C") == pytest.approx(21.5)


def test_a_down_node_neither_hears_nor_relays() -> None:
    dirs = {
        ("A", "B"): always(),
        ("B", "C"): always(),
        ("A", "D"): always(800, 0.0),
        ("D", "C"): always(800, 0.0),
    }
    tl = timeline(dirs, [msg("m", "A", "C")], down={"B": [[0.0, 100.0]]})
    # Through D: 10 s + 10 s, long before B is back at 100.
    assert one(tl, dst="C") == pytest.approx(20.0)


def test_a_copy_arriving_while_the_receiver_is_down_is_lost() -> None:
    # Transmission 0..1 while B is up, then 5 s of delay lands in B's down span [3, 10):
    # lost. The next try must wait until B is up again at 10: 10 + 1 + 5.
    tl = timeline({("A", "B"): always(8000, 5.0)}, [msg("m", "A", "B")], down={"B": [[3, 10]]})
    assert one(tl) == pytest.approx(16.0)


def test_a_source_down_when_the_message_is_offered_delivers_nothing() -> None:
    tl = timeline({("A", "B"): always()}, [msg("m", "A", "B", at=2.0)], down={"A": [[1, 3]]})
    assert one(tl) is None


def test_ttl_expiry() -> None:
    late = [(0.0, 100.0, False, 8000, 0.5, 0.0), (100.0, 1000.0, True, 8000, 0.5, 0.0)]
    tl = timeline(
        {("A", "B"): late},
        [msg("short", "A", "B", ttl=50.0), msg("exact", "A", "B", ttl=101.5)],
    )
    found = earliest_arrivals(tl)
    assert found["short", "B"] is None
    assert found["exact", "B"] == pytest.approx(101.5)  # arriving at expiry still counts


def test_the_run_ending_first() -> None:
    tl = timeline({("A", "B"): always(end=100.0)}, [msg("m", "A", "B", at=99.5)], duration=100)
    assert one(tl) is None


def test_group_message_one_search_every_destination() -> None:
    tl = timeline(
        {("A", "B"): always(), ("B", "C"): always(), ("A", "D"): always(800, 0.0)},
        [msg("g", "A", ["B", "C", "D", "E"])],
        down={"E": []},
    )
    found = earliest_arrivals(tl)
    assert found["g", "B"] == pytest.approx(1.5)
    assert found["g", "C"] == pytest.approx(3.0)
    assert found["g", "D"] == pytest.approx(10.0)
    assert found["g", "E"] is None  # no link reaches E


def test_unreachable_and_one_way_links() -> None:
    tl = timeline({("A", "B"): always()}, [msg("back", "B", "A"), msg("fwd", "A", "B")])
    found = earliest_arrivals(tl)
    assert found == {("back", "A"): None, ("fwd", "B"): pytest.approx(1.5)}


def test_same_message_twice_gives_the_same_answer() -> None:
    tl = timeline({("A", "B"): always()}, [msg("m1", "A", "B"), msg("m2", "A", "B")])
    found = earliest_arrivals(tl)
    assert found["m1", "B"] == found["m2", "B"] == pytest.approx(1.5)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"format": "tawan-timeline/0"}, "format"),
        ({"duration_s": "long"}, "duration_s"),
        ({"messages": [msg("m", "A", "Z")]}, "'Z'"),
        ({"messages": [msg("m", "A", "B", precedence="URGENT")]}, "URGENT"),
    ],
)
def test_a_bad_timeline_names_what_is_wrong(change: dict[str, Any], expected: str) -> None:
    tl = timeline({("A", "B"): always()}, [msg("m", "A", "B")]) | change
    with pytest.raises(TimelineError, match=expected):
        earliest_arrivals(tl)


def test_intervals_with_a_gap_are_refused() -> None:
    gap = [(0.0, 10.0, True, 8000, 0.5, 0.0), (11.0, 1000.0, True, 8000, 0.5, 0.0)]
    with pytest.raises(TimelineError, match=r"intervals\[1\].*run on from 10"):
        earliest_arrivals(timeline({("A", "B"): gap}, []))


def test_summary_per_precedence() -> None:
    late = [(0.0, 100.0, False, 8000, 0.5, 0.0), (100.0, 1000.0, True, 8000, 0.5, 0.0)]
    tl = timeline(
        {("A", "B"): always(), ("A", "C"): late},
        [
            msg("f", "A", ["B", "C"], at=10.0, precedence="FLASH"),  # 1.5 s and 91.5 s
            msg("r", "A", "C", ttl=5.0),  # expires
        ],
    )
    summary = oracle_summary(tl, earliest_arrivals(tl))
    flash = summary["FLASH"]
    assert flash["offered"] == 2 and flash["deliverable"] == 2
    assert flash["delivery_ratio"] == 1.0
    assert flash["latencies"] == pytest.approx([1.5, 91.5])
    assert flash["latency_s"] == pytest.approx({"p50": 1.5, "p95": 91.5, "p99": 91.5})
    assert summary["ROUTINE"]["delivery_ratio"] == 0.0
    assert summary["ROUTINE"]["latency_s"] is None
    assert summary["PRIORITY"] == {
        "offered": 0,
        "deliverable": 0,
        "delivery_ratio": None,
        "latency_s": None,
        "latencies": [],
    }
    with pytest.raises(TimelineError, match="arrivals"):
        oracle_summary(tl, {})


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    ten = [float(v) for v in range(10)]
    assert percentile(ten, 99) == 9.0  # rank ceil(9.9) = 10
    assert percentile(ten, 50) == 4.0  # rank 5
    assert percentile(ten, 51) == 5.0  # rank ceil(5.1) = 6
    assert percentile([7.0], 50) == 7.0
    assert latency_summary([]) is None
    assert ratio(0, 0) is None and ratio(1, 4) == 0.25
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile(values, 101)


def test_fast_enough_for_a_large_run() -> None:
    # 60 nodes, ~600 directions with 20 intervals each, 3000 messages: well under the
    # minutes a real campaign takes (a figure, not a benchmark; see bench/ for those).
    rng = random.Random(7)
    names = [f"n{i}" for i in range(60)]
    dirs: dict[tuple[str, str], list[Iv]] = {}
    for i, a in enumerate(names):
        for b in rng.sample(names[:i] + names[i + 1 :], 5):
            cuts = sorted(rng.uniform(0, 3600) for _ in range(19))
            bounds = [0.0, *cuts, 3600.0]
            ivs = [
                (s, e, rng.random() < 0.7, rng.choice([2400.0, 9600.0, 64000.0]), 0.1, 0.0)
                for s, e in itertools.pairwise(bounds)
            ]
            dirs[(a, b)] = dirs[(b, a)] = ivs
    messages = [
        msg(
            f"m{k}",
            rng.choice(names),
            rng.sample(names, 1 if rng.random() < 0.9 else 8),
            at=rng.uniform(0, 3600),
            size=rng.choice([200, 1000, 5000]),
            ttl=600.0,
        )
        for k in range(3000)
    ]
    for m in messages:
        m["dst"] = [d for d in m["dst"] if d != m["src"]]
    tl = timeline(dirs, messages, duration=3600.0)
    began = time.perf_counter()
    found = earliest_arrivals(tl)
    elapsed = time.perf_counter() - began
    assert len(found) == sum(len(m["dst"]) for m in messages)
    assert any(v is not None for v in found.values())
    assert elapsed < 15.0, elapsed


def test_the_unicast_shortcut_agrees_with_the_full_search() -> None:
    # A unicast search is steered by a lower bound (A*); a search for two destinations, one
    # of them unreachable, is a plain Dijkstra over everything. They must agree, on random
    # timelines with outages, slow windows and nodes going down.
    rng = random.Random(3)
    for _ in range(20):
        names = [f"n{i}" for i in range(8)]
        dirs: dict[tuple[str, str], list[Iv]] = {}
        for a in names:
            for b in rng.sample([n for n in names if n != a], 2):
                bounds = [0.0, *sorted(rng.uniform(0, 500) for _ in range(6)), 500.0]
                dirs[(a, b)] = [
                    (s, e, rng.random() < 0.6, rng.choice([800.0, 8000.0]), rng.random(), 0.0)
                    for s, e in itertools.pairwise(bounds)
                ]
        down = {
            n: [[s, s + rng.uniform(5, 80)]]
            for n in rng.sample(names, 3)
            for s in [rng.uniform(0, 400)]
        }
        down["lonely"] = []
        messages = []
        for k in range(30):
            src, dst = rng.sample(names, 2)
            at, size = rng.uniform(0, 400), rng.choice([100, 1000, 4000])
            messages.append(msg(f"u{k}", src, dst, at=at, size=size, ttl=200.0))
            messages.append(msg(f"g{k}", src, [dst, "lonely"], at=at, size=size, ttl=200.0))
        found = earliest_arrivals(timeline(dirs, messages, down=down, duration=500.0))
        for k, m in enumerate(messages[::2]):
            assert found[f"u{k}", m["dst"][0]] == found[f"g{k}", m["dst"][0]], m
        assert any(v is not None for v in found.values())
        assert any(v is None for (mid, d), v in found.items() if d != "lonely")


def test_ttl_expiry_at_a_node_that_goes_down() -> None:
    # B is down [0, 100): the copy lands at 101.5, after the 50 s ttl.
    tl = timeline(
        {("A", "B"): always()},
        [msg("short", "A", "B", ttl=50.0), msg("long", "A", "B", ttl=200.0)],
        down={"B": [[0.0, 100.0]]},
    )
    found = earliest_arrivals(tl)
    assert found["short", "B"] is None
    assert found["long", "B"] == pytest.approx(101.5)
