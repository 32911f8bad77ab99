"""The store's transaction owner: the SQLite connection, its schema, and the one open
transaction every part of the store writes into.

Custody rests on one rule: every write joins a single open transaction that only `commit()`
ends. The engine stores what it received, calls `commit()`, and only then acknowledges the hop,
so many messages share one commit (group commit) and nothing acknowledged is ever lost:

- durability "process" (PRAGMA synchronous=NORMAL): a committed transaction survives the
  process being killed (kill -9), not the machine losing power;
- durability "power" (synchronous=FULL): a committed transaction survives power loss; group
  commit keeps the cost of the extra fsync per commit, not per message.

`commit(sync=True)` gives one commit the "power" guarantee in a "process" store (a reserved
block of nonces must never be rolled back by a power cut). SQLite refuses to change
synchronous inside a transaction ("Safety level may not be changed inside a transaction"), and
the transaction is open from the first write, so the store commits and then fsyncs the WAL
file: what synchronous=FULL does at a WAL commit, and it covers every earlier commit too.

A commit that fails may leave the transaction open (retry) or rolled back by SQLite; in the
second case, as after `rollback()`, every write since the last commit is gone, the parts'
in-memory tallies are reloaded from the file (`_load_counters`, which the composed `Store`
defines) and `rollbacks` goes up by one, so a caller can tell that state it wrote
(reservations, counters) must be written again.

Schema versions: 1 (the first), 2 (previous hops, receipt reporters, sent messages, fragments
by neighbour). A version 1 file is upgraded in one transaction when opened.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Final

from tawan.core import store_sql as sql
from tawan.core.store_types import Durability, StoreError

__all__ = ["APPLICATION_ID", "DEFAULT_MAX_BYTES", "SCHEMA_VERSION", "StoreBase"]

SCHEMA_VERSION: Final = 3
APPLICATION_ID: Final = 0x7461776E  # b"tawn": marks the file as a tawan store
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
_MIGRATIONS: Final = {1: sql.MIGRATE_1_TO_2, 2: sql.MIGRATE_2_TO_3}
"""Script upgrading a store from the version of the key to the next one."""


class StoreBase:
    """Opens the file and owns its transaction; the parts of the store write through
    `_begin()` and `_cur`. Not thread-safe: one engine owns a store."""

    _cur: sqlite3.Cursor

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "process",
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if durability not in ("process", "power"):
            raise StoreError(f"durability must be 'process' or 'power', found {durability!r}")
        if max_bytes <= 0:
            raise StoreError(f"max_bytes must be positive, found {max_bytes}")
        self.path = os.fspath(path)
        self.durability: Durability = durability
        self.max_bytes = max_bytes
        self.rollbacks = 0
        """Transactions lost since opening: each `rollback()` that dropped writes, and each
        failed commit that SQLite rolled back."""
        self._dirty = False
        self._closed = False
        self._file_backed = self.path not in ("", ":memory:")
        self._unsynced = False  # committed at NORMAL, not yet forced to stable storage
        self._dir_synced = False
        self._inbox_deleted = False  # in the open transaction (set by the mailbox)
        self._scrub_wal = False  # inbox rows deleted and committed: truncate the WAL
        try:
            # isolation_level=None: this class issues BEGIN and COMMIT itself (group commit).
            self._conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path!r}: {exc}") from exc
        try:
            self._open()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open store {self.path!r}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _load_counters(self) -> None:
        """Rebuild the parts' in-memory state from the file: at open and after a rollback."""
        raise NotImplementedError  # the composed Store loads each of its parts

    # ---- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        """Check the file is ours, create or upgrade the schema, then set WAL and durability."""
        self._cur = self._conn.cursor()
        app_id, version, tables = self._identify()
        if app_id == 0 and tables == 0:
            self._create_schema()
        elif app_id != APPLICATION_ID:
            raise StoreError(
                f"{self.path!r} is not a tawan store: expected application_id "
                f"{APPLICATION_ID:#x}, found {app_id:#x} with {tables} schema objects"
            )
        elif version != SCHEMA_VERSION:
            self._upgrade(version)
        mode = self._cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal" and self._file_backed:
            raise StoreError(f"store {self.path!r}: expected journal_mode wal, found {mode}")
        sync = "FULL" if self.durability == "power" else "NORMAL"
        self._cur.execute(f"PRAGMA synchronous={sync}")
        self._cur.execute("PRAGMA journal_size_limit=16777216")
        self._cur.execute("PRAGMA secure_delete=ON")  # freed pages hold no old plaintext
        self._wal_path = os.path.abspath(self.path) + "-wal"
        self._load_counters()

    def _identify(self) -> tuple[int, int, int]:
        """(application_id, user_version, schema objects); StoreError on a non-database."""
        try:
            app_id = self._pragma("application_id")
            version = self._pragma("user_version")
            tables = self._cur.execute(sql.COUNT_SCHEMA).fetchone()[0]
        except sqlite3.OperationalError:
            raise  # locked, unreadable, ...: not a statement about the contents
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{self.path!r} is not a tawan store: expected an SQLite database, "
                f"found other data ({exc})"
            ) from exc
        return app_id, version, int(tables)

    def _pragma(self, name: str) -> int:
        value = self._cur.execute(f"PRAGMA {name}").fetchone()[0]
        return int(value)

    def _create_schema(self) -> None:
        """One transaction, so a store is either complete or still empty after a crash."""
        self._cur.executescript(
            f"BEGIN; {sql.SCHEMA} PRAGMA application_id={APPLICATION_ID}; "
            f"PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
        )

    def _upgrade(self, version: int) -> None:
        """Run every migration from `version` up in one transaction: all of them or none."""
        if version > SCHEMA_VERSION or version not in _MIGRATIONS:
            newer = "newer" if version > SCHEMA_VERSION else "older"
            raise StoreError(
                f"store {self.path!r} has schema version {version}, {newer} than the "
                f"version {SCHEMA_VERSION} this tawan reads"
            )
        scripts = [_MIGRATIONS[v] for v in range(version, SCHEMA_VERSION)]
        try:
            self._cur.executescript(
                f"BEGIN; {' '.join(scripts)} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._cur.execute("ROLLBACK")
            raise StoreError(
                f"store {self.path!r}: upgrade from schema version {version} to "
                f"{SCHEMA_VERSION} failed, the file is unchanged: {exc}"
            ) from exc

    @property
    def journal_mode(self) -> str:
        """The journal in force: "wal" on a file, "memory" on ":memory:"."""
        return str(self._cur.execute("PRAGMA journal_mode").fetchone()[0])

    @property
    def synchronous(self) -> str:
        """The SQLite synchronous level in force: "NORMAL" or "FULL"."""
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return names[self._pragma("synchronous")]

    # ---- transactions --------------------------------------------------------------------

    def _begin(self) -> None:
        if not self._dirty:
            self._cur.execute("BEGIN")
            self._dirty = True

    @property
    def dirty(self) -> bool:
        """True while writes wait for `commit()`; acknowledge nothing they carry until then."""
        return self._dirty

    def commit(self, *, sync: bool = False) -> None:
        """Make every write so far durable (as chosen by `durability`); no-op when clean.

        `sync=True` forces the commit, and every earlier one, to stable storage even at
        durability "process" (also when clean). Raises StoreError when the commit failed:
        `dirty` tells whether the transaction is still open (retry) or was rolled back
        (`rollbacks` went up, the writes are gone).
        """
        if self._dirty:
            try:
                self._cur.execute("COMMIT")
            except sqlite3.Error as exc:
                if not self._conn.in_transaction:
                    # SQLite rolled the transaction back: the tallies must follow the file.
                    self._lost()
                raise StoreError(f"store {self.path!r}: commit failed: {exc}") from exc
            self._dirty = False
            self._unsynced = self._file_backed and self.durability == "process"
            self._scrub_wal |= self._inbox_deleted
            self._inbox_deleted = False
        if self._scrub_wal:
            self._truncate_wal()
        if sync and self._unsynced:
            self._sync_wal()

    def _lost(self) -> None:
        """The open transaction is gone: forget what it wrote."""
        self._dirty = False
        self._inbox_deleted = False
        self.rollbacks += 1
        self._load_counters()

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database and empty it, so pages of deleted inbox entries
        leave it; a checkpoint that could not finish (a reader) is retried next commit."""
        if not self._file_backed:
            self._scrub_wal = False
            return
        try:
            busy = self._cur.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return  # the commit itself succeeded; try again with the next one
        if busy == 0:
            self._scrub_wal = False
            self._unsynced = False  # a checkpoint syncs the WAL and the database file

    def _sync_wal(self) -> None:
        """fsync the WAL, and once its directory: what synchronous=FULL does at a commit."""
        try:
            _fsync(self._wal_path)
            if not self._dir_synced:
                _fsync(os.path.dirname(self._wal_path))
                self._dir_synced = True
        except FileNotFoundError:
            pass  # no WAL: everything is in the database file, synced when checkpointed
        except OSError as exc:
            raise StoreError(
                f"store {self.path!r}: committed, but forcing it to stable storage failed: {exc}"
            ) from exc
        self._unsynced = False

    def rollback(self) -> None:
        """Drop every write since the last commit, as a crash would (the emulator and tests
        kill nodes this way without a process to kill); counts in `rollbacks`."""
        if not self._dirty:
            return
        self._cur.execute("ROLLBACK")
        self._lost()

    def close(self) -> None:
        """Commit what was written, then close; closing twice is harmless."""
        if self._closed:
            return
        self.commit()
        self._conn.close()
        self._closed = True

    def _lastrowid(self, table: str) -> int:
        rowid = self._cur.lastrowid
        if rowid is None:
            raise StoreError(f"store {self.path!r}: insert into {table} returned no rowid")
        return rowid


def _fsync(path: str) -> None:
    """Force a file's (or a directory's) written data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
