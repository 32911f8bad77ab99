"""The forwarding decision with a contact plan: a message waits for a contact that gets it
there sooner than the path now, takes the path now when that is sooner, is held as before
when neither exists, and leaves when its contact opens."""

from __future__ import annotations

import time
from pathlib import Path
from typing import cast

import pytest
from harness import START, FakeLink, Net, seeded_mission
from test_engine import noise

from crypto import schedule
from crypto.roster import Roster
from tawan.core.contact_routing import (
    Parcel,
    address_of,
    by_address,
    plan_for_engine,
)
from tawan.core.contacts import Contact, ContactPlan, ContactPlanError
from tawan.core.engine import EngineConfig
from tawan.core.forwarding import Forwarding
from tawan.core.frames import DataFrame, FragFrame, decode_frame
from tawan.core.neighbours import NeighbourTable
from tawan.core.pace import PacePolicy
from tawan.core.precedence import Precedence
from tawan.core.queues import Outgoing
from tawan.core.routing import Router
from tawan.core.specs import EngineConfigError
from tawan.core.transmitter import Transmitter
from tawan.node.config import ConfigError, load_config
from tawan.node.daemon import engine_contacts
from transports.profile import BearerProfile

HF = BearerProfile(name="hf", rate_bps=2_400, delay_s=1.0, mtu=256, cost=10.0)
LEO = BearerProfile(name="satcom-leo", rate_bps=10_000_000, delay_s=0.015, mtu=1400, cost=6.0)
SIZE = 50_000  # 167 s over HF, 40 ms over the LEO pass
MID = (1, 0, 1)
PARCEL = Parcel(MID, SIZE, Precedence.ROUTINE)
NO_LIMITS = PacePolicy(largest={})  # HF may carry 50 kB here: the choice is the plan's


class Unicast:
    """The roster as the decision reads it: every destination a node."""

    def is_group(self, address: int) -> bool:
        return False


ROSTER = cast(Roster, Unicast())


class FakeTx:
    """What forwarding hands the transmitter, and what waits there."""

    def __init__(self) -> None:
        self.handed: list[tuple[int, str, Outgoing]] = []
        self.queued: dict[int, list[Outgoing]] = {}

    def hand(self, neighbour: int, via: str, item: Outgoing) -> None:
        self.handed.append((neighbour, via, item))
        item.via = via
        if item not in self.queued.setdefault(neighbour, []):
            self.queued[neighbour].append(item)

    def waiting(self, neighbour: int) -> list[Outgoing]:
        return [item for item in self.queued.get(neighbour, []) if not item.via]


def contact(start: float, end: float, a: int, b: int, profile: BearerProfile) -> Contact:
    return Contact(start, end, str(a), str(b), profile.rate_bps, profile.delay_s,
                   bearer=profile.name)  # fmt: skip


def node(
    plan: ContactPlan | None, *, hf: bool = True, leo: bool = False, pace: PacePolicy = NO_LIMITS
) -> Forwarding:
    """Node 1 with neighbour 2 on links "hf" and "leo", each up as asked."""
    neighbours = NeighbourTable()
    for name, prof, up in (("hf", HF, hf), ("leo", LEO, leo)):
        neighbours.add(2, name, prof, "peer").up = up
    router = Router(1)
    router.update_local(neighbours.up_neighbours())
    tx = cast(Transmitter, FakeTx())
    return Forwarding(1, router, neighbours, tx, pace, plan)


def always_hf(a: int = 1, b: int = 2) -> Contact:
    return contact(0.0, 10_000.0, a, b, HF)


def test_waiting_for_a_pass_beats_a_slow_path_now() -> None:
    fwd = node(ContactPlan.of([always_hf(), contact(100.0, 400.0, 1, 2, LEO)]))
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == set()  # held
    assert fwd.deadline() == 100.0  # the engine wakes when the pass starts
    choice = fwd.by_plan(2, 2, PARCEL, 0.0)
    assert choice is not None and choice.waits(0.0)
    assert choice.arrival_s < 101 and choice.rival_s == pytest.approx(1 + SIZE * 8 / 2400)


def test_the_path_now_beats_a_late_contact() -> None:
    fwd = node(ContactPlan.of([always_hf(), contact(1000.0, 1400.0, 1, 2, LEO)]))
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == {2}
    assert fwd.deadline() is None  # nothing waits, nothing pinned
    item = Outgoing(MID, Precedence.ROUTINE, 0, None, size=SIZE)
    assert fwd.link_for(2, item) == "hf"


