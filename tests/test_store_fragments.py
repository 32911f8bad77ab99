"""Reassembly is per (neighbour, message): one neighbour's transfer is never disturbed by
another's, abandoned transfers age out by their newest fragment, and the fragment tallies
always match the file."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from tawan.core.frames import FragFrame
from tawan.core.reassembly import Reassembly
from tawan.core.store import MessageId, Store

MID: MessageId = (3, 1, 7)
A, B = 11, 12  # two neighbours


def cut(body: bytes, count: int, mid: MessageId = MID) -> list[FragFrame]:
    size = -(-len(body) // count)
    return [FragFrame(0, i, mid, i, count, body[i * size : (i + 1) * size]) for i in range(count)]


def test_a_second_neighbour_cutting_the_message_differently_leaves_the_first_alone() -> None:
    store = Store.memory()
    reassembly = Reassembly(store, max_bytes=100_000)
    body = random.Random(1).randbytes(1000)
    from_a, from_b = cut(body, 4), cut(body, 7)
    for frame in from_a[:3]:
        assert reassembly.add(frame, neighbour=A, now=1.0).message is None
    for frame in from_b[:5]:  # another count for the same message: another transfer
        assert reassembly.add(frame, neighbour=B, now=2.0).message is None
    assert store.fragment_indices(A, MID) == {0, 1, 2}
    assert store.fragment_indices(B, MID) == {0, 1, 2, 3, 4}
    assert reassembly.add(from_a[3], neighbour=A, now=3.0).message == body
    assert store.fragment_indices(A, MID) == set()
    assert store.fragment_indices(B, MID) == {0, 1, 2, 3, 4}  # still there for B
    assert store.fragment_bytes() == sum(len(f.chunk) for f in from_b[:5])


def test_a_neighbour_recutting_its_own_transfer_starts_it_again() -> None:
    store = Store.memory()
    reassembly = Reassembly(store, max_bytes=100_000)
    body = bytes(range(200))
    for frame in cut(body, 4)[:2]:
        reassembly.add(frame, neighbour=A, now=1.0)
    recut = cut(body, 3)
    reassembly.add(recut[1], neighbour=A, now=2.0)
    assert store.fragment_indices(A, MID) == {1}
    assert store.fragment_bytes() == len(recut[1].chunk)
    reassembly.add(recut[0], neighbour=A, now=2.0)
    assert reassembly.add(recut[2], neighbour=A, now=2.0).message == body


def test_an_abandoned_transfer_is_expired_and_its_bytes_leave() -> None:
    store = Store.memory()
    reassembly = Reassembly(store, max_bytes=100_000)
    body = random.Random(2).randbytes(900)
    abandoned, progressing = cut(body, 3), cut(body, 9, mid=(4, 1, 1))
    reassembly.add(abandoned[0], neighbour=A, now=10.0)
    for step, frame in enumerate(progressing[:8]):
        reassembly.add(frame, neighbour=B, now=10.0 + 100 * step)  # slow, but going on
    assert store.fragment_bytes() == 300 + 800
    assert reassembly.expire(older_than=10.0) == 0  # nothing before 10.0
    assert reassembly.expire(older_than=600.0) == 1
    assert store.fragment_indices(A, MID) == set()
    assert store.fragment_bytes() == 800  # the progressing one began at 10.0 too: kept
    assert store.oldest_partial() == (B, (4, 1, 1))
    assert reassembly.add(progressing[8], neighbour=B, now=900.0).message == body
    assert (store.fragment_bytes(), store.oldest_partial(), reassembly.expire(1e9)) == (
        0,
        None,
        0,
    )


def test_a_repeated_fragment_is_no_progress() -> None:
    store = Store.memory()
    reassembly = Reassembly(store, max_bytes=100_000)
    frames = cut(bytes(300), 3)
    reassembly.add(frames[0], neighbour=A, now=1.0)
    reassembly.add(frames[0], neighbour=A, now=50.0)  # the same fragment, again
    assert store.partials_older_than(2.0) == [(A, MID)]
    assert reassembly.expire(2.0) == 1


def test_engine_call_without_neighbour_or_time_still_reassembles() -> None:
    # Until the engine passes them, neighbour and time default to 0.
    reassembly = Reassembly(Store.memory(), max_bytes=100_000)
    frames = cut(b"x" * 30, 3)
    assert [reassembly.add(f).message for f in frames] == [None, None, b"x" * 30]


def test_partials_and_their_times_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with Store(path) as store:
        Reassembly(store, max_bytes=100_000).add(cut(bytes(90), 3)[1], neighbour=A, now=5.0)
        store.put_fragment(B, MID, 0, 2, b"bb", 7.0)
        store.put_fragment(B, MID, 1, 2, b"b", 8.0)
    with Store(path) as store:
        assert store.fragment_bytes() == 33
        assert store.partials_older_than(7.5) == [(A, MID)]
        assert store.oldest_partial() == (A, MID)
        assert store.fragments(B, MID) == {0: b"bb", 1: b"b"}
        assert Reassembly(store, max_bytes=100_000).expire(9.0) == 2
        assert store.fragment_bytes() == 0


def recount(path: Path) -> dict[tuple[int, MessageId], int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT hop, src, epoch, seq, sum(length(chunk)) FROM fragments "
            "GROUP BY hop, src, epoch, seq"
        ).fetchall()
        return {(hop, (src, epoch, seq)): held for hop, src, epoch, seq, held in rows}
    finally:
        conn.close()


def test_fragment_tallies_match_the_file_under_random_transfers(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "node.db"
    store = Store(path)
    reassembly = Reassembly(store, max_bytes=4000)
    now = 0.0
    delivered = 0
    bodies = {
        (src, 1, seq): rng.randbytes(rng.randint(1, 900)) for src in (1, 2) for seq in (1, 2)
    }
    for _ in range(1500):
        now += rng.random()
        mid = rng.choice(list(bodies))
        count = rng.choice([1, 2, 3, 5])
        frame = rng.choice(cut(bodies[mid], count, mid=mid))
        neighbour = rng.choice([A, B, 13])
        if rng.random() < 0.05:
            reassembly.expire(now - 20)
        result = reassembly.add(frame, neighbour=neighbour, now=now)
        if result.message is not None:
            assert result.message == bodies[mid]
            delivered += 1
        if rng.random() < 0.1:
            store.commit()
            held = recount(path)
            assert store.fragment_bytes() == sum(held.values()) <= 4000
            assert set(store.partials_older_than(now + 1)) == set(held)
        elif rng.random() < 0.02:
            store.rollback()
    store.close()
    assert delivered > 10
    with Store(path) as store:
        assert store.fragment_bytes() == sum(recount(path).values())


def test_a_neighbour_filling_the_budget_loses_its_own_transfers_first() -> None:
    store = Store.memory()
    reassembly = Reassembly(store, max_bytes=5000)
    honest = cut(random.Random(2).randbytes(3000), 10)
    for frame in honest[:9]:
        reassembly.add(frame, neighbour=A, now=1.0)  # older than all of B's
    for n in range(40):  # B starts many transfers and never finishes any
        flood = cut(random.Random(100 + n).randbytes(400), 4, mid=(9, 1, n))
        for frame in flood[:3]:
            reassembly.add(frame, neighbour=B, now=2.0 + n)
    assert store.fragment_indices(A, MID) == set(range(9))
    assert store.fragment_bytes() <= 5000
    assert reassembly.add(honest[9], neighbour=A, now=50.0).message is not None
