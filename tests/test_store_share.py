"""Fair share: once the store is contended, no previous hop holds more than its
share, so one insider's unevictable OVERRIDE traffic cannot keep everyone else out (store
pinning), and the per-key tallies behind the rule always match the file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tawan.core.store import Store, StoredMessage, StoreError, StoreFull, StoreShareExceeded

ROUTINE, PRIORITY, IMMEDIATE, FLASH, OVERRIDE = range(5)


def message(
    seq: int,
    *,
    src: int,
    prev_hop: int,
    precedence: int = ROUTINE,
    size: int = 100,
    expires: int = 1000,
) -> StoredMessage:
    return StoredMessage(
        (src, 1, seq), 9, precedence, 0, expires, bytes(size), prev_hop == 0, 0.0, prev_hop
    )


def flood(store: Store, *, insider: int, precedence: int = OVERRIDE) -> int:
    """Messages the insider sends itself, until the store refuses; how many it got in."""
    for n in range(10_000):
        try:
            store.put_message(
                message(n, src=insider, prev_hop=insider, precedence=precedence, size=400), [3]
            )
        except StoreShareExceeded:
            return n
    raise AssertionError("the store never refused the flood")


def test_a_neighbour_flooding_override_cannot_keep_out_another_neighbours_flash() -> None:
    store = Store.memory(max_bytes=40_000)
    taken = flood(store, insider=5)
    assert taken == 50  # half the store: 20_000 bytes
    assert store.bytes_by_prev_hop() == {5: 20_000}
    for seq in range(40):  # another neighbour's FLASH, and more of it, is still taken
        store.put_message(message(100 + seq, src=7, prev_hop=6, precedence=FLASH, size=400), [3])
    store.put_message(message(200, src=8, prev_hop=0, precedence=FLASH, size=400), [3])
    assert store.bytes_by_prev_hop() == {5: 20_000, 6: 16_000, 0: 400}
    with pytest.raises(StoreShareExceeded):  # the flooder is still held to its share
        store.put_message(message(300, src=9, prev_hop=5, precedence=OVERRIDE, size=400), [3])
    with pytest.raises(StoreShareExceeded):  # whoever relays its own messages
        store.put_message(message(301, src=5, prev_hop=6, precedence=OVERRIDE, size=400), [3])


def test_the_refusal_names_the_key_its_usage_and_the_share() -> None:
    store = Store.memory(max_bytes=1000)
    for seq in range(5):
        store.put_message(message(seq, src=10 + seq, prev_hop=5), [3])
    store.put_message(message(9, src=10, prev_hop=6, size=50), [3])
    with pytest.raises(
        StoreShareExceeded,
        match=r"message \(20, 1, 5\) \(100 bytes\) refused: previous hop 5 holds 500 bytes, "
        r"and its fair share of the contended store \(550 of 1000 bytes in use\) is 500 bytes "
        r"\(max_bytes // 2\)",
    ):
        store.put_message(message(5, src=20, prev_hop=5), [3])
    assert issubclass(StoreShareExceeded, StoreFull)  # refused custody, as for a full store
    assert store.bytes_used() == 550  # nothing changed


def test_a_lone_sender_gets_half_the_store_and_no_more() -> None:
    # n = 1 still gives a share of max_bytes // 2: alone, a neighbour fills half the store,
    # uncontended; then it is refused, and the other half waits for anyone else.
    store = Store.memory(max_bytes=1000)
    for seq in range(5):
        store.put_message(message(seq, src=10 + seq, prev_hop=5), [3])
    assert store.bytes_used() == 500
    with pytest.raises(StoreShareExceeded, match=r"previous hop 5 holds 500 bytes"):
        store.put_message(message(5, src=15, prev_hop=5, size=1), [3])
    for seq in range(5):
        store.put_message(message(10 + seq, src=20 + seq, prev_hop=6), [3])
    assert store.bytes_used() == 1000  # the second neighbour got the other half


def test_a_claimed_source_is_held_to_no_share() -> None:
    # Relays cannot check a message's source: a share per source would let an insider
    # (previous hop 9) use up a real source's (7's) share with forgeries claiming it.
    store = Store.memory(max_bytes=1000)
    for seq in range(5):
        store.put_message(message(seq, src=7, prev_hop=9), [3])
    store.put_message(message(5, src=7, prev_hop=7), [3])  # 7 itself still gets in
    assert store.bytes_by_source() == {7: 600}


def test_local_submissions_are_held_to_no_share_but_count_towards_n() -> None:
    store = Store.memory(max_bytes=1000)
    for seq in range(8):
        store.put_message(message(seq, src=10 + seq, prev_hop=0), [3])  # past half: fine
    assert store.bytes_by_prev_hop() == {0: 800}
    # A neighbour now shares with the local traffic: n = 2, its share is 500.
    store.put_message(message(100, src=30, prev_hop=4), [3])
    with pytest.raises(StoreShareExceeded, match=r"previous hop 4 holds 100"):
        store.put_message(message(101, src=30, prev_hop=4, size=450), [3])


def test_a_duplicate_in_a_contended_store_is_a_duplicate_not_a_refusal() -> None:
    store = Store.memory(max_bytes=1000)
    for seq in range(5):
        store.put_message(message(seq, src=10, prev_hop=5), [3])
    with pytest.raises(StoreError, match=r"already stored") as raised:
        store.put_message(message(4, src=10, prev_hop=5), [3])
    assert not isinstance(raised.value, StoreFull)


def test_eviction_still_takes_only_lower_precedence() -> None:
    store = Store.memory(max_bytes=1000)
    for seq in range(4):
        store.put_message(message(seq, src=10, prev_hop=5, precedence=FLASH), [3])
    store.put_message(message(4, src=11, prev_hop=6, precedence=IMMEDIATE), [3])
    store.put_message(message(5, src=11, prev_hop=6, precedence=ROUTINE), [3])
    store.put_message(message(6, src=12, prev_hop=7, precedence=FLASH, size=300), [3])
    evicted = store.put_message(message(7, src=13, prev_hop=8, precedence=PRIORITY, size=150), [3])
    assert [m.mid for m in evicted] == [(11, 1, 5)]
    with pytest.raises(StoreFull, match=r"no room") as refused:  # only FLASH or equal is left
        store.put_message(message(8, src=14, prev_hop=9, precedence=PRIORITY), [3])
    assert type(refused.value) is StoreFull
    assert store.bytes_by_prev_hop() == {5: 400, 6: 100, 7: 300, 8: 150}


def recount(path: Path) -> tuple[dict[int, int], dict[int, int]]:
    conn = sqlite3.connect(path)
    try:
        by_source = conn.execute(
            "SELECT src, sum(size) FROM messages GROUP BY src HAVING sum(size) > 0"
        ).fetchall()
        by_hop = conn.execute(
            "SELECT prev_hop, sum(size) FROM messages GROUP BY prev_hop HAVING sum(size) > 0"
        ).fetchall()
        return dict(by_source), dict(by_hop)
    finally:
        conn.close()


def test_every_way_out_of_the_store_updates_the_tallies(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    store = Store(path, max_bytes=1000)

    def agree(by_source: dict[int, int], by_hop: dict[int, int]) -> None:
        assert (store.bytes_by_source(), store.bytes_by_prev_hop()) == (by_source, by_hop)
        store.commit()
        assert recount(path) == (by_source, by_hop)

    store.put_message(message(1, src=10, prev_hop=5, size=200), [3])
    store.put_message(message(2, src=10, prev_hop=6, size=100, expires=50), [3])
    store.put_message(message(3, src=11, prev_hop=6, size=150), [3, 4])
    store.put_message(message(4, src=12, prev_hop=0, size=120), [])
    store.put_message(message(5, src=13, prev_hop=7, size=0), [3])  # holds no bytes
    agree({10: 300, 11: 150, 12: 120}, {5: 200, 6: 250, 0: 120})
    assert store.remove_next_hop((11, 1, 3), 3)  # one of two: stays
    agree({10: 300, 11: 150, 12: 120}, {5: 200, 6: 250, 0: 120})
    assert store.remove_next_hop((11, 1, 3), 4)  # the last: leaves
    agree({10: 300, 12: 120}, {5: 200, 6: 100, 0: 120})
    assert [m.mid for m in store.expire(50)] == [(10, 1, 2)]
    agree({10: 200, 12: 120}, {5: 200, 0: 120})
    assert store.delete_message((12, 1, 4))
    agree({10: 200}, {5: 200})
    store.put_message(message(6, src=14, prev_hop=8, precedence=ROUTINE, size=300), [3])
    store.put_message(message(7, src=15, prev_hop=9, precedence=ROUTINE, size=300), [3])
    evicted = store.put_message(message(8, src=16, prev_hop=1, precedence=FLASH, size=250), [3])
    assert [m.mid for m in evicted] == [(10, 1, 1)]
    agree({14: 300, 15: 300, 16: 250}, {8: 300, 9: 300, 1: 250})
    store.put_message(message(9, src=17, prev_hop=2, size=100), [3])
    store.rollback()
    assert (store.bytes_by_source(), store.bytes_by_prev_hop()) == recount(path)
    store.close()
    with Store(path, max_bytes=1000) as reopened:
        assert (reopened.bytes_by_source(), reopened.bytes_by_prev_hop()) == recount(path)
