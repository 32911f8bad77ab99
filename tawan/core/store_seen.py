"""Duplicate memory: the ids of messages that arrived, and of messages this node sent asking
for a receipt, each kept until the message expires.

A lower bound of each table's expiries is kept in memory (`store_expiry`), so housekeeping on
a node with nothing to prune executes no statement."""

from __future__ import annotations

from collections.abc import Iterable

from tawan.core import store_sql as sql
from tawan.core.store_expiry import ExpiryBound
from tawan.core.store_tx import StoreBase
from tawan.core.store_types import MessageId

__all__ = ["Seen"]


class Seen(StoreBase):
    """The seen part of the store: dedup records and sent messages."""

    _seen_expiry: ExpiryBound
    _sent_expiry: ExpiryBound

    def _load_seen(self) -> None:
        """Nothing known of the expiries: the first prune asks (at open, after a rollback)."""
        self._seen_expiry = ExpiryBound()
        self._sent_expiry = ExpiryBound()

    def mark_seen(self, mid: MessageId, expires: int) -> bool:
        """Record that `mid` arrived; True the first time, False for a duplicate."""
        self._begin()
        self._cur.execute(sql.INSERT_SEEN, (*mid, expires))
        if self._cur.rowcount != 1:
            return False
        self._seen_expiry.added(expires)
        return True

    def unmark_seen(self, mid: MessageId) -> None:
        """Forget that `mid` arrived (marked by `mark_seen` in this transaction, and then
        not taken after all)."""
        self._begin()
        self._cur.execute(sql.DELETE_SEEN, mid)

    def mark_seen_many(self, mids: Iterable[MessageId], expires: int) -> None:
        """`mark_seen` for several ids at once (a delivered message: its id and its slot)."""
        self._begin()
        self._cur.executemany(sql.INSERT_SEEN, [(*mid, expires) for mid in mids])
        self._seen_expiry.added(expires)

    def seen(self, mid: MessageId) -> bool:
        return self._cur.execute(sql.SEEN, mid).fetchone() is not None

    def put_sent(self, mid: MessageId, dst: int, expires: int) -> None:
        """Remember that this node sent `mid` to `dst`, asking for a receipt, until `expires`:
        a receipt for it counts only when `dst` reports it. Putting it again replaces it."""
        self._begin()
        self._cur.execute(sql.PUT_SENT, (*mid, dst, expires))
        self._sent_expiry.added(expires)

    def sent_to(self, mid: MessageId) -> int | None:
        """The destination of a message this node sent, None when unknown (or pruned)."""
        row = self._cur.execute(sql.SENT_TO, mid).fetchone()
        return None if row is None else int(row[0])

    def forget_seen_before(self, mission_seconds: int) -> int:
        """Prune dedup and sent records of messages that expired before `mission_seconds`.

        Safe because the engine drops a message arriving after its expiry as expired, so a
        late duplicate is never mistaken for a new message (nor a late receipt accepted).
        Returns how many records were pruned; opens no transaction when none has expired,
        so an idle node does not commit at every housekeeping pass, and executes no
        statement while `mission_seconds` is not past the bound kept of each table.
        """
        return self._prune(
            self._seen_expiry, sql.EARLIEST_SEEN, sql.DELETE_SEEN_BEFORE, mission_seconds
        ) + self._prune(
            self._sent_expiry, sql.EARLIEST_SENT, sql.DELETE_SENT_BEFORE, mission_seconds
        )
