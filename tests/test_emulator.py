"""The emulator end to end: real engines on one heap, faults, results beside the oracle."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emulator.emulate import emulate
from emulator.oracle import earliest_arrivals
from emulator.pcap import Tawan, dissect
from emulator.realtime import emulate_realtime
from emulator.results import message_id, results, timeline
from emulator.run import Emulation, Options
from emulator.traffic import Offer
from tawan.cli import main as tawan
from tawan.core.engine import Engine
from tawan.core.precedence import Precedence
from topologies.load import parse_scenario
from topologies.scenario import Scenario

SMALL = """
[run]
name = "small"
duration_s = 900
seed = 5

[engine]
hello_interval_s = 5
dead_interval_s = 17
advert_interval_s = 120

[[nodes]]
name = "hq"
role = "hq"
groups = ["coy"]
[[nodes]]
name = "relay"
parent = "hq"
position = [5, 0]
groups = ["coy"]
[[nodes]]
name = "p1"
parent = "relay"
position = [8, 2]
groups = ["coy"]
[[nodes]]
name = "p2"
parent = "relay"
position = [8, -2]
groups = ["coy"]

[[links]]
a = "hq"
b = "relay"
bearer = "fibre"
name = "fibre"
[[links]]
a = "hq"
b = "relay"
bearer = "satcom-geo"
name = "sat"

[[nets]]
name = "vhf"
bearer = "vhf"
members = ["relay", "p1", "p2"]

[[traffic]]
to = "parent"
size_bytes = 100
interval_s = 30
process = "poisson"
[[traffic]]
sources = ["hq"]
to = "own-group"
precedence = "FLASH"
size_bytes = 150
interval_s = 120

