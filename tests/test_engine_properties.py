"""Invariants of the engine over a terrible network, checked for many seeds (hypothesis).

In words: whatever the links do — lose, duplicate, reorder frames — and whatever is sent,
every message whose time to live outlasts the disruption reaches its destination exactly
once, nothing reaches anyone else, and custody is released everywhere once delivered.
"""

from __future__ import annotations

from harness import FakeLink, Net, profile
from hypothesis import given, settings
from hypothesis import strategies as st

from tawan.precedence import Precedence

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
