"""Invariants of the engine over a terrible network, checked for many seeds (hypothesis).

In words: whatever the links do — lose, duplicate, reorder frames — and whatever is sent,
every message whose time to live outlasts the disruption reaches its destination exactly
once, nothing reaches anyone else, and custody is released everywhere once delivered.
"""

from __future__ import annotations

import functools

from harness import FakeLink, Net, profile
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tawan.core.precedence import Precedence

NAMES: dict[str, list[str]] = {"a": [], "b": [], "c": [], "d": []}


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    loss=st.floats(0.0, 0.35),
    duplicate=st.floats(0.0, 0.3),
    jitter=st.floats(0.0, 0.2),
    sizes=st.lists(st.integers(1, 4000), min_size=1, max_size=12),
    precedences=st.lists(st.sampled_from(list(Precedence)), min_size=12, max_size=12),
)
def test_exactly_once_over_a_terrible_network(
    seed: int,
    loss: float,
    duplicate: float,
    jitter: float,
    sizes: list[int],
    precedences: list[Precedence],
) -> None:
    prof = profile(rate_bps=200_000, mtu=600)
    links = [
        FakeLink(x, y, prof, loss=loss, duplicate=duplicate, jitter=jitter)
        for x, y in (("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"))
    ]
    net = Net(NAMES, links, seed=seed)
    net.run(10)
    sent: dict[tuple[int, int, int], tuple[str, bytes]] = {}
    for i, size in enumerate(sizes):
        src, dst = ("a", "d") if i % 2 == 0 else ("d", "b")
        payload = bytes([i]) * size
        mid = net.submit(src, dst, payload, precedence=precedences[i], ttl=3600)
        sent[mid] = (dst, payload)
        net.run(0.2)
    net.run(600)
    delivered = {name: net.delivered(name) for name in NAMES}
    for name, events in delivered.items():
        mids = [e.mid for e in events]
        assert len(mids) == len(set(mids)), f"{name} got a message twice"
        for event in events:
            assert sent[event.mid] == (name, event.payload)
    assert sorted(e.mid for es in delivered.values() for e in es) == sorted(sent)
    assert all(store.message_count() == 0 for store in net.stores.values())


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    loss=st.floats(0.0, 0.25),
    cuts=st.lists(
        st.tuples(st.integers(0, 3), st.floats(0.0, 40.0), st.floats(1.0, 30.0)), max_size=4
    ),
    count=st.integers(1, 8),
)
# Found by this test: with a-b cut, a and c each routed "direct 0" to the other, took the
# other's copy as a duplicate of their own and acknowledged it; both copies vanished.
@example(seed=2179, loss=0.1875, cuts=[(0, 0.0, 11.0), (1, 0.0, 6.0)], count=2)
def test_group_and_unicast_survive_cuts(
    seed: int, loss: float, cuts: list[tuple[int, float, float]], count: int
) -> None:
    """Links go down and come back while unicast and group traffic flows: once all links
    are back, every member has every group message once, every destination its own."""
    names = {"a": ["g"], "b": ["g"], "c": [], "d": ["g"], "e": ["g"]}
    pairs = (("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"), ("d", "e"))
    links = [FakeLink(x, y, profile(rate_bps=100_000), loss=loss) for x, y in pairs]
    net = Net(names, links, seed=seed)
    net.run(10)
    timeline = sorted(
        [(start, links[i], False) for i, start, _ in cuts]
        + [(start + length, links[i], True) for i, start, length in cuts],
        key=lambda step: step[0],
    )
    expected: dict[str, set[bytes]] = {n: set() for n in names}
    clock = 0.0
    for i in range(count):
        payload = b"group %d" % i
        net.submit("a", "g", payload, precedence=Precedence.IMMEDIATE, ttl=7200)
        for member in ("b", "d", "e"):
            expected[member].add(payload)
        unicast = b"direct %d" % i
        net.submit("e", "b", unicast, precedence=Precedence.ROUTINE, ttl=7200)
        expected["b"].add(unicast)
        while timeline and timeline[0][0] <= clock + 5:
            _, link, up = timeline.pop(0)
            link.up = up
        net.run(5)
        clock += 5
    for _, link, up in timeline:
        link.up = up
    for link in links:
        link.up = True
    net.run(900)
    for name in names:
        payloads = [e.payload for e in net.delivered(name)]
        assert len(payloads) == len(set(payloads)), f"{name} got a message twice"
        assert set(payloads) == expected[name], name
    assert all(store.message_count() == 0 for store in net.stores.values())


