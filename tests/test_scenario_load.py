"""The scenario loader: every problem named by its key path, expected and found."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest

from tawan.core.precedence import Precedence
from topologies.generate import brigade
from topologies.load import ScenarioError, dump_scenario, load_scenario, parse_scenario
from topologies.scenario import Cut, Fault, Jam, Link, Net, Node, Run, Scenario, Traffic

BASE = """
[run]
name = "reference"
duration_s = 3600

[[nodes]]
name = "hq"
role = "hq"
groups = ["staff"]

[[nodes]]
name = "a"
parent = "hq"
position = [3.0, 0.0]
groups = ["coy"]

[[nodes]]
name = "b"
parent = "hq"
position = [0.0, 4.0]
groups = ["coy"]

[[links]]
a = "hq"
b = "a"
bearer = "radio-relay"

[[links]]
a = "hq"
b = "b"
bearer = "satcom-geo"
beam = "geo-1"

[[nets]]
name = "net-1"
bearer = "vhf"
members = ["hq", "a", "b"]
"""


def problem(extra: str, base: str = BASE) -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(base + extra, "reference.toml")
    return caught.value


def test_the_base_scenario_loads() -> None:
    scenario = parse_scenario(BASE, "reference.toml")
    assert [n.name for n in scenario.nodes] == ["hq", "a", "b"]
    assert Scenario.link_name(scenario.links[0]) == "hq-a-radio-relay"


def test_unknown_bearer_names_path_expected_and_found() -> None:
    error = problem('[[links]]\na = "a"\nb = "b"\nbearer = "vhff"\n')
    assert str(error).startswith("reference.toml: links[2].bearer: expected one of [")
    assert str(error).endswith(", found 'vhff'")
    assert error.path == "links[2].bearer"
    assert error.source == "reference.toml"
    assert "'fibre'" in str(error)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(BASE + '[[links]]\na = "a"\nb = "zz"\nbearer = "hf"\n')
    with pytest.raises(ScenarioError, match=r"^mine\.toml: links\[2\]\.b: expected a node name"):
        load_scenario(path)


def test_toml_syntax_error_names_file_and_line() -> None:
    with pytest.raises(ScenarioError, match=r"^x\.toml: line 3, column \d+: not valid TOML"):
        parse_scenario("[run]\nduration_s = 1\nname = = 2\n", "x.toml")


@pytest.mark.parametrize(
    ("extra", "path", "text"),
    [
        ('[[faults]]\nkind = "jam"\nat_s = -1\nbands = ["vhf"]\n', "faults[0].at_s",
         "expected greater than or equal to 0, found -1"),
        ('[[faults]]\nkind = "nuke"\nat_s = 1\n', "faults[0].kind", "found 'nuke'"),
        ('[[faults]]\nat_s = 1\n', "faults[0].kind", "found nothing"),
        ('[[links]]\na = "a"\nb = "b"\nbearer = "hf"\nrate_bps = 0\n', "links[2].rate_bps",
         "expected greater than 0, found 0"),
        ('[[links]]\na = "a"\nb = "b"\nbearer = "hf"\nrate_bps = 1_000_000_000_001\n',
         "links[2].rate_bps", "expected less than or equal to 1000000000000"),
        ('[[links]]\na = "a"\nb = "b"\nbearer = "hf"\ncolour = "red"\n', "links[2].colour",
         "unknown key"),
        ('[[links]]\na = "a"\nbearer = "hf"\n', "links[2].b", "expected a value, found nothing"),
        ('[[traffic]]\nto = "parent"\nsize_bytes = 1\ninterval_s = 1\nprecedence = "urgent"\n',
         "traffic[0].precedence", "found 'urgent'"),
        ('[[nodes]]\nname = "c"\nrole = "boss"\n', "nodes[3].role",
         "expected one of ['hq', 'unit', 'relay'], found 'boss'"),
    ],
)  # fmt: skip
def test_pydantic_errors_as_key_paths(extra: str, path: str, text: str) -> None:
    error = problem(extra)
    assert error.path == path
    assert text in str(error).splitlines()[0]
    assert str(error).startswith(f"reference.toml: {path}: ")


def test_several_problems_in_one_error_the_first_few_shown() -> None:
    extra = "".join(f'[[links]]\na = "a"\nb = "b"\nbearer = "x{i}"\n' for i in range(8))
    error = problem(extra)
    lines = str(error).splitlines()
    assert len(error.problems) == 8
    assert lines[0].startswith("reference.toml: links[2].bearer:")
    assert lines[4].startswith("reference.toml: links[6].bearer:")
    assert lines[5] == "reference.toml: and 3 more problems"


def test_a_short_list_from_invalid_items_is_not_a_second_problem() -> None:
    text = '[run]\nduration_s = 1\n[[nodes]]\nname = "a"\nrole = "boss"\n'
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "x.toml")
    assert [p.path for p in caught.value.problems] == ["nodes[0].role"]


NODE_C = '[[nodes]]\nname = "c"\n'
LINK = '[[links]]\na = "{a}"\nb = "{b}"\nbearer = "{bearer}"\n'
TRAFFIC = '[[traffic]]\nsources = [{sources}]\nto = "{to}"\nsize_bytes = 10\ninterval_s = 60\n'


@pytest.mark.parametrize(
    ("extra", "path", "text"),
    [
        ('[[nodes]]\nname = "a"\n', "nodes[3].name", "found 'a' (also nodes[1])"),
        ('[[links]]\na = "hq"\nb = "a"\nbearer = "radio-relay"\n', "links[2].name",
         "found 'hq-a-radio-relay' (also links[0])"),
        ('[[nets]]\nname = "hq-a-radio-relay"\nbearer = "uhf"\nmembers = ["a", "b"]\n',
         "nets[1].name", "expected a new link or net name"),
        (LINK.format(a="zz", b="a", bearer="hf"), "links[2].a",
         "expected a node name, found 'zz'"),
        (LINK.format(a="a", b="a", bearer="hf"), "links[2].b", "found 'a' at both ends"),
        ('[[nets]]\nname = "n2"\nbearer = "fibre"\nmembers = ["a", "b"]\n', "nets[1].bearer",
         "expected a shared radio bearer, one of ['hf', 'uhf', 'vhf'], found 'fibre'"),
        ('[[nets]]\nname = "n2"\nbearer = "uhf"\nmembers = ["a", "q"]\n', "nets[1].members[1]",
         "expected a node name, found 'q'"),
        ('[[nets]]\nname = "n2"\nbearer = "uhf"\nmembers = ["a", "b", "a"]\n',
         "nets[1].members[2]", "found 'a' again"),
        (NODE_C, "nodes[3]", "found 'c' in none"),
        (NODE_C.replace('"c"', '"c"\nparent = "boss"') + LINK.format(a="c", b="a", bearer="hf"),
         "nodes[3].parent", "expected a node name, found 'boss'"),
        (NODE_C.replace('"c"', '"c"\nparent = "c"') + LINK.format(a="c", b="a", bearer="hf"),
         "nodes[3].parent", "the node itself"),
        (TRAFFIC.format(sources='"role:relay"', to="parent"), "traffic[0].sources[0]",
         "found 'role:relay'"),
        (TRAFFIC.format(sources='"group:nope"', to="parent"), "traffic[0].sources[0]",
         "found 'group:nope'"),
        (TRAFFIC.format(sources='"nobody"', to="parent"), "traffic[0].sources[0]",
         "found 'nobody'"),
        (TRAFFIC.format(sources='"hq"', to="parent"), "traffic[0].to",
         "none of the selected sources has one"),
        (TRAFFIC.format(sources='"a"', to="children"), "traffic[0].to", "is a parent"),
        (TRAFFIC.format(sources='"hq"', to="own-group"), "traffic[0].to",
         "in a group with other members"),
        (TRAFFIC.format(sources='"all"', to="group:nope"), "traffic[0].to",
         "expected a group, one of ['coy', 'staff'], found 'nope'"),
        (TRAFFIC.format(sources='"all"', to="zz"), "traffic[0].to", "found 'zz'"),
    ],
)  # fmt: skip
def test_cross_references(extra: str, path: str, text: str) -> None:
    error = problem(extra)
    assert error.path == path, str(error)
    assert text in str(error).splitlines()[0]
    assert str(error).startswith(f"reference.toml: {path}: ")


@pytest.mark.parametrize(
    "fine",
    [
        TRAFFIC.format(sources='"all"', to="parent"),  # hq has none, a and b have one
        TRAFFIC.format(sources='"role:hq"', to="children"),
        TRAFFIC.format(sources='"group:coy"', to="own-group"),
        TRAFFIC.format(sources='"a"', to="hq"),
        TRAFFIC.format(sources='"all", "hq"', to="group:staff"),
    ],
)
def test_selectors_that_pick_something_pass(fine: str) -> None:
    parse_scenario(BASE + fine, "reference.toml")


FAULT = "[[faults]]\n"


@pytest.mark.parametrize(
    ("extra", "path", "text"),
    [
        (FAULT + 'kind = "cut"\nat_s = 3600\nlink = "hq-a-radio-relay"\n', "faults[0].at_s",
         "expected a time before run.duration_s (3600.0), found 3600.0"),
        (FAULT + 'kind = "cut"\nat_s = 10\nlink = "nope"\n', "faults[0].link", "found 'nope'"),
        (FAULT + 'kind = "cut"\nat_s = 10\nlink = "net-1"\n', "faults[0].link",
         "found net 'net-1'"),
        (FAULT + 'kind = "latency"\nat_s = 10\nadd_s = 1\n', "faults[0]",
         "expected link or bearer, found neither"),
        (FAULT + 'kind = "throttle"\nat_s = 10\nfactor = 0.5\nlink = "net-1"\nbearer = "vhf"\n',
         "faults[0].bearer", "expected either link or bearer, found both"),
        (FAULT + 'kind = "loss"\nat_s = 10\nloss = 0.5\nlink = "nope"\n', "faults[0].link",
         "expected a link or net name, found 'nope'"),
        (FAULT + 'kind = "loss"\nat_s = 10\nloss = 0.5\nbearer = "vhff"\n', "faults[0].bearer",
         "found 'vhff'"),
        (FAULT + 'kind = "jam"\nat_s = 10\nbands = ["vhf", "ka"]\n', "faults[0].bands[1]",
         "found 'ka'"),
        (FAULT + 'kind = "jam"\nat_s = 10\nbands = ["satcom"]\nbeam = "geo-9"\n',
         "faults[0].beam", "one of ['geo-1'], found 'geo-9'"),
        (FAULT + 'kind = "satcom-outage"\nat_s = 10\nbearer = "hf"\n', "faults[0].bearer",
         "expected one of ['satcom-geo', 'satcom-leo'], found 'hf'"),
        (FAULT + 'kind = "satcom-outage"\nat_s = 10\nbeam = "b"\n', "faults[0].beam",
         "found 'b'"),
        (FAULT + 'kind = "destroy"\nat_s = 10\nnode = "zz"\n', "faults[0].node", "found 'zz'"),
        (FAULT + 'kind = "restart"\nat_s = 10\nnode = "zz"\n', "faults[0].node", "found 'zz'"),
        (FAULT + 'kind = "emcon"\nat_s = 10\nnode = "a"\nbands = ["fm"]\n',
         "faults[0].bands[0]", "found 'fm'"),
    ],
)  # fmt: skip
def test_fault_checks(extra: str, path: str, text: str) -> None:
    error = problem(extra)
    assert error.path == path, str(error)
    assert text in str(error).splitlines()[0]


def test_faults_that_name_real_things_pass() -> None:
    faults = (
        FAULT + 'kind = "cut"\nat_s = 10\nlink = "hq-a-radio-relay"\nduration_s = 60\n'
        + FAULT + 'kind = "latency"\nat_s = 10\nadd_s = 2\nbearer = "satcom-geo"\n'
        + FAULT + 'kind = "throttle"\nat_s = 10\nfactor = 0.1\nlink = "net-1"\n'
        + FAULT + 'kind = "jam"\nat_s = 0\nbands = ["vhf"]\nposition = [1, 1]\n'
        + FAULT + 'kind = "jam"\nat_s = 0\nbands = ["satcom"]\nbeam = "geo-1"\n'
        + FAULT + 'kind = "emcon"\nat_s = 5\nnode = "b"\nbands = ["vhf"]\n'
    )  # fmt: skip
    scenario = parse_scenario(BASE + faults, "reference.toml")
    assert isinstance(scenario.faults[0], Cut)
    assert isinstance(scenario.faults[3], Jam)


def test_round_trip_of_a_hand_written_file() -> None:
    text = (
        BASE
        + TRAFFIC.format(sources='"all"', to="parent")
        + 'precedence = "flash"\n'
        + FAULT + 'kind = "jam"\nat_s = 0\nbands = ["vhf"]\nposition = [1, 1]\nreach_km = 5\n'
        + FAULT + 'kind = "restart"\nat_s = 100\nnode = "a"\n'
    )  # fmt: skip
    scenario = parse_scenario(text, "reference.toml")
    assert scenario.traffic[0].precedence is Precedence.FLASH
    again = parse_scenario(dump_scenario(scenario), "dumped.toml")
    assert again == scenario
    assert 'precedence = "FLASH"' in dump_scenario(scenario)


def test_round_trip_of_a_generated_brigade() -> None:
    scenario = brigade(7)
    text = dump_scenario(scenario)
    assert text.startswith("[run]\n")
    assert parse_scenario(text, "brigade.toml") == scenario


DOCS = Path(__file__).parent.parent / "docs" / "scenarios.md"


def test_the_documented_example_loads() -> None:
    text = DOCS.read_text()
    example = text.split("## An annotated example", 1)[1].split("```toml\n", 1)[1].split("```")[0]
    scenario = parse_scenario(example, "scenarios.md")
    assert scenario.run.name == "reference"
    assert [f.kind for f in scenario.faults] == ["jam", "cut", "latency"]
    assert scenario.traffic[1].precedence is Precedence.IMMEDIATE


def test_every_key_of_every_model_is_documented() -> None:
    text = DOCS.read_text()
    models = [Run, Node, Link, Net, Traffic, *get_args(get_args(Fault)[0])]
    for model in models:
        for key in model.model_fields:
            assert f"`{key}`" in text, f"{model.__name__}.{key} is not in docs/scenarios.md"
    for model in get_args(get_args(Fault)[0]):
        kind = get_args(model.model_fields["kind"].annotation)[0]
        assert f"| `{kind}` |" in text


@pytest.mark.parametrize(
    ("timers", "path", "text"),
    [
        ("hello_interval_s = 0.01", "engine.hello_interval_s", "0.05 <= hello_interval"),
        ("hello_interval_s = 10", "engine.dead_interval_s", "hello_interval (10) < dead_interval"),
    ],
)
def test_engine_timers_within_the_engine_bounds(timers: str, path: str, text: str) -> None:
    error = problem(f"\n[engine]\n{timers}\n")
    assert f"{path}: expected" in str(error) and text in str(error)
