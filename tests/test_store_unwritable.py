"""A store that cannot write (a full disk, the store's file cap, a read-only file): the node
stays up, takes no new custody, keeps forwarding and delivering what it holds, and takes
custody again once there is room; nothing it acknowledged is lost.

The disk fills for real: `Store.set_file_limit` (PRAGMA max_page_count) makes SQLite answer
"database or disk is full" exactly as a full file system does, without root or a small
device; `PRAGMA query_only` makes it answer "attempt to write a readonly database".
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from harness import Net, chain

from tawan.core.engine import SubmitError
from tawan.core.events import StoreDegraded, StoreRecovered
from tawan.core.precedence import Precedence
from tawan.core.store import Store, StoredMessage, StoreError, StoreUnwritable
from tawan.core.store_tx import file_limit, wal_limit


def fill_to_edge(store: Store, room: int) -> None:
    """Cap the store's file at what it holds now plus `room` bytes."""
    store.commit()
    used = store._pragma("page_count") * store._pragma("page_size")
    store.set_file_limit(used + room)


def relay_net(seed: int = 3) -> Net:
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"), seed=seed)
    net.run(5.0)  # neighbours up, routes known
    return net


def submit_many(net: Net, count: int, size: int = 1000) -> list[tuple[int, int, int]]:
    """`count` messages a -> c; random payloads, which compression cannot shrink."""
    return [
        net.submit("a", "c", net.rng.randbytes(size), precedence=Precedence.ROUTINE, ttl=3600)
        for i in range(count)
    ]  # fmt: skip


def delivered_ids(net: Net, name: str) -> list[tuple[int, int, int]]:
    return [e.mid for e in net.delivered(name)]


def test_a_full_relay_refuses_custody_forwards_what_it_holds_and_recovers() -> None:
    net = relay_net()
    fill_to_edge(net.stores["b"], 120 * 1024)
    net.links["b-c"].up = False  # the destination out of reach: b fills up
    sent = submit_many(net, 300)
    net.run(30.0)
    b = net.engines["b"]
    degraded = [e for e in net.events["b"] if isinstance(e, StoreDegraded)]
    assert len(degraded) == 1 and degraded[0].reason == "full"  # one event, not one a frame
    assert b.store_problem is not None
    held = net.stores["b"].message_count()
    assert 0 < held < 300
    assert net.stores["a"].message_count() >= 300 - held  # a kept what b did not take
    status = b.status(net.now)["store"]
    assert isinstance(status, dict) and status["writable"] is False
    assert "database or disk is full" in str(status["problem"])
    assert b.stats.refused_unwritable > 0
    with pytest.raises(SubmitError, match="store cannot write"):
        net.submit("b", "c", b"x", precedence=Precedence.FLASH, ttl=60)
    net.links["b-c"].up = True  # b forwards what it holds, which makes room
    net.run(240.0)
    assert any(isinstance(e, StoreRecovered) for e in net.events["b"])
    assert b.store_problem is None
    got = delivered_ids(net, "c")
    assert sorted(got) == sorted(sent)  # every message, once
    assert net.stores["b"].message_count() == 0 and net.stores["a"].message_count() == 0


def test_a_crash_while_full_loses_nothing_acknowledged() -> None:
    net = relay_net(seed=5)
    fill_to_edge(net.stores["b"], 80 * 1024)
    net.links["b-c"].up = False
    sent = submit_many(net, 200, size=700)
    net.run(20.0)
    assert net.engines["b"].store_problem is not None
    net.crash("b")  # restarted on the same full store: it must not crash-loop
    net.run(10.0)
    net.links["b-c"].up = True
    net.run(300.0)
    assert sorted(delivered_ids(net, "c")) == sorted(sent)


def test_a_destination_with_a_full_store_is_not_acknowledged_until_it_has_room() -> None:
    net = relay_net(seed=7)
    fill_to_edge(net.stores["c"], 150 * 1024)
    sent = submit_many(net, 300)
    net.run(30.0)
    c, inbox = net.engines["c"], net.stores["c"]
    assert c.store_problem is not None
    read: list[tuple[int, int, int]] = []  # what the application got, as the API shows it
    assert 0 < inbox.inbox_count() < 300
    for _ in range(20):  # the application reads, and acknowledges: room again
        assert c.commit() or c.store_problem is not None
        entries = inbox.inbox(0, 1000)
        if entries:
            read += [e.mid for e in entries]
            inbox.ack_inbox(entries[-1].rowid)
        net.run(30.0)
    assert any(isinstance(e, StoreRecovered) for e in net.events["c"])
    assert sorted(read) == sorted(sent)  # each message, once
    assert net.stores["a"].message_count() == net.stores["b"].message_count() == 0


