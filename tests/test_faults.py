"""emulator/faults.py: a scenario's faults as link conditions at every moment.

Each fault alone (jamming by reach and by J/S, duty cycles, cuts with carrier signals,
latency, throttling, loss bursts, SATCOM outages, destroyed, restarted and silenced nodes),
then faults overlapping, which must combine and come apart again without anything undone.
"""

from __future__ import annotations

import itertools

import pytest

from emulator.faults import (
    JS_CLEAR_DB,
    JS_DENIED_DB,
    FaultInterval,
    FaultPlan,
    LinkSignal,
    NodeEvent,
    jam_loss,
    jam_to_signal_db,
    plan_faults,
)
from emulator.links import LinkModel, build_links
from topologies.scenario import Scenario

NODES = [
    {"name": "hq", "position": (0.0, 0.0)},
    {"name": "a", "position": (10.0, 0.0)},
    {"name": "b", "position": (20.0, 0.0)},
    {"name": "c", "position": (60.0, 0.0)},
]
LINKS = [
    {"a": "hq", "b": "a", "bearer": "fibre", "name": "wire"},
    {"a": "hq", "b": "c", "bearer": "satcom-geo", "name": "sat1", "beam": "east"},
    {"a": "a", "b": "c", "bearer": "satcom-leo", "name": "sat2", "beam": "west"},
]
NETS = [{"name": "vnet", "bearer": "vhf", "members": ["hq", "a", "b"]}]


def plan(*faults: dict[str, object]) -> tuple[FaultPlan, dict[str, LinkModel]]:
    scenario = Scenario.model_validate(
        {
            "run": {"duration_s": 1000},
            "nodes": NODES,
            "links": LINKS,
            "nets": NETS,
            "faults": list(faults),
        }
    )
    links = build_links(scenario, seed=1)
    return plan_faults(scenario, links), links


def loss(links: dict[str, LinkModel], name: str, s: str, r: str) -> float:
    return links[name].state.of(s, r).loss


def test_a_jammer_with_a_reach_denies_every_receiver_within_it_and_none_beyond() -> None:
    faults, links = plan(
        {"kind": "jam", "at_s": 10, "bands": ["vhf"], "position": (20, 3), "reach_km": 5}
    )
    faults.apply(10.0)
    assert loss(links, "vnet", "hq", "b") == 1.0  # b is 3 km from the jammer
    assert loss(links, "vnet", "a", "b") == 1.0
    assert loss(links, "vnet", "b", "a") == 0.0  # a is 10.4 km away: hears b
    assert loss(links, "vnet", "hq", "a") == 0.0
    assert links["vnet"].send("hq", "b", 100, 10.0).dropped == "lost"
    assert loss(links, "wire", "hq", "a") == 0.0  # another band


def test_jam_to_signal_is_monotone_in_distance_and_its_loss_in_js() -> None:
    # 10 log10(100/50) + 30 log10(20/20) = 3.01 dB
    assert jam_to_signal_db(100, 50, 3.0, 20, 20) == pytest.approx(3.0103)
    assert jam_loss(JS_CLEAR_DB) == 0.0
    assert jam_loss(JS_DENIED_DB) == 1.0
    assert jam_loss(0.5 * (JS_CLEAR_DB + JS_DENIED_DB)) == pytest.approx(0.5)
    losses = []
    for x in (20.5, 22, 25, 30, 40, 60, 100, 200):  # the jammer moves away from b (20, 0)
        faults, links = plan({"kind": "jam", "at_s": 0, "bands": ["vhf"], "position": (x, 0)})
        faults.apply(0.0)
        losses.append((loss(links, "vnet", "hq", "b"), loss(links, "vnet", "a", "b")))
    assert losses[0] == (1.0, 1.0)
    assert losses[-1] == (0.0, 0.0)
    for (far_prev, near_prev), (far, near) in itertools.pairwise(losses):
        assert far <= far_prev
        assert near <= near_prev
        assert near <= far  # a is closer to b than hq is: its signal is stronger
    assert any(0 < far < 1 for far, _ in losses)  # the linear stretch is reached


