"""Commits: forced to disk on request, lost transactions counted, idle passes write nothing,
and acknowledged inbox plaintext scrubbed from the database file and its WAL."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tawan.core.store import Store, StoredMessage

REPO = Path(__file__).resolve().parents[1]


def routine(seq: int, size: int = 100) -> StoredMessage:
    return StoredMessage((1, 1, seq), 9, 0, 0, 1000, bytes(size), False, 0.0)


def run_child(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        cwd=REPO,
        env=env,
        text=True,
        timeout=60,
        check=False,
    )


# ---- commit(sync=True) ------------------------------------------------------------------

SYNCING_WRITER = """
import os, sys
from tawan.core.store import Store, StoredMessage

store = Store(sys.argv[1], durability=sys.argv[2])
def put(seq):
    store.put_message(StoredMessage((1, 1, seq), 9, 0, 0, 1000, bytes(100), False, 0.0), [2])
def mark(name):
    os.write(2, b"MARK " + name.encode() + b"\\n")
put(0)
store.commit()
mark("plain")
put(1)
store.commit()
mark("sync")
put(2)
store.commit(sync=True)
mark("clean-synced")
store.commit(sync=True)
mark("clean-unsynced")
put(3)
store.commit()
store.commit(sync=True)
mark("end")
"""


def wal_syncs_per_step(tmp_path: Path, durability: str) -> dict[str, int]:
    """fsync/fdatasync calls on the WAL between the writer's marks, seen by strace."""
    trace = tmp_path / f"trace-{durability}"
    db = tmp_path / f"{durability}.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    strace = ["strace", "-f", "-y", "-o", str(trace), "-e", "trace=fsync,fdatasync,write"]
    done = subprocess.run(
        [*strace, sys.executable, "-c", SYNCING_WRITER, str(db), durability],
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )
    if done.returncode != 0 and b"ptrace" in done.stderr:
        pytest.skip(f"strace cannot trace here: {done.stderr[-200:]!r}")
    assert done.returncode == 0, done.stderr
    syncs: Counter[str] = Counter()
    step = "open"
    for line in trace.read_text().splitlines():
        marked = re.search(r'"MARK ([a-z-]+)\\n"', line)
        if marked:
            step = marked.group(1)
        elif re.search(r"\b(fsync|fdatasync)\(\d+<[^>]*\.db-wal>\)", line):
            syncs[step] += 1
    return {step: syncs[step] for step in ("plain", "sync", "clean-synced", "clean-unsynced")}


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch fsync")
def test_sync_commit_forces_the_wal_to_disk_in_a_process_store(tmp_path: Path) -> None:
    # Steps are named by the mark that starts them. At synchronous=NORMAL a commit leaves
    # the WAL unsynced; commit(sync=True) syncs it, also for commits made before it, and does
    # nothing more once everything is synced.
    assert wal_syncs_per_step(tmp_path, "process") == {
        "plain": 0,
        "sync": 1,
        "clean-synced": 0,
        "clean-unsynced": 1,
    }


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch fsync")
def test_power_store_syncs_every_commit_itself(tmp_path: Path) -> None:
    # The control for the test above: SQLite's own sync at FULL is seen the same way, and
    # sync=True adds nothing to it.
    syncs = wal_syncs_per_step(tmp_path, "power")
    assert syncs["plain"] >= 1
    assert syncs["sync"] == syncs["plain"]
    assert syncs["clean-synced"] == 0


def test_sync_commit_is_harmless_in_memory_and_keeps_synchronous_normal(tmp_path: Path) -> None:
    with Store(tmp_path / "node.db") as store:
        store.put_message(routine(1), [2])
        store.commit(sync=True)
        assert (store.dirty, store.synchronous) == (False, "NORMAL")
    memory = Store.memory()
    memory.put_message(routine(1), [2])
    memory.commit(sync=True)
    assert not memory.dirty
    memory.close()


# ---- lost transactions ------------------------------------------------------------------


def test_rollback_counts_only_when_it_drops_writes() -> None:
    store = Store.memory()
    store.rollback()
    assert store.rollbacks == 0  # nothing to lose
    store.put_message(routine(1), [2])
    store.set_state("seq", b"\x01")
    store.rollback()
    assert store.rollbacks == 1
    assert (store.message_count(), store.get_state("seq"), store.dirty) == (0, None, False)
    store.close()


