"""Clients' references of submissions: a retry of a send is answered, not sent again.

A client that lost the answer to a send (the node was killed mid-request, the connection
broke) cannot know whether the message was taken. It may give each submission a reference of
its own choosing; the node keeps reference -> (message id, digest of the submission) in the
same transaction as the message, so the two are durable together, until the message expires
(a retry after that is a new message, which the expiry made necessary anyway). The table is
bounded by what can be submitted within a ttl, and counts against the store's file cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from tawan.core import store_sql as sql
from tawan.core.store_expiry import ExpiryBound
from tawan.core.store_tx import StoreBase
from tawan.core.store_types import MessageId

__all__ = ["Refs", "SubmissionRef"]


@dataclass(frozen=True, slots=True)
class SubmissionRef:
    """What a reference stands for: the message it became and its submission's digest."""

    mid: MessageId
    digest: bytes
    expires: int  # mission seconds, the message's own expiry


class Refs(StoreBase):
    _ref_expiry: ExpiryBound  # a lower bound of the references' expiries (`store_expiry`)

    def _load_refs(self) -> None:
        """Nothing known of the expiries: the first prune asks (at open, after a rollback)."""
        self._ref_expiry = ExpiryBound()

    def ref_of(self, ref: bytes, now_mission_seconds: int) -> SubmissionRef | None:
        """What `ref` stood for, unless it expired (then it is free again)."""
        row = self._cur.execute(sql.REF_AT, (ref,)).fetchone()
        if row is None or row[4] < now_mission_seconds:
            return None
        src, epoch, seq, digest, expires = row
        return SubmissionRef((src, epoch, seq), bytes(digest), expires)

    def put_ref(self, ref: bytes, entry: SubmissionRef) -> None:
        """Remember `ref` in the open transaction (replacing an expired one)."""
        self._begin()
        self._cur.execute(sql.DELETE_REF, (ref,))
        self._cur.execute(sql.INSERT_REF, (ref, *entry.mid, entry.digest, entry.expires))
        self._ref_expiry.added(entry.expires)

    def forget_refs_before(self, now_mission_seconds: int) -> None:
        """Drop references whose message expired; an idle node opens no transaction, and
        executes no statement while `now_mission_seconds` is not past the bound kept."""
        self._prune(
            self._ref_expiry, sql.EARLIEST_REF, sql.DELETE_REFS_BEFORE, now_mission_seconds
        )
