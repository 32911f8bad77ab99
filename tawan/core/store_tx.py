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

A write or a commit that fails for want of room (a full disk, or the file cap below), a
read-only file or a failing device raises `StoreUnwritable`, and the store rolls the open
transaction back itself (SQLite may or may not have done so: rolling back always makes the
outcome one thing). As after `rollback()`, every write since the last commit is gone, the
parts' in-memory tallies are reloaded from the file (`_load_counters`, which the composed
`Store` defines) and `rollbacks` goes up by one, so a caller can tell that state it wrote
(reservations, counters) must be written again. Any other failed commit does the same and
raises StoreError. `check_room` tells when writing works again.

Disk use. `max_bytes` counts the encoded messages in custody (what eviction and fair share
weigh). The files hold more: indexes, duplicate memory, the inbox, receipts, fragments. So
that the store's disk use is bounded all the same, the database file is capped at
`file_limit(max_bytes)` (PRAGMA max_page_count; reaching it is a full disk), and the WAL at
about `wal_limit(max_bytes)`: checkpointed every that many bytes and truncated back to it
(wal_autocheckpoint, journal_size_limit), beyond which it only grows for the duration of one
transaction larger than that. docs/operators.md states the totals.

A store file is checked when opened (PRAGMA quick_check): a corrupted one is refused with
what the check found, never served half-readable.

Schema versions: 1 (the first), 2 (previous hops, receipt reporters, sent messages, fragments
by neighbour), 3 (clients' references of submissions), 4 (the index of transmit turns,
`messages_by_turn`). An older file is upgraded in one transaction when opened.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Final, NoReturn

from tawan.core import store_sql as sql
from tawan.core.store_expiry import ExpiryBound
from tawan.core.store_types import Durability, StoreError, StoreUnwritable

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_MAX_BYTES",
    "SCHEMA_VERSION",
    "StoreBase",
    "file_limit",
    "unwritable_reason",
    "wal_limit",
]

SCHEMA_VERSION: Final = 4
APPLICATION_ID: Final = 0x7461776E  # b"tawn": marks the file as a tawan store
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
_MIGRATIONS: Final = {1: sql.MIGRATE_1_TO_2, 2: sql.MIGRATE_2_TO_3, 3: sql.MIGRATE_3_TO_4}
"""Script upgrading a store from the version of the key to the next one."""

FILE_FACTOR: Final = 3
FILE_SLACK: Final = 4 * 1024 * 1024
WAL_MIN: Final = 256 * 1024
WAL_MAX: Final = 16 * 1024 * 1024
INTEGRITY_LINES: Final = 5  # of quick_check's findings, quoted in the refusal
_UNWRITABLE: Final = {13: "full", 8: "read-only", 10: "i/o error", 11: "corrupt"}
"""SQLite primary result codes (SQLITE_FULL, _READONLY, _IOERR, _CORRUPT) that mean the
store cannot write now, whatever was asked of it."""


def file_limit(max_bytes: int) -> int:
    """Most bytes the database file may reach: messages in custody take up to about twice
    their encoded size with indexes and duplicate memory; the rest leaves room for the
    inbox, receipts and fragments. Reaching it is handled as a full disk."""
    return FILE_FACTOR * max_bytes + FILE_SLACK