def test_a_read_only_store_is_the_same_degraded_mode() -> None:
    net = relay_net(seed=9)
    net.stores["b"]._cur.execute("PRAGMA query_only=1")
    net.links["b-c"].up = False
    submit_many(net, 5)
    net.run(5.0)
    degraded = [e for e in net.events["b"] if isinstance(e, StoreDegraded)]
    assert [e.reason for e in degraded] == ["read-only"]
    assert net.stores["b"].message_count() == 0  # nothing taken, nothing acknowledged
    assert net.stores["a"].message_count() == 5
    net.stores["b"]._cur.execute("PRAGMA query_only=0")
    net.links["b-c"].up = True
    net.run(120.0)
    assert net.engines["b"].store_problem is None
    assert len(delivered_ids(net, "c")) == 5


# ---- the store alone --------------------------------------------------------------------


def msg(seq: int, size: int = 1000) -> StoredMessage:
    return StoredMessage((1, 1, seq), 9, 0, 0, 10**9, bytes(size), True, 0.0, 0)


def test_a_write_that_does_not_fit_rolls_back_everything_since_the_commit(tmp_path: Path) -> None:
    with Store(tmp_path / "node.db") as store:
        store.put_message(msg(0), [2])
        fill_to_edge(store, 16 * 1024)
        with pytest.raises(StoreUnwritable, match=r"node\.db.*full.*rolled back") as info:
            for seq in range(1, 100):
                store.put_message(msg(seq), [2])
        assert info.value.reason == "full"
        assert (store.dirty, store.message_count(), store.rollbacks) == (False, 1, 1)
        with pytest.raises(StoreUnwritable):
            store.check_room(64 * 1024)
        store.set_file_limit(1 << 30)
        store.check_room(64 * 1024)  # room again
        assert store.get_state("room-probe") is None


def test_the_file_and_the_wal_stay_within_what_max_bytes_allows(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    cap = 1 << 20
    with Store(path, max_bytes=cap) as store:
        for seq in range(20_000):  # far more than fits: eviction and refusals do their work
            with contextlib.suppress(StoreError):
                store.put_message(msg(seq, 100), [2])
            store.mark_seen((1, 1, seq), 10**9)
            if seq % 50 == 0:
                store.commit()
        store.commit()
        wal = os.path.getsize(str(path) + "-wal")
        assert wal <= 2 * wal_limit(cap)
        assert os.path.getsize(path) <= file_limit(cap)


def test_a_corrupted_store_is_refused_naming_the_file_and_what_the_check_found(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.db"
    with Store(path) as store:
        for seq in range(300):
            store.put_message(msg(seq, 200), [2])
        store.commit()
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(3 * page, len(data) - page, 2 * page):  # garble b-tree pages
        data[offset + 8 : offset + 200] = bytes(range(192))
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"node\.db.* is corrupted: .*") as info:
        Store(path)
    assert "quick_check" in str(info.value) or "malformed" in str(info.value)


def fill_up(store: Store) -> None:
    """Write filler state until the file cap refuses more (a full disk)."""
    for i in range(10_000):
        try:
            store.set_state(f"filler-{i}", bytes(4096))
            store.commit()
        except StoreUnwritable:
            return
    raise AssertionError("the store never filled")


def test_a_node_started_on_a_full_store_comes_up_degraded_and_recovers() -> None:
    net = relay_net(seed=11)
    store = net.stores["b"]
    fill_to_edge(store, 32 * 1024)
    fill_up(store)
    net.restart("b")  # writes at start-up fail: up all the same, no crash loop
    sent = submit_many(net, 20)
    net.run(20.0)
    b = net.engines["b"]
    assert b.store_problem is not None
    # What b did not take, a still holds (the odd message may fit in a page's last bytes)
    through = len(delivered_ids(net, "c")) + store.message_count()
    assert net.stores["a"].message_count() == 20 - through and through < 20
    store.set_file_limit(1 << 30)  # the operator made room
    net.run(120.0)
    assert b.store_problem is None
    assert sorted(delivered_ids(net, "c")) == sorted(sent)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_store_file_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    Store(path).close()
    path.chmod(0o444)
    with pytest.raises(StoreError, match=r"node\.db.*read-only"):
        Store(path)


def test_the_read_only_check_follows_the_permission_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "node.db"
    Store(path).close()
    monkeypatch.setattr(os, "access", lambda p, mode: str(p) != str(path))  # as for a non-root
    with pytest.raises(StoreError, match=r"node\.db.*read-only"):
        Store(path)