def test_a_crash_on_the_heap_happens_at_its_moment() -> None:
    """What the next test relies on: a crash scheduled on the heap strikes between the
    events around its time, not at the next call to `run`."""
    net = Net({"a": [], "b": []}, [FakeLink("a", "b", profile())])
    net.run(1)
    before = net.engines["b"]
    net.crash_at(net.now + 0.25, "b")
    net.run(0.2499)
    assert net.engines["b"] is before
    net.run(0.0002)
    assert net.engines["b"] is not before


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    loss=st.floats(0.0, 0.2),
    crashes=st.integers(1, 8),
    count=st.integers(1, 30),
)
def test_crashes_lose_nothing_acknowledged(
    seed: int, loss: float, crashes: int, count: int
) -> None:
    """Origin, relay and destination crash at random moments, losing whatever they had not
    committed: every message still arrives, exactly once (custody: an acknowledgement is
    only ever sent for what is on disk).

    A crash is an event on the harness's heap, of a victim drawn from the seed, a moment
    drawn after one of the frames it receives (also drawn): so it can fall between any two
    events, in the milliseconds between a message's arrival, its acknowledgement and the
    commit that covers them, where the invariant is at stake."""
    prof = profile(rate_bps=300_000)
    links = [FakeLink(x, y, prof, loss=loss) for x, y in (("a", "b"), ("b", "c"))]
    net = Net({"a": [], "b": [], "c": []}, links, seed=seed)
    net.run(5)
    sent = []

    def submit(i: int) -> None:
        sent.append(net.submit("a", "c", b"m%d" % i, precedence=Precedence(i % 5), ttl=3600))
        net.engines["a"].commit()  # the API commits before it answers the application

    for i in range(count):  # about one message per commit interval: a busy relay
        net.at(net.now + net.rng.uniform(0, 0.01 * count), functools.partial(submit, i))
    # a crash up to this long after a frame: its acknowledgement, its commit and a bit more
    horizon = net.config.ack_delay + net.config.commit_interval
    crash_after: dict[tuple[str, int], list[float]] = {}
    for _ in range(crashes):
        victim, nth = net.rng.choice("abc"), net.rng.randint(1, count + 2)
        crash_after.setdefault((victim, nth), []).append(net.rng.uniform(0, horizon))
    received = dict.fromkeys("abc", 0)

    def schedule_crashes(receiver: str, link: str, sender: str, data: bytes) -> None:
        received[receiver] += 1
        for delay in crash_after.get((receiver, received[receiver]), []):
            net.crash_at(net.now + delay, receiver)

    net.watch(schedule_crashes)
    net.run(300)
    # What the application sees is the inbox: an entry exists only once committed, so a
    # destination that crashed before its commit gets the message again, and shows it once.
    got = [entry.mid for entry in net.stores["c"].inbox(limit=1000)]
    assert len(got) == len(set(got)), "a message was delivered twice"
    assert sorted(got) == sorted(sent)


def test_a_group_message_sent_while_a_member_is_cut_off_reaches_it() -> None:
    """A random example that once lost b's group copy once both its links returned (every
    store empty, b never delivered it). It passes since routing computes its own
    shortest-path trees (ties to the lower cost and address); why it failed before was
    never explained, so it stays here as it was found."""
    inner = test_group_and_unicast_survive_cuts.hypothesis.inner_test  # type: ignore[attr-defined]
    inner(seed=486, loss=0.25, cuts=[(0, 2.0, 9.0), (1, 2.0, 9.0)], count=3)