def wal_limit(max_bytes: int) -> int:
    """Bytes of WAL between checkpoints, and what it is truncated back to."""
    return min(WAL_MAX, max(WAL_MIN, max_bytes // 8))


def unwritable_reason(exc: sqlite3.Error) -> str | None:
    """Why `exc` means the store cannot write ("full", "read-only", ...); None otherwise."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else _UNWRITABLE.get(code & 0xFF)


_EXECUTE: Final = sqlite3.Cursor.execute


class _Cursor(sqlite3.Cursor):
    """A cursor that hands failures to write (`unwritable_reason`) to its store, which rolls
    back and raises StoreUnwritable: every statement of every part is covered, so none can
    leave the store half written with its tallies believing otherwise."""

    on_unwritable: Callable[[str, str, sqlite3.Error], NoReturn] | None = None

    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        try:
            return _EXECUTE(self, sql, parameters)  # not super(): every statement comes here
        except sqlite3.Error as exc:
            self._failed(sql, exc)
            raise

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> _Cursor:
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.Error as exc:
            self._failed(sql, exc)
            raise

    def _failed(self, statement: str, exc: sqlite3.Error) -> None:
        reason = unwritable_reason(exc)
        if reason is not None and self.on_unwritable is not None:
            what = "commit" if statement == "COMMIT" else "write"
            self.on_unwritable(reason, what, exc)


class StoreBase:
    """Opens the file and owns its transaction; the parts of the store write through
    `_begin()` and `_cur`. Not thread-safe: one engine owns a store."""

    _cur: _Cursor

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
        if self.path not in ("", ":memory:") and _read_only(self.path):
            raise StoreError(
                f"cannot open store {self.path!r}: the file (or its folder) is read-only; "
                "a node needs to write its store"
            )
        self.durability: Durability = durability
        self.max_bytes = max_bytes
        self.rollbacks = 0
        """Transactions lost since opening: each `rollback()` that dropped writes, and each
        failed commit that SQLite rolled back."""
        self.last_failure: StoreUnwritable | None = None  # the latest, for whoever notices
        self._stale = False  # the tallies could not be reloaded after a rollback
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
        self._cur = self._conn.cursor(factory=_Cursor)
        app_id, version, tables = self._identify()
        if self._file_backed and tables:
            self._check_integrity()
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
        self._cur.execute("PRAGMA secure_delete=ON")  # freed pages hold no old plaintext
        self._limit_files()
        self._wal_path = os.path.abspath(self.path) + "-wal"
        self._load_counters()
        self._cur.on_unwritable = self._unwritable  # from now on: roll back and say so

    def _limit_files(self) -> None:
        """Bound the database file and the WAL by `max_bytes` (see the module's doc)."""
        page = self._pragma("page_size")
        wal = wal_limit(self.max_bytes)
        self._cur.execute(f"PRAGMA journal_size_limit={wal}")
        self._cur.execute(f"PRAGMA wal_autocheckpoint={max(1, wal // page)}")
        self.set_file_limit(file_limit(self.max_bytes))

    def set_file_limit(self, limit: int) -> int:
        """Cap the database file at `limit` bytes (rounded down to pages, never below what it
        holds now); returns the cap in force. Tests fill a store for real this way."""
        pages = max(1, limit // self._pragma("page_size"))
        return self._pragma(f"max_page_count={pages}") * self._pragma("page_size")

    def _check_integrity(self) -> None:
        """Refuse a corrupted file, naming it and quoting what SQLite found."""
        try:
            rows = self._cur.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        found = [str(row[0]) for row in rows]
        if found == ["ok"]:
            return
        shown = "; ".join(found[:INTEGRITY_LINES])
        more = (
            f" (and {len(found) - INTEGRITY_LINES} more)" if len(found) > INTEGRITY_LINES else ""
        )
        raise StoreError(
            f"store {self.path!r} is corrupted: PRAGMA quick_check found: {shown}{more}; "
            "move the file aside (and its -wal) to start with an empty store"
        )

    def _identify(self) -> tuple[int, int, int]:
        """(application_id, user_version, schema objects); StoreError on a non-database."""
        try:
            app_id = self._pragma("application_id")
            version = self._pragma("user_version")
            tables = self._cur.execute(sql.COUNT_SCHEMA).fetchone()[0]
        except sqlite3.OperationalError:
            raise  # locked, unreadable, ...: not a statement about the contents
        except sqlite3.DatabaseError as exc:
            if unwritable_reason(exc) == "corrupt":
                raise StoreError(
                    f"store {self.path!r} is corrupted: reading its schema failed: {exc}; "
                    "move the file aside (and its -wal) to start with an empty store"
                ) from exc
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
        durability "process" (also when clean). A commit that failed was rolled back
        (`rollbacks` went up, the writes are gone, `dirty` is False): StoreUnwritable when
        the store cannot write now (full, read-only), StoreError otherwise.
        """
        if self._dirty:
            try:
                self._cur.execute("COMMIT")
            except sqlite3.Error as exc:  # StoreUnwritable has rolled back already
                self._abandon()
                raise StoreError(f"store {self.path!r}: commit failed: {exc}") from exc
            self._dirty = False
            self._unsynced = self._file_backed and self.durability == "process"
            self._scrub_wal |= self._inbox_deleted
            self._inbox_deleted = False
        if self._scrub_wal:
            self._truncate_wal()
        if sync and self._unsynced:
            self._sync_wal()

    def _abandon(self) -> None:
        """Roll back whatever SQLite left open, and forget it."""
        if self._conn.in_transaction:
            # SQLite may have rolled back meanwhile: "no transaction is active"
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        if self._dirty:
            self._lost()

    def _unwritable(self, reason: str, what: str, exc: sqlite3.Error) -> NoReturn:
        """A statement could not write: roll back, so that the file and the tallies agree on
        one outcome, and raise StoreUnwritable."""
        self._cur.on_unwritable = None  # reloading the tallies must not come back here
        try:
            self._abandon()
        except sqlite3.Error:
            # A failing device may fail the reload too: the caller gets StoreUnwritable all
            # the same, and the tallies are read again before the next check of room.
            self._stale = True
        finally:
            self._cur.on_unwritable = self._unwritable
        failure = StoreUnwritable(
            reason, f"store {self.path!r}: {what} failed ({reason}): {exc}; rolled back"
        )
        self.last_failure = failure
        raise failure from exc

    def check_room(self, size: int) -> None:
        """Write `size` bytes, commit, delete them, commit: StoreUnwritable unless there is
        room for at least that much now. Commits what was written before, too."""
        if self._stale:
            self._load_counters()
            self._stale = False
        self.commit()
        self._begin()
        self._cur.execute(sql.SET_STATE, ("room-probe", bytes(size)))
        self.commit()
        self._begin()
        self._cur.execute(sql.DELETE_STATE, ("room-probe",))
        self.commit()

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
        try:  # the connection, not the cursor: a failure here rolls nothing back
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
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
        self._conn.execute("ROLLBACK")
        self._lost()

    def close(self) -> None:
        """Commit what was written, then close; closing twice is harmless."""
        if self._closed:
            return
        self.commit()
        self._conn.close()
        self._closed = True

    def _prune(self, expiry: ExpiryBound, earliest: str, delete: str, before: int) -> int:
        """Delete a table's rows expiring before `before` (`delete`), asking SQLite first
        (`earliest`, its earliest expiry) only when `expiry` does not rule it out: no
        statement when nothing can be due, no transaction when nothing is. Returns how many
        rows went."""
        if before <= expiry.bound:
            return 0
        first = self._cur.execute(earliest).fetchone()[0]
        expiry.found(first)
        if first is None or first >= before:
            return 0
        self._begin()
        pruned: int = self._cur.execute(delete, (before,)).rowcount
        expiry.pruned(before)
        return pruned

    def _lastrowid(self, table: str) -> int:
        rowid = self._cur.lastrowid
        if rowid is None:
            raise StoreError(f"store {self.path!r}: insert into {table} returned no rowid")
        return rowid


def _read_only(path: str) -> bool:
    """The store file, or the folder its WAL goes in, cannot be written (a read-only mount
    says so even to root)."""
    folder = os.path.dirname(os.path.abspath(path))
    exists = os.path.exists(path)
    return (exists and not os.access(path, os.W_OK)) or not os.access(folder, os.W_OK)


def _fsync(path: str) -> None:
    """Force a file's (or a directory's) written data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
