"""Custody: the messages a node holds, the next hops each still waits for, the held index.

Next hops. A message in custody has one row per neighbour it still has to be handed to. The
reserved address `HELD` (0) marks a message held with no route yet: it is never a real next
hop, `pending()` skips it and `messages_without_next_hop()` lists it. Adding a real next hop
clears the mark; `hold()` puts a message back to held when its routes are lost. When the last
row goes (the last neighbour acknowledged it), the message leaves the store. Only a count of
the held rows per destination is kept in memory, so what a change of routes may release is
found without reading every held message, and memory does not grow with what is held (a
store of 256 MiB holds two million short messages); the held messages themselves are read
from the file when a destination is released (`held_for`).

Transmit turns. The engine's transmit queues keep a bounded number of messages in memory;
`pending_for` reads a queue's next turns from the file (highest precedence, then oldest, by
the turn index), without their bodies, and `body_of` reads a body when its turn comes.

Fair share. OVERRIDE is never evicted (nothing ranks above it), so one insider sending
OVERRIDE traffic to an unreachable node could fill a relay until it refuses everyone's FLASH
(store pinning). Once
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
precedence are evicted, lowest precedence first, then earliest expiry, then oldest; the order
is the same at every level (OVERRIDE may evict FLASH, nothing evicts OVERRIDE). The caller
says which messages may go (`victims`): any of lower precedence, only those held for a route
still missing, or none. A message never evicts one of its own precedence: both are in
someone's custody, and refusing the new one (`StoreFull`, no acknowledgement) leaves it safe
with the previous hop, while evicting the old one would drop a message this node already
acknowledged. The engine's custody rule (docs/operators.md) chooses `victims`.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Final, Literal

from tawan.core import store_sql as sql
from tawan.core.precedence import Precedence
from tawan.core.states import Input, Lifecycle, State
from tawan.core.store_expiry import EarliestExpiry
from tawan.core.store_tx import DEFAULT_MAX_BYTES, StoreBase
from tawan.core.store_types import (
    HELD,
    PRECEDENCES,
    Durability,
    MessageId,
    MessageRef,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreShareExceeded,
    message_ref,
    stored_message,
)

__all__ = ["Custody", "Victims"]

_PAGE_ROWS: Final = 256

Victims = Literal["any", "held", "none"]
"""Which messages may be evicted to make room: any of lower precedence, only those of lower
precedence held for a route still missing, or none."""


class Custody(StoreBase):
    """The custody part of the store: messages, next hops, tallies, eviction, the held index."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durability: Durability = "process",
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self._lifecycle = Lifecycle()  # the engine attaches its own (`attach`)
        super().__init__(path, durability=durability, max_bytes=max_bytes)

    def _load_custody(self) -> None:
        """Rebuild the tallies and the held index once, so stats never need a query per call.
        The earliest expiry is asked for when first needed (`next_expiry`, `expire`)."""
        self._earliest = EarliestExpiry()
        cur = self._cur
        self._counts = dict.fromkeys(PRECEDENCES, 0)
        self._bytes = dict.fromkeys(PRECEDENCES, 0)
        for prec, count, size in cur.execute(sql.BYTES_BY_PRECEDENCE):
            self._counts[prec] = count
            self._bytes[prec] = size
        self._bytes_used = sum(self._bytes.values())
        self._by_source: dict[int, int] = dict(cur.execute(sql.BYTES_BY_SOURCE).fetchall())
        self._by_prev_hop: dict[int, int] = dict(cur.execute(sql.BYTES_BY_PREV_HOP).fetchall())
        # destination -> messages held for it (never zero), and their total
        self._held: dict[int, int] = dict(cur.execute(sql.HELD_BY_DESTINATION).fetchall())
        self._held_total = sum(self._held.values())
        self.attach(self._lifecycle)  # the rows held now (at open, and after a rollback)

    # ---- taking and giving up custody ----------------------------------------------------

    def put_message(
        self, msg: StoredMessage, next_hops: Iterable[int] = (), *, victims: Victims = "any",
        reserve: int = 0,
    ) -> list[StoredMessage]:  # fmt: skip
        """Take custody of `msg`, pending for each of `next_hops` (none: held, no route).

        `victims` says which messages may be evicted to make room (see `Victims`); `reserve`
        is how many bytes beyond `max_bytes` this message may use (a node's own notices of
        eviction, so telling about an eviction never needs another one).

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
        limit = self.max_bytes + reserve
        evicted = (
            self._make_room(msg, size, limit, victims) if self._bytes_used + size > limit else []
        )
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
            self._lifecycle.move((msg.mid, HELD), Input.NO_ROUTE)
            self._count_held(msg.dst)
        self._tally(msg.precedence, src, msg.prev_hop, size, msg.expires, 1)
        return evicted

    def has_room(self, prev_hop: int, size: int) -> bool:
        """Would a message of `size` bytes from `prev_hop` be taken now without evicting
        anything (room in `max_bytes`, and within the previous hop's share)?"""
        if self._bytes_used + size > self.max_bytes:
            return False
        if not prev_hop or self._bytes_used + size <= self.max_bytes // 2:
            return True
        tally = self._by_prev_hop
        holders = max(2, len(tally) + (prev_hop not in tally))
        return tally.get(prev_hop, 0) + size <= self.max_bytes // holders

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

    def _make_room(
        self, msg: StoredMessage, size: int, limit: int, victims: Victims
    ) -> list[StoredMessage]:
        """Evict lower-precedence messages until `msg` fits, or raise StoreFull untouched."""
        if self._exists(msg.mid):
            raise _already_stored(msg.mid)
        needed = self._bytes_used + size - limit
        chosen: list[int] = []
        freed = 0
        if victims != "none":
            query = sql.EVICTION_ORDER_HELD if victims == "held" else sql.EVICTION_ORDER
            for rowid, victim_size in self._cur.execute(query, (msg.precedence,)):
                chosen.append(rowid)
                freed += victim_size
                if freed >= needed:
                    break
        if freed < needed:
            raise StoreFull(self._no_room(msg, size, victims, freed, needed))
        self._begin()
        return [self._delete_row(rowid) for rowid in chosen]

    def _no_room(
        self, msg: StoredMessage, size: int, victims: Victims, freed: int, needed: int
    ) -> str:
        """Why `msg` is refused, as it really is: what fills the store, what it may evict."""
        held = ", ".join(
            f"{Precedence(p).name.lower()} {n}" for p, n in sorted(self._bytes.items()) if n
        )
        what = f"no room for message {msg.mid} ({size} bytes, {Precedence(msg.precedence).name})"
        full = f"{self._bytes_used} of {self.max_bytes} bytes in use ({held or 'none'})"
        if victims == "none":
            return f"{what}: {full}; it may evict nothing (acknowledged custody is kept)"
        which = "held for a missing route " if victims == "held" else ""
        return (
            f"{what}: {full}; it may evict only messages {which}of lower precedence, "
            f"and those hold {freed} of the {needed} bytes needed"
        )

    def _delete_row(self, rowid: int) -> StoredMessage:
        held = self._cur.execute(sql.IS_HELD_ROW, (rowid,)).fetchone() is not None
        gone = stored_message(self._cur.execute(sql.DELETE_ROW, (rowid,)).fetchone())
        self._untally(gone)
        if held:
            self._unhold(gone.mid, gone.dst, Input.EVICTED)
        return gone

    def _tally(
        self, precedence: int, src: int, prev_hop: int, size: int, expires: int, sign: int
    ) -> None:
        """Every insert and delete of a message passes here, so the tallies (and what is
        known of the earliest expiry) follow the file."""
        if sign > 0:
            self._earliest.added(expires)
        else:
            self._earliest.removed(expires)
        delta = sign * size
        self._counts[precedence] += sign
        self._bytes[precedence] += delta
        self._bytes_used += delta
        # The per-key tallies keep only keys that hold bytes (a loop, not a call per tally:
        # two of these per message taken and per message gone).
        for tally, key in ((self._by_source, src), (self._by_prev_hop, prev_hop)):
            value = tally.get(key, 0) + delta
            if value:
                tally[key] = value
            else:
                tally.pop(key, None)

    def _untally(self, gone: StoredMessage) -> None:
        self._tally(gone.precedence, gone.mid[0], gone.prev_hop, gone.size, gone.expires, -1)

    def _exists(self, mid: MessageId) -> bool:
        row = self._cur.execute(sql.MESSAGE_EXISTS, mid).fetchone()
        return row is not None

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
            self._unhold(mid, self._destination(mid), Input.ROUTE_FOUND)
        row = cur.execute(sql.DELETE_IF_NO_HOPS, mid).fetchone()
        if row is not None:
            precedence, size, prev_hop, expires = row
            self._tally(precedence, mid[0], prev_hop, size, expires, -1)
        return True

    def remove_next_hops(self, mids: Sequence[MessageId], next_hop: int) -> set[MessageId]:
        """`remove_next_hop(mid, next_hop)` for each of `mids` (distinct), in one statement
        per `sql.ID_BATCH` of them when `next_hop` is each one's last (a relay's case), two
        otherwise: a frame of acknowledgements costs one write, not two per message. Returns
        the ids for which that next hop was pending."""
        if next_hop == HELD:
            return {mid for mid in mids if self.remove_next_hop(mid, HELD)}
        removed: set[MessageId] = set()
        if not mids:
            return removed
        self._begin()
        cur = self._cur
        for start in range(0, len(mids), sql.ID_BATCH):
            batch = mids[start : start + sql.ID_BATCH]
            statement = _each(sql.delete_if_only_hop_each, batch, next_hop)
            rows = cur.execute(*statement).fetchall()
            for src, epoch, seq, precedence, size, prev_hop, expires in rows:
                removed.add((src, epoch, seq))
                self._tally(precedence, src, prev_hop, size, expires, -1)
            if len(rows) == len(batch):
                continue  # each of them gone (the rows are distinct ids of the batch)
            rest = [mid for mid in batch if mid not in removed]  # other hops still pending
            if rest:
                rows = cur.execute(*_each(sql.delete_hop_each, rest, next_hop)).fetchall()
                removed.update((src, epoch, seq) for src, epoch, seq in rows)
        return removed

    def delete_message(self, mid: MessageId) -> bool:
        """Drop a message and its next hops (e.g. revoked sender); False when not stored."""
        self._begin()
        held = self._is_held(mid)
        row = self._cur.execute(sql.DELETE_MESSAGE, mid).fetchone()
        if row is None:
            return False
        precedence, size, prev_hop, dst, expires = row
        self._tally(precedence, mid[0], prev_hop, size, expires, -1)
        if held:
            self._unhold(mid, dst, Input.DROPPED)
        return True

    def next_expiry(self) -> int | None:
        """The earliest expiry (mission seconds) of any message held, None when none is;
        from memory, unless the earliest message left since it was last asked."""
        if not self._earliest.exact:
            self._earliest.found(self._cur.execute(sql.EARLIEST_EXPIRY).fetchone()[0])
        return self._earliest.earliest()

    def expire(self, now_mission_seconds: int) -> list[StoredMessage]:
        """Delete and return every message whose expiry is at or before `now`; no statement
        when the earliest expiry known in memory is later."""
        earliest = self._earliest
        if now_mission_seconds < earliest.bound:
            return []
        if not earliest.exact:
            earliest.found(self._cur.execute(sql.EARLIEST_EXPIRY).fetchone()[0])
            if now_mission_seconds < earliest.bound:
                return []
        cur = self._cur
        self._begin()
        held = {(s, e, q) for s, e, q in cur.execute(sql.HELD_EXPIRING, (now_mission_seconds,))}
        rows = cur.execute(sql.DELETE_EXPIRED, (now_mission_seconds,))
        gone = [stored_message(row) for row in rows]
        for msg in gone:
            self._untally(msg)
            if msg.mid in held:
                self._unhold(msg.mid, msg.dst, Input.EXPIRED)
        earliest.pruned(now_mission_seconds + 1)  # expiries are whole seconds
        return gone

    # ---- next hops and the held index ----------------------------------------------------

    def add_next_hops(self, mid: MessageId, next_hops: Iterable[int]) -> None:
        """A route appeared: queue the message for these neighbours too; clears `HELD`."""
        hops = set(next_hops)
        if HELD in hops:
            raise StoreError(f"message {mid}: next hop {HELD} means held; call hold() instead")
        if not self._exists(mid):
            raise StoreError(f"message {mid} is not in the store")
        if not hops:
            return
        self._begin()
        self._cur.execute(sql.DELETE_HOP, (*mid, HELD))
        if self._cur.rowcount:
            self._unhold(mid, self._destination(mid), Input.ROUTE_FOUND)
        self._cur.executemany(sql.INSERT_HOP, [(*mid, hop) for hop in hops])

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
        self._set_held(mid, self._destination(mid))

    def _destination(self, mid: MessageId) -> int:
        row = self._cur.execute(sql.DESTINATION_OF, mid).fetchone()
        if row is None:
            raise StoreError(f"message {mid} is not in the store")
        return int(row[0])

    def _is_held(self, mid: MessageId) -> bool:
        return self._cur.execute(sql.IS_HELD, mid).fetchone() is not None

    def attach(self, lifecycle: Lifecycle) -> None:
        """Report the held rows' changes to `lifecycle` (tawan.core.states), starting from
        the rows held now (read only for a strict lifecycle: only it follows states)."""
        self._lifecycle = lifecycle
        if lifecycle.strict:
            for src, epoch, seq in self._cur.execute(sql.HELD_MESSAGES).fetchall():
                lifecycle.states[((src, epoch, seq), HELD)] = State.HELD

    def _set_held(self, mid: MessageId, dst: int) -> None:
        """Mark `mid` (for `dst`) held; the caller then writes its HELD row."""
        self._lifecycle.move((mid, HELD), Input.NO_ROUTE)
        if not self._is_held(mid):
            self._count_held(dst)

    def _count_held(self, dst: int) -> None:
        self._held[dst] = self._held.get(dst, 0) + 1
        self._held_total += 1

    def _unhold(self, mid: MessageId, dst: int, why: Input) -> None:
        """`mid`'s HELD row is gone (the caller knew it was there)."""
        self._lifecycle.move((mid, HELD), why)
        self._held_total -= 1
        left = self._held.get(dst, 0) - 1
        if left > 0:
            self._held[dst] = left
        else:
            self._held.pop(dst, None)

    def held_count(self) -> int:
        """Messages held: no route yet, or kept for members a route does not reach yet."""
        return self._held_total

    def held_destinations(self) -> set[int]:
        """Destinations of the messages held (no route yet, or kept for more members)."""
        return set(self._held)

    def held_for(self, destinations: Collection[int]) -> Iterator[MessageRef]:
        """The messages held for any of `destinations`, in stored order (oldest first),
        without their bodies, read from the file in pages (the caller may write between
        items): releasing a full store's backlog holds a page in memory, never the backlog."""
        pages = [self._held_pages(dst) for dst in sorted(destinations) if dst in self._held]
        return (ref for _, ref in heapq.merge(*pages, key=lambda row: row[0]))

    def _held_pages(self, dst: int) -> Iterator[tuple[int, MessageRef]]:
        last = 0
        while True:
            rows = self._conn.execute(sql.HELD_FOR_PAGE, (dst, last, _PAGE_ROWS)).fetchall()
            for *cols, rowid in rows:
                yield rowid, message_ref(tuple(cols))
            if len(rows) < _PAGE_ROWS:
                return
            last = rows[-1][8]

    def pending_for(
        self, hop: int, precedence: int, after: tuple[int, int], limit: int
    ) -> list[tuple[MessageId, int, int, int]]:
        """Up to `limit` messages of `precedence` pending for `hop` from `after` = (created,
        rowid) on, inclusive, in turn order: (id, created, size, rowid), no body."""
        rows = self._cur.execute(sql.PENDING_FOR, (hop, precedence, *after, limit)).fetchall()
        return [((src, epoch, seq), created, size, rowid) for src, epoch, seq, created, size,
                rowid in rows]  # fmt: skip

    def pending_hops(self) -> list[int]:
        """Every next hop some message is pending for (held aside), lowest first."""
        return [hop for (hop,) in self._cur.execute(sql.PENDING_HOPS)]

    def pending_counts_for(self, hop: int) -> dict[int, int]:
        """Messages pending for `hop`, by precedence (a scan: for status, not per frame)."""
        return dict(self._cur.execute(sql.PENDING_COUNTS_FOR, (hop,)).fetchall())

    def pending_rows_for(self, hop: int) -> Iterator[StoredMessage]:
        """Every message pending for `hop`, in stored order, read in pages (the caller may
        write between items)."""
        last = 0
        while True:
            rows = self._conn.execute(sql.HOP_ROWS_PAGE, (hop, last, _PAGE_ROWS)).fetchall()
            for _rowid, *cols in rows:
                yield stored_message(tuple(cols))
            if len(rows) < _PAGE_ROWS:
                return
            last = rows[-1][0]

    def body_of(self, mid: MessageId) -> bytes | None:
        """The encoded message kept under `mid`, None when it is no longer stored."""
        row = self._cur.execute(sql.BODY_OF, mid).fetchone()
        return None if row is None else bytes(row[0])

    # ---- reading -------------------------------------------------------------------------

    def next_hops_of(self, mid: MessageId) -> set[int]:
        """Pending next hops as stored: {HELD} for a held message, empty when not stored."""
        rows = self._cur.execute(sql.HOPS_OF, mid)
        return {hop for (hop,) in rows}

    def get_message(self, mid: MessageId) -> StoredMessage | None:
        row = self._cur.execute(sql.MESSAGE_AT, mid).fetchone()
        return None if row is None else stored_message(row)

    def pending(self) -> Iterator[tuple[StoredMessage, int]]:
        """Every (message, next hop) still to be handed on, oldest message first.

        For rebuilding the engine's queues after a restart; held messages are not included
        (see `messages_without_next_hop`). Read in pages, so writing between items is safe.
        """
        return self._pages(held=False)

    def messages_without_next_hop(self) -> list[StoredMessage]:
        """Messages held with no route yet, oldest first (a scan: for restarts, not per frame)."""
        return list(self.held_messages())

    def held_messages(self) -> Iterator[StoredMessage]:
        """Messages held, oldest first, read in pages (writing between items is safe)."""
        return (msg for msg, _ in self._pages(held=True))

    def _pages(self, *, held: bool) -> Iterator[tuple[StoredMessage, int]]:
        last_rowid, last_hop = 0, -1
        current: tuple[int, StoredMessage] | None = None
        while True:
            rows = self._conn.execute(
                sql.HOP_PAGE, (last_rowid, last_hop, held, _PAGE_ROWS)
            ).fetchall()
            for rowid, hop, *cols in rows:
                if current is None or current[0] != rowid:
                    current = (rowid, stored_message(tuple(cols)))
                yield current[1], hop
            if len(rows) < _PAGE_ROWS:
                return
            last_rowid, last_hop = rows[-1][0], rows[-1][1]

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


def _each(
    statement: Callable[[int], str], mids: Sequence[MessageId], *first: int
) -> tuple[str, list[int]]:
    """A statement naming each of `mids` and its parameters (`first`, then the ids). The
    count is rounded up to a power of two, repeating the last id, so that a handful of
    statements serve every batch size (each prepared once, cached by sqlite3)."""
    count = 1 << (len(mids) - 1).bit_length()
    params = list(first)
    for src, epoch, seq in mids:
        params += (src, epoch, seq)
    params += mids[-1] * (count - len(mids))
    return statement(count), params


def _already_stored(mid: MessageId) -> StoreError:
    return StoreError(f"message {mid} is already stored; add next hops with add_next_hops")


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