def test_a_tie_goes_to_the_path_now() -> None:
    # The plan's route is the HF contact itself: the same arrival, so link-state decides.
    fwd = node(ContactPlan.of([always_hf()]))
    assert fwd.by_plan(2, 2, PARCEL, 0.0) is None
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == {2}


def test_no_path_and_no_contact_is_held_as_before() -> None:
    fwd = node(ContactPlan.of([contact(100.0, 400.0, 1, 2, LEO)]), hf=False)
    assert fwd.next_hops(ROSTER, 1, 3, None, PARCEL, now=0.0) == set()
    assert fwd.deadline() is None  # no contact to wake for: released by routes, as ever
    # Past the only contact to 2, no path now: held, nothing to wake for either.
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=500.0) == set()
    assert fwd.deadline() is None


def test_no_path_now_waits_for_a_future_contact() -> None:
    fwd = node(ContactPlan.of([contact(100.0, 400.0, 1, 2, LEO)]), hf=False)
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == set()
    assert fwd.deadline() == 100.0


def test_at_the_contact_the_message_takes_its_link_and_waits_for_it_to_come_up() -> None:
    fwd = node(ContactPlan.of([always_hf(), contact(100.0, 400.0, 1, 2, LEO)]))
    assert fwd.due(100.0) == (set(), False)
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == set()
    assert fwd.due(100.0) == ({2}, False)  # the engine places what is held for 2 again
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=100.0) == {2}
    item = Outgoing(MID, Precedence.ROUTINE, 0, None, size=SIZE)
    assert fwd.link_for(2, item) == ""  # pinned to the pass: not the HF link that is up
    leo = fwd.neighbours.get(2, "leo")
    assert leo is not None
    leo.up = True
    assert fwd.link_for(2, item) == "leo"
    assert fwd.deadline() == 400.0  # the pass ends: the pin with it


def test_a_contact_that_never_came_strands_nothing() -> None:
    fwd = node(ContactPlan.of([always_hf(), contact(100.0, 400.0, 1, 2, LEO)]))
    fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=100.0)
    item = Outgoing(MID, Precedence.ROUTINE, 0, None, size=SIZE)
    fwd.hand(2, item)
    tx = cast(FakeTx, fwd.tx)
    assert tx.handed[-1][1] == ""  # waits for the LEO link, which stays down
    assert fwd.due(400.0) == (set(), True)
    assert tx.handed[-1][1] == "hf"  # the pass is over: the link the neighbour has
    assert fwd.deadline() is None


def test_pace_keeps_the_plan_off_a_bearer_it_refuses() -> None:
    plan = ContactPlan.of([always_hf(), contact(100.0, 400.0, 1, 2, LEO)])
    fwd = node(plan, pace=PacePolicy(bearers={Precedence.ROUTINE: frozenset({"hf"})}, largest={}))
    assert fwd.next_hops(ROSTER, 1, 2, None, PARCEL, now=0.0) == {2}  # HF now, no wait


def test_a_relay_path_now_is_estimated_hop_by_hop() -> None:
    # 1 - 3 - 2 over HF now (planned), or a pass 1 -> 2 at 200: two HF hops take 334 s.
    neighbours = NeighbourTable()
    neighbours.add(3, "hf", HF, "peer").up = True
    router = Router(1, planned={3: {1: 10, 2: 10}, 2: {3: 10}})
    router.update_local(neighbours.up_neighbours())
    plan = ContactPlan.of([always_hf(1, 3), always_hf(3, 2), contact(200.0, 400.0, 1, 2, LEO)])
    fwd = Forwarding(1, router, neighbours, cast(Transmitter, FakeTx()), NO_LIMITS, plan)
    choice = fwd.by_plan(2, 3, PARCEL, 0.0)
    assert choice is not None and choice.neighbour == 2 and choice.depart_s == 200.0
    assert choice.rival_s == pytest.approx(2 * (1 + SIZE * 8 / 2400))
    assert fwd.by_plan(2, 3, PARCEL, 450.0) is None  # the pass is over: the path now