FULL_DISK_WRITER = """
import json, os, resource, signal, sys
from tawan.core.store import Store, StoredMessage, StoreUnwritable

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
path = sys.argv[1]
store = Store(path)
def put(seq, size, prev_hop):
    store.put_message(
        StoredMessage((1, 1, seq), 9, 0, 0, 1000, bytes(size), False, 0.0, prev_hop), [2]
    )
put(0, 100, 4)
store.set_state("seq", b"1")
store.commit()
limit = max(os.path.getsize(path), os.path.getsize(path + "-wal")) + 8192
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
for seq in range(1, 40):  # stays in the page cache until COMMIT writes the WAL
    put(seq, 2000, 5)
store.set_state("seq", b"2")
try:
    store.commit()
    failure = None
except StoreUnwritable as exc:
    failure = str(exc)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
report = {
    "failure": failure,
    "rollbacks": store.rollbacks,
    "dirty": store.dirty,
    "count": store.message_count(),
    "by_prev_hop": store.bytes_by_prev_hop(),
    "seq": store.get_state("seq").decode(),
}
put(99, 10, 6)  # the store goes on working once there is room again
store.commit()
report["after"] = store.message_count()
print(json.dumps(report))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="needs RLIMIT_FSIZE")
def test_a_commit_that_sqlite_rolled_back_is_counted_and_the_tallies_follow(
    tmp_path: Path,
) -> None:
    done = run_child(FULL_DISK_WRITER, str(tmp_path / "node.db"))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["failure"] is not None and "commit failed" in report["failure"]
    assert report["rollbacks"] == 1
    assert not report["dirty"]
    assert (report["count"], report["by_prev_hop"], report["seq"]) == (1, {"4": 100}, "1")
    assert report["after"] == 2


# ---- idle housekeeping ------------------------------------------------------------------


def test_forget_seen_before_opens_no_transaction_when_nothing_expired(tmp_path: Path) -> None:
    with Store(tmp_path / "node.db") as store:
        store.mark_seen((1, 1, 1), 100)
        store.put_sent((9, 1, 1), 4, 200)
        store.commit()
        assert store.forget_seen_before(100) == 0
        assert not store.dirty  # an idle node commits nothing at its housekeeping pass
        assert store.forget_seen_before(101) == 1
        assert store.dirty
        store.commit()
        assert store.forget_seen_before(150) == 0
        assert not store.dirty
        assert store.forget_seen_before(201) == 1  # the sent record goes with the dedup
        assert store.sent_to((9, 1, 1)) is None


# ---- acknowledged plaintext -------------------------------------------------------------


def raw(path: Path) -> bytes:
    """The database file and its WAL, as on disk."""
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def deliver(store: Store, seq: int, payload: bytes) -> int:
    return store.put_inbox(
        mid=(4, 1, seq),
        src=4,
        dst=9,
        precedence=1,
        created=seq,
        received_at=0.0,
        payload=payload,
        signed=True,
    )


@pytest.mark.parametrize("size", [64, 5000], ids=["in-page", "overflow-pages"])
def test_acknowledged_inbox_payload_leaves_the_file_and_the_wal(tmp_path: Path, size: int) -> None:
    path = tmp_path / "node.db"
    secret = random.Random(size).randbytes(64)
    payload = (secret * (size // 64 + 1))[:size]
    with Store(path) as store:
        kept = deliver(store, 1, b"kept entry")
        acked = deliver(store, 2, payload)
        deliver(store, 3, b"a later entry")
        store.commit()
        store._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # in the file, not only the WAL
        assert secret in path.read_bytes()
        store.ack_inbox(kept)
        store.commit()
        assert secret in raw(path)  # not acknowledged yet
        assert store.ack_inbox(acked) == 1
        assert secret in raw(path)  # deleted, not yet committed
        store.commit()
        assert secret not in raw(path)
        assert store.inbox_count() == 1
    assert secret not in raw(path)


def test_scrub_waits_for_a_reader_and_then_happens(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    secret = random.Random(3).randbytes(64)
    store = Store(path)
    acked = deliver(store, 1, secret)
    store.commit()
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM inbox").fetchone()  # holds the old snapshot
        store.ack_inbox(acked)
        store.commit()  # the truncating checkpoint cannot finish under the reader
        assert secret in raw(path)
        reader.execute("COMMIT")
    finally:
        reader.close()
    store.commit()  # clean, but the scrub still owed is done now
    assert secret not in raw(path)
    store.close()


def test_a_rolled_back_acknowledgement_scrubs_nothing_and_keeps_the_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "node.db"
    store = Store(path)
    acked = deliver(store, 1, b"still wanted")
    store.commit()
    store.ack_inbox(acked)
    store.rollback()
    store.commit()
    assert [e.payload for e in store.inbox()] == [b"still wanted"]
    store.close()
