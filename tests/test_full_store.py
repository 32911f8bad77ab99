"""A full store, in miniature of what was measured (a small relay store, the destination
down, a sender of every precedence): the custody rule of docs/operators.md, "A full store".

- nothing acknowledged is evicted for a message that can wait elsewhere: no precedence
  inversion (PRIORITY and IMMEDIATE lost while ROUTINE refused and kept survived);
- each eviction reaches the origin as exactly one "evicted" receipt, asked for or not;
- an origin whose own submission evicts an accepted message tells its application;
- a refusing relay tells its neighbour when there is room, so it resumes at once.
"""

from __future__ import annotations

import itertools
import logging
import random

import pytest
from harness import T0, FakeLink, Net, chain, profile

from tawan.core.backpressure import MAX_PENDING, EvictionNotices
from tawan.core.events import MessageEvicted, MessageRefused, ReceiptReceived
from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence
from tawan.core.receipts import EVICTED, MAX_NOTICE_MIDS
from tawan.core.specs import Submission, SubmitError
from tawan.core.store import Store, StoreUnwritable
from tawan.node.runtime import THROTTLE_SECONDS, Runtime

P = Precedence
EVERY = (P.ROUTINE, P.PRIORITY, P.IMMEDIATE, P.FLASH, P.OVERRIDE)
RELAY_BYTES = 24_000


def payload(i: int, size: int = 300) -> bytes:
    return random.Random(i).randbytes(size)  # incompressible: the store counts these bytes


def small_relay(net: Net, name: str, max_bytes: int = RELAY_BYTES) -> None:
    net.stores[name] = Store.memory(max_bytes=max_bytes)
    net.restart(name)


def events_of(net: Net, name: str, kind: type) -> list:  # type: ignore[type-arg]
    return [e for e in net.events[name] if isinstance(e, kind)]


def via_relay(net: Net, origin: str, dst: str, relay: str) -> None:
    """A static route at the origin: it hands on to the relay even while `dst` is down (a
    planned route of the signal plan), so the relay is the one that holds."""
    net.engines[origin].router.static_routes = {net.address(dst): net.address(relay)}


def destination_down(net: Net, link: FakeLink) -> None:
    net.run(3)
    link.up = False
    net.run(net.config.dead_interval + 3)  # the relay holds: no route to the destination


def test_a_full_relay_refuses_what_can_wait_and_resumes_at_once_when_room_returns() -> None:
    prof = profile()
    links = [*chain("o", "r", "d"), FakeLink("p", "r", prof)]
    net = Net({"o": [], "p": [], "r": [], "d": []}, links, seed=3)
    small_relay(net, "r")
    via_relay(net, "o", "d", "r")
    via_relay(net, "p", "d", "r")
    destination_down(net, links[1])
    sent: dict[MessageId, Precedence] = {}
    for i in range(1000, 1045):  # the relay's own ROUTINE: most of the store, beyond shares
        sent[net.submit("r", "d", payload(i), precedence=P.ROUTINE, ttl=3600)] = P.ROUTINE
    for i in range(400):  # five times what the relay can hold, every precedence in turn
        precedence = EVERY[i % len(EVERY)]
        origin = "op"[i % 2]
        sent[net.submit(origin, "d", payload(i), precedence=precedence, ttl=3600)] = precedence
        net.run(0.05)
    net.run(20)
    relay = net.stores["r"]
    assert relay.bytes_used() > RELAY_BYTES - 400  # full
    assert events_of(net, "r", MessageRefused)  # and refusing, not acknowledging
    # What it refused is not marked seen there: only what the relay took stays seen.
    refused = {e.mid for e in events_of(net, "r", MessageRefused)}
    assert any(relay.get_message(mid) is None for mid in refused)
    assert not any(relay.seen(mid) for mid in refused if relay.get_message(mid) is None)
    # No acknowledged message was dropped, of any precedence: the origins keep the rest.
    assert not any(events_of(net, n, MessageEvicted) for n in net.engines)
    held = sum(net.stores[n].message_count() for n in "opr")
    assert held == len(sent)
    # The refusal says what really fills the store.
    refusals = events_of(net, "r", MessageRefused)
    assert {e.reason for e in refusals} <= {"store_full", "fair_share"}
    for e in refusals:
        assert "higher-precedence" not in e.detail
        assert ("fair share" if e.reason == "fair_share" else "in use") in e.detail

    # The destination returns: the relay drains, has room, and says so; the origin sends at
    # once instead of waiting out a backoff that has grown to retransmit_ceiling.
    back = net.now
    links[1].up = True
    bound = 12.0
    assert bound < net.config.retransmit_ceiling / 2
    net.run(bound)
    got = {e.mid: e.precedence for e in net.delivered("d")}
    assert got == sent  # all of it, each once, in a bounded short time
    assert len(net.delivered("d")) == len(sent)
    signals = net.engines["r"].stats.room_signals
    store = net.engines["r"].status(net.now)["store"]
    assert signals > 0 and isinstance(store, dict) and store["room_signals"] == signals
    last = max(e.latency + e.created for e in net.delivered("d"))  # mission seconds
    assert last - (back - T0) < bound


