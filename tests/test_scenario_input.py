"""Hostile and careless input to the emulator and the topology tools.

Each case is refused before anything runs, with one message naming the file (or the
option), the key path, what was expected and what was found: no traceback, no hang, no
run that quietly does something else."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from emulator.emulate import EmulationError, emulate
from emulator.mission import seeded_mission
from emulator.realtime import emulate_realtime
from emulator.run import Options
from tawan.cli import main
from topologies.checks import notices
from topologies.generate import battalion, brigade, mesh
from topologies.load import ScenarioError, load_scenario, parse_scenario
from topologies.scenario import TTL_MAX_S, Scenario

BASE = """
[run]
duration_s = {duration}

[[nodes]]
name = "hq"
role = "hq"
groups = ["coy"]

[[nodes]]
name = "a"
parent = "hq"
position = [3.0, 0.0]
groups = ["coy"]

[[links]]
a = "hq"
b = "a"
bearer = "radio-relay"
{link}

[[traffic]]
to = "parent"
size_bytes = 100
interval_s = {interval}
{traffic}
{extra}
"""


def text(duration: str = "600", interval: str = "60", link: str = "", traffic: str = "",
         extra: str = "") -> str:  # fmt: skip
    return BASE.format(
        duration=duration, interval=interval, link=link, traffic=traffic, extra=extra
    )


def refused(source: str) -> str:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(source, "bad.toml")
    return str(caught.value)


def test_an_integer_too_long_to_read_names_its_line() -> None:
    assert refused(text(duration="1" + "0" * 5000)) == (
        "bad.toml: line 3: expected an integer of at most 4300 digits, found 5001 digits"
    )


def test_tables_nested_thousands_deep_are_refused_not_a_recursion_error() -> None:
    message = refused(text(extra="x = " + "[" * 5000 + "]" * 5000))
    assert message == "bad.toml: expected TOML nested a few levels deep, found far deeper"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
@pytest.mark.parametrize(
    ("where", "path"),
    [
        ({"duration": "{v}"}, "run.duration_s"),
        ({"interval": "{v}"}, "traffic[0].interval_s"),
        ({"link": "delay_s = {v}"}, "links[0].delay_s"),
        ({"link": "jitter_s = {v}"}, "links[0].jitter_s"),
        ({"link": "range_km = {v}"}, "links[0].range_km"),
        ({"link": "available = [[0, {v}]]"}, "links[0].available[0][1]"),
        ({"traffic": "stop_s = {v}"}, "traffic[0].stop_s"),
        ({"extra": '[[nodes]]\nname = "b"\nposition = [{v}, 0]'}, "nodes[2].position[0]"),
        ({"extra": '[[faults]]\nkind = "cut"\nlink = "hq-a-radio-relay"\nat_s = {v}'},
         "faults[0].at_s"),
        ({"extra": '[[faults]]\nkind = "jam"\nbands = ["vhf"]\nat_s = 0\nposition = [0, {v}]'},
         "faults[0].position[1]"),
        ({"extra": "[engine]\ndead_interval_s = {v}"}, "engine.dead_interval_s"),
    ],
)  # fmt: skip
def test_no_number_is_infinite_or_nan(where: dict[str, str], path: str, value: str) -> None:
    found = "nan" if value == "nan" else ("-inf" if value == "-inf" else "inf")
    message = refused(text(**{k: v.format(v=value) for k, v in where.items()}))
    assert message.startswith(f"bad.toml: {path}: expected a finite number, found {found}")


@pytest.mark.parametrize(
    ("where", "path", "found"),
    [
        ({"duration": "true"}, "run.duration_s", "True"),
        ({"interval": '"60"'}, "traffic[0].interval_s", "'60'"),
        ({"traffic": 'ttl_s = "60"'}, "traffic[0].ttl_s", "'60'"),
        ({"link": "rate_bps = true"}, "links[0].rate_bps", "True"),
    ],
)
def test_a_bool_or_a_string_is_no_number(where: dict[str, str], path: str, found: str) -> None:
    message = refused(text(**where))
    assert (
        message == f"bad.toml: {path}: expected a number, not true, false or text, found {found}"
    )


def test_a_whole_number_written_as_a_float_is_an_integer() -> None:
    # `rate_bps = 1e6` is how an engineer writes a megabit; 1.5 s is no whole second.
    scenario = parse_scenario(
        text(link="rate_bps = 1e6\nqueue_bytes = 1e5", traffic="ttl_s = 7.2e3"), "x.toml"
    )
    assert (scenario.links[0].rate_bps, scenario.links[0].queue_bytes) == (1_000_000, 100_000)
    assert scenario.traffic[0].ttl_s == 7200
    assert "traffic[0].ttl_s: expected a valid integer" in refused(text(traffic="ttl_s = 1.5"))


def test_a_run_of_years_is_refused() -> None:
    assert refused(text(duration="31536000")) == (
        "bad.toml: run.duration_s: expected less than or equal to 604800, found 31536000"
    )


def test_a_ttl_past_the_missions_key_grace_is_refused() -> None:
    # Every node would refuse to send such a message (SubmitError): the run would go on
    # with all of the entry's traffic refused.
    assert refused(text(traffic="ttl_s = 86401")) == (
        "bad.toml: traffic[0].ttl_s: expected less than or equal to 86400, found 86401"
    )
    parse_scenario(text(traffic="ttl_s = 86400"), "good.toml")
    roster, _ = seeded_mission({"a": [], "b": []}, 1)
    assert roster.grace_epochs * roster.epoch_seconds == TTL_MAX_S


def test_traffic_of_billions_of_messages_is_refused() -> None:
    assert refused(text(interval="1e-6")) == (
        "bad.toml: traffic[0].interval_s: expected at most 1000000 messages from all traffic"
        " over the run, found 1e-06 s giving 6e+08 here (6e+08 in all)"
    )


def test_a_jammer_flickering_billions_of_times_is_refused() -> None:
    jam = '[[faults]]\nkind = "jam"\nbands = ["vhf"]\nat_s = 0\nduty_cycle = 0.5\nperiod_s = 1e-9'
    assert refused(text(extra=jam)) == (
        "bad.toml: faults[0].period_s: expected at most 100000 periods in the jam,"
        " found 1e-09 s giving 6e+11"
    )


@pytest.mark.parametrize("name", ["HQ", "coy a", "-x", "a" * 33])
def test_a_node_name_the_mission_cannot_key_is_named(name: str) -> None:
    node = f'[[nodes]]\nname = "{name}"\n[[links]]\na = "{name}"\nb = "a"\nbearer = "vhf"'
    assert refused(text(extra=node)) == (
        "bad.toml: nodes[2].name: expected 1-32 characters of a-z, 0-9 and '-', not starting"
        f" with '-', found {name!r}"
    )


def test_a_group_name_the_mission_cannot_key_is_named() -> None:
    node = '[[nodes]]\nname = "b"\ngroups = ["Coy A"]\n[[links]]\na = "b"\nb = "a"\nbearer = "vhf"'
    assert refused(text(extra=node)) == (
        "bad.toml: nodes[2].groups[0]: expected 1-32 characters of a-z, 0-9 and '-', not"
        " starting with '-', found 'Coy A'"
    )


def test_traffic_from_no_source_is_refused() -> None:
    assert refused(text(traffic="sources = []")) == (
        "bad.toml: traffic[0].sources: expected at least 1 item, found 0"
    )


def test_traffic_only_to_its_own_source_is_refused() -> None:
    to_self = '[[traffic]]\nsources = ["hq"]\nto = "hq"\nsize_bytes = 1\ninterval_s = 1'
    assert refused(text(extra=to_self)) == (
        "bad.toml: traffic[1].to: expected someone besides the sources, found 'hq' (no selected"
        " source would send: each is the destination, or alone in it)"
    )


def test_a_pace_bearer_that_names_nothing_is_refused() -> None:
    pace = '[engine]\npace.bearers = { ROUTINE = ["vhf", "satcomm"] }'
    message = refused(text(extra=pace))
    assert message.startswith("bad.toml: engine.pace.bearers.ROUTINE[1]: expected a bearer")
    assert message.endswith(", found 'satcomm'")
    assert parse_scenario(text(extra='[engine]\npace.bearers = { ROUTINE = ["satcom"] }'), "ok")


def test_a_pace_precedence_that_names_nothing_lists_the_precedences() -> None:
    assert refused(text(extra='[engine]\npace.bearers = { ROUTNE = ["vhf"] }')) == (
        "bad.toml: engine.pace.bearers.ROUTNE: expected one of ['ROUTINE', 'PRIORITY',"
        " 'IMMEDIATE', 'FLASH', 'OVERRIDE'], found 'ROUTNE'"
    )


def test_an_empty_name_says_expected() -> None:
    assert refused(text(extra='[[nodes]]\nname = ""')).startswith(
        "bad.toml: nodes[2].name: expected at least 1 character, found ''"
    )


# ---------------------------------------------------------------- generators


def test_a_zero_count_is_refused_not_replaced_by_the_default() -> None:
    with pytest.raises(ValueError, match=r"^battalions: expected at least 1, found 0$"):
        brigade(1, battalions=0)
    with pytest.raises(ValueError, match=r"^companies: expected at least 1, found 0$"):
        battalion(1, companies=0)


def test_a_brigade_no_shape_comes_near_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^brigade nodes: expected at most 5000, found 100000$"):
        brigade(1, nodes=100_000)
    with pytest.raises(ValueError, match=r"within 2 % of, found 4000 \(the nearest is 2191"):
        brigade(1, nodes=4000)


def test_a_mesh_too_big_or_of_no_size_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^mesh nodes: expected at most 5000, found 100000$"):
        mesh(1, 100_000, 10.0)
    with pytest.raises(ValueError, match=r"^mesh area_km: expected a finite number more than 0"):
        mesh(1, 5, float("nan"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mesh", "--nodes", "0"], "mesh nodes: expected at least 2, found 0"),
        (["mesh", "--nodes", "-3"], "mesh nodes: expected at least 2, found -3"),
        (["mesh", "--area-km", "0"], "mesh area_km: expected a finite number more than 0"),
        (["battalion", "--companies", "0"], "companies: expected at least 1, found 0"),
        (["battalion", "--nodes", "1"], "battalion nodes: expected at least 3, found 1"),
    ],
)
def test_topo_generate_refuses_impossible_counts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topo", "generate", *argv]) == 2
    assert f"topo generate {argv[0]}: {message}" in capsys.readouterr().err


# ---------------------------------------------------------------- tawan emulate


@pytest.fixture
def scenario() -> Scenario:
    return parse_scenario(text(duration="30"), "ok.toml")


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (float("nan"), "--window: expected a finite number of seconds > 0, found nan"),
        (float("inf"), "--window: expected a finite number of seconds > 0, found inf"),
        (1e-300, "--window: expected at most 100000 windows in the run's 30.0 s"),
    ],
)
def test_a_window_that_cannot_be_reported_stops_before_the_run(
    scenario: Scenario, tmp_path: Path, window: float, message: str
) -> None:
    with pytest.raises(EmulationError, match="^" + message.replace(".", r"\.")):
        emulate(scenario, tmp_path / "out", Options(window_s=window))
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_is_a_file_is_named(scenario: Scenario, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    with pytest.raises(EmulationError) as caught:
        emulate(scenario, tmp_path / "taken" / "run")
    assert (
        str(caught.value) == f"--out: expected a folder, found a file {str(tmp_path / 'taken')!r}"
    )


@pytest.mark.parametrize(
    ("speed", "port", "message"),
    [
        (float("inf"), 0, "--speed: expected a finite number > 0, found inf"),
        (10.0, 70000, "--metrics-port: expected a TCP port 0..65535, found 70000"),
        (10.0, -1, "--metrics-port: expected a TCP port 0..65535, found -1"),
    ],
)
def test_realtime_options_out_of_range(
    scenario: Scenario, tmp_path: Path, speed: float, port: int, message: str
) -> None:
    with pytest.raises(EmulationError) as caught:
        emulate_realtime(scenario, tmp_path / "out", speed=speed, port=port)
    assert str(caught.value) == message
    assert not (tmp_path / "out").exists()


def test_a_metrics_port_in_use_is_one_line(scenario: Scenario, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmulationError) as caught:
            emulate_realtime(scenario, tmp_path / "out", speed=1e6, port=port, report=False)
    assert str(caught.value).startswith(
        f"--metrics-port: expected a port free on 127.0.0.1, found {port}: [Errno"
    )


def test_an_oserror_of_the_run_is_not_told_as_the_metrics_port(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("emulator.realtime.run_paced", failing)
    with pytest.raises(BaseExceptionGroup) as caught:
        emulate_realtime(scenario, tmp_path / "out", speed=1e6, port=0, report=False)
    assert caught.group_contains(OSError, match="No space left on device")


def test_emulate_of_a_bad_file_prints_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text(extra="x = " + "[" * 5000 + "]" * 5000))
    assert main(["emulate", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert capsys.readouterr().err == (
        "tawan: error: deep.toml: expected TOML nested a few levels deep, found far deeper\n"
    )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ScenarioError):
        load_scenario(path)


@pytest.mark.parametrize(
    ("where", "path", "said"),
    [
        ({"extra": '[[faults]]\nkind = "loss"\nbearer = "hf"\nat_s = 0\nloss = 0.5'},
         "faults[0].bearer", "no link or net uses bearer 'hf': no effect"),
        ({"extra": '[[faults]]\nkind = "jam"\nbands = ["hf"]\nat_s = 0'},
         "faults[0].bands", "no link or net uses bands ['hf']: no effect"),
        ({"link": "available = [[0, 10], [700, 800]]"}, "links[0].available[1]",
         "opens at 700.0 s, after the run's 600.0 s: never used"),
        ({"traffic": 'share = 0.4\nsources = ["a"]'}, "traffic[0].share",
         "0.4 of 1 source(s) rounds to no sender: sends nothing"),
    ],
)  # fmt: skip
def test_what_does_nothing_is_told(where: dict[str, str], path: str, said: str) -> None:
    assert notices(parse_scenario(text(**where), "idle.toml")) == [(path, said)]


def test_a_scenario_where_everything_acts_has_no_notice() -> None:
    busy = '[[faults]]\nkind = "jam"\nbands = ["shf", "hf"]\nat_s = 0\nduration_s = 60'
    assert notices(parse_scenario(text(extra=busy), "busy.toml")) == []


def test_emulate_prints_the_notices_as_warnings_and_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "idle.toml"
    path.write_text(text(duration="60", traffic='share = 0.4\nsources = ["a"]'))
    assert main(["emulate", str(path), "--out", str(tmp_path / "out"), "--quiet",
                 "--no-report"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert err == (
        f"tawan: warning: {path}: traffic[0].share: 0.4 of 1 source(s) rounds to no sender:"
        " sends nothing\n"
    )
    assert (tmp_path / "out" / "results.json").exists()


def test_the_message_bound_counts_what_each_source_sends() -> None:
    # One HQ's orders to 200 children every minute for a day: 288,000 messages. Counting
    # every source (the 200 children too) times the HQ's 200 destinations gave 5.8e7.
    units = "".join(f'[[nodes]]\nname = "u{i}"\nparent = "hq"\n' for i in range(200))
    members = ", ".join(['"hq"', *(f'"u{i}"' for i in range(200))])
    star = (
        '[run]\nduration_s = 86400\n[[nodes]]\nname = "hq"\nrole = "hq"\n'
        f'{units}[[nets]]\nname = "coy"\nbearer = "vhf"\nmembers = [{members}]\n'
        '[[traffic]]\nto = "children"\nsize_bytes = 200\ninterval_s = 60\n'
    )
    parse_scenario(star, "star.toml")
    assert "expected at most 1000000 messages" in refused(star.replace("= 60\n", "= 10\n"))
