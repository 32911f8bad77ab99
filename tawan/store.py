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

Next hops. A message in custody has one row per neighbour it still has to be handed to. The
reserved address `HELD` (0) marks a message held with no route yet: it is never a real next
hop, `pending()` skips it and `messages_without_next_hop()` lists it. Adding a real next hop
clears the mark; `hold()` puts a message back to held when its routes are lost. When the last
row goes (the last neighbour acknowledged it), the message leaves the store.

Eviction. When a new message does not fit in `max_bytes`, messages of strictly lower
precedence are evicted, lowest precedence first, then earliest expiry, then oldest. FLASH and
above are never evicted (the engine's `expire()` removes them once expired). A message never
evicts one of its own precedence: both are in someone's custody, and refusing the new one
(`StoreFull`, no acknowledgement) leaves it safe with the previous hop, while evicting the old
one would drop a message this node already acknowledged.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from tawan import store_sql as sql
from tawan.precedence import Precedence

__all__ = [
    "HELD",
    "InboxEntry",
    "MessageId",
    "Receipt",
    "Store",
    "StoreError",
    "StoreFull",
    "StoredMessage",
]

MessageId = tuple[int, int, int]
"""(source address, epoch, sequence number): unique across the mission."""

Durability = Literal["process", "power"]

HELD: Final = 0
"""Next hop meaning "held, no route yet"; address 0 is never a node."""

SCHEMA_VERSION: Final = 1
APPLICATION_ID: Final = 0x7461776E  # b"tawn": marks the file as a tawan store
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
_PAGE_ROWS: Final = 256
_PRECEDENCES: Final = tuple(int(p) for p in Precedence)
_FLASH: Final = int(Precedence.FLASH)


class StoreError(Exception):
    """The store cannot do what was asked: misuse, or a file that is not a usable store."""


class StoreFull(StoreError):
    """No room for a message even after eviction; nothing was stored, so refuse custody."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message in custody; `body` is the encoded message, opaque to the store."""

    mid: MessageId
    dst: int
    precedence: int
    created: int
    expires: int
    body: bytes
    local_origin: bool
    received_at: float

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
    """An end-to-end receipt for a message this node sent, waiting for the application."""

    rowid: int
    mid: MessageId
    kind: int
    at: int


def _message(row: tuple[Any, ...]) -> StoredMessage:
    """Build a StoredMessage from the ten message columns, in schema order."""
    src, epoch, seq, dst, prec, created, expires, body, local, received = row
    return StoredMessage(
        (src, epoch, seq), dst, prec, created, expires, body, bool(local), received
    )


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
        self._dirty = False
        self._closed = False
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
        """Check the file is ours, create the schema if new, then set WAL and durability."""
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
            newer = "newer" if version > SCHEMA_VERSION else "older"
            raise StoreError(
                f"store {self.path!r} has schema version {version}, {newer} than the "
                f"version {SCHEMA_VERSION} this tawan reads"
            )
        mode = self._cur.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal" and self.path != ":memory:":
            raise StoreError(f"store {self.path!r}: expected journal_mode wal, found {mode}")
        sync = "FULL" if self.durability == "power" else "NORMAL"
        self._cur.execute(f"PRAGMA synchronous={sync}")
        self._cur.execute("PRAGMA journal_size_limit=16777216")
        self._load_counters()

    def _identify(self) -> tuple[int, int, int]:
        """(application_id, user_version, schema objects); StoreError on a non-database."""
        try:
            app_id = self._pragma("application_id")
            version = self._pragma("user_version")
            tables = self._cur.execute("SELECT count(*) FROM sqlite_schema").fetchone()[0]
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

    def _load_counters(self) -> None:
        """Rebuild the in-memory tallies once, so stats never need a query per call."""
        self._counts = dict.fromkeys(_PRECEDENCES, 0)
        self._bytes = dict.fromkeys(_PRECEDENCES, 0)
        for prec, count, size in self._cur.execute(
            "SELECT precedence, count(*), sum(size) FROM messages GROUP BY precedence"
        ):
            self._counts[prec] = count
            self._bytes[prec] = size
        self._bytes_used = sum(self._bytes.values())
        self._partials: dict[MessageId, list[int]] = {}
        for src, epoch, seq, count, held in self._cur.execute(
            "SELECT src, epoch, seq, max(count), sum(length(chunk)) FROM fragments "
            "GROUP BY src, epoch, seq"
        ):
            self._partials[(src, epoch, seq)] = [count, held]
        self._fragment_bytes = sum(held for _, held in self._partials.values())

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

    def commit(self) -> None:
        """Make every write so far durable (as chosen by `durability`); no-op when clean."""
        if not self._dirty:
            return
        try:
            self._cur.execute("COMMIT")
        except sqlite3.Error as exc:
            if not self._conn.in_transaction:
                # SQLite rolled the transaction back: the tallies must follow the file.
                self._dirty = False
                self._load_counters()
            raise StoreError(f"store {self.path!r}: commit failed: {exc}") from exc
        self._dirty = False

    def rollback(self) -> None:
        """Drop every write since the last commit, as a crash would (the emulator and tests
        kill nodes this way without a process to kill)."""
        if not self._dirty:
            return
        self._cur.execute("ROLLBACK")
        self._dirty = False
        self._load_counters()

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

        Returns the messages evicted to make room; raises StoreFull, having changed nothing,
        when room cannot be made, and StoreError when the message is already stored.
        """
        hops = _hop_set(msg.mid, next_hops)
        size = len(msg.body)
        evicted = self._make_room(msg, size) if self._bytes_used + size > self.max_bytes else []
        self._begin()
        src, epoch, seq = msg.mid
        cur = self._cur
        try:
            cur.execute(
                sql.INSERT_MESSAGE,
                (src, epoch, seq, msg.dst, msg.precedence, msg.created, msg.expires, msg.body,
                 msg.local_origin, msg.received_at, size),
            )  # fmt: skip
        except sqlite3.IntegrityError as exc:
            if self._exists(msg.mid):
                raise StoreError(
                    f"message {msg.mid} is already stored; add next hops with add_next_hops"
                ) from None
            raise StoreError(f"message {msg.mid} cannot be stored: {exc}") from exc
        if len(hops) == 1:
            cur.execute(sql.INSERT_HOP, (src, epoch, seq, *hops))
        else:
            cur.executemany(sql.INSERT_HOP, [(src, epoch, seq, hop) for hop in hops])
        self._tally(msg.precedence, size, 1)
        return evicted

    def _make_room(self, msg: StoredMessage, size: int) -> list[StoredMessage]:
        """Evict lower-precedence messages until `msg` fits, or raise StoreFull untouched."""
        if size > self.max_bytes:
            raise StoreFull(
                f"message {msg.mid} is {size} bytes, larger than the store's "
                f"max_bytes {self.max_bytes}"
            )
        if self._exists(msg.mid):
            raise StoreError(
                f"message {msg.mid} is already stored; add next hops with add_next_hops"
            )
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
        row = self._cur.execute(sql.DELETE_ROW, (rowid,)).fetchone()
        gone = _message(row)
        self._tally(gone.precedence, len(gone.body), -1)
        return gone

    def _tally(self, precedence: int, size: int, sign: int) -> None:
        self._counts[precedence] += sign
        self._bytes[precedence] += sign * size
        self._bytes_used += sign * size

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

    def also_hold(self, mid: MessageId) -> None:
        """Keep custody for a route still missing, beside the next hops already pending: a
        group message some of whose members cannot be reached yet. `add_next_hops` clears
        it, `remove_next_hop(mid, HELD)` releases it."""
        self._require(mid)
        self._begin()
        self._cur.execute(sql.INSERT_HOP, (*mid, HELD))

    def hold(self, mid: MessageId) -> None:
        """Every route was lost: keep custody of the message with no next hop."""
        self._require(mid)
        self._begin()
        self._cur.execute(sql.DELETE_HOPS, mid)
        self._cur.execute(sql.INSERT_HOP, (*mid, HELD))

    def remove_next_hop(self, mid: MessageId, next_hop: int) -> bool:
        """`next_hop` acknowledged custody; the message leaves when no next hop is left.

        False when that next hop was not pending for the message.
        """
        self._begin()
        cur = self._cur
        cur.execute(sql.DELETE_HOP, (*mid, next_hop))
        if cur.rowcount == 0:
            return False
        row = cur.execute(sql.DELETE_IF_NO_HOPS, mid).fetchone()
        if row is not None:
            self._tally(row[0], row[1], -1)
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
        self._tally(row[0], row[1], -1)
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
        rows = cur.execute(
            sql.DELETE_EXPIRED,
            (now_mission_seconds,),
        ).fetchall()
        gone = [_message(row) for row in rows]
        for msg in gone:
            self._tally(msg.precedence, len(msg.body), -1)
        return gone

    # ---- dedup ---------------------------------------------------------------------------

    def mark_seen(self, mid: MessageId, expires: int) -> bool:
        """Record that `mid` arrived; True the first time, False for a duplicate."""
        self._begin()
        self._cur.execute("INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)", (*mid, expires))
        return self._cur.rowcount == 1

    def seen(self, mid: MessageId) -> bool:
        return self._cur.execute(sql.SEEN, mid).fetchone() is not None

    def forget_seen_before(self, mission_seconds: int) -> int:
        """Prune dedup records of messages that expired before `mission_seconds`.

        Safe because the engine drops a message arriving after its expiry as expired, so a
        late duplicate is never mistaken for a new message. Returns how many were pruned.
        """
        self._begin()
        self._cur.execute("DELETE FROM seen WHERE expires < ?", (mission_seconds,))
        return self._cur.rowcount

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
            "INSERT INTO inbox VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        rows = self._cur.execute(
            "SELECT * FROM inbox WHERE id > ? ORDER BY id LIMIT ?", (after_rowid, limit)
        ).fetchall()
        return [
            InboxEntry(rowid, (ms, me, mq), src, dst, prec, created, received, payload, bool(s))
            for rowid, ms, me, mq, src, dst, prec, created, received, payload, s in rows
        ]

    def ack_inbox(self, up_to_rowid: int) -> int:
        """The application has every entry up to `up_to_rowid`; returns how many were freed."""
        self._begin()
        self._cur.execute("DELETE FROM inbox WHERE id <= ?", (up_to_rowid,))
        return self._cur.rowcount

    def inbox_count(self) -> int:
        return int(self._cur.execute("SELECT count(*) FROM inbox").fetchone()[0])

    def put_receipt(self, mid: MessageId, kind: int, at: int) -> int:
        """Keep an end-to-end receipt for the application; returns its rowid."""
        self._begin()
        self._cur.execute("INSERT INTO receipts VALUES (NULL, ?, ?, ?, ?, ?)", (*mid, kind, at))
        return self._lastrowid("receipts")

    def receipts(self, after_rowid: int = 0, limit: int = 100) -> list[Receipt]:
        rows = self._cur.execute(
            "SELECT * FROM receipts WHERE id > ? ORDER BY id LIMIT ?", (after_rowid, limit)
        ).fetchall()
        return [Receipt(rowid, (src, ep, seq), kind, at) for rowid, src, ep, seq, kind, at in rows]

    def ack_receipts(self, up_to_rowid: int) -> int:
        """The application has every receipt up to `up_to_rowid`; returns how many were freed."""
        self._begin()
        self._cur.execute("DELETE FROM receipts WHERE id <= ?", (up_to_rowid,))
        return self._cur.rowcount

    # ---- fragments -----------------------------------------------------------------------

    def put_fragment(self, mid: MessageId, index: int, count: int, chunk: bytes) -> int:
        """Keep fragment `index` of `count`; returns the bytes now held for `mid`.

        A repeated fragment is ignored. Raises StoreError when the index is out of range or
        `count` disagrees with fragments already held (the engine drops such frames).
        """
        if not 0 <= index < count:
            raise StoreError(f"fragment of {mid}: index must be in [0, {count}), found {index}")
        held = self._partials.get(mid)
        if held is not None and held[0] != count:
            raise StoreError(
                f"fragment {index} of {mid} says {count} fragments, earlier ones said {held[0]}"
            )
        self._begin()
        self._cur.execute(
            "INSERT OR IGNORE INTO fragments VALUES (?, ?, ?, ?, ?, ?)",
            (*mid, index, count, chunk),
        )
        if self._cur.rowcount == 1:
            if held is None:
                held = self._partials[mid] = [count, 0]
            held[1] += len(chunk)
            self._fragment_bytes += len(chunk)
        return 0 if held is None else held[1]

    def fragments(self, mid: MessageId) -> dict[int, bytes]:
        rows = self._cur.execute(sql.FRAGMENTS_OF, mid)
        return dict(rows)

    def fragment_indices(self, mid: MessageId) -> set[int]:
        rows = self._cur.execute(sql.FRAGMENT_INDICES, mid)
        return {idx for (idx,) in rows}

    def drop_fragments(self, mid: MessageId) -> None:
        """Forget a partial message: reassembled, expired, or evicted to bound memory."""
        held = self._partials.pop(mid, None)
        if held is None:
            return
        self._begin()
        self._cur.execute(sql.DELETE_FRAGMENTS, mid)
        self._fragment_bytes -= held[1]

    def fragment_bytes(self) -> int:
        """Bytes held in fragments of partial messages (not counted in `bytes_used`)."""
        return self._fragment_bytes

    def oldest_partial(self) -> MessageId | None:
        """The partial message whose oldest held fragment came first: the one to drop first."""
        row = self._cur.execute(
            "SELECT src, epoch, seq FROM fragments ORDER BY rowid LIMIT 1"
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    # ---- engine state --------------------------------------------------------------------

    def get_state(self, key: str) -> bytes | None:
        row = self._cur.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_state(self, key: str, value: bytes) -> None:
        """Durable with the next commit, like every other write (sequence counters, links)."""
        self._begin()
        self._cur.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

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
