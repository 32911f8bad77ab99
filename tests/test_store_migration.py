"""A store written by schema version 1, 2 or 3 opens, upgraded to the current version in one
transaction, with everything it held; an upgraded store and a new one have the same tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tawan.core.store import APPLICATION_ID, SCHEMA_VERSION, Store, StoredMessage, StoreError
from tawan.core.store_sql import MIGRATE_1_TO_2, MIGRATE_2_TO_3, TURN_INDEX

# The schema of version 1, as tawan 0.1 created it (tawan/core/store_sql.py before version 2).
SCHEMA_V1 = """
CREATE TABLE messages (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    dst INTEGER NOT NULL, precedence INTEGER NOT NULL,
    created INTEGER NOT NULL, expires INTEGER NOT NULL, body BLOB NOT NULL,
    local_origin INTEGER NOT NULL, received_at REAL NOT NULL, size INTEGER NOT NULL,
    UNIQUE (src, epoch, seq)
) STRICT;
CREATE INDEX messages_by_eviction ON messages (precedence, expires);
CREATE TABLE next_hops (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, hop INTEGER NOT NULL,
    PRIMARY KEY (src, epoch, seq, hop)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER messages_drop_next_hops AFTER DELETE ON messages BEGIN
    DELETE FROM next_hops WHERE src = old.src AND epoch = old.epoch AND seq = old.seq;
END;
CREATE TABLE seen (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    expires INTEGER NOT NULL, PRIMARY KEY (src, epoch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX seen_by_expiry ON seen (expires);
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mid_src INTEGER NOT NULL, mid_epoch INTEGER NOT NULL, mid_seq INTEGER NOT NULL,
    src INTEGER NOT NULL, dst INTEGER NOT NULL, precedence INTEGER NOT NULL,
    created INTEGER NOT NULL, received_at REAL NOT NULL, payload BLOB NOT NULL,
    signed INTEGER NOT NULL
) STRICT;
CREATE TABLE receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind INTEGER NOT NULL, at INTEGER NOT NULL
) STRICT;
CREATE TABLE fragments (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, count INTEGER NOT NULL, chunk BLOB NOT NULL,
    UNIQUE (src, epoch, seq, idx)
) STRICT;
CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
"""

V1_ROWS = """
INSERT INTO messages VALUES (5, 1, 7, 9, 3, 10, 900, x'00ff', 1, 2.5, 2);
INSERT INTO messages VALUES (6, 1, 8, 9, 0, 11, 950, x'0102030405', 0, 3.5, 5);
INSERT INTO next_hops VALUES (5, 1, 7, 3), (5, 1, 7, 4), (6, 1, 8, 0);
INSERT INTO seen VALUES (5, 1, 7, 900);
INSERT INTO inbox VALUES (NULL, 4, 1, 2, 4, 9, 1, 20, 21.5, x'6869', 1);
INSERT INTO receipts VALUES (NULL, 9, 1, 1, 2, 500);
INSERT INTO fragments VALUES (3, 1, 7, 0, 2, x'aaaa'), (3, 1, 7, 1, 2, x'bb');
INSERT INTO state VALUES ('seq', x'01');
"""


def write_v1_store(path: Path, rows: str = V1_ROWS) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript(
        f"BEGIN; {SCHEMA_V1} {rows} PRAGMA application_id={APPLICATION_ID}; "
        "PRAGMA user_version=1; COMMIT;"
    )
    conn.close()


def shape(path: Path) -> dict[str, object]:
    """Every table's columns (name, type, not null, default, key) and indexes' columns."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        found: dict[str, object] = {}
        for table in tables:
            columns = conn.execute(f"PRAGMA table_info({table})").fetchall()
            indexes = {}
            for _, index, unique, *_ in conn.execute(f"PRAGMA index_list({table})"):
                cols = [c[2] for c in conn.execute(f"PRAGMA index_info({index})")]
                indexes[tuple(cols)] = unique
            found[table] = (columns, indexes)
        found["triggers"] = conn.execute(
            "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'trigger'"
        ).fetchall()
        return found
    finally:
        conn.close()


def test_a_version_1_store_is_upgraded_with_everything_it_held(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    write_v1_store(path)
    with Store(path) as store:
        assert store.get_message((5, 1, 7)) == StoredMessage(
            (5, 1, 7), 9, 3, 10, 900, b"\x00\xff", True, 2.5, prev_hop=0
        )
        assert store.next_hops_of((5, 1, 7)) == {3, 4}
        assert [m.mid for m in store.messages_without_next_hop()] == [(6, 1, 8)]
        assert (store.message_count(), store.bytes_used()) == (2, 7)
        assert store.bytes_by_prev_hop() == {0: 7}  # as if submitted here
        assert store.bytes_by_source() == {5: 2, 6: 5}
        assert store.seen((5, 1, 7))
        assert [(e.mid, e.payload) for e in store.inbox()] == [((4, 1, 2), b"hi")]
        assert [(r.mid, r.kind, r.at, r.reporter) for r in store.receipts()] == [
            ((9, 1, 1), 2, 500, 0)
        ]
        assert store.get_state("seq") == b"\x01"
        assert store.sent_to((9, 1, 1)) is None
        store.put_sent((9, 1, 1), 4, 600)
        # Fragments kept from version 1 have no known sender: neighbour 0, and an arrival
        # time of 0 so that the first aging pass drops them.
        assert store.fragment_bytes() == 3
        assert store.fragments(0, (3, 1, 7)) == {0: b"\xaa\xaa", 1: b"\xbb"}
        assert store.partials_older_than(1.0) == [(0, (3, 1, 7))]
        # The upgraded store takes new rows of version 2.
        store.put_message(StoredMessage((7, 1, 1), 9, 0, 0, 99, b"new", False, 4.0, 12), [3])
        store.put_receipt((9, 1, 2), 1, 501, reporter=4)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    with Store(path) as store:  # and opens again as a version 2 store
        assert store.bytes_by_prev_hop() == {0: 7, 12: 3}
        assert store.sent_to((9, 1, 1)) == 4
        assert [r.reporter for r in store.receipts()] == [0, 4]


def test_an_upgraded_store_has_the_tables_of_a_new_one(tmp_path: Path) -> None:
    old, new = tmp_path / "old.db", tmp_path / "new.db"
    write_v1_store(old, rows="")
    Store(old).close()
    Store(new).close()
    assert shape(old) == shape(new)


def test_a_failed_upgrade_leaves_the_version_1_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    # A table in the way of the migration makes its CREATE TABLE fail halfway through.
    write_v1_store(path, rows=V1_ROWS + "CREATE TABLE sent (x);")
    before = shape(path)
    with pytest.raises(StoreError, match=r"node\.db.*upgrade from schema version 1 to 4 failed"):
        Store(path)
    assert shape(path) == before
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM fragments").fetchone() == (2,)
    conn.close()


def test_an_older_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    write_v1_store(path, rows="")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")
    conn.close()
    with pytest.raises(StoreError, match=r"schema version 0, older than the version 4"):
        Store(path)


def write_store_at(path: Path, version: int, *, turn_index: bool = False) -> None:
    """A store of schema `version` (2 or 3), as the migrations up to it leave one, holding
    the rows of version 1; `turn_index`: with the index of version 4 made already."""
    write_v1_store(path)
    scripts = [(MIGRATE_1_TO_2, 2), (MIGRATE_2_TO_3, 3)][: version - 1]
    conn = sqlite3.connect(path, isolation_level=None)
    extra = TURN_INDEX if turn_index else ""
    body = " ".join(script for script, _ in scripts)
    conn.executescript(f"BEGIN; {body} {extra} PRAGMA user_version={version}; COMMIT;")
    conn.close()


@pytest.mark.parametrize(("version", "turn_index"), [(2, False), (3, False), (3, True)])
def test_a_version_2_or_3_store_is_upgraded_with_everything_it_held(
    tmp_path: Path, version: int, turn_index: bool
) -> None:
    path, new = tmp_path / "node.db", tmp_path / "new.db"
    write_store_at(path, version, turn_index=turn_index)
    with Store(path) as store:
        assert store.next_hops_of((5, 1, 7)) == {3, 4}
        assert [m.mid for m in store.messages_without_next_hop()] == [(6, 1, 8)]
        assert (store.message_count(), store.bytes_used()) == (2, 7)
        assert store.get_state("seq") == b"\x01"
        assert [(e.mid, e.payload) for e in store.inbox()] == [((4, 1, 2), b"hi")]
        # The turn index of version 4 serves a queue's next turns.
        assert store.pending_for(3, 3, (-(1 << 62), 0), 10)[0][0] == (5, 1, 7)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    conn.close()
    Store(new).close()
    assert shape(path) == shape(new)  # the same tables and indexes as a new store