def test_routes_are_cached_until_their_first_departure() -> None:
    fwd = node(ContactPlan.of([always_hf(), contact(100.0, 400.0, 1, 2, LEO)]))
    routing = fwd.contacts
    assert routing is not None
    for now in (0.0, 10.0, 99.0, 100.0):
        routing.best_route(2, SIZE, Precedence.ROUTINE, now)
    assert routing.searches == 1  # one route holds from 0 to its departure at 100
    routing.best_route(2, SIZE, Precedence.ROUTINE, 100.5)
    assert routing.searches == 2


def test_the_cost_of_a_choice_is_small() -> None:
    """A figure for docs/contacts.md: choices per second on a 200-contact plan, every
    call a fresh search (each at a new time past the last route's departure)."""
    plan = ContactPlan.of(
        [contact(t, t + 60.0, a, b, LEO) for t in range(0, 2000, 100)
         for a in range(1, 6) for b in range(1, 6) if a != b][:200]
    )  # fmt: skip
    fwd = node(plan)
    calls = 500
    started = time.perf_counter()
    for i in range(calls):
        fwd.by_plan(5, 2, Parcel(MID, SIZE, Precedence.ROUTINE), 0.5 + i * 3.7)
    per_call = (time.perf_counter() - started) / calls
    assert per_call < 0.005, per_call


# ------------------------------------------------------------------ the config and the plan
def test_the_engine_plan_names_nodes_by_address() -> None:
    assert EngineConfig(contacts=ContactPlan.of([always_hf()])).contacts is not None
    with pytest.raises(EngineConfigError, match=r"EngineConfig\.contacts: .*found 'hq'"):
        EngineConfig(contacts=ContactPlan.of([Contact(0, 10, "hq", "2", 100.0)]))
    with pytest.raises(EngineConfigError, match=r"contacts: expected None or a ContactPlan"):
        EngineConfig(contacts=[always_hf()])  # type: ignore[arg-type]
    names = ("12", "012", "0", "70000", "x")
    assert [address_of(n) for n in names] == [12, None, None, None, None]


def test_a_plan_from_a_file_is_resolved_and_moved_to_the_engine_clock() -> None:
    plan = ContactPlan.of([Contact(0, 10, "hq", "7", 100.0, bearer="leo")])
    moved = plan_for_engine(plan, by_address({"hq": 3}), 1000.0)
    assert moved.contacts == (Contact(1000, 1010, "3", "7", 100.0, bearer="leo"),)
    with pytest.raises(ContactPlanError, match=r"contacts\[0\]: sender: .*found 'hq'"):
        plan_for_engine(plan, by_address({}), 0.0)


# ------------------------------------------------------------------ engines
SLOW = BearerProfile(name="hf", rate_bps=2_400, delay_s=0.5, mtu=256, cost=10.0)
FAST = BearerProfile(name="satcom-leo", rate_bps=1_000_000, delay_s=0.02, mtu=1400, cost=6.0)
OPENS = 60.0


def is_message(frame: bytes) -> bool:
    decoded = decode_frame(frame[: -schedule.LINK_TAG_BYTES])
    return isinstance(decoded, (DataFrame, FragFrame))


def two_engines(*, plan: bool) -> tuple[Net, list[tuple[float, str]], list[float]]:
    """a and b on a slow link "a-b" that is up, and a fast one "b-a" whose carrier comes
    when its contact opens, OPENS after a sends b 20 kB. Returns the run, a's message
    frames (time, link) and the times a's timer woke it."""
    slow, fast = FakeLink("a", "b", SLOW), FakeLink("b", "a", FAST)
    net = Net({"a": [], "b": []}, [slow, fast])
    a, b = str(net.address("a")), str(net.address("b"))
    contacts = ContactPlan.of([
        Contact(START, START + 3600, a, b, SLOW.rate_bps, SLOW.delay_s, bearer="hf"),
        Contact(START + 5 + OPENS, START + 600, a, b, FAST.rate_bps, FAST.delay_s,
                bearer="satcom-leo"),
    ])  # fmt: skip
    net.config = EngineConfig(
        strict_states=True, pace=NO_LIMITS, contacts=contacts if plan else None
    )
    for name in ("a", "b"):
        net.restart(name)
    frames: list[tuple[float, str]] = []

    def tap(sender: str, link: str, data: bytes) -> None:
        if sender == "a" and is_message(data):
            frames.append((net.now, link))

    net.tap(tap)
    woken: list[float] = []
    engine = net.engines["a"]
    handle = engine.handle_timer

    def spy(now: float) -> None:
        woken.append(now)
        handle(now)

    engine.handle_timer = spy  # type: ignore[method-assign]

    def carrier(up: bool) -> None:
        fast.up = up
        for name, peer in (("a", "b"), ("b", "a")):
            change = net.engines[name].peer_up if up else net.engines[name].peer_down
            change("b-a", peer, net.now)

    carrier(False)
    net.run(5.0)
    net.at(START + 5 + OPENS, lambda: carrier(True))
    net.submit("a", "b", noise(20_000), precedence=Precedence.ROUTINE, ttl=3600)
    net.run(300.0)
    return net, frames, woken


