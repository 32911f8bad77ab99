"""The survival campaigns (scenarios/campaign-*.toml) and the transforms bench/survival.py
runs them through (topologies.transforms)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import pytest

from topologies.load import load_scenario
from topologies.scenario import Cut, Jam, SatcomOutage, Scenario
from topologies.transforms import (
    PRIMARY_BEARERS,
    TransformError,
    compressed,
    primary_only,
    with_routing,
)

SCENARIOS = Path(__file__).parent.parent / "scenarios"
CAMPAIGNS = ("campaign-jamming", "campaign-cuts", "campaign-all")


def load(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.toml")


@pytest.mark.parametrize("name", CAMPAIGNS)
def test_each_campaign_loads_and_is_the_reference_network_with_other_faults(name: str) -> None:
    campaign, reference = load(name), load("reference")
    assert campaign.run.name == name
    assert campaign.run.duration_s == reference.run.duration_s
    for part in ("engine", "nodes", "links", "nets", "traffic"):
        assert getattr(campaign, part) == getattr(reference, part), part
    assert campaign.faults and campaign.faults != reference.faults


def test_the_campaigns_are_what_their_names_say() -> None:
    jamming, cuts, everything = (load(name) for name in CAMPAIGNS)
    jammed = Counter(band for f in jamming.faults if isinstance(f, Jam) for band in f.bands)
    assert jammed == {"vhf": 3, "hf": 1}
    assert {type(f) for f in cuts.faults} == {Cut, SatcomOutage}
    # the outage overlaps every cut that has an end (and the one that has none)
    outage = next(f for f in cuts.faults if isinstance(f, SatcomOutage))
    assert outage.duration_s is not None
    for cut in (f for f in cuts.faults if isinstance(f, Cut)):
        end = float("inf") if cut.duration_s is None else cut.at_s + cut.duration_s
        assert cut.at_s < outage.at_s + outage.duration_s and outage.at_s < end
    assert set(jamming.faults) | set(cuts.faults) < set(everything.faults)


@pytest.mark.parametrize("name", ("reference", *CAMPAIGNS))
def test_primary_only_leaves_one_bearer_between_any_two_nodes(name: str) -> None:
    scenario = load(name)
    single = primary_only(scenario)
    assert {link.bearer for link in single.links} | {net.bearer for net in single.nets} <= (
        PRIMARY_BEARERS
    )
    assert single.nodes == scenario.nodes and single.traffic == scenario.traffic
    pairs: Counter[frozenset[str]] = Counter(frozenset((li.a, li.b)) for li in single.links)
    for net in single.nets:
        pairs.update(frozenset(pair) for pair in itertools.combinations(net.members, 2))
    assert max(pairs.values()) == 1
    # what the mix had beside them is gone, with the faults aimed at it; the rest stay
    removed = {Scenario.link_name(li) for li in scenario.links} - {
        Scenario.link_name(li) for li in single.links
    }
    assert "tawan-fibre-coy-1-1" in removed
    assert not any(isinstance(f, Cut) and f.link in removed for f in single.faults)
    assert not any(isinstance(f, SatcomOutage) for f in single.faults)
    kept = [f for f in scenario.faults if not (isinstance(f, Cut) and f.link in removed)]
    assert single.faults == tuple(f for f in kept if not isinstance(f, SatcomOutage))


def test_primary_only_refuses_to_strand_a_node() -> None:
    with pytest.raises(TransformError, match=r"expected every node on a kept bearer, found \["):
        primary_only(load("reference"), keep={"radio-relay"})  # the platoons are on VHF only


def test_compressed_scales_the_timeline_and_with_routing_sets_the_mode() -> None:
    scenario = load("campaign-all")
    short = compressed(scenario, 720.0)
    assert short.run.duration_s == 720.0
    for before, after in zip(scenario.faults, short.faults, strict=True):
        assert after.at_s == pytest.approx(before.at_s / 10)
        if before.duration_s is None:
            assert after.duration_s is None
        else:
            assert after.duration_s == pytest.approx(before.duration_s / 10)
    assert with_routing(scenario, "flood").engine.routing == "flood"
    assert with_routing(scenario, "flood").engine.config().routing == "flood"
    with pytest.raises(TransformError, match="expected a duration > 0 s"):
        compressed(scenario, 0.0)
