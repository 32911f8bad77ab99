"""Link measurement: hello intervals per bearer (a bearer may ask for longer hellos than
the engine's own, `BearerProfile.hello_s`), and each link's loss, measured on that link
alone. (A neighbour heard again is answered at once: tests/test_emulator_contacts.py,
where a pass opens and the plan's copy must leave within seconds of it.)"""

from __future__ import annotations

import dataclasses

import pytest
from harness import FakeLink, Net, profile

from crypto import schedule
from tawan.core.engine import EngineConfig, LinkSpec, PeerSpec
from tawan.core.events import NeighbourChanged
from tawan.core.frames import HelloFrame, decode_frame
from tawan.core.liveness import link_timers
from tawan.core.neighbours import LOSS_MIN_FRAMES, Adjacency
from tawan.core.precedence import Precedence
from tawan.core.routing import differs
from transports.profile import BearerProfile

CONFIG = EngineConfig()  # hello_interval 2 s, dead_interval 7 s


def spec(prof: BearerProfile, peers: int = 1) -> LinkSpec:
    return LinkSpec("l", prof, tuple(PeerSpec(i + 2, f"p{i}") for i in range(peers)))


def test_a_bearer_asks_for_longer_hellos_and_the_dead_interval_keeps_its_ratio() -> None:
    fast = profile(rate_bps=8_000_000)
    assert link_timers(spec(fast), CONFIG) == link_timers(spec(fast), CONFIG)
    assert link_timers(spec(fast), CONFIG).hello_s == 2.0
    timers = link_timers(spec(dataclasses.replace(fast, hello_s=10.0)), CONFIG)
    assert (timers.hello_s, timers.dead_s) == (10.0, 35.0)
    # Shorter than the engine's own: the engine's stands. Slower still for its rate: that.
    assert link_timers(spec(dataclasses.replace(fast, hello_s=1.0)), CONFIG).hello_s == 2.0
    slow = dataclasses.replace(profile(rate_bps=9_600), hello_s=10.0)
    assert link_timers(spec(slow, peers=4), CONFIG).hello_s == pytest.approx(177.8, abs=0.1)


@pytest.mark.parametrize("value", [-1.0, 3601.0, float("nan"), "10", True])
def test_a_bad_hello_interval_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValueError, match="hello_s"):
        BearerProfile("x", 1000, 0.1, 1400, 1.0, hello_s=value)  # type: ignore[arg-type]


def test_a_profile_without_a_hello_interval_leaves_it_to_the_engine() -> None:
    data = {"name": "ip", "rate_bps": 1000, "delay_s": 0.1, "mtu": 1400, "cost": 1.0}
    assert BearerProfile.from_mapping(data, "p").hello_s == 0.0
    assert BearerProfile.from_mapping({**data, "hello_s": 10}, "p").hello_s == 10


def hellos_from(net: Net, sender: str) -> list[float]:
    sent: list[float] = []

    def spy(who: str, link: str, data: bytes) -> None:
        frame = decode_frame(data[: -schedule.LINK_TAG_BYTES])
        if who == sender and isinstance(frame, HelloFrame):
            sent.append(net.now)

    net.tap(spy)
    return sent


def test_the_engines_say_hello_at_the_bearers_interval() -> None:
    link = FakeLink("a", "b", dataclasses.replace(profile(), hello_s=10.0))
    net = Net({"a": [], "b": []}, [link])
    sent = hellos_from(net, "a")
    net.run(200)
    # One every 10 s (jittered by 10 %), the first few at once as the link comes up.
    assert 18 <= len(sent) <= 24
    ups = [e for e in net.events["a"] if isinstance(e, NeighbourChanged)]
    assert [e.up for e in ups] == [True]  # never lost between hellos that rare


def test_each_link_measures_its_own_loss_though_frames_are_numbered_per_neighbour() -> None:
    """Two links between a and b, one losing a fifth of its frames, the other none, both
    carrying traffic. Frame counters number a's frames to b on both links together, so
    counting gaps in them made each link lose whatever the other carried; the counts in
    the hellos give each link its own loss."""
    clean = FakeLink("a", "b", profile(rate_bps=1_000_000))
    lossy = FakeLink("b", "a", dataclasses.replace(profile(rate_bps=1_000_000), cost=1.5))
    net = Net({"a": [], "b": []}, [clean, lossy])
    lossy.loss = 0.2
    net.run(10)
    engine_b = net.engines["b"]
    on_clean = engine_b.neighbours.get(net.address("a"), clean.name)
    on_lossy = engine_b.neighbours.get(net.address("a"), lossy.name)
    assert on_clean is not None and on_lossy is not None
    for i in range(300):  # a's messages go over the clean link; hellos go over both
        net.submit("a", "b", b"m%d" % i, precedence=Precedence.ROUTINE, ttl=600)
        net.run(1)
    assert on_clean.rx_frames > 200 and on_lossy.expected >= LOSS_MIN_FRAMES
    assert on_clean.rx_loss < 0.02
    assert 0.08 < on_lossy.rx_loss < 0.35
    engine_a = net.engines["a"]  # and each end hears of its own sending from the other
    assert engine_a.neighbours.get(net.address("b"), clean.name).tx_loss < 0.02  # type: ignore[union-attr]


def run_traffic(net: Net, seconds: int) -> None:
    for i in range(seconds):
        net.submit("a", "b", b"m%d" % i, precedence=Precedence.ROUTINE, ttl=600)
        net.run(1)


