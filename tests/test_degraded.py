"""The degraded mode of a node whose store cannot write, at its edges: a batch of sends
that a later failure rolls back, a write made outside the engine, a read-only relay that
must keep forwarding, the signal of room after recovery, a rebuild whose reads fail too, and
a retry by reference while degraded (docs/operators.md, "A store that cannot write")."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from harness import Net
from test_store_unwritable import delivered_ids, relay_net, submit_many

from tawan.core.engine import SubmitError
from tawan.core.neighbours import Adjacency
from tawan.core.precedence import Precedence
from tawan.core.specs import Submission
from tawan.core.store import StoreUnwritable


def read_only(net: Net, name: str, on: bool = True) -> None:
    net.stores[name]._cur.execute(f"PRAGMA query_only={int(on)}")


def test_a_send_rolled_back_by_a_later_one_in_its_batch_is_not_answered_ok() -> None:
    net = relay_net()
    a, store = net.engines["a"], net.stores["a"]
    c = net.address("c")
    assert a.commit()
    since = store.rollbacks  # what the API notes when a batch starts
    first = a.submit(Submission(c, b"A" * 100, Precedence.ROUTINE, 600), net.now)
    read_only(net, "a")  # the disk goes read-only in the middle of the batch
    with pytest.raises(SubmitError, match="store cannot write"):
        a.submit(Submission(c, b"B" * 100, Precedence.ROUTINE, 600), net.now)
    assert store.get_message(first) is None  # the rollback took the first send too
    assert not a.commit(since=since)  # so the API must not answer it with its id
    assert not a.commit()  # nor may a plain commit claim it durable while degraded


def test_a_failed_write_outside_the_engine_acknowledges_nothing_it_rolled_back() -> None:
    net = relay_net()
    b, bs = net.engines["b"], net.stores["b"]
    net.links["b-c"].up = False
    fired: list[float] = []
    receive = b.receive

    def receive_then_fail(link: str, peer: str, data: bytes, now: float) -> None:
        receive(link, peer, data, now)
        if not fired and bs.dirty and any(b.tx._acks.values()):
            fired.append(now)  # custody taken, its acknowledgement due, not committed yet
            read_only(net, "b")
            with pytest.raises(StoreUnwritable):
                bs.ack_inbox(10**9)  # what the API's `ack` does, on a store that cannot write
            read_only(net, "b", False)

    b.receive = receive_then_fail  # type: ignore[method-assign]
    mid = net.submit("a", "c", b"x" * 200, precedence=Precedence.ROUTINE, ttl=3600)
    net.run(3.0)
    assert fired
    assert net.stores["a"].message_count() + bs.message_count() == 1  # someone holds it
    net.crash("b")
    net.links["b-c"].up = True
    net.run(60.0)
    assert delivered_ids(net, "c") == [mid]


def test_a_read_only_relay_forwards_and_delivers_what_it_holds() -> None:
    net = relay_net(seed=9)
    b, bs = net.engines["b"], net.stores["b"]
    net.links["b-c"].up = False
    sent = submit_many(net, 20)
    net.run(10.0)
    assert bs.message_count() == 20
    read_only(net, "b")  # b's file system is remounted read-only
    net.links["b-c"].up = True  # the destination comes back
    net.run(120.0)
    assert b.store_problem is not None and b.store_problem.reason == "read-only"
    assert sorted(delivered_ids(net, "c")) == sorted(sent)  # each once, while read-only
    assert b.stats.store_failures < 40  # retries, not a rebuild per frame
    read_only(net, "b", False)  # writable again: what was delivered leaves b's store
    net.run(60.0)
    assert b.store_problem is None
    assert bs.message_count() == 0
    assert sorted(delivered_ids(net, "c")) == sorted(sent)


def test_a_neighbour_refused_while_degraded_is_told_of_room_after_recovery() -> None:
    net = relay_net(seed=13)
    net.links["b-c"].up = False
    read_only(net, "b")
    submit_many(net, 3)
    net.run(5.0)
    assert net.engines["b"].stats.refused_unwritable > 0
    b = net.engines["b"]
    rooms: list[int] = []
    hello = b.tx.hello

    def spy(adj: Adjacency, now: float, *, reply: bool, **more: Any) -> None:
        if more.get("room"):
            rooms.append(adj.neighbour)
        hello(adj, now, reply=reply, **more)

    b.tx.hello = spy  # type: ignore[method-assign]
    signals = net.engines["b"].stats.room_signals
    assert signals == 0  # nothing signalled while it cannot write
    read_only(net, "b", False)
    net.run(30.0)
    assert net.engines["b"].store_problem is None
    assert b.stats.room_signals > signals and rooms == [net.address("a")]


def test_a_rebuild_whose_reads_fail_is_deferred_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = relay_net(seed=15)
    b, bs = net.engines["b"], net.stores["b"]
    net.links["b-c"].up = False
    sent = submit_many(net, 5)
    net.run(5.0)
    failing = [True]

    def pending_hops() -> list[int]:
        if failing[0]:
            raise StoreUnwritable("i/o error", "store: write failed (i/o error): disk I/O error")
        return original()

    def load_counters() -> None:
        if failing[0]:
            raise sqlite3.OperationalError("disk I/O error")
        original_load()

    original, original_load = bs.pending_hops, bs._load_counters
    monkeypatch.setattr(bs, "pending_hops", pending_hops)
    monkeypatch.setattr(bs, "_load_counters", load_counters)
    bs.set_state("x", b"y")  # something to lose
    read_only(net, "b")
    with pytest.raises(StoreUnwritable):
        bs.set_state("x", b"z")  # the rollback's reload fails too: still StoreUnwritable
    b._store_failed(StoreUnwritable("i/o error", "disk I/O error"), net.now)  # no raise
    assert b.store_problem is not None
    failing[0] = False
    read_only(net, "b", False)
    net.links["b-c"].up = True
    net.run(120.0)
    assert b.store_problem is None
    assert sorted(delivered_ids(net, "c")) == sorted(sent)


def test_a_retry_by_reference_is_answered_while_degraded() -> None:
    net = relay_net(seed=17)
    a = net.engines["a"]
    c = net.address("c")
    first = Submission(c, b"p" * 50, Precedence.ROUTINE, 600, ref=b"r-1")
    mid = a.submit(first, net.now)
    assert a.commit()
    read_only(net, "a")
    with pytest.raises(SubmitError, match="store cannot write"):
        a.submit(Submission(c, b"n", Precedence.ROUTINE, 600), net.now)
    assert a.store_problem is not None
    assert a.submit(first, net.now) == mid  # a read: answered, not refused
    other = Submission(c, b"q" * 50, Precedence.ROUTINE, 600, ref=b"r-1")
    with pytest.raises(SubmitError, match="already used"):
        a.submit(other, net.now)
    with pytest.raises(SubmitError, match="store cannot write"):
        a.submit(Submission(c, b"n", Precedence.ROUTINE, 600, ref=b"r-2"), net.now)
