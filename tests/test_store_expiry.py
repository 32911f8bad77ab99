"""Housekeeping's questions (what has expired, when the next message expires) are answered
from bounds kept in memory: the answers are always what SQL says, across every insert and
delete path, rollbacks and reopening, and an idle pass executes no statement."""

from __future__ import annotations

import contextlib
import math
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from harness import Net, chain
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from tawan.core.precedence import Precedence
from tawan.core.store import HELD, MessageId, Store, StoredMessage, StoreFull, SubmissionRef

ROUTINE, PRIORITY, IMMEDIATE, FLASH, OVERRIDE = range(5)


def message(seq: int, *, expires: int, precedence: int = ROUTINE, size: int = 40) -> StoredMessage:
    # Each its own source and previous hop, so the fair share never refuses one.
    return StoredMessage((seq, 1, seq), 9, precedence, 0, expires, bytes(size), False, 0.5, seq)


def earliest(store: Store, table: str) -> int | None:
    """The earliest expiry in `table`, asked of SQLite on the store's own connection (which
    sees what the open transaction wrote)."""
    row = store._conn.execute(f"SELECT min(expires) FROM {table}").fetchone()  # noqa: S608
    return None if row[0] is None else int(row[0])


def expiring(store: Store, table: str, clause: str, t: int) -> set[tuple[int, ...]]:
    rows = store._conn.execute(
        f"SELECT src, epoch, seq FROM {table} WHERE expires {clause} ?",  # noqa: S608
        (t,),
    )
    return {tuple(row) for row in rows}


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """Every SQL statement the store executes inside the block."""
    executed: list[str] = []
    store._conn.set_trace_callback(executed.append)
    try:
        yield executed
    finally:
        store._conn.set_trace_callback(None)


def housekeeping(store: Store, now: int) -> tuple[list[MessageId], int | None]:
    """What the engine's housekeeping asks of the store: expire, prune, the next expiry."""
    gone = [m.mid for m in store.expire(now)]
    store.forget_seen_before(now)
    store.forget_refs_before(now)
    return gone, store.next_expiry()


# ---- an idle pass asks nothing -----------------------------------------------------------


def filled(store: Store) -> None:
    for seq in range(1, 6):
        store.put_message(message(seq, expires=100 + seq), [3])
        store.mark_seen((seq, 1, seq), 200 + seq)
        store.put_sent((seq, 1, seq), 4, 300 + seq)
        store.put_ref(b"ref%d" % seq, SubmissionRef((seq, 1, seq), b"d", 400 + seq))
    store.commit()


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_an_idle_housekeeping_pass_executes_no_statement(tmp_path: Path, kind: str) -> None:
    store = Store.memory() if kind == "memory" else Store(tmp_path / "node.db")
    filled(store)
    housekeeping(store, 10)  # the first pass after opening may ask
    with statements(store) as executed:
        for now in range(10, 101):
            assert housekeeping(store, now) == ([], 101)
    assert executed == []
    with statements(store) as executed:  # due: it asks and prunes
        assert housekeeping(store, 101) == ([(1, 1, 1)], 102)
    assert executed
    store.commit()
    with statements(store) as executed:
        assert housekeeping(store, 101) == ([], 102)
    assert executed == []
    assert [m.mid for m in store.expire(102)] == [(2, 1, 2)]  # twice without next_expiry:
    assert [m.mid for m in store.expire(103)] == [(3, 1, 3)]  # the bound rose only so far
    assert store.next_expiry() == 104  # asked: the earliest left
    store.put_message(message(9, expires=50), [3])  # an insert lowers the bound
    store.mark_seen((9, 1, 9), 60)
    with statements(store) as executed:
        assert housekeeping(store, 40) == ([], 50)
    assert executed == []
    assert housekeeping(store, 70) == ([(9, 1, 9)], 104)
    assert not store.seen((9, 1, 9))
    store.close()


