"""Transmit queues keep a bounded window in memory and the rest on disk, in the same order.

Every test shrinks the window to a few messages (`tawan.core.transmitter.DEFAULT_LIMIT`) so
that most of a backlog waits on disk only, and checks what must not change: the order of
turns (highest precedence, then oldest), every message delivered once, custody across a
restart and a change of routes, and the counts status reports.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest
from harness import Net, chain

from tawan.core.precedence import Precedence
from tawan.core.queues import BODIES_KEPT, BODY_KEPT_BYTES, NeighbourQueue, Outgoing
from tawan.core.specs import Submission
from tawan.core.store import HELD, Store, StoredMessage

LIMIT = 6
BACKLOG = 200  # short messages: enough that batches of them leave most on disk a while


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tawan.core.transmitter.DEFAULT_LIMIT", LIMIT)


def submit_all(net: Net, src: str, dst: str, count: int, seed: int) -> list[tuple[int, int]]:
    """`count` messages of seeded random precedence, all at one instant (no transmit
    between them); returns (precedence, submission index) by message id order."""
    rng = random.Random(seed)
    engine = net.engines[src]
    sent = []
    for index in range(count):
        precedence = rng.choice(list(Precedence))
        payload = b"m%d" % index
        mid = engine.submit(Submission(net.address(dst), payload, precedence, 3600), net.now)
        sent.append((mid, precedence, index))
    return [(int(p), i) for _, p, i in sent]


def test_the_order_of_turns_is_kept_when_most_of_a_backlog_waits_on_disk() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b", rate_bps=9600))
    net.run(3)
    submit_all(net, "a", "b", 60, seed=1)
    queue = net.engines["a"].queues[net.address("b")]
    assert len(queue.waiting) <= LIMIT and queue.on_disk()
    assert sum(queue.counts_by_precedence().values()) == 60  # status counts what is on disk
    net.run(60)
    delivered = net.delivered("b")
    order = [(-int(e.precedence), int(e.payload[1:])) for e in delivered]
    assert len(order) == 60 and len(set(order)) == 60  # every one, once
    assert order == sorted(order)  # highest precedence first, then in the order submitted


def test_a_flash_message_overtakes_a_backlog_kept_on_disk() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b", rate_bps=9600))
    net.run(3)
    for index in range(BACKLOG):
        net.engines["a"].submit(
            Submission(net.address("b"), b"r%d" % index, Precedence.ROUTINE, 3600), net.now
        )
    net.run(0.5)  # some went (batched: many per frame); the rest wait, most on disk
    queue = net.engines["a"].queues[net.address("b")]
    assert queue.on_disk()
    gone = len(net.delivered("b")) + len(queue.in_flight)
    flash = net.submit("a", "b", b"flash", precedence=Precedence.FLASH, ttl=3600)
    net.run(60)
    mids = [e.mid for e in net.delivered("b")]
    assert len(mids) == BACKLOG + 1
    assert mids.index(flash) == gone  # behind what was on the air already, ahead of the rest


@pytest.mark.parametrize("event", ["restart", "lost route"])
def test_a_backlog_on_disk_survives_a_restart_or_a_lost_route(event: str) -> None:
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(5)
    links[0].up = False  # a still believes in b for dead_interval: the backlog is queued
    sent = submit_all(net, "a", "c", 40, seed=2)
    store = net.stores["a"]
    if event == "restart":
        net.engines["a"].commit()
        net.restart("a")  # its queue for b reads its first turns back from disk
        queue = net.engines["a"].queues[net.address("b")]
        assert len(queue.waiting) <= LIMIT and queue.on_disk()
    else:
        net.run(20)  # b is declared dead: everything pending for it is held, on disk too
        assert store.held_count() == 40 and store.held_destinations() == {net.address("c")}
    links[0].up = True
    net.run(60)
    got = sorted(int(e.payload[1:]) for e in net.delivered("c"))
    assert got == sorted(i for _, i in sent)  # all of them, once
    assert store.message_count() == 0 and store.held_count() == 0


def test_the_held_counts_follow_the_held_rows() -> None:
    store = Store.memory()
    rng = random.Random(5)
    held: dict[tuple[int, int, int], int] = {}
    for seq in range(300):
        mid, dst = (1, 0, seq), rng.choice((7, 8, 9))
        msg = StoredMessage(mid, dst, rng.randrange(5), seq, 10_000, b"x" * 10, False, 0.0)
        store.put_message(msg, () if rng.random() < 0.5 else (3,))
        if not store.next_hops_of(mid) - {HELD}:
            held[mid] = dst
        step = rng.random()
        target = rng.choice(sorted(held)) if held else None
        if target is not None and step < 0.2:
            store.add_next_hops(target, {4})
            del held[target]
        elif target is not None and step < 0.3:
            store.delete_message(target)
            del held[target]
        elif step < 0.4:
            store.hold(mid)
            held[mid] = dst
        assert store.held_count() == len(held)
        assert store.held_destinations() == set(held.values())
    for dst in (7, 8, 9):
        assert {m.mid for m in store.held_for({dst})} == {m for m, d in held.items() if d == dst}
    for msg in store.expire(20_000):
        held.pop(msg.mid, None)
    assert store.held_count() == 0 == len(held)


def test_a_message_gone_from_the_store_is_not_sent_from_the_queue() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b", rate_bps=9600))
    net.run(3)
    engine = net.engines["a"]
    for index in range(BACKLOG):
        engine.submit(
            Submission(net.address("b"), b"%d" % index, Precedence.ROUTINE, 3600), net.now
        )
    net.run(0.3)  # the first went; the next were read back from disk, without their bodies
    queue = engine.queues[net.address("b")]
    unread = [item.mid for item in queue.waiting.values() if item.encoded is None]
    assert unread
    engine.store.delete_message(unread[0])  # behind the queue's back
    net.run(30)
    mids = [e.mid for e in net.delivered("b")]
    assert len(mids) == BACKLOG - 1 and unread[0] not in mids


def test_a_held_backlog_released_by_a_new_route_is_queued_as_references_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tawan.core.transmitter.DEFAULT_LIMIT", 1000)  # all of it in memory
    monkeypatch.setattr("tawan.core.store_custody._PAGE_ROWS", 7)  # many pages, written between
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(5)
    links[0].up = False
    rng = random.Random(9)
    count, size = 120, 2000
    engine, store = net.engines["a"], net.stores["a"]
    for index in range(count):
        payload = b"%04d" % index + rng.randbytes(size)  # incompressible
        engine.submit(Submission(net.address("c"), payload, Precedence.ROUTINE, 3600), net.now)
    net.run(20)  # b is declared dead: the whole backlog is held
    assert store.held_count() == count
    links[0].up = True
    peaks: list[int] = []
    reroute = engine._reroute

    def measured() -> None:  # the traced peak of each change of routes alone
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        reroute()
        peaks.append(tracemalloc.get_traced_memory()[1] - base)

    monkeypatch.setattr(engine, "_reroute", measured)
    tracemalloc.start()
    try:
        queue = None
        for _ in range(200):  # until the route appears and the backlog is released
            net.run(0.05)
            queue = engine.queues.get(net.address("b"))
            if queue is not None and queue.waiting:
                break
    finally:
        tracemalloc.stop()
    peak = max(peaks)
    assert queue is not None and store.held_count() == 0
    waiting = [item for item in queue.waiting.values() if item.fresh]
    assert len(waiting) > count // 2  # most have not had their turn yet
    assert all(item.encoded is None for item in waiting)  # references, no bodies
    assert peak < count * size // 2  # never the bodies of the backlog at once
    net.run(120)
    got = [int(e.payload[:4]) for e in net.delivered("c")]
    assert got == list(range(count))  # every one, once, in order


def test_bodies_handed_over_are_kept_only_for_the_first_short_ones() -> None:
    """A message just taken into custody comes with its body: the queue keeps it (no read of
    the store at its turn) only while fewer than BODIES_KEPT wait and when short, so what a
    backlog pins in memory stays bounded; the others are read at their turn."""

    class Source:
        def __init__(self) -> None:
            self.reads = 0

        def pending_for(self, *args: object) -> list[tuple[tuple[int, int, int], int, int, int]]:
            return []

        def pending_counts_for(self, hop: int) -> dict[int, int]:
            return {}

        def body_of(self, mid: tuple[int, int, int]) -> bytes | None:
            self.reads += 1
            return b"\x98read"

    source = Source()
    queue = NeighbourQueue(7, source=source, limit=4 * BODIES_KEPT)
    big = bytes(BODY_KEPT_BYTES + 1)
    items = [Outgoing((1, 0, 0), Precedence.ROUTINE, 0, big)]
    items += [Outgoing((1, 0, s), Precedence.ROUTINE, s, b"\x98%d" % s) for s in range(1, 80)]
    for item in items:
        queue.push(item, "l")
    kept = [item for item in items if item.encoded is not None]
    assert kept == items[1:BODIES_KEPT]  # the large one and those beyond the first few: shed
    assert all(item.size == len(item.encoded or b"") or item.encoded is None for item in items)
    assert items[0].size == len(big) and items[-1].size == 3  # the size stays known
    for item in items:
        queue.body(item)
    assert source.reads == len(items) - len(kept)
    # Without a source (every message in memory), every body is kept.
    alone = NeighbourQueue(7)
    many = [Outgoing((2, 0, s), Precedence.ROUTINE, s, big) for s in range(2 * BODIES_KEPT)]
    for item in many:
        alone.push(item, "l")
    assert all(item.encoded is big for item in many)
