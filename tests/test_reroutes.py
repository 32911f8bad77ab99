"""Routing gets round a dead link within the bound the issue sets: the link's dead
interval (or at once, for a lost carrier) plus the time the news needs to travel. The
emulator measures, per failure of a point-to-point link, how long until every node that
routed over it routes around it (emulator/reroutes.py)."""

from __future__ import annotations

from typing import Any

import pytest

from emulator.results import results, timeline
from emulator.run import Emulation
from topologies.load import scenario_from_data

CUT_AT = 300.0
NEWS_S = 2.0
"""Adverts crossing three radio-relay hops (0.5 ms each), sent at most every 0.2 s."""


def diamond(fault: dict[str, Any]) -> Emulation:
    """a-b-c-d over radio relay and a fibre `mid` (cost 5), and round a-e-f-d (cost 6)."""
    rr = "radio-relay"
    data: dict[str, Any] = {
        "run": {"name": "diamond", "duration_s": 900.0, "seed": 5},
        "nodes": [{"name": n} for n in "abcdef"],
        "links": [
            {"a": "a", "b": "b", "bearer": rr},
            {"a": "b", "b": "c", "bearer": "fibre", "name": "mid"},
            {"a": "c", "b": "d", "bearer": rr}, {"a": "a", "b": "e", "bearer": rr},
            {"a": "e", "b": "f", "bearer": rr}, {"a": "f", "b": "d", "bearer": rr},
        ],
        "traffic": [{"name": "t", "sources": ["a"], "to": "d", "size_bytes": 100,
                     "interval_s": 5.0}],
        "faults": [fault],
    }  # fmt: skip
    em = Emulation(scenario_from_data(data, "diamond"))
    em.run()
    return em


@pytest.mark.parametrize("silent", [False, True], ids=["carrier-lost", "silent"])
def test_every_node_that_routed_over_a_dead_link_routes_round_it_within_the_bound(
    silent: bool,
) -> None:
    fault: dict[str, Any] = (
        {"kind": "loss", "link": "mid", "loss": 1.0, "at_s": CUT_AT, "duration_s": 300.0}
        if silent
        else {"kind": "cut", "link": "mid", "at_s": CUT_AT, "duration_s": 300.0}
    )
    em = diamond(fault)
    mid = results(em, timeline(em))["links"]["mid"]
    assert mid["failures"] == 1
    [over] = mid["routed_over"]
    assert over >= 5  # a, b, c, d, and f (to b and a) all used it
    [took] = mid["reroute_s"]
    dead_s = em.engines["b"]._link_timers["mid"].dead_s
    bound = (dead_s if silent else 0.0) + NEWS_S
    assert took is not None and took <= bound
    if silent:
        assert took > 1.0  # a silent failure is found by hellos and suspicion, not at once
    lost = [r for r in em.record.offers.values() if not r.delivered]
    assert lost == []


def test_a_link_beside_a_net_of_the_same_two_nodes_needs_no_reroute() -> None:
    """a and b are joined by radio relay and an HF net; the relay dies while the net is
    silenced by loss. They are neighbours again as soon as the net carries, and routes
    over the pair stay right: no reroute to wait for (measured, the nodes would seem to
    route over the dead relay until it came back)."""
    data: dict[str, Any] = {
        "run": {"name": "pair", "duration_s": 900.0, "seed": 5},
        "nodes": [{"name": n} for n in "abc"],
        "links": [
            {"a": "a", "b": "b", "bearer": "radio-relay", "name": "relay"},
            {"a": "b", "b": "c", "bearer": "fibre"},
        ],
        "nets": [{"name": "hf", "bearer": "hf", "members": ["a", "b"], "bursts": False}],
        "faults": [
            {"kind": "loss", "link": "hf", "loss": 1.0, "at_s": 250.0, "duration_s": 100.0},
            {"kind": "cut", "link": "relay", "at_s": CUT_AT, "duration_s": 400.0},
        ],
    }  # fmt: skip
    em = Emulation(scenario_from_data(data, "pair"))
    em.run()
    relay = results(em, timeline(em))["links"]["relay"]
    assert relay["failures"] == 1
    assert relay["routed_over"] == [0] and relay["reroute_s"] == [None]
