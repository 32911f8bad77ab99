"""Generators: the same seed gives the same scenario, shaped like the unit it stands for."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import pytest

from tawan.core.precedence import Precedence
from topologies.analyze import analyze
from topologies.bearers import BEARERS
from topologies.generate import battalion, brigade, brigade_shape, from_graphml, mesh
from topologies.graph import distance_km, network_graph
from topologies.load import ScenarioError, dump_scenario, parse_scenario
from topologies.scenario import Scenario


def attached(scenario: Scenario) -> set[str]:
    names = {end for link in scenario.links for end in (link.a, link.b)}
    return names | {m for net in scenario.nets for m in net.members}


def test_same_seed_same_scenario_other_seed_other_positions() -> None:
    assert brigade(3) == brigade(3)
    assert dump_scenario(battalion(5)) == dump_scenario(battalion(5))
    assert mesh(2, 30, 20.0) == mesh(2, 30, 20.0)
    assert brigade(3).nodes != brigade(4).nodes
    assert mesh(2, 30, 20.0).nodes != mesh(3, 30, 20.0).nodes


@pytest.mark.parametrize("target", [50, 200, 500])
def test_brigade_node_count_near_the_target(target: int) -> None:
    scenario = brigade(1, nodes=target)
    assert abs(len(scenario.nodes) - target) <= max(2, target * 0.02)
    _, companies, platoons = brigade_shape(target)
    assert 2 <= companies <= 8
    assert 2 <= platoons <= 8


def test_brigade_default_shape_and_kept_counts() -> None:
    assert len(brigade(1).nodes) == 1 + 3 * (1 + 4 * (1 + 3))
    assert brigade_shape(200, battalions=2)[0] == 2
    with pytest.raises(ValueError, match="expected at least"):
        brigade(1, nodes=2)


def test_brigade_structure() -> None:
    s = brigade(11)
    nodes = {n.name: n for n in s.nodes}
    top = [n for n in s.nodes if n.parent is None]
    assert [n.name for n in top] == ["bde-hq"]
    assert attached(s) == set(nodes), "every node in a link or net"
    by_pair = {(link.a, link.b, link.bearer) for link in s.links}
    for b in (1, 2, 3):
        bn = f"bn-{b}-hq"
        assert ("bde-hq", bn, "fibre") in by_pair
        assert ("bde-hq", bn, "satcom-geo") in by_pair
        assert nodes[bn].parent == "bde-hq"
        assert nodes[bn].groups == (f"bn-{b}", "bde")
        hf = next(net for net in s.nets if net.name == f"hf-bn-{b}")
        assert hf.bearer == "hf"
        assert set(hf.members) == {bn} | {f"coy-{b}-{c}-hq" for c in range(1, 5)}
        for c in range(1, 5):
            coy = f"coy-{b}-{c}"
            assert (bn, f"{coy}-hq", "radio-relay") in by_pair
            assert nodes[f"{coy}-hq"].groups == (coy, f"bn-{b}")
            assert nodes[f"{coy}-hq"].parent == bn
            assert nodes[f"{coy}-hq"].role == "hq"
            vhf = next(net for net in s.nets if net.name == f"vhf-{coy}")
            assert vhf.members[0] == f"{coy}-hq"
            for p in range(1, 4):
                platoon = nodes[f"pl-{b}-{c}-{p}"]
                assert platoon.parent == f"{coy}-hq"
                assert platoon.groups == (coy,)
                assert platoon.role == "unit"
                assert platoon.name in vhf.members
            # Every two members of the company net hear each other.
            reach = BEARERS["vhf"].range_km
            assert reach is not None
            for a in vhf.members:
                for other in vhf.members:
                    assert distance_km(nodes[a].position, nodes[other].position) <= reach
            assert distance_km(nodes[bn].position, nodes[f"{coy}-hq"].position) <= 50.0
    satcom_companies = [
        link for link in s.links if link.bearer == "satcom-geo" and link.b.startswith("coy-")
    ]
    assert 1 <= len(satcom_companies) < 12


def test_groups_and_parents_are_sane_in_every_generator() -> None:
    for s in (brigade(2, nodes=120), battalion(3), mesh(4, 25, 15.0)):
        names = {n.name for n in s.nodes}
        roots = [n for n in s.nodes if n.parent is None]
        assert len(roots) == 1
        assert roots[0].role == "hq"
        for node in s.nodes:
            assert node.groups, node.name
            assert node.parent is None or node.parent in names
            # Walking up reaches the top in a few steps (no loops).
            up, steps = node, 0
            while up.parent is not None and steps < 10:
                up = next(n for n in s.nodes if n.name == up.parent)
                steps += 1
            assert up is roots[0]
        assert attached(s) == names


def test_a_generated_brigade_has_no_node_cut_off_in_the_whole_mix() -> None:
    s = brigade(5, nodes=200)
    analysis = analyze(s)
    assert analysis.unreachable == ()
    assert len(analysis.mix.components) == 1
    # Headquarters have a second bearer; a platoon hangs on its company's VHF net alone.
    assert all(
        analysis.disjoint_paths[n.name] >= 2
        for n in s.nodes
        if n.name.endswith("-hq") and n.parent
    )
    assert set(analysis.cut_off_by["vhf"]) == {n.name for n in s.nodes if n.name.startswith("pl-")}
    assert analysis.cut_off_by["fibre"] == ()


def test_standard_traffic_and_no_traffic() -> None:
    s = brigade(1)
    by_name = {t.name: t for t in s.traffic}
    assert by_name["position-report"].to == "parent"
    assert by_name["position-report"].size_bytes == 100
    assert by_name["position-report"].interval_s == 60
    assert by_name["situation-report"].precedence is Precedence.PRIORITY
    assert by_name["situation-report"].to == "own-group"
    assert by_name["orders"].sources == ("role:hq",)
    assert by_name["orders"].precedence is Precedence.IMMEDIATE
    assert by_name["flash"].size_bytes == 150
    assert by_name["flash"].interval_s == 900
    assert by_name["logistics"].share == 0.1
    assert by_name["logistics"].size_bytes == 50_000
    assert s.faults == ()
    assert brigade(1, traffic=False).traffic == ()
    assert mesh(1, 10, 10.0, traffic=False).traffic == ()


def test_mesh_is_connected_as_far_as_range_allows() -> None:
    for seed in range(5):
        s = mesh(seed, 30, 100.0)  # sparse: random places alone would leave radios apart
        assert len(s.nodes) == 30
        graph = network_graph(s)
        assert nx.is_connected(graph), seed
        assert [net.bearer for net in s.nets] == ["uhf"]
    relay = mesh(1, 30, 80.0, bearer="radio-relay")
    assert relay.nets == ()
    assert nx.is_connected(network_graph(relay))
    assert all(distance_km(*(n.position for n in relay.nodes if n.name in (link.a, link.b))) <= 50
               for link in relay.links)  # fmt: skip


def test_mesh_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        mesh(1, 10, 10.0, bearer="laser")
    with pytest.raises(ValueError, match="at least 2"):
        mesh(1, 1, 10.0)


GRAPHML = """<?xml version="1.0" encoding="UTF-8"?>
<graphml xmlns="http://graphml.graphdrawing.org/xmlns">
  <key id="role" for="node" attr.name="role" attr.type="string"/>
  <key id="x" for="node" attr.name="x" attr.type="double"/>
  <key id="y" for="node" attr.name="y" attr.type="double"/>
  <key id="groups" for="node" attr.name="groups" attr.type="string"/>
  <key id="parent" for="node" attr.name="parent" attr.type="string"/>
  <key id="bearer" for="edge" attr.name="bearer" attr.type="string"/>
  <key id="net" for="edge" attr.name="net" attr.type="string"/>
  <graph edgedefault="undirected">
    <node id="hq"><data key="role">hq</data></node>
    <node id="a"><data key="x">2.5</data><data key="y">1</data>
      <data key="groups">coy, staff</data><data key="parent">hq</data></node>
    <node id="b"><data key="parent">hq</data></node>
    <edge source="hq" target="a"><data key="bearer">radio-relay</data></edge>
    <edge source="hq" target="b"><data key="bearer">%s</data></edge>
    <edge source="a" target="b"><data key="bearer">vhf</data><data key="net">n1</data></edge>
    <edge source="hq" target="b"><data key="bearer">vhf</data><data key="net">n1</data></edge>
  </graph>
