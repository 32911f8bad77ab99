"""PACE policy: the forwarding decision keeps each message to the bearers its precedence
and size may use, and a message with no such link up waits for one."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest
from harness import FakeLink, Net, seeded_mission
from test_engine import is_data, noise

from crypto import schedule
from emulator.oracle import earliest_arrivals
from tawan.core.engine import EngineConfig
from tawan.core.frames import DataFrame, decode_frame
from tawan.core.pace import DEFAULT_PACE, PacePolicy, covers
from tawan.core.precedence import Precedence
from tawan.core.routing import Router, restricted_links
from tawan.core.specs import EngineConfigError
from transports.profile import BearerProfile

VHF = BearerProfile(name="vhf", rate_bps=16_000, delay_s=0.05, mtu=512, cost=4.0)
HF = BearerProfile(name="hf", rate_bps=2_400, delay_s=0.5, mtu=256, cost=10.0)
NO_ROUTINE_ON_HF = PacePolicy(
    bearers={Precedence.ROUTINE: frozenset({"vhf", "satcom"})}, largest={"hf": 1000}
)


def test_names_cover_their_dashed_kinds() -> None:
    assert covers("satcom", "satcom-geo") and covers("hf", "hf")
    assert not covers("satcom", "satcomx") and not covers("hf", "vhf")


def test_defaults_keep_large_messages_off_hf_only() -> None:
    assert DEFAULT_PACE.allows("hf", Precedence.ROUTINE, 4096)
    assert not DEFAULT_PACE.allows("hf", Precedence.FLASH, 4097)
    assert DEFAULT_PACE.allows("satcom-geo", Precedence.ROUTINE, 1 << 20)


@pytest.mark.parametrize("bad", [{"hf": 0}, {"hf": 1.5}])
def test_a_size_limit_must_be_a_size(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"PacePolicy\.largest"):
        PacePolicy(largest=bad)


def two_bearers() -> tuple[Net, FakeLink, list[str]]:
    vhf, hf = FakeLink("a", "b", VHF), FakeLink("b", "a", HF)  # two names: a-b, b-a
    net = Net({"a": [], "b": []}, [vhf, hf], config=EngineConfig(pace=NO_ROUTINE_ON_HF))
    net.run(5)
    data_links: list[str] = []
    net.tap(lambda sender, link, data: data_links.append(link) if is_data(data) else None)
    return net, vhf, data_links


def lose_vhf(net: Net, vhf: FakeLink) -> None:
    """a sees the VHF link die at once (as after a probe went unanswered)."""
    adj = net.engines["a"].neighbours.get(net.address("b"), vhf.name)
    assert adj is not None
    net.engines["a"]._set_up(adj, False)


def test_flash_fails_over_to_hf_and_routine_waits_for_vhf() -> None:
    net, vhf, data_links = two_bearers()
    routine_links: list[str] = []

    def routine(sender: str, link: str, data: bytes) -> None:
        frame = decode_frame(data[: -schedule.LINK_TAG_BYTES])
        if isinstance(frame, DataFrame) and frame.message.precedence == Precedence.ROUTINE:
            routine_links.append(link)

    net.tap(routine)
    vhf.up = False
    lose_vhf(net, vhf)
    net.submit("a", "b", b"flash", precedence=Precedence.FLASH, ttl=600)
    net.submit("a", "b", b"routine", precedence=Precedence.ROUTINE, ttl=600)
    net.run(20)
    assert [e.payload for e in net.delivered("b")] == [b"flash"]
    assert data_links and vhf.name not in data_links
    vhf.up = True
    net.run(60)  # b's hellos on the VHF link bring it back
    assert sorted(e.payload for e in net.delivered("b")) == [b"flash", b"routine"]
    # The routine one went once VHF was back, and only there. (The FLASH may go again
    # there too: b, which never saw VHF die, acknowledged it over VHF while it was dead.)
    assert routine_links == [vhf.name]


def test_a_message_too_large_for_hf_waits_whatever_its_precedence() -> None:
    net, vhf, data_links = two_bearers()
    vhf.up = False
    lose_vhf(net, vhf)
    on_hf: list[int] = []  # every frame of a on HF, by size: hellos and acknowledgements only
    net.tap(lambda sender, link, data: on_hf.append(len(data)) if link == "b-a" else None)
    net.submit("a", "b", noise(1500), precedence=Precedence.FLASH, ttl=600)
    net.run(30)
    assert net.delivered("b") == []
    assert data_links == [] and max(on_hf, default=0) < 100
    vhf.up = True
    net.run(60)
    assert [len(e.payload) for e in net.delivered("b")] == [1500]


def test_the_oracle_keeps_a_message_off_the_bearers_the_policy_bars() -> None:
    def timeline(pace: Mapping[str, object] | None) -> dict[str, object]:
        up = [{"start": 0.0, "end": 100.0, "up": True, "rate_bps": 2400.0, "delay_s": 0.5,
               "loss": 0.0}]  # fmt: skip
        tl: dict[str, object] = {
            "format": "tawan-timeline/1", "duration_s": 100.0,
            "nodes": [{"name": "a", "down": []}, {"name": "b", "down": []}],
            "links": [{"name": "a-b-hf", "bearer": "hf", "directions": [
                {"from": "a", "to": "b", "intervals": up},
                {"from": "b", "to": "a", "intervals": up}]}],
            "messages": [{"id": "m", "src": "a", "dst": ["b"], "size": 5000,
                          "precedence": "FLASH", "time": 1.0, "ttl_s": 90.0}],
        }  # fmt: skip
        if pace is not None:
            tl["pace"] = pace
        return tl

    assert earliest_arrivals(timeline(None))["m", "b"] is not None
    barred = {"bearers": {}, "largest": {"hf": 4096}}
    assert earliest_arrivals(timeline(barred))["m", "b"] is None


# ================================================================== routes per class
SATCOM = BearerProfile(name="satcom-geo", rate_bps=64_000, delay_s=0.3, mtu=1400, cost=1.0)
RELAY = BearerProfile(name="radio-relay", rate_bps=256_000, delay_s=0.01, mtu=1400, cost=2.0)
NO_ROUTINE_ON_SATCOM = PacePolicy(bearers={Precedence.ROUTINE: frozenset({"radio-relay"})})


def satcom_or_two_relays(config: EngineConfig) -> tuple[Net, list[tuple[str, Precedence]]]:
    """a and b joined by SATCOM, the cheaper path, and by radio relay through c."""
    links = [FakeLink("a", "b", SATCOM), FakeLink("a", "c", RELAY), FakeLink("c", "b", RELAY)]
    net = Net({"a": [], "b": [], "c": []}, links, config=config)
    net.run(10)
    carried: list[tuple[str, Precedence]] = []

    def spy(sender: str, link: str, data: bytes) -> None:
        frame = decode_frame(data[: -schedule.LINK_TAG_BYTES])
        if isinstance(frame, DataFrame):
            carried.append((link, frame.message.precedence))

    net.tap(spy)
    return net, carried


def test_a_class_kept_off_a_bearer_routes_round_it() -> None:
    """ROUTINE may not use SATCOM: a's shortest path to b is the SATCOM link, and ROUTINE
    goes round by c over radio relay instead of waiting at a for a link it may not take;
    FLASH still takes the shortest path. (Before, routes were the same for every class and
    ROUTINE waited at a for as long as SATCOM was the cheaper way.)"""
    net, carried = satcom_or_two_relays(EngineConfig(pace=NO_ROUTINE_ON_SATCOM))
    assert net.engines["a"].router.next_hop(net.address("b")) == net.address("b")
    net.submit("a", "b", b"routine", precedence=Precedence.ROUTINE, ttl=600)
    net.submit("a", "b", b"flash", precedence=Precedence.FLASH, ttl=600)
    net.run(10)
    assert sorted(e.payload for e in net.delivered("b")) == [b"flash", b"routine"]
    assert ("a-b", Precedence.ROUTINE) not in carried
    assert {link for link, p in carried if p == Precedence.ROUTINE} == {"a-c", "c-b"}
    assert {link for link, p in carried if p == Precedence.FLASH} == {"a-b"}


def test_what_every_class_may_use_routes_as_before() -> None:
    """No class kept off anything the network has: no links listed, one set of routes."""
    net, carried = satcom_or_two_relays(EngineConfig())
    net.submit("a", "b", b"routine", precedence=Precedence.ROUTINE, ttl=600)
    net.run(10)
    assert [e.payload for e in net.delivered("b")] == [b"routine"]
    assert carried == [("a-b", Precedence.ROUTINE)]
    assert all(not advert.links for advert in net.engines["a"].router.adverts.values())


def test_a_relay_routes_a_class_by_the_links_others_advertise() -> None:
    """c's own links are radio relay only; it learns from a's and b's adverts that their
    edge goes by SATCOM alone, and routes ROUTINE from c to b directly, never by a."""
    net, _ = satcom_or_two_relays(EngineConfig(pace=NO_ROUTINE_ON_SATCOM))
    router = net.engines["c"].router
    a, b = net.address("a"), net.address("b")
    assert router.links_of(a) == {b: {"satcom-geo": 1}}
    assert router.links_of(b) == {a: {"satcom-geo": 1}}
    routine = frozenset({"radio-relay"})
    assert router.class_next_hop(a, routine, routine.__contains__) == a
    # A class that may use only SATCOM has no way from c at all.
    satcom = frozenset({"satcom-geo"})
    assert router.class_next_hop(b, satcom, satcom.__contains__) is None


def test_with_a_plan_a_restricted_link_that_goes_is_advertised() -> None:
    """With the signal plan, a node advertises only where it differs from it. a and b are
    joined by SATCOM (cost 2), which ROUTINE may not use, and by a radio relay (cost 3):
    the plan lists SATCOM and, as the cheapest of the others, the relay. SATCOM goes; no
    cost of a halves or doubles (the cheapest link to b is now 3), and a advertises all the
    same, for its listing changed: c learns that every class may take a-b, at 3."""
    names: dict[str, list[str]] = {"a": [], "b": [], "c": []}
    roster, _ = seeded_mission(names, 1)
    a, b, c = (roster.by_name(n).address for n in ("a", "b", "c"))  # type: ignore[union-attr]
    planned = {a: {b: 2, c: 2}, b: {a: 2, c: 2}, c: {a: 2, b: 2}}
    listed = {"satcom-geo": 2, "*": 3}  # SATCOM, and the relay as the cheapest of the others
    config = EngineConfig(
        pace=NO_ROUTINE_ON_SATCOM, planned=planned, planned_links={a: {b: listed}, b: {a: listed}}
    )
    satcom = FakeLink("a", "b", dataclasses.replace(SATCOM, cost=2.0))
    relay = FakeLink("b", "a", dataclasses.replace(RELAY, cost=3.0))
    links = [satcom, relay, FakeLink("a", "c", RELAY), FakeLink("c", "b", RELAY)]
    net = Net(names, links, config=config)
    net.run(30)
    router_c = net.engines["c"].router
    assert a not in router_c.adverts  # as planned: no advert
    assert router_c.links_of(a) == {b: listed}
    satcom.up = False
    adj = net.engines["a"].neighbours.get(b, satcom.name)
    assert adj is not None
    net.engines["a"]._set_up(adj, False)
    net.run(5)
    assert router_c.adverts[a].adjacency == {b: 3, c: 2}
    assert router_c.links_of(a) == {}


def test_a_restricted_link_dearer_than_another_is_not_listed() -> None:
    """A class's cost of an edge is the cheapest link it may use: HF beside a cheaper
    radio relay changes no class's routes, and is not listed (nor its coming and going
    under a jammer advertised); HF alone, or cheapest, is."""
    restricts = DEFAULT_PACE.restricts
    assert restricted_links({2: {"radio-relay": 2, "hf": 10}}, restricts) == {}
    assert restricted_links({2: {"hf": 10}}, restricts) == {2: {"hf": 10}}
    both = {"radio-relay": 12, "hf": 10, "vhf": 15}
    assert restricted_links({2: both}, restricts) == {2: {"hf": 10, "*": 12}}


def test_waiting_messages_follow_their_class_to_a_better_way_when_one_comes() -> None:
    """ROUTINE waits at a for a slow relay through c (SATCOM barred); a direct radio relay
    to b comes up, which changes the route of ROUTINE and not the routes of all (SATCOM
    stays the shortest path): what waits for c moves to b at once. (A window of two keeps
    the rest waiting at a rather than on the air.)"""
    slow = dataclasses.replace(RELAY, rate_bps=2_400)
    direct = FakeLink("b", "a", RELAY)
    direct.up = False
    links = [FakeLink("a", "b", SATCOM), FakeLink("a", "c", slow), FakeLink("c", "b", RELAY),
             direct]  # fmt: skip
    net = Net(
        {"a": [], "b": [], "c": []},
        links,
        config=EngineConfig(pace=NO_ROUTINE_ON_SATCOM, window=2),
    )
    net.run(10)
    carried: list[str] = []
    net.tap(lambda sender, link, data: carried.append(link) if is_data(data) else None)
    for i in range(20):
        net.submit("a", "b", b"routine %d " % i + bytes(200), precedence=Precedence.ROUTINE,
                   ttl=600)  # fmt: skip
    net.run(1)
    direct.up = True
    net.run(30)
    assert len(net.delivered("b")) == 20
    assert carried.count("a-c") < 10 and carried.count("b-a") >= 10


def test_a_listing_that_goes_with_its_advert_leaves_no_class_route_behind() -> None:
    """An advert's links count while the advert does: expired, its origin's view falls
    back to the plan, and the routes of each class are computed again without them."""
    net, _ = satcom_or_two_relays(EngineConfig(pace=NO_ROUTINE_ON_SATCOM))
    router = net.engines["c"].router
    a, b = net.address("a"), net.address("b")
    satcom = frozenset({"satcom-geo"})
    assert router.bearers() == frozenset({"radio-relay", "satcom-geo"})
    assert router.class_next_hop(b, satcom, satcom.__contains__) is None
    router.forget(a)
    router.forget(b)
    assert router.links_of(a) == {} and router.bearers() == frozenset({"radio-relay"})


def test_classes_asked_for_are_forgotten_when_other_bearers_come() -> None:
    """A class is named by the bearers it may use, of those the network has: an insider
    whose adverts name ever new bearers makes new classes, and the old ones are forgotten,
    not each kept for a Dijkstra at every change of routes."""
    router = Router(1)
    router.update_local({2: 1}, {2: {"vhf": 1}})
    for i in range(5):
        router.update_advert(2, i + 1, [(1, 1)], 0.0, b"", [(1, f"made-up-{i}", 1)])
        known = router.bearers()
        key = known - {"vhf"}
        assert router.class_next_hop(2, key, key.__contains__) is None
        assert len(router.class_route_changes()) == 1


PLAN = {1: {2: 10, 3: 40}, 2: {1: 10}, 3: {1: 40}}
LINKS = {1: {2: {"hf": 10, "*": 30}}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"planned": {1: {1: 5}}}, r"planned: expected neighbours of 1: an address"),
        ({"planned": {1: {2: 0}}}, r"planned: expected cost of 1 -> 2: an integer 1\.\.65535"),
        ({"planned": {"1": {2: 5}}}, r"planned: expected node -> \{neighbour: cost\}"),
        ({"planned": {1: {2: True}}}, r"planned: expected cost of 1 -> 2"),
        ({"planned": [1, 2]}, r"planned: expected a mapping"),
        (
            {"planned": {1: dict.fromkeys(range(2, 259), 5)}},
            r"planned: expected at most 256 neighbours of 1, as an advert lists, found 257",
        ),
        ({"planned_links": {4: {1: {"hf": 5}}}}, r"planned_links: expected .*a planned node"),
        ({"planned_links": {1: {3: {}}}}, r"planned_links: expected links of 1: .*neighbour"),
        ({"planned_links": {1: {4: {"hf": 40}}}}, r"planned_links: expected links of 1: "),
        ({"planned_links": {1: {2: {"HF": 10}}}}, r"planned_links: expected bearers of 1 -> 2"),
        ({"planned_links": {1: {2: {"hf": 70000}}}}, r"planned_links: expected cost of 1 -> 2"),
        (
            {"planned_links": {1: {2: {"hf": 12, "*": 30}}}},
            r"planned_links: expected .*whose cheapest costs .*\(10\)",
        ),
        ({"static_routes": {5: 0}}, r"static_routes: expected destination -> next hop"),
    ],
)
def test_a_plan_that_no_advert_could_carry_is_refused_by_name(
    change: dict[str, object], message: str
) -> None:
    """The signal plan stands in for adverts, so it is held to an advert's rules: a bad
    one is refused where the engine is configured, naming the setting and the entry, not
    met later as a route to nowhere or a crash in Dijkstra."""
    settings: dict[str, object] = {"planned": PLAN, "planned_links": LINKS} | change
    with pytest.raises(EngineConfigError, match=r"EngineConfig\." + message):
        EngineConfig(**settings)  # type: ignore[arg-type]


def test_a_plan_by_the_rules_is_taken() -> None:
    config = EngineConfig(planned=PLAN, planned_links=LINKS, static_routes={9: 2})
    assert config.planned_links == LINKS