def test_frames_that_a_later_hello_overtakes_are_not_lost() -> None:
    """With up to 0.5 s of jitter, frames arrive after the hello that was sent after them;
    they have a hello interval more to arrive before they count as lost."""
    link = FakeLink("a", "b", profile(rate_bps=1_000_000))
    link.jitter = 0.5
    net = Net({"a": [], "b": []}, [link])
    net.run(10)
    run_traffic(net, 200)
    adj = net.engines["b"].neighbours.get(net.address("a"), link.name)
    assert adj is not None and adj.expected >= LOSS_MIN_FRAMES
    assert adj.rx_loss < 0.02


def test_what_a_link_lost_fades_once_it_carries_again() -> None:
    """Half the frames lost for a while, then none: within a few minutes the link is no
    longer taken for lossy (a jammer stopped)."""
    link = FakeLink("a", "b", profile(rate_bps=1_000_000))
    net = Net({"a": [], "b": []}, [link])
    net.run(10)
    link.loss = 0.5
    run_traffic(net, 120)
    adj = net.engines["b"].neighbours.get(net.address("a"), link.name)
    assert adj is not None and adj.rx_loss > 0.25
    link.loss = 0.0
    run_traffic(net, 600)
    assert adj.rx_loss < 0.05


def test_an_interval_counted_late_counts_as_old_as_it_is() -> None:
    """On a slow net an interval between two hellos is counted only at the hello after
    them, minutes later: what a jam lost then comes in weighed by its age, not as news.
    Here 100 frames were sent between hellos at 0 and 100 s and 20 arrived; the next hello
    comes 900 s later."""
    adj = Adjacency(2, "l", profile(), "p")
    adj.heard(0.0, 10)
    adj.hello_counted(10, 0, 0.0)
    for counter in range(11, 31):  # 20 of the 100 frames numbered 11..110
        adj.heard(50.0, counter)
    adj.heard(100.0, 111)
    adj.hello_counted(111, 101, 100.0)
    adj.heard(1000.0, 112)
    adj.hello_counted(112, 102, 1000.0)
    assert adj.rx_loss == 0.0  # 0.2 % of its weight left: too little to say anything
    fresh = Adjacency(2, "l", profile(), "p")  # the same, the third hello at once
    fresh.heard(0.0, 10)
    fresh.hello_counted(10, 0, 0.0)
    for counter in range(11, 31):
        fresh.heard(50.0, counter)
    fresh.heard(100.0, 111)
    fresh.hello_counted(111, 101, 100.0)
    fresh.heard(100.5, 112)
    fresh.hello_counted(112, 102, 100.5)
    assert 0.75 < fresh.rx_loss < 0.85


def test_a_cost_a_hello_moves_is_the_cost_routes_and_adverts_take() -> None:
    """The loss measured on a link moves its cost between hellos; the node's own links, as
    its routes and its adverts take them, follow once it has halved or doubled. Before, they
    kept the cost of when the neighbour last came up: a platoon's net jammed for an hour was
    advertised at five times its cost long after the jam, and group copies went round by a
    relay."""
    link = FakeLink("a", "b", profile(rate_bps=1_000_000))
    net = Net({"a": [], "b": []}, [link])
    net.run(10)
    engine_a = net.engines["a"]
    adj = engine_a.neighbours.get(net.address("b"), link.name)
    assert adj is not None
    nominal = adj.cost
    link.loss = 0.4
    run_traffic(net, 120)
    assert adj.up and adj.cost >= 2 * nominal
    taken = engine_a.router.my_adjacency[net.address("b")]
    assert taken >= 2 * nominal and not differs({0: taken}, {0: adj.cost})
    assert engine_a.router.published == engine_a.router.my_adjacency  # and advertised
    link.loss = 0.0
    run_traffic(net, 600)
    assert adj.cost == nominal
    assert engine_a.router.my_adjacency[net.address("b")] == nominal
    net.run(engine_a.config.advert_min_interval + 1)
    assert engine_a.router.published == engine_a.router.my_adjacency


def test_a_loss_that_moves_far_is_told_at_once_not_at_the_next_hello() -> None:
    """A slow net's hellos are minutes apart, and the loss a node measures on its
    neighbour's frames reaches that neighbour only in them. When a jam ends, the next hello
    counted shows the loss gone: the neighbour hears so at once (a hello out of turn), not
    at the next hello on the schedule, five minutes later."""
    link = FakeLink("a", "b", dataclasses.replace(profile(rate_bps=1_000_000), hello_s=300.0))
    net = Net({"a": [], "b": []}, [link])
    net.run(10)
    b_sees = net.engines["b"].neighbours.get(net.address("a"), link.name)
    a_told = net.engines["a"].neighbours.get(net.address("b"), link.name)
    assert b_sees is not None and a_told is not None
    link.loss = 0.5
    run_traffic(net, 900)
    assert b_sees.rx_loss > 0.3 and a_told.tx_loss > 0.3
    link.loss = 0.0
    measured_at = told_at = None
    for i in range(900):
        net.submit("a", "b", b"m%d" % i, precedence=Precedence.ROUTINE, ttl=600)
        net.run(1)
        if measured_at is None and b_sees.rx_loss < 0.3:
            measured_at = net.now
        if told_at is None and a_told.tx_loss < 0.3:
            told_at = net.now
            break
    assert measured_at is not None and told_at is not None
    assert told_at - measured_at <= 2.0
