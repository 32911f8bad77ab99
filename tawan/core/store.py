"""The durable store of a node: messages in custody, their next hops, dedup, inbox, fragments.

The protocol engine calls it synchronously and passes every time in as an argument; the store
has no clock, no threads and no trio. One SQLite database per node, in WAL mode; the same code
runs on ":memory:" so the emulator can hold hundreds of nodes in one process.

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
second case, as after `rollback()`, every write since the last commit is gone, the tallies are
reloaded from the file and `rollbacks` goes up by one, so a caller can tell that state it wrote
(reservations, counters) must be written again.

Next hops. A message in custody has one row per neighbour it still has to be handed to. The
reserved address `HELD` (0) marks a message held with no route yet: it is never a real next
hop, `pending()` skips it and `messages_without_next_hop()` lists it. Adding a real next hop
clears the mark; `hold()` puts a message back to held when its routes are lost. When the last
row goes (the last neighbour acknowledged it), the message leaves the store.

Fair share. FLASH and OVERRIDE are never evicted, so one insider sending OVERRIDE traffic to
an unreachable node could fill a relay until it refuses everyone's FLASH (store pinning). Once
the store is contended (a new message would take it past half of `max_bytes`), a message is
refused with `StoreShareExceeded` when its previous hop would then hold more than a fair
share: `max_bytes // max(2, n)`, n the number of previous hops holding bytes, the new
message's own counted. The share is per previous hop, which the link tag authenticates, and
not per source: a relay cannot tell a message's real source from a claimed one, and a share
per claimed source would let an insider use up a real source's share with forgeries (bytes
per source are still tallied, for statistics). Messages submitted here count as previous hop 0
towards n, but are not held to a share themselves: the node's own application is not an
adversary of its node, and its traffic must not wait for room it leaves free. Half the store
stays open to whoever holds little, so another neighbour's FLASH gets in. The price: a lone
neighbour gets half the store, never more.

Eviction. When an admitted message does not fit in `max_bytes`, messages of strictly lower
precedence are evicted, lowest precedence first, then earliest expiry, then oldest. FLASH and
above are never evicted (the engine's `expire()` removes them once expired). A message never
evicts one of its own precedence: both are in someone's custody, and refusing the new one
(`StoreFull`, no acknowledgement) leaves it safe with the previous hop, while evicting the old
one would drop a message this node already acknowledged.

Fragments are kept per (neighbour, message): another neighbour sending the same message cut
differently never disturbs a transfer. A partial message ages by its newest fragment, so a
transfer still progressing is never aged out (`partials_older_than`). Arrival times are kept
in the file, so they must come from a clock that goes on across restarts (the runtime's).

Acknowledged inbox entries hold plaintext: the store runs with secure_delete, and a commit
that freed inbox entries checkpoints and truncates the WAL, so the deleted payload is left
neither in the database file nor in its WAL.

Schema versions: 1 (the first), 2 (previous hops, receipt reporters, sent messages, fragments
by neighbour). A version 1 file is upgraded in one transaction when opened.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from tawan.core import store_sql as sql
from tawan.core.precedence import Precedence
from tawan.core.states import Input, Lifecycle, State

__all__ = [
    "HELD",
    "InboxEntry",
    "MessageId",
    "Receipt",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreShareExceeded",
    "StoredMessage",
]

MessageId = tuple[int, int, int]
"""(source address, epoch, sequence number): unique across the mission."""

Durability = Literal["process", "power"]

HELD: Final = 0
"""Next hop meaning "held, no route yet"; address 0 is never a node."""

_SLOT_SHIFT: Final = 32
_SEQ_MASK: Final = (1 << _SLOT_SHIFT) - 1


def custody_slot(mid: MessageId, dst: int) -> MessageId:
    """The id a second copy of `mid`, for destination `dst`, is kept under: sequence
    numbers are 32 bits on the wire, so the bits above them name the slot."""
    src, epoch, seq = mid
    return (src, epoch, (seq & _SEQ_MASK) | ((dst + 1) << _SLOT_SHIFT))


def wire_id(mid: MessageId) -> MessageId:
    """The message id as on the wire, whatever slot it is kept under."""
    src, epoch, seq = mid
    return (src, epoch, seq & _SEQ_MASK)


SCHEMA_VERSION: Final = 2
APPLICATION_ID: Final = 0x7461776E  # b"tawn": marks the file as a tawan store
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
_PAGE_ROWS: Final = 256
_PRECEDENCES: Final = tuple(int(p) for p in Precedence)
_FLASH: Final = int(Precedence.FLASH)
_MIGRATIONS: Final = {1: sql.MIGRATE_1_TO_2}
"""Script upgrading a store from the version of the key to the next one."""


class StoreError(Exception):
    """The store cannot do what was asked: misuse, or a file that is not a usable store."""


class StoreFull(StoreError):
    """No room for a message even after eviction; nothing was stored, so refuse custody."""


class StoreShareExceeded(StoreFull):
    """The store is contended and the message's previous hop or source already holds its fair
    share; nothing was stored, so refuse custody."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message in custody; `body` is the encoded message, opaque to the store.

    `prev_hop` is the neighbour it came from, 0 when it was submitted here."""

    mid: MessageId
    dst: int
    precedence: int
    created: int
    expires: int
    body: bytes
    local_origin: bool
    received_at: float
    prev_hop: int = 0

    def __post_init__(self) -> None:
        if self.precedence not in _PRECEDENCES:
            raise ValueError(
                f"message {self.mid}: precedence must be one of {_PRECEDENCES}, "
                f"found {self.precedence!r}"
            )

    @property
    def size(self) -> int:
        """Bytes the message counts against the store's max_bytes."""
        return len(self.body)


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A message delivered to the local application, kept until the application acks it."""

    rowid: int
    mid: MessageId
    src: int
    dst: int
    precedence: int
    created: int
    received_at: float
    payload: bytes
    signed: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """An end-to-end receipt for a message this node sent, waiting for the application.

    `reporter` is the node that reported it (0 in receipts kept from schema version 1)."""

    rowid: int
    mid: MessageId
    kind: int
    at: int
    reporter: int = 0


@dataclass(slots=True)
class _Partial:
    """What the store holds of one neighbour's transfer of one message."""

    count: int
    held: int
    newest: float


