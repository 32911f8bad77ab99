"""emulator/timeline.py: the realised link and node timeline, as timeline.json carries it.

Every direction's intervals are contiguous and cover the run; at any moment they say what
the live link models were set to by the fault plan; LEO handover gaps show as down; the
same run writes the same bytes.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from emulator.faults import plan_faults
from emulator.links import build_links
from emulator.timeline import FORMAT, link_timeline, node_timeline, values_of, write_timeline
from topologies.bearers import BEARERS
from topologies.scenario import Scenario

DURATION = 100.0
SCENARIO = Scenario.model_validate(
    {
        "run": {"name": "t", "duration_s": DURATION},
        "nodes": [
            {"name": "hq", "position": (0.0, 0.0)},
            {"name": "a", "position": (10.0, 0.0)},
            {"name": "b", "position": (20.0, 0.0)},
            {"name": "far", "position": (45.0, 0.0)},
        ],
        "links": [
            {"a": "hq", "b": "a", "bearer": "fibre", "name": "wire"},
            {"a": "hq", "b": "far", "bearer": "satcom-leo", "name": "leo", "beam": "w"},
        ],
        "nets": [{"name": "vnet", "bearer": "vhf", "members": ["hq", "a", "b", "far"]}],
        "faults": [
            {"kind": "cut", "at_s": 5, "duration_s": 10, "link": "wire"},
            {
                "kind": "jam", "at_s": 20, "duration_s": 40, "bands": ["vhf"],
                "position": (22.0, 0.0), "duty_cycle": 0.5, "period_s": 10,
            },
            {"kind": "latency", "at_s": 30, "duration_s": 30, "bearer": "vhf", "add_s": 0.5},
            {"kind": "throttle", "at_s": 40, "link": "vnet", "factor": 0.25},
            {"kind": "loss", "at_s": 50, "duration_s": 5, "link": "leo", "loss": 0.3},
            {"kind": "restart", "at_s": 70, "duration_s": 8, "node": "b"},
            {"kind": "destroy", "at_s": 90, "node": "a"},
            {"kind": "emcon", "at_s": 80, "duration_s": 5, "node": "hq"},
        ],
    }
)  # fmt: skip


def parts() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    links = build_links(SCENARIO, seed=5)
    plan = plan_faults(SCENARIO, links)
    names = [n.name for n in SCENARIO.nodes]
    return link_timeline(links, plan, DURATION), node_timeline(names, plan, DURATION)


def test_intervals_are_contiguous_and_cover_the_run_for_each_direction_in_range() -> None:
    links_part, _ = parts()
    directions = {
        link["name"]: {(d["from"], d["to"]) for d in link["directions"]} for link in links_part
    }
    assert directions["wire"] == {("hq", "a"), ("a", "hq")}
    # vhf reaches 30 km: far (at 45 km) hears b (25 km away), not a (35) nor hq (45)
    assert ("b", "far") in directions["vnet"]
    assert ("far", "b") in directions["vnet"]
    assert not {("hq", "far"), ("far", "hq"), ("a", "far"), ("far", "a")} & directions["vnet"]
    assert len(directions["vnet"]) == 12 - 4
    for link in links_part:
        for direction in link["directions"]:
            spans = direction["intervals"]
            assert spans[0]["start"] == 0.0
            assert spans[-1]["end"] == DURATION
            for before, after in itertools.pairwise(spans):
                assert before["end"] == after["start"]
                assert before["start"] < before["end"]
                values = ("up", "rate_bps", "delay_s", "loss")
                assert tuple(before[k] for k in values) != tuple(after[k] for k in values)


def test_intervals_match_the_conditions_the_plan_sets_on_the_live_links() -> None:
    links = build_links(SCENARIO, seed=5)
    plan = plan_faults(SCENARIO, links)
    timeline = {link["name"]: link for link in link_timeline(links, plan, DURATION)}
    checked = 0
    for t in [x * 0.5 + 0.25 for x in range(int(DURATION * 2))] + [15.05, 45.05, 90.05]:
        plan.apply(t)
        for name, model in links.items():
            for direction in timeline[name]["directions"]:
                s, r = direction["from"], direction["to"]
                (span,) = [i for i in direction["intervals"] if i["start"] <= t < i["end"]]
                up, rate, delay, loss = values_of(model, model.state, s, r)
                gap = model.in_gap(t, t)
                assert (span["up"], span["rate_bps"], span["delay_s"]) == (
                    up and not gap,
                    rate,
                    delay,
                )
                assert span["loss"] == loss
                checked += 1
    assert checked > 2000


def test_the_numbers_are_the_bearers_and_the_faults() -> None:
    links_part, _ = parts()
    by_name = {link["name"]: link for link in links_part}
    vhf = BEARERS["vhf"]
    assert vhf.bursts is not None
    (ab,) = [d for d in by_name["vnet"]["directions"] if (d["from"], d["to"]) == ("a", "b")]
    first = ab["intervals"][0]
    assert first == {
        "start": 0.0, "end": 20.0, "up": True, "rate_bps": 9600.0, "delay_s": 0.05,
        "loss": pytest.approx(vhf.bursts.mean_loss),
    }  # fmt: skip
    jammed = ab["intervals"][1]
    assert (jammed["start"], jammed["end"], jammed["loss"]) == (20.0, 25.0, 1.0)
    (late,) = [i for i in ab["intervals"] if i["start"] <= 45 < i["end"]]
    assert late["rate_bps"] == pytest.approx(2400.0)
    assert late["delay_s"] == pytest.approx(0.55)
    (crash,) = [i for i in ab["intervals"] if i["start"] <= 72 < i["end"]]
    assert (crash["start"], crash["end"], crash["up"]) == (70.0, 78.0, False)
    for s, r, up in [("hq", "a", False), ("a", "hq", True)]:  # EMCON: hq receives only
        (d,) = [d for d in by_name["vnet"]["directions"] if (d["from"], d["to"]) == (s, r)]
        (quiet,) = [i for i in d["intervals"] if i["start"] <= 82 < i["end"]]
        assert quiet["up"] is up
        assert up or (quiet["start"], quiet["end"]) == (80.0, 85.0)
    (wire,) = [d for d in by_name["wire"]["directions"] if d["from"] == "hq"]
    assert [(i["start"], i["end"], i["up"]) for i in wire["intervals"]] == [
        (0.0, 5.0, True), (5.0, 15.0, False), (15.0, 90.0, True), (90.0, 100.0, False),
    ]  # fmt: skip
    (leo,) = [d for d in by_name["leo"]["directions"] if d["from"] == "hq"]
    downs = [(i["start"], i["end"]) for i in leo["intervals"] if not i["up"]]
    assert downs[:2] == [(15.0, pytest.approx(15.1)), (30.0, pytest.approx(30.1))]
    assert len(downs) == 6  # 15, 30, ..., 90; none at 0 or at the end
    (burst,) = [i for i in leo["intervals"] if i["start"] == 50.0]
    leo_b = BEARERS["satcom-leo"]
    assert burst["loss"] == pytest.approx(1 - (1 - leo_b.loss) * 0.7)


def test_nodes_part_has_every_node_and_its_down_spans() -> None:
    _, nodes_part = parts()
    assert nodes_part == [
        {"name": "a", "down": [[90.0, 100.0]]},
        {"name": "b", "down": [[70.0, 78.0]]},
        {"name": "far", "down": []},
        {"name": "hq", "down": []},
    ]


def test_the_same_run_writes_the_same_bytes(tmp_path: Path) -> None:
    meta = {"scenario": "t", "seed": 5, "duration_s": DURATION}
    messages = [
        {"id": "m1", "src": "hq", "dst": ["a"], "size": 100, "precedence": "FLASH",
         "time": 1.0, "ttl_s": 60.0},
    ]  # fmt: skip
    for name in ("one.json", "two.json"):
        write_timeline(tmp_path / name, *parts(), messages, meta)
    first = (tmp_path / "one.json").read_bytes()
    assert first == (tmp_path / "two.json").read_bytes()
    document = json.loads(first)
    assert document["format"] == FORMAT
    assert list(document) == sorted(document)
    assert document["messages"] == messages
    assert {"scenario", "seed", "duration_s", "nodes", "links"} <= set(document)
    with pytest.raises(ValueError, match="seed"):
        write_timeline(tmp_path / "bad.json", [], [], [], {"scenario": "t", "duration_s": 1.0})