def test_a_duty_cycled_jammer_is_on_for_the_first_share_of_each_period() -> None:
    jam = {
        "kind": "jam", "at_s": 10, "duration_s": 40, "bands": ["vhf"], "position": (20, 0),
        "reach_km": 1, "duty_cycle": 0.3, "period_s": 10,
    }  # fmt: skip
    faults, links = plan(jam)
    assert faults.boundaries == [0.0, 10.0, 13.0, 20.0, 23.0, 30.0, 33.0, 40.0, 43.0]
    seen = []
    for t in (0, 10, 12.9, 13, 19.9, 20, 23, 43, 45, 50):
        faults.apply(float(t))
        seen.append(loss(links, "vnet", "a", "b"))
    assert seen == [0, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert faults.intervals() == [FaultInterval("jam", "jam:vhf", 10.0, 50.0)]


def test_a_cut_takes_a_wired_link_down_and_its_repair_up_with_carrier_signals() -> None:
    faults, links = plan(
        {"kind": "cut", "at_s": 5, "duration_s": 10, "link": "wire"},
        {"kind": "cut", "at_s": 20, "link": "sat1"},
    )
    assert faults.apply(0.0) == []
    assert faults.apply(5.0) == [LinkSignal("wire", up=False)]
    assert links["wire"].send("hq", "a", 100, 5.0).dropped == "down"
    assert faults.apply(15.0) == [LinkSignal("wire", up=True)]
    assert links["wire"].send("hq", "a", 100, 15.0).dropped is None
    assert faults.apply(20.0) == []  # SATCOM is not wired: no carrier to see
    assert links["sat1"].send("hq", "c", 100, 20.0).dropped == "down"
    assert faults.boundaries == [0.0, 5.0, 15.0, 20.0]  # never repaired: no end


def test_overlapping_faults_combine_and_come_apart() -> None:
    faults, links = plan(
        {"kind": "latency", "at_s": 10, "duration_s": 20, "link": "vnet", "add_s": 0.5},
        {"kind": "latency", "at_s": 20, "duration_s": 20, "bearer": "vhf", "add_s": 1.0},
        {"kind": "throttle", "at_s": 10, "duration_s": 30, "link": "vnet", "factor": 0.5},
        {"kind": "throttle", "at_s": 20, "duration_s": 5, "bearer": "vhf", "factor": 0.5},
        {"kind": "loss", "at_s": 20, "duration_s": 20, "link": "vnet", "loss": 0.5},
        {"kind": "jam", "at_s": 0, "bands": ["vhf"], "position": (20, 0), "reach_km": 1},
    )

    def at(t: float) -> tuple[float, float, float, float]:
        faults.apply(t)
        state = links["vnet"].state
        ab = state.of("a", "b")
        return ab.extra_delay_s, ab.rate_factor, ab.loss, state.of("hq", "a").loss

    assert at(5) == (0.0, 1.0, 1.0, 0.0)
    assert at(10) == (0.5, 0.5, 1.0, 0.0)
    assert at(20) == (1.5, 0.25, 1.0, 0.5)  # the jam's direction keeps the link's faults
    assert at(25) == (1.5, 0.5, 1.0, 0.5)
    assert at(30) == (1.0, 0.5, 1.0, 0.5)
    assert at(40) == (0.0, 1.0, 1.0, 0.0)
    assert at(10) == (0.5, 0.5, 1.0, 0.0)  # back in time: from the active set alone
    # loss bursts combine as 1-(1-a)(1-b)
    faults, links = plan(
        {"kind": "loss", "at_s": 0, "link": "wire", "loss": 0.5},
        {"kind": "loss", "at_s": 0, "bearer": "fibre", "loss": 0.2},
    )
    faults.apply(0.0)
    assert loss(links, "wire", "hq", "a") == pytest.approx(0.6)


def test_satcom_outages_by_beam_by_bearer_and_all() -> None:
    for outage, down in [
        ({"beam": "east"}, {"sat1"}),
        ({"bearer": "satcom-leo"}, {"sat2"}),
        ({}, {"sat1", "sat2"}),
    ]:
        faults, links = plan({"kind": "satcom-outage", "at_s": 1, "duration_s": 2} | outage)
        faults.apply(1.0)
        assert {name for name, m in links.items() if not m.state.default.up} == down
        faults.apply(3.0)
        assert all(m.state.default.up for m in links.values())


def test_jamming_a_satcom_beam_denies_every_link_on_it() -> None:
    faults, links = plan({"kind": "jam", "at_s": 0, "bands": ["satcom"], "beam": "west"})
    faults.apply(0.0)
    assert loss(links, "sat2", "a", "c") == 1.0
    assert loss(links, "sat1", "hq", "c") == 0.0


def test_a_destroyed_node_gets_an_event_and_its_links_carry_nothing_to_or_from_it() -> None:
    faults, links = plan({"kind": "destroy", "at_s": 30, "node": "a"})
    assert faults.node_events == [NodeEvent(30.0, "a", "destroy")]
    assert faults.apply(30.0) == [LinkSignal("wire", up=False)]  # the far end loses carrier
    assert links["vnet"].send("hq", "a", 100, 30.0).dropped == "down"
    assert links["vnet"].send("a", "b", 100, 31.0).dropped == "down"
    assert links["vnet"].send("hq", "b", 100, 32.0).dropped is None
    assert links["sat2"].send("c", "a", 100, 30.0).dropped == "down"
    assert faults.intervals() == [FaultInterval("destroy", "a", 30.0, None)]


def test_a_restarted_node_crashes_and_revives() -> None:
    faults, links = plan(
        {"kind": "restart", "at_s": 10, "duration_s": 5, "node": "b"},
        {"kind": "restart", "at_s": 50, "node": "hq"},
    )
    assert faults.node_events == [
        NodeEvent(10.0, "b", "crash"),
        NodeEvent(15.0, "b", "revive"),
        NodeEvent(50.0, "hq", "crash"),
        NodeEvent(50.0, "hq", "revive"),
    ]
    faults.apply(10.0)
    assert links["vnet"].send("a", "b", 100, 10.0).dropped == "down"
    faults.apply(15.0)
    assert links["vnet"].send("a", "b", 100, 15.0).dropped is None
    assert faults.apply(50.0) == []  # back at once: no down time, no carrier change


def test_emcon_silences_a_nodes_radio_and_leaves_wire_and_satcom() -> None:
    faults, links = plan({"kind": "emcon", "at_s": 0, "duration_s": 10, "node": "hq"})
    faults.apply(0.0)
    assert links["vnet"].send("hq", "a", 100, 0.0).dropped == "silenced"
    assert links["vnet"].send("a", "hq", 100, 0.0).dropped is None  # still receives
    assert links["wire"].send("hq", "a", 100, 0.0).dropped is None
    assert links["sat1"].send("hq", "c", 100, 0.0).dropped is None
    faults.apply(10.0)
    assert links["vnet"].send("hq", "a", 100, 10.0).dropped is None
    faults, links = plan({"kind": "emcon", "at_s": 0, "node": "hq", "bands": ["satcom"]})
    faults.apply(0.0)
    assert links["sat1"].send("hq", "c", 100, 0.0).dropped == "silenced"
    assert links["vnet"].send("hq", "a", 100, 0.0).dropped is None


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ({"kind": "cut", "at_s": 0, "link": "nowhere"}, "'nowhere'"),
        ({"kind": "latency", "at_s": 0, "link": "nope", "add_s": 1}, "'nope'"),
        ({"kind": "throttle", "at_s": 0, "bearer": "laser", "factor": 0.5}, "'laser'"),
        ({"kind": "loss", "at_s": 0, "loss": 0.5}, "neither"),
        ({"kind": "destroy", "at_s": 0, "node": "zulu"}, "'zulu'"),
    ],
)
def test_a_fault_on_something_that_does_not_exist_is_named(
    fault: dict[str, object], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        plan(fault)


def test_a_frame_is_judged_by_its_air_time_not_by_when_it_was_queued() -> None:
    """Frames handed over before a cut but on the air after it are lost; frames queued
    before a repair and sent after it go through."""
    scenario = Scenario.model_validate(
        {
            "run": {"duration_s": 100},
            "nodes": NODES[:2],
            "links": [
                {
                    "a": "hq",
                    "b": "a",
                    "bearer": "radio-relay",
                    "name": "r",
                    "rate_bps": 9600,
                    "queue_bytes": 100_000,
                    "loss": 0.0,
                    "jitter_s": 0.0,
                }
            ],
            "faults": [{"kind": "cut", "link": "r", "at_s": 1.0, "duration_s": 10.0}],
        }
    )
    links = build_links(scenario, seed=1)
    plan_faults(scenario, links)
    model = links["r"]
    sent = [model.send("hq", "a", 1200, 0.0) for _ in range(20)]  # 1 s of air time each
    assert sent[0].dropped is None  # on the air over [0, 1): before the cut
    assert [s.dropped for s in sent[1:11]] == ["down"] * 10  # on the air during the cut
    assert all(s.dropped is None for s in sent[11:])  # queued through it, sent after
    assert all(s.arrival is not None and s.arrival > 11 for s in sent[11:])