def test_after_a_rollback_or_reopening_the_bounds_are_asked_again(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = Store(path)
    filled(store)
    assert housekeeping(store, 207) == ([(s, 1, s) for s in range(1, 6)], None)
    assert not store.seen((1, 1, 1))
    store.rollback()  # the prune is undone: everything is back, and due again
    assert store.next_expiry() == 101
    assert housekeeping(store, 150) == ([(s, 1, s) for s in range(1, 6)], None)
    store.commit()
    assert store.seen((5, 1, 5))
    store.close()
    store = Store(path)
    assert store.next_expiry() is None
    assert store.forget_seen_before(306) == 5 + 5  # the dedup records, and the sent ones
    store.close()


def test_an_idle_node_asks_nothing_at_housekeeping() -> None:
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"))
    net.run(3)
    net.submit("a", "c", b"order", precedence=Precedence.ROUTINE, ttl=3600)
    net.run(10)
    assert len(net.delivered("c")) == 1
    store = net.stores["b"]
    asked: dict[str, int] = {}
    calls: dict[str, int] = {}

    def counting(name: str, method: Callable[..., object]) -> Callable[..., object]:
        def counted(*args: object) -> object:
            with statements(store) as executed:
                result = method(*args)
            asked[name] = asked.get(name, 0) + len(executed)
            calls[name] = calls.get(name, 0) + 1
            return result

        return counted

    for name in ("expire", "forget_seen_before", "forget_refs_before", "next_expiry"):
        setattr(store, name, counting(name, getattr(store, name)))
    net.run(600)  # the message's dedup record is kept for its ttl: not due
    assert calls["forget_seen_before"] >= 10
    assert sum(asked.values()) == 0, asked


# ---- the answers are what SQL says -------------------------------------------------------


class ExpiryMachine(RuleBasedStateMachine):
    """Random writes, prunes, commits, rollbacks and reopenings of a file store; after each,
    what the store answers from memory is compared with what SQL says."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.path = Path(self.folder.name) / "node.db"
        self.store = Store(self.path, max_bytes=400)  # small: eviction happens
        self.seq = 0
        self.now = 0

    def teardown(self) -> None:
        self.store.close()
        self.folder.cleanup()

    def mids(self, table: str = "messages") -> list[MessageId]:
        rows = self.store._conn.execute(f"SELECT src, epoch, seq FROM {table} ORDER BY seq")  # noqa: S608
        return [(src, epoch, seq) for src, epoch, seq in rows]

    def pick(self, table: str, index: int) -> MessageId | None:
        mids = self.mids(table)
        return mids[index % len(mids)] if mids else None

    @initialize()
    def start(self) -> None:
        self.now = 10

    @rule(
        life=st.integers(-5, 40),
        precedence=st.integers(0, 4),
        size=st.integers(0, 120),
        hops=st.sets(st.integers(1, 3), max_size=2),
    )
    def put(self, life: int, precedence: int, size: int, hops: set[int]) -> None:
        self.seq += 1
        new = message(self.seq, expires=self.now + life, precedence=precedence, size=size)
        with contextlib.suppress(StoreFull):  # refused: no room (or beyond its share)
            self.store.put_message(new, hops)  # may evict

    @rule(index=st.integers(0, 50), hop=st.sampled_from([HELD, 1, 2, 3]))
    def acknowledge(self, index: int, hop: int) -> None:
        mid = self.pick("messages", index)
        if mid is not None:
            self.store.remove_next_hop(mid, hop)

    @rule(indices=st.sets(st.integers(0, 50), max_size=8), hop=st.integers(1, 3))
    def acknowledge_many(self, indices: set[int], hop: int) -> None:
        mids = self.mids()
        if mids:
            self.store.remove_next_hops(sorted({mids[i % len(mids)] for i in indices}), hop)

    @rule(index=st.integers(0, 50))
    def delete(self, index: int) -> None:
        mid = self.pick("messages", index)
        if mid is not None:
            assert self.store.delete_message(mid)

    @rule(index=st.integers(0, 50))
    def hold(self, index: int) -> None:
        mid = self.pick("messages", index)
        if mid is not None:
            self.store.hold(mid)

    @rule(life=st.integers(-5, 40), count=st.integers(1, 3))
    def mark_seen(self, life: int, count: int) -> None:
        self.seq += 1
        mid = (self.seq, 1, self.seq)
        if count == 1:
            self.store.mark_seen(mid, self.now + life)
        else:
            slots = [(self.seq, 2, n) for n in range(count - 1)]
            self.store.mark_seen_many([mid, *slots], self.now + life)

    @rule(index=st.integers(0, 50), life=st.integers(-5, 40))
    def mark_seen_again(self, index: int, life: int) -> None:
        mid = self.pick("seen", index)  # a duplicate: ignored, its expiry unchanged
        if mid is not None:
            assert not self.store.mark_seen(mid, self.now + life)

    @rule(index=st.integers(0, 50))
    def unmark_seen(self, index: int) -> None:
        mid = self.pick("seen", index)
        if mid is not None:
            self.store.unmark_seen(mid)

    @rule(life=st.integers(-5, 40), again=st.booleans(), index=st.integers(0, 50))
    def put_sent(self, life: int, again: bool, index: int) -> None:
        mid = self.pick("sent", index) if again else None  # put again: replaced
        if mid is None:
            self.seq += 1
            mid = (self.seq, 1, self.seq)
        self.store.put_sent(mid, 4, self.now + life)

    @rule(life=st.integers(-5, 40), ref=st.integers(0, 6))
    def put_ref(self, life: int, ref: int) -> None:
        self.seq += 1
        entry = SubmissionRef((self.seq, 1, self.seq), b"digest", self.now + life)
        self.store.put_ref(b"ref%d" % ref, entry)

    @rule(advance=st.integers(0, 15))
    def expire(self, advance: int) -> None:
        self.now += advance
        due = expiring(self.store, "messages", "<=", self.now)
        assert {m.mid for m in self.store.expire(self.now)} == due
        assert not expiring(self.store, "messages", "<=", self.now)

    @rule(advance=st.integers(0, 15))
    def prune(self, advance: int) -> None:
        self.now += advance
        due = len(expiring(self.store, "seen", "<", self.now))
        due += len(expiring(self.store, "sent", "<", self.now))
        assert self.store.forget_seen_before(self.now) == due
        self.store.forget_refs_before(self.now)
        for table in ("seen", "sent", "refs"):
            assert not expiring(self.store, table, "<", self.now), table

    @rule()
    def next_expiry(self) -> None:
        assert self.store.next_expiry() == earliest(self.store, "messages")

    @rule()
    def commit(self) -> None:
        self.store.commit()

    @precondition(lambda self: self.store.dirty)
    @rule()
    def rollback(self) -> None:
        self.store.rollback()

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store(self.path, max_bytes=400)

    @invariant()
    def bounds_are_sound(self) -> None:
        store = self.store
        for table, bound in (
            ("seen", store._seen_expiry),
            ("sent", store._sent_expiry),
            ("refs", store._ref_expiry),
            ("messages", store._earliest),
        ):
            first = earliest(store, table)
            assert bound.bound <= (math.inf if first is None else first), table
        if store._earliest.exact:
            assert store._earliest.earliest() == earliest(store, "messages")


TestExpiryAnswers = ExpiryMachine.TestCase
TestExpiryAnswers.settings = settings(max_examples=100, stateful_step_count=60, deadline=None)


def test_a_store_put_back_from_a_backup_forgets_its_bounds() -> None:
    store = Store.memory()
    backup = sqlite3.connect(":memory:")
    store.put_message(message(1, expires=50), [3])
    store.mark_seen((1, 1, 1), 50)
    store.commit()
    store._conn.backup(backup)
    assert housekeeping(store, 60) == ([(1, 1, 1)], None)
    store.commit()
    backup.backup(store._conn)  # what a restored file holds, as tests/test_nonce.py does
    store._load_counters()
    assert housekeeping(store, 60) == ([(1, 1, 1)], None)
    assert not store.seen((1, 1, 1))