def test_an_engine_holds_the_message_and_sends_it_when_the_contact_opens() -> None:
    net, frames, woken = two_engines(plan=True)
    opens = START + 5 + OPENS
    assert frames and {link for _, link in frames} == {"b-a"}  # nothing on the slow link
    assert opens <= frames[0][0] < opens + 1  # it left as the contact opened
    assert opens in woken  # the engine's timer woke it then
    [delivered] = net.delivered("b")
    assert delivered.payload == noise(20_000)


def test_without_a_plan_the_engine_takes_the_slow_path_now() -> None:
    net, frames, _ = two_engines(plan=False)
    assert frames[0][1] == "a-b" and frames[0][0] < START + 6
    assert len(net.delivered("b")) == 1


# ------------------------------------------------------------------ the node's config file
CONFIG = """
[node]
name = "relay"
key_file = "relay.key"
roster = "roster.tawan"
store = "relay.db"

[contacts]
plan = "{plan}"
{extra}
"""


def config_with(tmp_path: Path, plan: str, extra: str = "") -> Path:
    path = tmp_path / "node.toml"
    path.write_text(CONFIG.format(plan=plan, extra=extra))
    return path


def test_a_node_names_its_contact_plan_file(tmp_path: Path) -> None:
    (tmp_path / "plan.rc").write_text("a contact +0 +300 1 2 300\n")
    config = load_config(config_with(tmp_path, "plan.rc", "epoch = 1700000000"))
    assert config.contacts is not None and config.contacts.epoch == 1_700_000_000
    assert config.contacts.plan.contacts == (Contact(0, 300, "1", "2", 2400.0),)
    assert load_config(config_with(tmp_path, "plan.rc")).contacts.epoch is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("plan", "extra", "message"),
    [
        ("missing.rc", "", r"contacts\.plan: expected a readable contact plan file"),
        ("bad.rc", "", r"contacts\.plan: .*bad\.rc: line 1: .*found '\+0 1 2'"),
        ("plan.rc", "epoch = -1", r"contacts\.epoch: expected a number"),
        ("plan.rc", "when = 1", r"contacts\.when: unknown key"),
    ],
)
def test_a_wrong_contact_plan_setting_is_named(
    tmp_path: Path, plan: str, extra: str, message: str
) -> None:
    (tmp_path / "plan.rc").write_text("a contact +0 +300 1 2 300\n")
    (tmp_path / "bad.rc").write_text("a contact +0 1 2\n")
    with pytest.raises(ConfigError, match=message):
        load_config(config_with(tmp_path, plan, extra))


def test_the_daemon_gives_the_engine_the_plan_by_address_on_its_clock(tmp_path: Path) -> None:
    (tmp_path / "plan.toml").write_text(
        'format = "tawan-contacts/1"\n[[contacts]]\nstart = 0\nend = 60\nfrom = "a"\n'
        'to = "9"\nrate_bps = 9600\n'
    )
    config = load_config(config_with(tmp_path, "plan.toml"))
    roster, _ = seeded_mission({"a": [], "b": ["g"]}, 1)
    a = roster.by_name("a")
    assert a is not None
    plan = engine_contacts(config, roster, 5000.0)
    assert plan is not None and plan.contacts == (Contact(5000, 5060, str(a.address), "9", 9600),)
    (tmp_path / "plan.toml").write_text(
        (tmp_path / "plan.toml").read_text().replace('"a"', '"g"')  # a group: no contact
    )
    with pytest.raises(ConfigError, match=r"contacts\.plan: .*sender: .*found 'g'"):
        engine_contacts(load_config(config_with(tmp_path, "plan.toml")), roster, 0.0)