[[faults]]
kind = "cut"
link = "fibre"
at_s = 300
duration_s = 200
[[faults]]
kind = "loss"
link = "vhf"
loss = 0.3
at_s = 100
duration_s = 100
"""


def small(**run: object) -> Scenario:
    scenario = parse_scenario(SMALL, "small.toml")
    return scenario.model_copy(update={"run": scenario.run.model_copy(update=run)})


def run_to_end(scenario: Scenario, seed: int | None = None) -> tuple[Emulation, dict[str, Any]]:
    em = Emulation(scenario, Options(seed=seed))
    em.run()
    tl = timeline(em)
    return em, tl


def test_same_scenario_and_seed_give_byte_identical_outputs(tmp_path: Path) -> None:
    scenario = small()
    first = emulate(scenario, tmp_path / "a", report=False)
    again = emulate(scenario, tmp_path / "b", report=False)
    other = emulate(scenario, tmp_path / "c", Options(seed=6), report=False)
    for name in ("results.json", "timeline.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert first.results["precedence"]["ROUTINE"]["offered"] > 20
    assert first.results == again.results
    assert (tmp_path / "a" / "results.json").read_bytes() != (
        tmp_path / "c" / "results.json"
    ).read_bytes()
    assert other.results["seed"] == 6


def test_messages_survive_the_cut_over_satcom_and_never_beat_the_oracle() -> None:
    em, tl = run_to_end(small())
    res = results(em, tl)
    routine, flash = res["precedence"]["ROUTINE"], res["precedence"]["FLASH"]
    assert routine["delivered"] == routine["offered"] - routine["pending"] > 20
    assert flash["delivered"] == flash["offered"] - flash["pending"] > 0
    assert res["duplicate_deliveries"] == 0
    # the relay's reports to hq during the cut went over SATCOM: a GEO hop's 0.28 s at least
    relay_during_cut = [
        r.delivered["hq"] - r.time
        for r in em.record.offers.values()
        if r.source == "relay" and 320 < r.time < 480 and "hq" in r.delivered
    ]
    assert relay_during_cut and min(relay_during_cut) > 0.28
    assert res["links"]["fibre"]["down_s"] == pytest.approx(200)
    assert res["links"]["fibre"]["failures"] >= 1  # both ends saw the carrier go
    assert res["links"]["fibre"]["detection_s"] == [0.0] * res["links"]["fibre"]["failures"]
    # The oracle is a bound: no copy arrives before the oracle says it could.
    best = earliest_arrivals(tl)
    checked = 0
    for record in em.record.offers.values():
        for dst, at in record.delivered.items():
            bound = best[message_id(record), dst]
            assert bound is not None and at >= bound - 1e-6, (record, dst)
            checked += 1
    assert checked > 40


def test_a_restarted_node_loses_nothing_it_acknowledged_and_delivers_once() -> None:
    text = SMALL + '\n[[faults]]\nkind = "restart"\nnode = "relay"\nat_s = 400\nduration_s = 30\n'
    scenario = parse_scenario(text, "restart.toml")
    em, tl = run_to_end(scenario)
    res = results(em, tl)
    assert res["duplicate_deliveries"] == 0
    assert res["nodes"]["relay"]["down"] == [{"why": "crash", "start": 400.0, "end": 430.0}]
    for prec in ("ROUTINE", "FLASH"):
        line = res["precedence"][prec]
        assert line["lost"] == 0, prec
        assert line["delivered"] + line["pending"] == line["offered"], prec
    # nothing offered by the relay while it was down
    assert not [r for r in em.record.offers.values() if r.source == "relay" and 400 < r.time < 430]


def test_a_destroyed_node_gets_nothing_sends_nothing_and_the_oracle_agrees() -> None:
    text = SMALL + '\n[[faults]]\nkind = "destroy"\nnode = "p2"\nat_s = 200\n'
    em, tl = run_to_end(parse_scenario(text, "destroy.toml"))
    assert not em.alive["p2"] and em.destroyed == {"p2"}
    assert not [r for r in em.record.offers.values() if r.source == "p2" and r.time >= 200]
    assert sum(em.record.source_down.values()) > 0  # its traffic was due, and not offered
    best = earliest_arrivals(tl)
    late = [r for r in em.record.offers.values() if "p2" in r.destinations and r.time > 210]
    assert late
    for record in late:
        assert "p2" not in record.delivered
        assert best[message_id(record), "p2"] is None
    res = results(em, tl)
    assert res["nodes"]["p2"]["down"] == [{"why": "destroy", "start": 200.0, "end": None}]


def test_a_node_down_cannot_be_restarted_or_destroyed_again() -> None:
    destroy = '\n[[faults]]\nkind = "destroy"\nnode = "p2"\nat_s = 200\n'
    restart = '\n[[faults]]\nkind = "restart"\nnode = "p2"\nat_s = {}\nduration_s = 50\n'
    with pytest.raises(ValueError, match=r"faults\[3\]\.at_s: expected 'p2' running"):
        parse_scenario(SMALL + destroy + restart.format(300), "x.toml")
    with pytest.raises(ValueError, match=r"faults\[3\]\.at_s: expected 'p2' running"):
        parse_scenario(SMALL + restart.format(100) + restart.format(120), "x.toml")
    parse_scenario(SMALL + restart.format(100) + restart.format(151), "x.toml")


def test_a_crash_rolls_back_what_was_not_committed_and_loses_nothing_else() -> None:
    em = Emulation(small())
    em.step_until(250.0)
    store = em.stores["relay"]
    em.offer(Offer("relay", "hq", 100, Precedence.FLASH, 3600, False, "test"))
    assert store.dirty  # submitted, not yet committed
    doomed = next(r for r in reversed(em.record.offers.values()) if r.generator == "test")
    assert store.get_message(doomed.mid) is not None
    rollbacks = store.rollbacks
    em.crash("relay")
    assert store.rollbacks == rollbacks + 1
    assert store.get_message(doomed.mid) is None  # the crash took it from the store
    em.step_until(260.0)
    em.revive("relay")
    em.run()
    res = results(em, timeline(em))
    # Its first frame had left before the crash (a message may leave before its commit;
    # an acknowledgement may not): delivered once, not resent by the restarted relay.
    assert doomed.delivered.keys() == {"hq"}
    assert res["duplicate_deliveries"] == 0
    for prec in ("ROUTINE", "FLASH"):
        line = res["precedence"][prec]
        assert line["lost"] == 0 and line["delivered"] + line["pending"] == line["offered"]


def test_copies_a_node_expired_count_as_expired_and_those_it_took_down_as_lost() -> None:
    text = WINDOWED.replace("[[100, 200], [300, 350]]", "[[390, 400]]").replace(
        "stop_s = 60", "stop_s = 60\nttl_s = 30"
    )
    em, tl = run_to_end(parse_scenario(text, "expire.toml"))
    res = results(em, tl)
    assert res["precedence"]["ROUTINE"]["expired"] == 3 == res["precedence"]["ROUTINE"]["offered"]
    assert res["precedence"]["ROUTINE"]["oracle"]["deliverable"] == 0
    text = WINDOWED.replace("[[100, 200], [300, 350]]", "[[390, 400]]") + (
        '\n[[faults]]\nkind = "destroy"\nnode = "far"\nat_s = 80\n'
    )
    em, tl = run_to_end(parse_scenario(text, "lost.toml"))
    routine = results(em, tl)["precedence"]["ROUTINE"]
    assert routine["lost"] == 3 == routine["offered"]


def test_an_event_touches_only_the_engines_it_concerns(monkeypatch: pytest.MonkeyPatch) -> None:
    touched: dict[int, set[int]] = {}
    real = Engine.get_timer
    em: Emulation | None = None

    def counted(self: Engine) -> float | None:
        event = em.events_handled if em is not None else -1
        touched.setdefault(event, set()).add(id(self))
        return real(self)

    monkeypatch.setattr(Engine, "get_timer", counted)
    names = [f"n{i}" for i in range(24)]
    scenario = Scenario.model_validate(
        {
            "run": {"duration_s": 120},
            "nodes": [{"name": n} for n in names],
            "links": [
                {"a": a, "b": b, "bearer": "radio-relay", "range_km": 1000}
                for a, b in itertools.pairwise(names)
            ],
        }
    )
    em = Emulation(scenario)
    em.run()
    # Each event asks one engine for its timer: the one it concerned. A driver that asked
    # every engine (tests/harness.py does) would touch 24 per event.
    assert em.events_handled > 1000
    assert len(touched) > 1000
    assert max(len(engines) for event, engines in touched.items() if event > 0) == 1


def test_realtime_gives_the_results_of_virtual_time(tmp_path: Path) -> None:
    scenario = small(duration_s=60)
    virtual = emulate(scenario, tmp_path / "v", report=False)
    paced = emulate_realtime(scenario, tmp_path / "r", speed=600, port=0, report=False)
    assert paced.results == virtual.results


def test_tawan_emulate_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL.replace("duration_s = 900", "duration_s = 400"))
    out = tmp_path / "out"
    status = tawan(["emulate", str(path), "--out", str(out), "--pcap", "vhf", "--quiet"])
    assert status == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.html'}" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["format"] == "tawan-results/1" and res["scenario"] == "small"
    assert "<html" in (out / "report.html").read_text()
    frames = [p for p in dissect(out / "vhf.pcap") if p.haslayer(Tawan)]
    assert frames and {p[Tawan].version for p in frames} == {1}
    assert len(frames) == res["bearers"]["vhf"]["frames"]  # every frame that went on the air


def test_tawan_emulate_names_the_problem_in_a_broken_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(SMALL.replace('bearer = "satcom-geo"', 'bearer = "satcom-gep"'))
    assert tawan(["emulate", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "broken.toml" in err and "links[1].bearer" in err and "satcom-gep" in err
    assert not (tmp_path / "o").exists()
    assert tawan(["emulate", str(tmp_path / "missing.toml")]) == 2
    good = tmp_path / "good.toml"
    good.write_text(SMALL)
    capsys.readouterr()
    for realtime in ([], ["--realtime"]):
        assert tawan(["emulate", str(good), "--pcap", "nope", "--quiet", *realtime]) == 2
        assert "--pcap: expected links of the scenario, found ['nope']" in capsys.readouterr().err


WINDOWED = """
[run]
duration_s = 400
[[nodes]]
name = "hq"
[[nodes]]
name = "far"
parent = "hq"
[[links]]
a = "hq"
b = "far"
bearer = "satcom-geo"
name = "pass"
available = [[100, 200], [300, 350]]
[[traffic]]
sources = ["far"]
to = "parent"
size_bytes = 100
interval_s = 20
stop_s = 60
"""


def test_a_message_waits_for_the_next_availability_window() -> None:
    em, tl = run_to_end(parse_scenario(WINDOWED, "windowed.toml"))
    records = list(em.record.offers.values())
    assert len(records) == 3 and all(r.time < 60 for r in records)
    best = earliest_arrivals(tl)
    for record in records:
        arrived = record.delivered["hq"]
        assert 100 < arrived < 200  # held at the source until the pass, then sent
        bound = best[message_id(record), "hq"]
        assert bound is not None and 100 < bound <= arrived
    # from t=0: the link was never up before its first window, not even for a first hello
    assert all(t >= 100 for t, _, link, _, up in em.record.neighbour_changes if link == "pass")
    down = {(f.kind, f.start, f.end) for f in em.plan.intervals()}
    assert down == {("unavailable", 0.0, 100.0), ("unavailable", 200.0, 300.0),
                    ("unavailable", 350.0, None)}  # fmt: skip


def test_availability_windows_are_checked() -> None:
    text = WINDOWED.replace("[[100, 200], [300, 350]]", "[[100, 200], [150, 350]]")
    with pytest.raises(ValueError, match=r"links\[0\]\.available\[1\]: expected windows in order"):
        parse_scenario(text, "w.toml")
    text = WINDOWED.replace("[[100, 200], [300, 350]]", "[[200, 100]]")
    with pytest.raises(ValueError, match=r"links\[0\]\.available\[0\]: expected start < end"):
        parse_scenario(text, "w.toml")


CAMPAIGN = (
    SMALL
    + """
[[faults]]
kind = "jam"
position = [8, 0]
bands = ["vhf"]
power_w = 20
at_s = 100
duration_s = 300
duty_cycle = 0.5
period_s = 40
[[faults]]
kind = "restart"
node = "relay"
at_s = 500
duration_s = 20
[[faults]]
kind = "emcon"
node = "p1"
at_s = 600
duration_s = 100
[[faults]]
kind = "destroy"
node = "p2"
at_s = 800
"""
)


def test_same_bytes_across_processes_whatever_the_hash_seed(tmp_path: Path) -> None:
    """Two processes with other string hashes: any order taken from a set or a hash shows."""
    path = tmp_path / "campaign.toml"
    path.write_text(CAMPAIGN)
    outputs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / hash_seed
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        command = [sys.executable, "-m", "tawan.cli", "emulate", str(path), "--out", str(out),
                   "--no-report", "--quiet"]  # fmt: skip
        subprocess.run(command, check=True, env=env, timeout=120, capture_output=True)
        outputs.append([(out / n).read_bytes() for n in ("results.json", "timeline.json")])
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][0])["nodes"]["relay"]["down"][0]["why"] == "crash"