PartialKey = tuple[int, MessageId]
"""(neighbour, message id): one transfer of fragments."""


def _message(row: tuple[Any, ...]) -> StoredMessage:
    """Build a StoredMessage from the eleven message columns, in schema order."""
    src, epoch, seq, dst, prec, created, expires, body, local, received, prev_hop = row
    return StoredMessage(
        (src, epoch, seq), dst, prec, created, expires, body, bool(local), received, prev_hop
    )


def _add(tally: dict[int, int], key: int, delta: int) -> None:
    """Add to a per-key byte tally, keeping only keys that hold bytes."""
    value = tally.get(key, 0) + delta
    if value:
        tally[key] = value
    else:
        tally.pop(key, None)


class Store:
    """The durable store of one node. Not thread-safe: one engine owns it."""

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
        self._lifecycle = Lifecycle()  # the engine attaches its own (`attach`)
        self._file_backed = self.path not in ("", ":memory:")
        self._unsynced = False  # committed at NORMAL, not yet forced to stable storage
        self._dir_synced = False
        self._inbox_deleted = False  # in the open transaction
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

    @classmethod
    def memory(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> Store:
        """A store that lives and dies with the process, for the emulator and tests."""
        return cls(":memory:", max_bytes=max_bytes)

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

    def _load_counters(self) -> None:
        """Rebuild the in-memory tallies once, so stats never need a query per call."""
        cur = self._cur
        self._counts = dict.fromkeys(_PRECEDENCES, 0)
        self._bytes = dict.fromkeys(_PRECEDENCES, 0)
        for prec, count, size in cur.execute(sql.BYTES_BY_PRECEDENCE):
            self._counts[prec] = count
            self._bytes[prec] = size
        self._bytes_used = sum(self._bytes.values())
        self._by_source: dict[int, int] = dict(cur.execute(sql.BYTES_BY_SOURCE).fetchall())
        self._by_prev_hop: dict[int, int] = dict(cur.execute(sql.BYTES_BY_PREV_HOP).fetchall())
        # Held messages (next hop HELD) and their destinations: what a change of routes may
        # release is found without reading every held message.
        self._held: dict[MessageId, int] = {
            (src, epoch, seq): dst for src, epoch, seq, dst in cur.execute(sql.HELD_MESSAGES)
        }
        self.attach(self._lifecycle)  # the rows held now (at open, and after a rollback)
        self._partials: dict[PartialKey, _Partial] = {}
        for hop, src, epoch, seq, count, held, newest in cur.execute(sql.PARTIALS):
            self._partials[(hop, (src, epoch, seq))] = _Partial(count, held, newest)
        self._fragment_bytes = sum(p.held for p in self._partials.values())

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

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- messages in custody -------------------------------------------------------------

    def put_message(
        self, msg: StoredMessage, next_hops: Iterable[int] = ()
    ) -> list[StoredMessage]:
        """Take custody of `msg`, pending for each of `next_hops` (none: held, no route).

        Returns the messages evicted to make room. Raises, having changed nothing:
        StoreShareExceeded when its previous hop or source holds its fair share of a
        contended store, StoreFull when room cannot be made, StoreError when the message is
        already stored.
        """
        hops = _hop_set(msg.mid, next_hops)
        size = len(msg.body)
        if size > self.max_bytes:
            raise StoreFull(
                f"message {msg.mid} is {size} bytes, larger than the store's "
                f"max_bytes {self.max_bytes}"
            )
        if not msg.local_origin and self._bytes_used + size > self.max_bytes // 2:
            self._check_share(msg, "previous hop", msg.prev_hop, self._by_prev_hop)
        evicted = self._make_room(msg, size) if self._bytes_used + size > self.max_bytes else []
        self._begin()
        src, epoch, seq = msg.mid
        cur = self._cur
        try:
            cur.execute(
                sql.INSERT_MESSAGE,
                (src, epoch, seq, msg.dst, msg.precedence, msg.created, msg.expires, msg.body,
                 msg.local_origin, msg.received_at, size, msg.prev_hop),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            if self._exists(msg.mid):
                raise _already_stored(msg.mid) from None
            raise StoreError(f"message {msg.mid} cannot be stored: {exc}") from exc
        if len(hops) == 1:
            cur.execute(sql.INSERT_HOP, (src, epoch, seq, *hops))
        else:
            cur.executemany(sql.INSERT_HOP, [(src, epoch, seq, hop) for hop in hops])
        if HELD in hops:
            self._set_held(msg.mid, msg.dst)
        self._tally(msg.precedence, src, msg.prev_hop, size, 1)
        return evicted

    def _check_share(self, msg: StoredMessage, kind: str, key: int, tally: dict[int, int]) -> None:
        """Refuse `msg` if `key` (its previous hop or source) would pass its fair share."""
        used = tally.get(key, 0)
        holders = max(2, len(tally) + (key not in tally))
        share = self.max_bytes // holders
        if used + msg.size <= share:
            return
        if self._exists(msg.mid):
            raise _already_stored(msg.mid)  # a duplicate, not a refusal
        who = f"{kind} {key}" + (" (submitted here)" if kind == "previous hop" and not key else "")
        raise StoreShareExceeded(
            f"message {msg.mid} ({msg.size} bytes) refused: {who} holds {used} bytes, "
            f"and its fair share of the contended store ({self._bytes_used} of "
            f"{self.max_bytes} bytes in use) is {share} bytes (max_bytes // {holders})"
        )

    def _make_room(self, msg: StoredMessage, size: int) -> list[StoredMessage]:
        """Evict lower-precedence messages until `msg` fits, or raise StoreFull untouched."""
        if self._exists(msg.mid):
            raise _already_stored(msg.mid)
        needed = self._bytes_used + size - self.max_bytes
        ceiling = min(msg.precedence, _FLASH)
        victims: list[int] = []
        freed = 0
        for rowid, victim_size in self._cur.execute(sql.EVICTION_ORDER, (ceiling,)):
            victims.append(rowid)
            freed += victim_size
            if freed >= needed:
                break
        if freed < needed:
            raise StoreFull(
                f"no room for message {msg.mid} ({size} bytes, precedence {msg.precedence}): "
                f"{self._bytes_used} of {self.max_bytes} bytes in use, and messages below "
                f"precedence {ceiling} hold only {freed} bytes of the {needed} needed"
            )
        self._begin()
        return [self._delete_row(rowid) for rowid in victims]

    def _delete_row(self, rowid: int) -> StoredMessage:
        gone = _message(self._cur.execute(sql.DELETE_ROW, (rowid,)).fetchone())
        self._untally(gone)
        self._unhold(gone.mid, Input.EVICTED)
        return gone

    def _tally(self, precedence: int, src: int, prev_hop: int, size: int, sign: int) -> None:
        """Every insert and delete of a message passes here, so the tallies follow the file."""
        self._counts[precedence] += sign
        self._bytes[precedence] += sign * size
        self._bytes_used += sign * size
        _add(self._by_source, src, sign * size)
        _add(self._by_prev_hop, prev_hop, sign * size)

    def _untally(self, gone: StoredMessage) -> None:
        self._tally(gone.precedence, gone.mid[0], gone.prev_hop, gone.size, -1)

    def _exists(self, mid: MessageId) -> bool:
        row = self._cur.execute(sql.MESSAGE_EXISTS, mid).fetchone()
        return row is not None

    def _require(self, mid: MessageId) -> None:
        if not self._exists(mid):
            raise StoreError(f"message {mid} is not in the store")

    def add_next_hops(self, mid: MessageId, next_hops: Iterable[int]) -> None:
        """A route appeared: queue the message for these neighbours too; clears `HELD`."""
        hops = set(next_hops)
        if HELD in hops:
            raise StoreError(f"message {mid}: next hop {HELD} means held; call hold() instead")
        self._require(mid)
        if not hops:
            return
        self._begin()
        self._cur.execute(sql.DELETE_HOP, (*mid, HELD))
        self._cur.executemany(sql.INSERT_HOP, [(*mid, hop) for hop in hops])
        self._unhold(mid, Input.ROUTE_FOUND)

    def also_hold(self, mid: MessageId) -> None:
        """Keep custody for a route still missing, beside the next hops already pending: a
        group message some of whose members cannot be reached yet. `add_next_hops` clears
        it, `remove_next_hop(mid, HELD)` releases it."""
        self._mark_held(mid)
        self._begin()
        self._cur.execute(sql.INSERT_HOP, (*mid, HELD))

    def hold(self, mid: MessageId) -> None:
        """Every route was lost: keep custody of the message with no next hop."""
        self._mark_held(mid)
        self._begin()
        self._cur.execute(sql.DELETE_HOPS, mid)
        self._cur.execute(sql.INSERT_HOP, (*mid, HELD))

    def _mark_held(self, mid: MessageId) -> None:
        row = self._cur.execute(sql.DESTINATION_OF, mid).fetchone()
        if row is None:
            raise StoreError(f"message {mid} is not in the store")
        self._set_held(mid, row[0])

    def attach(self, lifecycle: Lifecycle) -> None:
        """Report the held rows' changes to `lifecycle` (tawan.core.states), starting from
        the rows held now."""
        self._lifecycle = lifecycle
        for mid in self._held:
            lifecycle.states[(mid, HELD)] = State.HELD

    def _set_held(self, mid: MessageId, dst: int) -> None:
        self._lifecycle.move((mid, HELD), Input.NO_ROUTE)
        self._held[mid] = dst

    def _unhold(self, mid: MessageId, why: Input) -> None:
        if self._held.pop(mid, None) is not None:
            self._lifecycle.move((mid, HELD), why)

    def held_count(self) -> int:
        """Messages held: no route yet, or kept for members a route does not reach yet."""
        return len(self._held)

    def held_destinations(self) -> set[int]:
        """Destinations of the messages held (no route yet, or kept for more members)."""
        return set(self._held.values())

    def held_for(self, destinations: Collection[int]) -> list[StoredMessage]:
        """The messages held for any of `destinations`, oldest first."""
        mids = [mid for mid, dst in self._held.items() if dst in destinations]
        found = (self.get_message(mid) for mid in mids)
        return sorted((m for m in found if m is not None), key=lambda m: m.received_at)

    def remove_next_hop(self, mid: MessageId, next_hop: int) -> bool:
        """`next_hop` acknowledged custody; the message leaves when no next hop is left.

        False when that next hop was not pending for the message.
        """
        self._begin()
        cur = self._cur
        cur.execute(sql.DELETE_HOP, (*mid, next_hop))
        if cur.rowcount == 0:
            return False
        if next_hop == HELD:
            self._unhold(mid, Input.ROUTE_FOUND)
        row = cur.execute(sql.DELETE_IF_NO_HOPS, mid).fetchone()
        if row is not None:
            precedence, size, prev_hop = row
            self._tally(precedence, mid[0], prev_hop, size, -1)
        return True

    def next_hops_of(self, mid: MessageId) -> set[int]:
        """Pending next hops as stored: {HELD} for a held message, empty when not stored."""
        rows = self._cur.execute(sql.HOPS_OF, mid)
        return {hop for (hop,) in rows}

    def get_message(self, mid: MessageId) -> StoredMessage | None:
        row = self._cur.execute(sql.MESSAGE_AT, mid).fetchone()
        return None if row is None else _message(row)

    def delete_message(self, mid: MessageId) -> bool:
        """Drop a message and its next hops (e.g. revoked sender); False when not stored."""
        self._begin()
        row = self._cur.execute(sql.DELETE_MESSAGE, mid).fetchone()
        if row is None:
            return False
        precedence, size, prev_hop = row
        self._tally(precedence, mid[0], prev_hop, size, -1)
        self._unhold(mid, Input.DROPPED)
        return True

    def pending(self) -> Iterator[tuple[StoredMessage, int]]:
        """Every (message, next hop) still to be handed on, oldest message first.

        For rebuilding the engine's queues after a restart; held messages are not included
        (see `messages_without_next_hop`). Read in pages, so writing between items is safe.
        """
        return self._pages(held=False)

    def messages_without_next_hop(self) -> list[StoredMessage]:
        """Messages held with no route yet, oldest first (a scan: for restarts, not per frame)."""
        return [msg for msg, _ in self._pages(held=True)]

    def _pages(self, *, held: bool) -> Iterator[tuple[StoredMessage, int]]:
        last_rowid, last_hop = 0, -1
        current: tuple[int, StoredMessage] | None = None
        while True:
            rows = self._conn.execute(
                sql.HOP_PAGE, (last_rowid, last_hop, held, _PAGE_ROWS)
            ).fetchall()
            for rowid, hop, *cols in rows:
                if current is None or current[0] != rowid:
                    current = (rowid, _message(cols))
                yield current[1], hop
            if len(rows) < _PAGE_ROWS:
                return
            last_rowid, last_hop = rows[-1][0], rows[-1][1]

    def expire(self, now_mission_seconds: int) -> list[StoredMessage]:
        """Delete and return every message whose expiry is at or before `now`."""
        cur = self._cur
        if cur.execute(sql.ANY_EXPIRED, (now_mission_seconds,)).fetchone() is None:
            return []
        self._begin()
        gone = [_message(row) for row in cur.execute(sql.DELETE_EXPIRED, (now_mission_seconds,))]
        for msg in gone:
            self._untally(msg)
            self._unhold(msg.mid, Input.EXPIRED)
        return gone

    # ---- dedup and sent messages ---------------------------------------------------------

    def mark_seen(self, mid: MessageId, expires: int) -> bool:
        """Record that `mid` arrived; True the first time, False for a duplicate."""
        self._begin()
        self._cur.execute(sql.INSERT_SEEN, (*mid, expires))
        return self._cur.rowcount == 1

    def mark_seen_many(self, mids: Iterable[MessageId], expires: int) -> None:
        """`mark_seen` for several ids at once (a delivered message: its id and its slot)."""
        self._begin()
        self._cur.executemany(sql.INSERT_SEEN, [(*mid, expires) for mid in mids])

    def seen(self, mid: MessageId) -> bool:
        return self._cur.execute(sql.SEEN, mid).fetchone() is not None

    def put_sent(self, mid: MessageId, dst: int, expires: int) -> None:
        """Remember that this node sent `mid` to `dst`, asking for a receipt, until `expires`:
        a receipt for it counts only when `dst` reports it. Putting it again replaces it."""
        self._begin()
        self._cur.execute(sql.PUT_SENT, (*mid, dst, expires))

    def sent_to(self, mid: MessageId) -> int | None:
        """The destination of a message this node sent, None when unknown (or pruned)."""
        row = self._cur.execute(sql.SENT_TO, mid).fetchone()
        return None if row is None else int(row[0])

    def forget_seen_before(self, mission_seconds: int) -> int:
        """Prune dedup and sent records of messages that expired before `mission_seconds`.

        Safe because the engine drops a message arriving after its expiry as expired, so a
        late duplicate is never mistaken for a new message (nor a late receipt accepted).
        Returns how many records were pruned; opens no transaction when none has expired,
        so an idle node does not commit at every housekeeping pass.
        """
        cur, t = self._cur, (mission_seconds,)
        pruned = 0
        for probe, delete in (
            (sql.ANY_SEEN_BEFORE, sql.DELETE_SEEN_BEFORE),
            (sql.ANY_SENT_BEFORE, sql.DELETE_SENT_BEFORE),
        ):
            if cur.execute(probe, t).fetchone() is not None:
                self._begin()
                pruned += cur.execute(delete, t).rowcount
        return pruned

    # ---- inbox and receipts --------------------------------------------------------------

    def put_inbox(
        self,
        *,
        mid: MessageId,
        src: int,
        dst: int,
        precedence: int,
        created: int,
        received_at: float,
        payload: bytes,
        signed: bool,
    ) -> int:
        """Keep a delivered message until the application acknowledges it; returns its rowid.

        Rowids only grow (AUTOINCREMENT), so an application's `after_rowid` cursor stays valid
        across acknowledgements and restarts.
        """
        self._begin()
        self._cur.execute(
            sql.INSERT_INBOX,
            (*mid, src, dst, precedence, created, received_at, payload, signed),
        )
        return self._lastrowid("inbox")

    def _lastrowid(self, table: str) -> int:
        rowid = self._cur.lastrowid
        if rowid is None:
            raise StoreError(f"store {self.path!r}: insert into {table} returned no rowid")
        return rowid

    def inbox(self, after_rowid: int = 0, limit: int = 100) -> list[InboxEntry]:
        """Up to `limit` entries after `after_rowid`, oldest first."""
        rows = self._cur.execute(sql.INBOX_PAGE, (after_rowid, limit)).fetchall()
        return [
            InboxEntry(rowid, (ms, me, mq), src, dst, prec, created, received, payload, bool(s))
            for rowid, ms, me, mq, src, dst, prec, created, received, payload, s in rows
        ]

    def ack_inbox(self, up_to_rowid: int) -> int:
        """The application has every entry up to `up_to_rowid`; returns how many were freed.

        Their plaintext is overwritten in the file, and the WAL truncated, at the next commit.
        """
        self._begin()
        self._cur.execute(sql.ACK_INBOX, (up_to_rowid,))
        freed = self._cur.rowcount
        if freed:
            self._inbox_deleted = True
        return freed

    def inbox_count(self) -> int:
        return int(self._cur.execute(sql.COUNT_INBOX).fetchone()[0])

    def put_receipt(self, mid: MessageId, kind: int, at: int, reporter: int = 0) -> int:
        """Keep an end-to-end receipt `reporter` sent for the application; returns its rowid."""
        self._begin()
        self._cur.execute(sql.INSERT_RECEIPT, (*mid, kind, at, reporter))
        return self._lastrowid("receipts")

    def receipts(self, after_rowid: int = 0, limit: int = 100) -> list[Receipt]:
        rows = self._cur.execute(sql.RECEIPTS_AFTER, (after_rowid, limit)).fetchall()
        return [
            Receipt(rowid, (src, epoch, seq), kind, at, reporter)
            for rowid, src, epoch, seq, kind, at, reporter in rows
        ]

    def ack_receipts(self, up_to_rowid: int) -> int:
        """The application has every receipt up to `up_to_rowid`; returns how many were freed."""
        self._begin()
        self._cur.execute(sql.ACK_RECEIPTS, (up_to_rowid,))
        return self._cur.rowcount

    # ---- fragments -----------------------------------------------------------------------

    def put_fragment(
        self, hop: int, mid: MessageId, index: int, count: int, chunk: bytes, now: float
    ) -> int:
        """Keep fragment `index` of `count` of `mid`, received from neighbour `hop` at `now`;
        returns the bytes now held of that neighbour's transfer.

        A repeated fragment is ignored, and is no progress. Raises StoreError when the
        index is out of range or `count` disagrees with the fragments already held from `hop`
        (the caller starts that transfer again); other neighbours' transfers are untouched.
        """
        if not 0 <= index < count:
            raise StoreError(
                f"fragment of {mid} from {hop}: index must be in [0, {count}), found {index}"
            )
        key = (hop, mid)
        partial = self._partials.get(key)
        if partial is not None and partial.count != count:
            raise StoreError(
                f"fragment {index} of {mid} from {hop} says {count} fragments, earlier ones "
                f"said {partial.count}"
            )
        self._begin()
        self._cur.execute(sql.INSERT_FRAGMENT, (*mid, hop, index, count, chunk, now))
        if partial is None:
            partial = self._partials[key] = _Partial(count, 0, now)
        if self._cur.rowcount == 1:  # new: the transfer progressed
            partial.held += len(chunk)
            partial.newest = max(partial.newest, now)
            self._fragment_bytes += len(chunk)
        return partial.held

    def fragments(self, hop: int, mid: MessageId) -> dict[int, bytes]:
        """The fragments held of neighbour `hop`'s transfer of `mid`, by index."""
        return dict(self._cur.execute(sql.FRAGMENTS_OF, (*mid, hop)))

    def fragment_indices(self, hop: int, mid: MessageId) -> set[int]:
        rows = self._cur.execute(sql.FRAGMENT_INDICES, (*mid, hop))
        return {idx for (idx,) in rows}

    def drop_fragments(self, hop: int, mid: MessageId) -> None:
        """Forget a partial message: reassembled, abandoned, or dropped to bound memory."""
        partial = self._partials.pop((hop, mid), None)
        if partial is None:
            return
        self._begin()
        self._cur.execute(sql.DELETE_FRAGMENTS, (*mid, hop))
        self._fragment_bytes -= partial.held

    def fragment_bytes(self) -> int:
        """Bytes held in fragments of partial messages (not counted in `bytes_used`)."""
        return self._fragment_bytes

    def oldest_partial(self) -> PartialKey | None:
        """The transfer to drop first: of the neighbour with the most transfers under way
        (then the most bytes), the one idle longest (by its newest fragment). A neighbour
        starting transfer after transfer to fill the reassembly budget thus loses its own
        first, not another neighbour's one big message."""
        if not self._partials:
            return None
        by_hop: dict[int, tuple[int, int]] = {}
        for (hop, _), partial in self._partials.items():
            count, held = by_hop.get(hop, (0, 0))
            by_hop[hop] = (count + 1, held + partial.held)
        heaviest = max(by_hop, key=lambda hop: (*by_hop[hop], -hop))
        mine = [item for item in self._partials.items() if item[0][0] == heaviest]
        return min(mine, key=lambda item: item[1].newest)[0]

    def partials_older_than(self, t: float) -> list[PartialKey]:
        """Transfers whose newest fragment arrived before `t`: abandoned, to be dropped."""
        return [key for key, partial in self._partials.items() if partial.newest < t]

    # ---- engine state --------------------------------------------------------------------

    def get_state(self, key: str) -> bytes | None:
        row = self._cur.execute(sql.GET_STATE, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_state(self, key: str, value: bytes) -> None:
        """Durable with the next commit, like every other write (sequence counters, links)."""
        self._begin()
        self._cur.execute(sql.SET_STATE, (key, value))

    # ---- statistics ----------------------------------------------------------------------

    def message_count(self) -> int:
        return sum(self._counts.values())

    def bytes_used(self) -> int:
        """Sum of the body sizes of messages in custody, kept as writes happen."""
        return self._bytes_used

    def counts_by_precedence(self) -> dict[int, int]:
        return dict(self._counts)

    def bytes_by_precedence(self) -> dict[int, int]:
        return dict(self._bytes)

    def bytes_by_source(self) -> dict[int, int]:
        """Bytes in custody per source address (mid[0]); sources holding nothing are absent."""
        return dict(self._by_source)

    def bytes_by_prev_hop(self) -> dict[int, int]:
        """Bytes in custody per previous hop (0: submitted here); absent when holding none."""
        return dict(self._by_prev_hop)


def _already_stored(mid: MessageId) -> StoreError:
    return StoreError(f"message {mid} is already stored; add next hops with add_next_hops")


def _fsync(path: str) -> None:
    """Force a file's (or a directory's) written data to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _hop_set(mid: MessageId, next_hops: Iterable[int]) -> set[int]:
    """Next hops for a new message: none means held; `HELD` beside real hops is misuse."""
    hops = set(next_hops)
    if not hops:
        return {HELD}
    if HELD in hops and len(hops) > 1:
        raise StoreError(
            f"message {mid}: next hops {sorted(hops)} mix real hops with {HELD} (held)"
        )
    return hops
