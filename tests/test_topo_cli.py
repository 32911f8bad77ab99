"""`tawan topo generate` and `tawan topo analyze`, through a parser of their own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tawan.cli import UserError, command_of
from topologies.cli import add_topo_commands
from topologies.generate import brigade
from topologies.load import dump_scenario, load_scenario, parse_scenario


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="tawan")
    add_topo_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["topo", *argv])
    command = command_of(args)
    assert command is not None
    return command(args)


def test_generate_brigade_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("generate", "brigade", "--seed", "3") == 0
    out = capsys.readouterr().out
    assert parse_scenario(out, "stdout") == brigade(3)


def test_generate_brigade_near_a_node_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b.toml"
    assert run("generate", "brigade", "--nodes", "200", "--no-traffic", "--duration", "7200",
               "--out", str(out)) == 0  # fmt: skip
    s = load_scenario(out)
    assert abs(len(s.nodes) - 200) <= 4
    assert s.traffic == ()
    assert s.run.duration_s == 7200
    assert "b.toml: brigade-" in capsys.readouterr().out


def test_generate_battalion_and_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("generate", "battalion", "--nodes", "30") == 0
    battalion = parse_scenario(capsys.readouterr().out, "stdout")
    assert abs(len(battalion.nodes) - 30) <= 2
    assert run("generate", "mesh", "--nodes", "25", "--seed", "9") == 0
    mesh = parse_scenario(capsys.readouterr().out, "stdout")
    assert len(mesh.nodes) == 25
    assert mesh.nets[0].bearer == "uhf"


def test_generate_graphml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "g.graphml"
    path.write_text(
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
        '<key id="bearer" for="edge" attr.name="bearer" attr.type="string"/>'
        '<graph edgedefault="undirected"><node id="a"/><node id="b"/>'
        '<edge source="a" target="b"><data key="bearer">fibre</data></edge></graph></graphml>'
    )
    assert run("generate", "graphml", "--from", str(path), "--no-traffic") == 0
    s = parse_scenario(capsys.readouterr().out, "stdout")
    assert [(link.a, link.b, link.bearer) for link in s.links] == [("a", "b", "fibre")]
    with pytest.raises(UserError, match="expected --from FILE"):
        run("generate", "graphml")
    path.write_text(path.read_text().replace("fibre", "laser"))
    with pytest.raises(UserError, match=r"g\.graphml: links\[0\]\.bearer: .*found 'laser'"):
        run("generate", "graphml", "--from", str(path))


def test_generate_rejects_impossible_counts() -> None:
    with pytest.raises(UserError, match=r"topo generate brigade: .*expected at least"):
        run("generate", "brigade", "--nodes", "2")


def test_analyze_tables_json_and_picture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.toml"
    path.write_text(dump_scenario(brigade(2)))
    picture = tmp_path / "s.png"
    assert run("analyze", str(path), "--picture", str(picture)) == 0
    text = capsys.readouterr().out
    assert "Bearer-disjoint paths to headquarters" in text
    assert f"picture: {picture}" in text
    assert picture.read_bytes()[:4] == b"\x89PNG"
    assert run("analyze", str(path), "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "tawan-analysis/1"
    assert data["unreachable"] == []
    assert data["nodes"] == 52


def test_analyze_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[run]\nduration_s = 10\n[[nodes]]\nname = "a"\n')
    with pytest.raises(UserError, match=r"^bad\.toml: nodes\[0\]: expected the node in a link"):
        run("analyze", str(path))
    path.write_text(dump_scenario(brigade(2)))
    with pytest.raises(UserError, match=r"expected a \.png or \.svg"):
        run("analyze", str(path), "--picture", str(tmp_path / "x.bmp"))
    with pytest.raises(OSError):
        run("analyze", str(tmp_path / "missing.toml"))