def test_evictions_take_the_lowest_first_and_each_reaches_the_origin_once() -> None:
    # o -> r -> d (down) fills r with traffic that must wait; then the relay's own OVERRIDE
    # for d, which has nowhere else to wait, makes room by evicting, lowest first.
    prof = profile()
    links = [*chain("o", "r", "d"), FakeLink("r", "e", prof)]
    net = Net({"o": [], "r": [], "d": [], "e": []}, links, seed=5)
    small_relay(net, "r")
    via_relay(net, "o", "d", "r")
    destination_down(net, links[1])
    waiting = {}
    for i in range(60):  # ROUTINE and PRIORITY for d, no receipt asked
        precedence = (P.ROUTINE, P.PRIORITY)[i % 2]
        waiting[net.submit("o", "d", payload(i), precedence=precedence, ttl=3600)] = precedence
        net.run(0.05)
    net.run(10)
    assert not events_of(net, "r", MessageEvicted)
    for i in range(100, 150):  # the relay's own application, OVERRIDE for d
        net.submit("r", "d", payload(i), precedence=P.OVERRIDE, ttl=3600)
        net.run(0.05)
    net.run(20)
    evicted = events_of(net, "r", MessageEvicted)
    assert evicted
    assert all(e.precedence < e.for_precedence for e in evicted)
    assert all(e.src == net.address("o") for e in evicted)
    # Lowest first: no PRIORITY evicted while a ROUTINE the relay acknowledged survived.
    gone = {e.mid for e in evicted}
    kept = {mid: p for mid, p in waiting.items() if mid not in gone}
    if any(e.precedence == P.PRIORITY for e in evicted):
        assert P.ROUTINE not in kept.values()
    # Exactly one notice per eviction at the origin, as an event and in its receipts.
    told = [e for e in events_of(net, "o", ReceiptReceived) if e.kind == "evicted"]
    assert sorted(e.mid for e in told) == sorted(gone)
    assert all(e.reporter == net.address("r") for e in told)
    rows = [r for r in net.stores["o"].receipts(limit=1000) if r.kind == EVICTED]
    assert sorted(r.mid for r in rows) == sorted(gone)
    # Gathered: a few notice messages for many evictions.
    sent = net.engines["r"].stats.notices_sent
    assert 0 < sent <= len(gone) // 8 + 3
    store = net.engines["r"].status(net.now)["store"]
    assert isinstance(store, dict)
    assert store["notices_sent"] == sent and store["notices_unsent"] == 0
    # Nothing else lost: what was not evicted reaches d once it is back.
    links[1].up = True
    net.run(20)
    delivered = {e.mid for e in net.delivered("d")}
    assert set(kept) <= delivered and not gone & delivered


def test_a_submission_that_evicts_tells_the_application_and_refusals_tell_the_truth() -> None:
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links, store_max_bytes=4000)
    destination_down(net, links[0])  # a holds everything itself
    routine = [
        net.submit("a", "c", payload(i, 600), precedence=P.ROUTINE, ttl=3600, receipt=True)
        for i in range(6)
    ]
    with pytest.raises(SubmitError) as refused:
        net.submit("a", "c", payload(9, 600), precedence=P.ROUTINE, ttl=3600)
    text = str(refused.value)
    assert "higher-precedence" not in text  # it is full of ROUTINE, its own precedence
    assert "(routine 3" in text and "may evict only messages of lower precedence" in text
    flash = net.submit("a", "c", payload(10, 600), precedence=P.FLASH, ttl=3600)
    assert flash
    evicted = events_of(net, "a", MessageEvicted)
    assert [e.mid for e in evicted] == [routine[0]]
    told = [e for e in events_of(net, "a", ReceiptReceived) if e.kind == "evicted"]
    assert [(e.mid, e.reporter) for e in told] == [(routine[0], net.address("a"))]
    rows = net.stores["a"].receipts()
    assert [(r.mid, r.kind, r.reporter) for r in rows] == [(routine[0], EVICTED, net.address("a"))]


def test_notices_are_gathered_and_bounded() -> None:
    notices = EvictionNotices(delay=1.0)
    ids = ((7, 1, seq) for seq in itertools.count())
    for _ in range(MAX_NOTICE_MIDS - 1):
        assert notices.add(next(ids), P.ROUTINE, 60, now=0.0)
    assert notices.deadline() == 1.0 and notices.take(0.5) == []
    assert notices.add(next(ids), P.PRIORITY, 90, now=0.2)
    assert notices.deadline() == float("-inf")  # a full notice goes at once
    (notice,) = notices.take(0.3)
    assert len(notice.mids) == MAX_NOTICE_MIDS and notice.precedence == P.PRIORITY
    assert notice.ttl == 90 and not notices
    for _ in range(MAX_PENDING):
        notices.add(next(ids), P.ROUTINE, 60, now=1.0)
    assert not notices.add(next(ids), P.ROUTINE, 60, now=1.0)  # bounded: told it was not