</graphml>
"""


def test_from_graphml(tmp_path: Path) -> None:
    path = tmp_path / "plan.graphml"
    path.write_text(GRAPHML % "satcom-geo")
    s = from_graphml(path)
    nodes = {n.name: n for n in s.nodes}
    assert nodes["hq"].role == "hq"
    assert nodes["a"].position == (2.5, 1.0)
    assert nodes["a"].groups == ("coy", "staff")
    assert nodes["b"].parent == "hq"
    assert [(link.a, link.b, link.bearer) for link in s.links] == [
        ("hq", "a", "radio-relay"),
        ("hq", "b", "satcom-geo"),
    ]
    assert [(net.name, net.bearer, set(net.members)) for net in s.nets] == [
        ("n1", "vhf", {"a", "b", "hq"})
    ]
    assert parse_scenario(dump_scenario(s), "again") == s


def test_from_graphml_errors(tmp_path: Path) -> None:
    path = tmp_path / "plan.graphml"
    path.write_text(GRAPHML % "laser")
    with pytest.raises(
        ScenarioError, match=r"^plan\.graphml: links\[1\]\.bearer: .*found 'laser'"
    ):
        from_graphml(path)
    path.write_text(GRAPHML.replace('<data key="bearer">radio-relay</data>', ""))
    with pytest.raises(
        ScenarioError, match=r"^plan\.graphml: edge hq-a: expected attribute 'bearer'"
    ):
        from_graphml(path)
    path.write_text("<graphml><oops")
    with pytest.raises(ScenarioError, match=r"^plan\.graphml: expected GraphML"):
        from_graphml(path)
