"""The custody rule of a node with a full store (docs/operators.md, "A full store").

1. What this node acknowledged stays in its custody: a message from a neighbour that does
   not fit is refused, not acknowledged (backpressure), and the neighbour keeps its copy.
2. Acknowledged custody is evicted only to make room for a message of strictly higher
   precedence, lowest precedence first (OVERRIDE may evict FLASH; nothing evicts OVERRIDE),
   and only where refusing would block the higher one for good: for a message submitted here
   (the application has nowhere else to leave it), or for a neighbour's message that can move
   on now, whose room is taken by messages held for a route still missing. A neighbour's
   message that cannot move on either, or whose room is held by messages that can, is
   refused: it waits as well at the neighbour as here, and the store here drains by itself.
   So a relay never trades a message it acknowledged for one its neighbour still holds while
   both merely wait (the precedence inversion of a relay that evicted what it had taken while
   the lower-precedence messages it had refused survived at the sender).
3. Every eviction is told: the application here gets a `MessageEvicted` event; the origin,
   when another node, a notice of eviction (tawan.core.backpressure), which it keeps with its
   receipts and reports as a `ReceiptReceived` of kind "evicted"; when the origin is this
   node, that receipt and event are made here at once.
4. A refused neighbour learns that there is room again from a HELLO with ROOM.

A part of `Engine` (tawan.core.engine), sharing its state, declared below for the type checker.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

from tawan.core.backpressure import EvictionNotices, Refusals
from tawan.core.events import Event, MessageEvicted, MessageRefused, ReceiptReceived
from tawan.core.forwarding import Forwarding
from tawan.core.frames import Flags, FrameDecodeError, Message, MessageId, decode_message
from tawan.core.precedence import Precedence
from tawan.core.receipts import EVICTED, ReceiptBody, encode_receipt
from tawan.core.specs import Keys, Submission, SubmitError
from tawan.core.states import Input
from tawan.core.stats import EngineStats
from tawan.core.store import (
    Store,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreShareExceeded,
    StoreUnwritable,
    wire_id,
)
from tawan.core.store_custody import Victims
from tawan.core.transmitter import Transmitter

NOTICE_DELAY: Final = 1.0  # seconds evictions are gathered per origin before one notice
NOTICES_STATE: Final = "eviction-notices"  # store state row: the notices not yet sent
NOTICE_RESERVE_SHARE: Final = 64  # notices may use max_bytes // this beyond max_bytes
MIN_NOTICE_TTL: Final = 60
_NAMES: Final = tuple(p.name.lower() for p in Precedence)  # the counters' labels, by value

__all__ = ["NOTICE_DELAY", "CustodyRule"]


class CustodyRule:
    """Taking custody, eviction and its notices, signals of room: mixed into `Engine`."""

    keys: Keys
    store: Store
    me: int
    stats: EngineStats
    tx: Transmitter
    forwarding: Forwarding
    _events: deque[Event]
    refusals: Refusals
    eviction_notices: EvictionNotices
    store_problem: StoreUnwritable | None
    _store_retry_at: float
    _notices_rollbacks: int
    refusal: str  # why the latest `_take_custody` that returned False refused

    if TYPE_CHECKING:  # the rest of the engine, which this part calls

        def _next_hops(
            self, msg: Message, came_from: int | None, mid: MessageId, size: int
        ) -> set[int]: ...
        def _group_covered(self, dst: int) -> bool: ...
        def _still_unreached(self, dst: int) -> bool: ...
        def _hold_to_settle(
            self, mid: MessageId, dst: int, hops: set[int], came_from: int | None, now: float
        ) -> None: ...
        def _refuse_unwritable(self, neighbour: int | None = None) -> bool: ...
        def _enqueue(self, hop: int, stored: StoredMessage) -> None: ...
        def _forget_queued(self, mid: MessageId, why: Input) -> None: ...
        def _housekeeping_soon(self, now: float) -> None: ...
        def _mission_seconds(self, now: float) -> int: ...
        def _seal_local(
            self, submission: Submission, now: float, *, control: bool = False
        ) -> Message: ...

    def _init_custody_rule(self) -> None:
        self.refusals = Refusals()
        self.refusal = ""
        self._load_notices()

    # ---- notices of eviction, kept with the evictions they report -------------------------
    # The pending notices are a state row written in the transaction of each eviction and of
    # each notice taken into custody: a rolled-back eviction is never told, a notice whose
    # own custody rolled back is told again, and a crash within the gathering delay loses
    # none (reloaded at start and after every rollback, which `store.rollbacks` shows).

    def _load_notices(self) -> None:
        data = self.store.get_state(NOTICES_STATE)
        self.eviction_notices = EvictionNotices.from_bytes(data, NOTICE_DELAY)
        self._notices_rollbacks = self.store.rollbacks

    def _pending_notices(self) -> EvictionNotices:
        """The pending notices as the store holds them (reloaded after a rollback)."""
        if self.store.rollbacks != self._notices_rollbacks:
            self._load_notices()
        return self.eviction_notices

    def _save_notices(self) -> None:
        self.store.set_state(NOTICES_STATE, self.eviction_notices.to_bytes())

    def _notices_deadline(self) -> float | None:
        """When notices are due; while the store cannot write, not before its retry time
        (they wait, held, rather than being dropped or spinning the timer)."""
        due = self._pending_notices().deadline()
        if due is not None and self.store_problem is not None:
            return max(due, self._store_retry_at)
        return due

    def _take_custody(
        self, msg: Message, came_from: int | None, now: float, *, local: bool,
        slot: MessageId | None = None, notice: bool = False,
    ) -> bool:  # fmt: skip
        """Store the message, pending for each next hop (none yet: held); `slot` is the id
        it is kept under when not its own (`_custody_slot`); `notice`: a notice of eviction
        of this node's own, which may use the store's reserve and never evicts."""
        mid = slot or msg.mid(self.keys.epoch_seconds)
        if self._refuse_unwritable(came_from):
            return False  # not acknowledged: the sender keeps custody
        body = msg.encode()
        hops = self._next_hops(msg, came_from, mid, len(body))
        if not hops and came_from is not None and self._group_covered(msg.dst):
            return True  # a leaf of the group's tree: delivered here, nothing to hand on
        stored = StoredMessage(
            mid, msg.dst, int(msg.precedence), msg.created, msg.expires, body,
            local, now, prev_hop=came_from or 0,
        )  # fmt: skip
        victims: Victims = "any" if local else "held" if hops else "none"
        reserve = self.store.max_bytes // NOTICE_RESERVE_SHARE if notice else 0
        try:
            evicted = self.store.put_message(
                stored, hops, victims="none" if notice else victims, reserve=reserve
            )
        except StoreFull as exc:
            self._refused(stored, came_from, exc)
            return False
        except StoreError:
            return True  # already in custody here (a copy that came round): a duplicate
        group = bool(hops) and self.keys.roster.is_group(msg.dst)  # asked once: most are not
        if group and not self.forwarding.floods:
            # Kept for the members beyond today's routes, and while views settle.
            self.store.also_hold(mid)
            self._hold_to_settle(mid, msg.dst, hops, came_from, now)
        elif group and self._still_unreached(msg.dst):
            self.store.also_hold(mid)  # the members beyond today's routes get it later
        for old in evicted:
            self._evicted(old, msg.precedence, now)
        for hop in hops:
            self._enqueue(hop, stored)
        if not local:
            self.stats.forwarded[_NAMES[msg.precedence]] += 1
        self._housekeeping_soon(now)
        return True

    def _refused(self, stored: StoredMessage, came_from: int | None, exc: StoreFull) -> None:
        precedence = Precedence(stored.precedence)
        share = isinstance(exc, StoreShareExceeded)
        self.refusal = str(exc)
        self.stats.refused[precedence.name.lower()] += 1
        reason = "fair_share" if share else "store_full"
        self._events.append(MessageRefused(wire_id(stored.mid), precedence, reason, str(exc)))
        if came_from:
            self.refusals.refused(came_from, stored.size)

    def _evicted(self, old: StoredMessage, for_precedence: Precedence, now: float) -> None:
        """`old` left the store to make room: tell the application here, and its origin."""
        mid = wire_id(old.mid)
        self._forget_queued(old.mid, Input.EVICTED)
        precedence = Precedence(old.precedence)
        self.stats.evicted[precedence.name.lower()] += 1
        self._events.append(MessageEvicted(mid, precedence, old.size, mid[0], for_precedence))
        try:
            msg = decode_message(old.body)
        except FrameDecodeError:
            return  # cannot happen for what this node stored; nothing to tell about
        if msg.flags & Flags.CONTROL:
            return  # no notice about a receipt or a notice
        if mid[0] == self.me:
            at = self._mission_seconds(now)
            self.store.put_receipt(mid, EVICTED, at, reporter=self.me)
            self.stats.receipts_received += 1
            self._events.append(ReceiptReceived(mid, self.me, "evicted", at))
            return
        if self._pending_notices().add(mid, precedence, msg.ttl, now):
            self._save_notices()  # in the eviction's own transaction
        else:
            self.stats.notices_unsent += 1

    def _send_notices(self, now: float) -> None:
        """Seal and take custody of the notices of eviction due now."""
        if self.store_problem is not None:
            return  # held until the store can write (`_notices_deadline`)
        at = self._mission_seconds(now)
        due = self._pending_notices().take(now)
        if due:
            self._save_notices()  # with the custody of the notices below
        for notice in due:
            first, *more = notice.mids
            body = encode_receipt(ReceiptBody(EVICTED, first, at, tuple(more)))
            ttl = max(MIN_NOTICE_TTL, notice.ttl)
            try:
                sealed = self._seal_local(
                    Submission(notice.origin, body, notice.precedence, ttl), now, control=True
                )
            except SubmitError:
                continue  # no key for the origin any more (revoked): nobody to tell
            if self._take_custody(sealed, None, now, local=True, notice=True):
                self.store.mark_seen(sealed.mid(self.keys.epoch_seconds), sealed.expires)
                self.stats.notices_sent += 1
            else:
                self.stats.notices_unsent += len(notice.mids)

    def _signal_room(self, now: float) -> None:
        """Tell each refused neighbour whose smallest refused message fits now."""
        for neighbour in self.refusals.owed(self.store.has_room):
            adj = self.tx.best_link(neighbour)
            if adj is not None:
                self.tx.hello(adj, now, reply=False, room=True)
                self.stats.room_signals += 1
