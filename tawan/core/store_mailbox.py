"""The mailbox: messages delivered to the local application and end-to-end receipts for the
messages it sent, each kept until the application acknowledges it.

Acknowledged inbox entries hold plaintext: the store runs with secure_delete, and a commit
that freed inbox entries checkpoints and truncates the WAL (`StoreBase.commit`), so the
deleted payload is left neither in the database file nor in its WAL.
"""

from __future__ import annotations

from tawan.core import store_sql as sql
from tawan.core.store_tx import StoreBase
from tawan.core.store_types import InboxEntry, MessageId, Receipt

__all__ = ["Mailbox"]


class Mailbox(StoreBase):
    """The mailbox part of the store: the inbox and the receipts."""

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
