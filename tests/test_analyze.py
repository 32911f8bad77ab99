"""Analysis and drawing on small networks whose answers are known by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from topologies.analyze import analysis_json, analyze, draw, draw_bytes, render_analysis
from topologies.generate import brigade
from topologies.graph import network_graph
from topologies.load import scenario_from_data
from topologies.scenario import Scenario


def scenario(nodes: list[dict[str, Any]], links: list[tuple[str, str, str]],
             nets: list[dict[str, Any]] | None = None) -> Scenario:  # fmt: skip
    return scenario_from_data(
        {
            "run": {"name": "hand", "duration_s": 100},
            "nodes": nodes,
            "links": [{"a": a, "b": b, "bearer": bearer} for a, b, bearer in links],
            "nets": nets or [],
        },
        "hand",
    )


def star_with_tail() -> Scenario:
    """hq-r fibre, r-v and hq-v close a triangle; u hangs off r, w off u."""
    return scenario(
        [
            {"name": "hq", "role": "hq"},
            {"name": "r", "parent": "hq"},
            {"name": "u", "parent": "r"},
            {"name": "v", "parent": "hq"},
            {"name": "w", "parent": "u"},
        ],
        [
            ("hq", "r", "fibre"),
            ("r", "u", "radio-relay"),
            ("r", "v", "radio-relay"),
            ("hq", "v", "satcom-geo"),
            ("u", "w", "hf"),
        ],
    )


def test_articulation_points_and_bridges() -> None:
    a = analyze(star_with_tail())
    assert a.mix.components == (("hq", "r", "u", "v", "w"),)
    assert a.mix.articulation_points == ("r", "u")
    assert a.mix.bridges == ("r-u-radio-relay", "u-w-hf")
    assert a.bearers == ("fibre", "hf", "radio-relay", "satcom-geo")
    relay = a.by_bearer["radio-relay"]
    assert relay.components == (("r", "u", "v"),)
    assert relay.articulation_points == ("r",)
    assert relay.bridges == ("r-u-radio-relay", "r-v-radio-relay")
    assert a.by_bearer["hf"].components == (("u", "w"),)


def test_bearer_disjoint_paths_and_single_bearer_cuts() -> None:
    a = analyze(star_with_tail())
    assert dict(a.disjoint_paths) == {"r": 2, "u": 1, "v": 2, "w": 1}
    assert dict(a.cut_off_by) == {
        "fibre": (),
        "hf": ("w",),
        "radio-relay": ("u",),
        "satcom-geo": (),
    }
    assert a.unreachable == ()


def test_a_second_link_between_the_same_nodes_is_no_bridge() -> None:
    s = scenario(
        [{"name": "hq", "role": "hq"}, {"name": "x", "parent": "hq"}],
        [("hq", "x", "fibre"), ("hq", "x", "satcom-geo")],
    )
    a = analyze(s)
    assert a.mix.bridges == ()
    assert a.by_bearer["fibre"].bridges == ("hq-x-fibre",)
    assert a.disjoint_paths == {"x": 2}


def test_paths_sharing_a_bearer_count_once() -> None:
    """Two node-disjoint paths, both partly over fibre: one bearer-disjoint path."""
    s = scenario(
        [
            {"name": "hq", "role": "hq"},
            {"name": "x", "parent": "hq"},
            {"name": "a"},
            {"name": "b"},
        ],
        [("x", "a", "fibre"), ("a", "hq", "hf"), ("x", "b", "fibre"), ("b", "hq", "satcom-geo")],
    )
    a = analyze(s)
    assert a.disjoint_paths == {"x": 1}
    assert a.cut_off_by["fibre"] == ("x",)
    assert a.cut_off_by["hf"] == ()


def test_disjoint_count_is_exact_where_taking_the_first_set_is_not() -> None:
    """Minimal connecting bearer sets {fibre, hf}, {radio-relay, fibre}, {hf, satcom-geo}:
    taking {fibre, hf} first leaves nothing; the best is the other two."""
    s = scenario(
        [{"name": "hq", "role": "hq"}, {"name": "x", "parent": "hq"},
         {"name": "p"}, {"name": "q"}, {"name": "s"}],
        [("x", "p", "fibre"), ("p", "hq", "hf"),
         ("x", "q", "radio-relay"), ("q", "hq", "fibre"),
         ("x", "s", "hf"), ("s", "hq", "satcom-geo")],
    )  # fmt: skip
    assert analyze(s).disjoint_paths == {"x": 2}


def test_unreachable_node_and_components() -> None:
    s = scenario(
        [{"name": "hq", "role": "hq"}, {"name": "a", "parent": "hq"},
         {"name": "b", "parent": "hq"}, {"name": "c"}],
        [("hq", "a", "fibre"), ("b", "c", "fibre")],
    )  # fmt: skip
    a = analyze(s)
    assert a.mix.components == (("a", "hq"), ("b", "c"))
    assert a.unreachable == ("b",)
    assert a.disjoint_paths == {"a": 1, "b": 0}
    assert a.cut_off_by == {"fibre": ("a",)}


def test_net_edges_only_between_members_in_range() -> None:
    nodes = [
        {"name": "hq", "role": "hq", "position": [0, 0]},
        {"name": "a", "parent": "hq", "position": [20, 0]},
        {"name": "far", "parent": "hq", "position": [45, 0]},
    ]
    net = {"name": "n", "bearer": "vhf", "members": ["hq", "a", "far"]}
    graph = network_graph(scenario(nodes, [], [net]))
    assert sorted(tuple(sorted(e)) for e in graph.edges()) == [("a", "far"), ("a", "hq")]
    data = graph.get_edge_data("hq", "a")["n"]
    assert data == {
        "link": "n",
        "bearer": "vhf",
        "band": "vhf",
        "shared": True,
        "distance_km": 20.0,
    }
    a = analyze(scenario(nodes, [], [net]))
    assert a.mix.articulation_points == ("a",)
    assert a.mix.bridges == ("n",)  # hq-a and a-far, both on the net
    wide = network_graph(scenario(nodes, [], [{**net, "range_km": 50}]))
    assert graph.number_of_edges() == 2
    assert wide.number_of_edges() == 3
    assert graph.nodes["a"] == {
        "role": "unit",
        "position": (20.0, 0.0),
        "groups": (),
        "parent": "hq",
    }


def test_render_and_json() -> None:
    a = analyze(star_with_tail())
    text = render_analysis(a)
    assert "hand: 5 nodes" in text
    assert "radio-relay" in text
    assert "u-w-hf" in text
    data = analysis_json(a)
    assert json.loads(json.dumps(data)) == data
    assert data["cut_off_by"]["hf"] == ["w"]
    assert data["mix"]["articulation_points"] == ["r", "u"]
    assert data["disjoint_paths"]["r"] == 2


def test_draw_png_and_svg(tmp_path: Path) -> None:
    s = brigade(1)
    png = draw_bytes(s, "png")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 10_000
    svg = draw_bytes(star_with_tail(), "svg")
    assert b"<svg" in svg[:1000]
    assert b"satcom-geo" in svg  # the legend
    draw(s, tmp_path / "net.svg")
    draw(s, tmp_path / "net.PNG")
    assert (tmp_path / "net.svg").read_bytes().lstrip().startswith(b"<?xml")
    assert (tmp_path / "net.PNG").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match=r"expected a \.png or \.svg"):
        draw(s, tmp_path / "net.jpg")
    with pytest.raises(ValueError, match="expected one of"):
        draw_bytes(s, "gif")