def test_refusal_lines_are_throttled_like_rejected_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    net = Net({"a": [], "b": []}, chain("a", "b"))
    clock = [100.0]
    runtime = Runtime(net.engines["a"], net.stores["a"], {}, clock=lambda: clock[0])
    caplog.set_level(logging.INFO, logger="tawan.node")
    for i in range(500):  # one neighbour retrying 50 refused messages 10 times each
        refused = MessageRefused((2, 0, i % 50), P.ROUTINE, "store_full", "no room")
        runtime._report(refused)
        clock[0] += 0.01
    lines = [r for r in caplog.records if "event=refused" in r.getMessage()]
    assert len(lines) == 1  # 5 s of refusals: one line
    clock[0] += THROTTLE_SECONDS
    runtime._report(MessageRefused((2, 0, 1), P.ROUTINE, "store_full", "no room"))
    runtime._report(MessageRefused((2, 0, 2), P.FLASH, "fair_share", "share"))  # another key
    texts = [r.getMessage() for r in caplog.records if "event=refused" in r.getMessage()]
    assert len(texts) == 3 and "skipped=499" in texts[1]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "refused" in r.msg)


def full_relay_for_d(seed: int) -> Net:
    """o -> r -> d (down), r full of o's ROUTINE and PRIORITY messages held for d."""
    links = chain("o", "r", "d")
    net = Net({"o": [], "r": [], "d": []}, links, seed=seed)
    small_relay(net, "r")
    via_relay(net, "o", "d", "r")
    destination_down(net, links[1])
    for i in range(60):
        net.submit("o", "d", payload(i), precedence=(P.ROUTINE, P.PRIORITY)[i % 2], ttl=3600)
        net.run(0.05)
    net.run(10)
    return net


def evict_once(net: Net) -> MessageId:
    """The relay's own OVERRIDE submissions until one evicts (no transmit between)."""
    r = net.engines["r"]
    for i in range(200, 260):
        r.submit(Submission(net.address("d"), payload(i), P.OVERRIDE, 3600), net.now)
        while (event := r.next_event()) is not None:
            net.events["r"].append(event)
            if isinstance(event, MessageEvicted):
                return event.mid
    raise AssertionError("expected an eviction at the relay, found none")


def evicted_told(net: Net) -> set[MessageId]:
    return {e.mid for e in events_of(net, "o", ReceiptReceived) if e.kind == "evicted"}


def test_an_eviction_rolled_back_is_never_told_to_its_origin() -> None:
    net = full_relay_for_d(seed=11)
    gone = evict_once(net)
    assert net.engines["r"].eviction_notices  # pending, in the open transaction
    net.stores["r"].rollback()  # the transaction fails: the eviction never happened
    net.run(10)
    assert gone not in evicted_told(net)
    assert net.stores["r"].get_message(gone) is not None  # still in custody
    assert not net.engines["r"].eviction_notices


def test_a_notice_pending_at_a_crash_is_sent_after_the_restart() -> None:
    net = full_relay_for_d(seed=12)
    gone = evict_once(net)
    assert net.engines["r"].commit()  # the eviction is on disk; its notice waits its second
    net.crash("r")
    net.run(20)
    assert gone in evicted_told(net)
    assert len([e for e in events_of(net, "o", ReceiptReceived) if e.mid == gone]) == 1


def test_pending_notices_round_trip_through_their_state_row() -> None:
    notices = EvictionNotices(delay=1.0)
    assert notices.add((5, 1, 2), P.ROUTINE, 60, now=3.0)
    assert notices.add((5, 1, 3), P.FLASH, 90, now=3.5)
    assert notices.add((6, 2, 1), P.PRIORITY, 120, now=4.0)
    again = EvictionNotices.from_bytes(notices.to_bytes(), 1.0)
    assert again.deadline() == notices.deadline() == 4.0
    assert again.take(10.0) == notices.take(10.0)
    assert not EvictionNotices.from_bytes(None, 1.0)


def test_notices_wait_while_the_store_cannot_write_and_go_once_it_can() -> None:
    net = full_relay_for_d(seed=13)
    gone = evict_once(net)
    r = net.engines["r"]
    assert r.commit()
    # The store turns unwritable before the notice's second is up (as `_store_failed` sets).
    r.store_problem = StoreUnwritable("full", "database or disk is full")
    r._store_retry_at = net.now + 5.0
    assert r._notices_deadline() == r._store_retry_at  # due, but waits: no spinning timer
    net.run(3.0)
    assert gone not in evicted_told(net)
    assert r.eviction_notices and r.stats.notices_unsent == 0  # held, not dropped
    net.run(20.0)  # the retry succeeds: the notice goes
    assert r.store_problem is None
    assert gone in evicted_told(net) and r.stats.notices_unsent == 0
