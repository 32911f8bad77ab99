"""The tawan node engine: store and forward as a state machine without I/O.

Driven from three sides, in the shape of aioquic's QuicConnection (see docs/engine.md):

- the application: `submit(...)`;
- the network: `receive(link, peer, data, now)`, `peer_up` / `peer_down`;
- the clock: `get_timer()` says when the engine next needs `handle_timer(now)`.

and read from two: `transmit(now)` returns the frames to put on links now, `next_event()`
the events for the application and the logs. No sockets, threads, trio or clock inside: the
time is an argument, randomness comes from the injected `rng`, keys from the injected keyring,
so the same inputs give the same run (the emulator relies on it).
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sqlite3
from collections import OrderedDict, deque
from collections.abc import Collection, Sequence

from crypto.revocation import Revocation
from crypto.roster import Roster
from tawan.core import snapshot
from tawan.core.contact_routing import Parcel
from tawan.core.control import ControlPlane
from tawan.core.custody_rule import CustodyRule
from tawan.core.events import (
    Delivered,
    Event,
    FrameRejected,
    MessageExpired,
    ReceiptReceived,
    StoreDegraded,
    StoreRecovered,
    Transmit,
)
from tawan.core.flooding import Flooding
from tawan.core.forwarding import Forwarding
from tawan.core.frames import (
    TICKS_PER_SECOND,
    AckFrame,
    BatchFrame,
    DataFrame,
    Flags,
    FragFrame,
    Frame,
    FrameDecodeError,
    HelloFlags,
    HelloFrame,
    Message,
    MessageId,
    RevokeFrame,
    RouteFrame,
    SetupFrame,
    decode_message,
)
from tawan.core.linkauth import LinkGuard, LinkReject
from tawan.core.liveness import RESEND_SILENCE_S, link_timers
from tawan.core.neighbours import Adjacency, NeighbourTable
from tawan.core.numbering import STATE_KEY as SEQ_STATE_KEY
from tawan.core.numbering import Numbering, NumberingExhausted
from tawan.core.precedence import Precedence
from tawan.core.queues import NeighbourQueue, Outgoing
from tawan.core.reassembly import Reassembly
from tawan.core.receipts import (
    DELIVERED,
    EVICTED,
    EXPIRED,
    KINDS,
    ReceiptBody,
    decode_receipt,
    encode_receipt,
)
from tawan.core.routing import PLANNED_REFRESH, Router
from tawan.core.sealing import Opened, OpenError, SealError, open_message, seal_message
from tawan.core.snapshot import NodeSnapshot
from tawan.core.specs import EngineConfig, Keys, LinkSpec, PeerSpec, Submission, SubmitError
from tawan.core.states import Input, Lifecycle
from tawan.core.stats import EngineStats
from tawan.core.store import (
    HELD,
    MessageRef,
    Store,
    StoredMessage,
    StoreError,
    StoreUnwritable,
    SubmissionRef,
    custody_slot,
    wire_id,
)
from tawan.core.transmitter import Transmitter

MINE_REMEMBERED = 4096
STORE_RETRY_FLOOR = 0.5
"""Seconds before the first retry of a store that could not write; doubled per failure."""
STORE_RETRY_CEILING = 10.0
ROOM_PROBE_BYTES = 64 * 1024
"""Room a store that could not write must show before the node takes custody again: more
than one message, so a store on the edge of full does not flap at every message."""
SWEEP_INTERVALS = 60
"""Housekeeping intervals an idle node sleeps at most: partial messages (dropped after
`reassembly_timeout`, 10 minutes) and dedup records (pruned after their message's expiry)
are swept up to that late, which costs memory for a minute and nothing else. At ten, every
node of a 49-node brigade woke every 10 s for nothing else: 96 % of its housekeeping."""
SETTLE_DEAD_INTERVALS = 3
"""A group copy is kept this many dead intervals after it went on (`_settle_from`)."""

_PRECEDENCES = tuple(Precedence)  # by value: cheaper than Precedence(value) per message

__all__ = ["Engine", "EngineConfig", "Keys", "LinkSpec", "PeerSpec", "Submission", "SubmitError"]


class Engine(ControlPlane, CustodyRule):
    def __init__(
        self,
        keyring: Keys,
        store: Store,
        config: EngineConfig,
        links: Sequence[LinkSpec],
        rng: random.Random,
        now: float,
    ) -> None:
        self.keys = keyring
        self.store = store
        self.config = config
        self.rng = rng
        self.me = keyring.address
        self.stats = EngineStats()
        self.neighbours = NeighbourTable()
        for spec in links:
            for peer in spec.peers:
                self.neighbours.add(peer.node, spec.name, spec.profile, peer.endpoint)
        self.router = Router(
            self.me, dict(config.static_routes), config.planned, config.planned_links
        )
        self.guard = LinkGuard(self.me, keyring.link_key)
        self.reassembly = Reassembly(store, config.max_reassembly_bytes)
        self.numbering = Numbering(store, keyring.epoch_seconds)
        # Recent messages for this node alone: a probe for one of them (its acknowledgement
        # was lost) is answered at once, without collecting the message again.
        self._mine: OrderedDict[MessageId, None] = OrderedDict()
        # The state of each (message, next hop) here, moved only through the table of
        # tawan.core.states; the store reports its held rows there too.
        self.lifecycle = Lifecycle(strict=config.strict_states)
        store.attach(self.lifecycle)
        self.tx = Transmitter(
            self.me, links, self.neighbours, self._best_link, self.lifecycle, self.guard,
            self.stats, config, self._epoch_at, source=store,
        )  # fmt: skip
        self.tx.link_suspect = self._link_suspect
        forwarding = Flooding if config.routing == "flood" else Forwarding
        self.forwarding = forwarding(
            self.me, self.router, self.neighbours, self.tx, config.pace, config.contacts
        )
        self.tx.link_for = self.forwarding.link_for
        self.tx.best_link = self.forwarding.best  # no longer through `_best_link`
        self._events: deque[Event] = deque()
        self._init_custody_rule()
        self._init_control(links, now)
        self._next_housekeeping = now + config.housekeeping_interval
        self._dirty_since: float | None = None
        self._now = now  # the latest time given to any entry point
        # Group messages re-routed after losing a branch, held until views have settled.
        self._settling: dict[MessageId, float] = {}
        # Of each group copy settling here, the neighbours known to have it (the one it came
        # from, those that acknowledged it): placing it again skips them, except at the end
        # where members lie beyond one of them (`_has_it`).
        self._served: dict[MessageId, set[int]] = {}
        # And the members it owes a copy to (`_hold_to_settle`).
        self._owed: dict[MessageId, set[int]] = {}
        self._epoch = self._epoch_at(now)
        # A forward clock jump of more than an epoch while running: (epoch, confirmed at).
        # Nothing is erased until the new time has held for an epoch (`_follow_clock`).
        self._jump: tuple[int, float] | None = None
        self._notices: list[bytes] = []  # revocation notices applied, as received
        self._unsaved_notices: set[bytes] = set()  # applied, their commit not yet done
        self._told_restart: dict[int, float] = {}  # neighbour -> last RESTARTED answer
        self._deferred_adverts: dict[int, tuple[RouteFrame, Adjacency]] = {}  # by origin
        self._reached: set[int] = set()  # destinations routes reached at the last reroute
        self._hop_for: dict[int, int] = {}  # destination -> its next hop at the last reroute
        self._init_degraded()
        # Ratchet to the current epoch, erasing roots older than the grace period; the
        # driver saves the key file when the keyring's oldest epoch moves (tawan.node.daemon).
        # A node that ran before starts from the epoch it last ran in: a clock more than an
        # epoch ahead of it at start-up is a jump like any other (`_follow_clock`).
        last = self.store.get_state("epoch")
        failed: StoreUnwritable | None = None
        try:
            self._set_epoch(int.from_bytes(last, "big") if last else self._epoch)
            self._follow_clock(now)
            self._check_roster_version()
        except StoreUnwritable as exc:  # started on a full disk: up, taking no custody
            failed = exc
        self._restore(now)
        if failed is not None:
            self._store_failed(failed, now)

    def _init_control(self, links: Sequence[LinkSpec], now: float) -> None:
        """Hellos per link, and the first advert (due now, sent if the plan wants it)."""
        self._link_timers = {spec.name: link_timers(spec, self.config) for spec in links}
        self._shortest_hello = min(
            (timers.hello_s for timers in self._link_timers.values()),
            default=self.config.hello_interval,
        )
        self._hello_due = dict.fromkeys(self._link_timers, now)
        self._probe_due: dict[str, float] = {}
        self._called_back: dict[tuple[int, str], float] = {}
        self._next_hello = now
        self._next_advert = now
        self._advert_pending = True
        self._advert_forced = False
        self._advert_sent_at = now
        # With a plan, only adverts that differ from it are refreshed, and they cross every
        # link of the network, HF nets too: far less often (receivers keep each for three).
        self._refresh_s = self.config.advert_interval * (
            PLANNED_REFRESH if self.config.planned else 1
        )
        self._ever_up: set[int] = set()
        self._excused_until = self._planned_grace(links, now)

    def _planned_grace(self, links: Sequence[LinkSpec], now: float) -> dict[int, float]:
        """Until when each neighbour, not yet heard, is not missing from the plan: the dead
        interval of its fastest link from start."""
        until: dict[int, float] = {}
        for spec in links:
            dead = now + self._link_timers[spec.name].dead_s
            for peer in spec.peers:
                until[peer.node] = min(until.get(peer.node, dead), dead)
        return until

    # =============================================================== time and identity
    def _mission_seconds(self, now: float) -> int:
        return int(now - self.keys.t0)

    def _mission_ticks(self, now: float) -> int:
        return int((now - self.keys.t0) * TICKS_PER_SECOND)

    def _epoch_at(self, now: float) -> int:
        return self.keys.epoch_of(now - self.keys.t0)

    def _restore(self, now: float) -> None:
        """Carry on after a restart: counters, then every message still in custody."""
        state = self.store.get_state("link-counters")
        if state:
            self.guard.load_reservations(state)
        marks = self.store.get_state("rx-marks")
        if marks:
            self.guard.load_marks(marks, self._epoch)
        self._restore_notices()
        self._requeue_custody()
        self._advert_seq = int.from_bytes(self.store.get_state("advert-seq") or b"", "big")
        self._advert_sent: tuple[tuple[int, int], ...] | None = None
        self._links_sent: dict[int, dict[str, int]] = {}

    def _requeue_custody(self) -> None:
        """Queue what custody waits for, per next hop: each queue reads its first turns
        from the store; the rest stays on disk until their turn comes."""
        for hop in self.store.pending_hops():
            self.tx.restore(hop)

    # =============================================================== a store that cannot write
    def _init_degraded(self) -> None:
        # The store could not write (full, read-only): no new custody until a retry at
        # `_store_retry_at` shows room again (see `_store_failed`).
        self.store_problem: StoreUnwritable | None = None
        self._store_failures = 0  # in a row, for the retry backoff
        self._store_retry_at = float("inf")
        self._degraded_since = 0.0
        self._failure_seen = self.store.last_failure  # handled (`_notice_rollbacks`)
        self._rollbacks_at_commit = self.store.rollbacks  # as of the last commit that worked
        self._rebuild_due = False  # the rebuild after a failure could not read the store
        # While degraded, what forwarding changed that the store could not record: next
        # hops that acknowledged custody, and held messages handed to next hops in memory
        # (new hops, old hop). Written at the first retry that can write (`_write_unsaved`).
        self._unsaved_acks: dict[MessageId, set[int]] = {}
        self._unsaved_places: dict[MessageId, tuple[frozenset[int], int]] = {}

    def _store_failed(self, exc: StoreUnwritable, now: float) -> None:
        """The store could not write and rolled back: nothing since the last commit is on
        disk. What the engine holds in memory about it (queues, acknowledgements due,
        messages delivered) is rebuilt from the store, as after a restart, so nothing that
        failed to commit is ever acknowledged. Then no new custody until a retry succeeds."""
        first = self.store_problem is None
        self._back_off(exc, now)
        self._dirty_since = None
        try:
            self._rebuild()
        except (StoreError, StoreUnwritable, sqlite3.Error):  # a failing device fails reads
            self._rebuild_due = True
            self._failure_seen = self.store.last_failure
        if first:
            self._degraded_since = now
            self._events.append(StoreDegraded(exc.reason, str(exc)))

    def _back_off(self, exc: StoreUnwritable, now: float) -> None:
        self.store_problem = exc
        self.stats.store_failures += 1
        self._store_failures += 1
        backoff = STORE_RETRY_FLOOR * 2 ** min(self._store_failures - 1, 16)
        self._store_retry_at = now + min(STORE_RETRY_CEILING, backoff)
        self._failure_seen = self.store.last_failure

    def _rebuild(self) -> None:
        """Queues and states again from the store, as after a restart; held messages are
        placed again (in memory while degraded), what was acknowledged stays forgotten."""
        self._rebuild_due = True
        self.tx.drop_all()
        self.lifecycle.states.clear()
        self.store.attach(self.lifecycle)
        self._mine.clear()
        self._requeue_custody()
        self._reached = set()
        self._reroute()
        for mid, hops in self._unsaved_acks.items():
            for hop in hops:
                if (queue := self.queues.get(hop)) is not None:
                    queue.remove(mid, Input.ACKNOWLEDGED)
        self._rebuild_due = False

    def _notice_rollbacks(self, now: float) -> None:
        """A write made outside the engine (the API's `ack`) failed and rolled back what
        the engine wrote too: handled as if the engine's own write had failed."""
        problem = self.store.last_failure
        if problem is not None and problem is not self._failure_seen:
            self._store_failed(problem, now)

    def _may_commit(self, now: float) -> bool:
        """Commits wait for the retry time while the store cannot write: a failed commit
        costs a rebuild, which must not happen per frame."""
        return self.store_problem is None

    def _retry_store(self, now: float) -> None:
        """Commit what is pending, write what forwarding could not record, then check for
        room; custody resumes if all of it works. The store is clean before the second
        step, so a failure there or later loses nothing: no rebuild, only a later retry."""
        if self.store.dirty:
            self._commit()
        if self._rebuild_due:
            self._rebuild()
        try:
            self._write_unsaved()
            self._commit()
            self._unsaved_acks.clear()
            self._unsaved_places.clear()
            self.store.check_room(ROOM_PROBE_BYTES)
        except StoreUnwritable as exc:
            self._back_off(exc, now)
            return
        self.store_problem = None
        self._store_failures = 0
        self._store_retry_at = float("inf")
        self._events.append(StoreRecovered(now - self._degraded_since))

    def _write_unsaved(self) -> None:
        """Record what forwarding did while the store could not write: the placements
        first (they add the next hops that the acknowledgements then remove)."""
        for mid, (hops, old_hop) in self._unsaved_places.items():
            if not self.store.next_hops_of(mid):
                continue  # gone meanwhile (expired)
            self.store.add_next_hops(mid, hops)
            if old_hop != HELD:
                self.store.remove_next_hop(mid, old_hop)
        for mid, acked in self._unsaved_acks.items():
            for hop in acked:
                self.store.remove_next_hop(mid, hop)

    def _refuse_unwritable(self, neighbour: int | None = None) -> bool:
        """True (and counted) while the store cannot take new custody; a refused neighbour
        is owed a ROOM hello once the store writes again."""
        if self.store_problem is None:
            return False
        self.stats.refused_unwritable += 1
        if neighbour:
            self.refusals.refused(neighbour, 1)
        return True

    # =============================================================== application side
    def submit(self, submission: Submission, now: float) -> MessageId:
        """Seal a message from the application and take custody of it.

        Refused (SubmitError) while the store cannot write: the application keeps it."""
        self._now = now
        self._notice_rollbacks(now)
        try:
            if (earlier := self._earlier(submission, now)) is not None:
                return earlier  # a retry: answered (a read, so also while degraded)
            if self.store_problem is not None:
                raise SubmitError(_refusal(self.store_problem))
            return self._submit(submission, now)
        except StoreUnwritable as exc:
            self._store_failed(exc, now)
            raise SubmitError(_refusal(exc)) from None

    def _earlier(self, submission: Submission, now: float) -> MessageId | None:
        """The message an earlier submission with this one's ref became, if any."""
        if submission.ref is None:
            return None
        earlier = self.store.ref_of(submission.ref, self._mission_seconds(now))
        if earlier is None:
            return None
        if earlier.digest != _digest(submission):
            raise SubmitError(
                f"ref {submission.ref!r}: already used for message "
                f"{'.'.join(map(str, earlier.mid))}, a different submission "
                "(another destination, payload, precedence, ttl or option)"
            )
        return earlier.mid

    def _submit(self, submission: Submission, now: float) -> MessageId:
        digest = _digest(submission) if submission.ref is not None else b""
        dst, ttl = submission.dst, submission.ttl
        entry = self.keys.roster.by_address(dst)
        if entry is None or dst == self.me:
            raise SubmitError(f"destination {dst} is not another node or group of the roster")
        if self.keys.roster.is_revoked(dst):
            raise SubmitError(f"destination {dst} is revoked")
        # Keys of an epoch are erased grace_epochs later: a message living longer could
        # no longer be opened at its destination.
        longest = self.keys.roster.grace_epochs * self.keys.epoch_seconds
        if not 1 <= ttl <= longest:
            raise SubmitError(
                f"ttl: expected 1..{longest} seconds (the mission's key grace period), found {ttl}"
            )
        msg = self._seal_local(submission, now)
        if not self._take_custody(msg, None, now, local=True):
            raise SubmitError(f"message refused, the store is full: {self.refusal}")
        mid = msg.mid(self.keys.epoch_seconds)
        if submission.ref is not None:  # in the message's own transaction: durable together
            self.store.put_ref(submission.ref, SubmissionRef(mid, digest, msg.expires))
        self.store.mark_seen(mid, msg.expires)  # echoes: dups (and never delivered here)
        if submission.receipt:
            # Remembered as long as a receipt may still come: a receipt lives max(60, ttl)
            # from when it is made, at the latest when the message expires.
            awaited = msg.expires + max(60, ttl) + int(self.config.max_clock_skew)
            self.store.put_sent(mid, dst, awaited)  # a receipt counts only from dst
        self.stats.submitted[submission.precedence.name.lower()] += 1
        return mid

    def _seal_local(self, submission: Submission, now: float, *, control: bool = False) -> Message:
        created, seq = self._allocate_id(now)
        try:
            return seal_message(self.keys, submission, seq=seq, created=created, control=control)
        except SealError as exc:
            raise SubmitError(str(exc)) from None

    def _allocate_id(self, now: float) -> tuple[int, int]:
        try:
            return self.numbering.allocate(self._mission_ticks(now))
        except NumberingExhausted as exc:
            raise SubmitError(str(exc)) from None

    # =============================================================== network side
    def peer_up(self, link: str, peer: str, now: float) -> None:
        """The transport reports a connection: greet whoever is there at once."""
        self._now = now
        for adj in self.neighbours.on_link(link):
            if adj.peer == peer:
                adj.transport_up = True
                self.tx.hello(adj, now, reply=True)

    def silence(self, links: Collection[str], now: float) -> None:
        """Emission control: transmit nothing on `links` (the radios) from now, until called
        again with others (none: speak freely). Frames are still received there; messages
        and acknowledgements for a neighbour reached over another link (wired, SATCOM) go
        that way; the rest wait, and the neighbours keep what is not acknowledged until
        this node speaks again or it expires (their probes find the link silent, and its
        first hello afterwards brings it back)."""
        self._now = now
        quiet = frozenset(links)
        if quiet == self.tx.silent:
            return
        changed = quiet ^ self.tx.silent
        for adj in self.neighbours.adjacencies.values():
            if adj.link in quiet - self.tx.silent and adj.peer is not None:
                self.tx.hello(adj, now, reply=False, silent=True)  # its last words there
        self.tx.silent = quiet
        self.forwarding.silent = quiet
        for neighbour in {
            a.neighbour for a in self.neighbours.adjacencies.values() if a.link in changed
        }:
            self.forwarding.neighbour_changed(neighbour)
        if not quiet & changed:  # radios open again: say so at once
            for adj in self.neighbours.adjacencies.values():
                if adj.link in changed and adj.peer is not None:
                    self.tx.hello(adj, now, reply=True)

    def link_busy(self, link: str, until: float) -> None:
        """The transport reports that the frames it was handed on `link` will have left by
        `until` (a radio's queue behind a shared channel, a modem's flow control). Nothing
        more is handed to it before then, so the next frame is chosen when the channel is
        free, by precedence here, instead of waiting in the modem's queue in arrival order."""
        self.tx.link_busy(link, until)

    def peer_down(self, link: str, peer: str, now: float) -> None:
        """The transport lost a connection: fail over without waiting for hellos to lapse."""
        self._now = now
        try:
            for adj in self.neighbours.on_link(link):
                if adj.peer == peer:
                    adj.transport_up = False
                    self._set_up(adj, False)
        except StoreUnwritable as exc:
            self._store_failed(exc, now)

    def receive(self, link: str, peer: str, data: bytes, now: float) -> None:
        """One frame from the network. Bad input is counted and dropped, never raised."""
        self._now = now
        try:
            self._notice_rollbacks(now)
            self._receive(link, peer, data, now)
        except StoreUnwritable as exc:
            self._store_failed(exc, now)

    def _receive(self, link: str, peer: str, data: bytes, now: float) -> None:
        state = self.tx.links.get(link)
        if state is None:
            return
        link_stats = self.stats.link(link)
        link_stats.frames_received += 1
        link_stats.bytes_received += len(data)
        try:
            frame = self.guard.unprotect(data, self._epoch_at(now))
        except LinkReject as exc:
            self._reject(link, peer, exc.reason, exc.detail)
            if exc.unaware is not None:
                self._tell_restarted(link, peer, exc.unaware, now)
            return
        if self.guard.marks_dirty:
            # The frame lies above the last saved receive mark: the new mark is on disk
            # before the frame has any effect, so no power cut reopens it to a replay.
            # While the store cannot write, acknowledgements, hellos and adverts go through
            # all the same: no custody rests on them, a replayed acknowledgement repeats
            # what is true, and adverts carry their own sequence numbers.
            if self._may_commit(now):
                self._commit(sync=True)
            elif not isinstance(frame, (AckFrame, HelloFrame, RouteFrame)):
                return  # dropped: its sender sends it again
        adj = self.neighbours.get(frame.sender, link)
        if adj is None:
            adj = self.neighbours.add(frame.sender, link, state.spec.profile, peer)
        elif adj.peer != peer:
            self._move_endpoint(adj, peer, now)
        silent_since = adj.last_heard
        adj.heard(now, frame.counter)
        adj.silent = False  # it speaks (a hello announcing silence sets it again)
        if adj.up and now - silent_since >= RESEND_SILENCE_S:
            self.tx.resend_after_silence(adj, silent_since, now)
        if not adj.up:
            adj.count_loss_afresh()
            # What waited here, before coming up moves it (through this neighbour, maybe).
            waiting = self._waiting_for() if self._probe_due else set()
            self._set_up(adj, True)
            if not (isinstance(frame, HelloFrame) and frame.flags & HelloFlags.REPLY_REQUESTED):
                # Heard again (a link back after a jam, a pass that opened): it learns at
                # once that we hear it, not at our next hello. One that asks is answered.
                self.tx.hello(adj, now, reply=False, restarted=self._unaware(adj, now))
            self._call_back(link, waiting, now)
        self._dispatch(frame, adj, now)

    def _dispatch(self, frame: Frame, adj: Adjacency, now: float) -> None:
        if isinstance(frame, DataFrame):
            self._on_message(frame.message, adj, now)
        elif isinstance(frame, BatchFrame):
            for message in frame.messages:  # each as if it came in a DATA frame of its own
                self._on_message(message, adj, now)
        elif isinstance(frame, FragFrame):
            self._on_fragment(frame, adj, now)
        elif isinstance(frame, AckFrame):
            self._on_ack(frame, adj, now)
        elif isinstance(frame, HelloFrame):
            self._on_hello(frame, adj, now)
        elif isinstance(frame, RouteFrame):
            self._on_advert(frame, adj, now)
        elif isinstance(frame, RevokeFrame):
            self._on_revoke(frame, adj)
        elif isinstance(frame, SetupFrame):
            self._reject_from(adj, "unsupported", "on-air pair setup")

    def _reject(self, link: str, peer: str, reason: str, detail: str) -> None:
        self.stats.rejected[reason] += 1
        self._events.append(FrameRejected(link, peer, reason, detail))

    def _reject_from(self, adj: Adjacency, reason: str, detail: str) -> None:
        self._reject(adj.link, adj.peer or "", reason, detail)

    # --------------------------------------------------------------- messages
    def _on_message(self, msg: Message, adj: Adjacency, now: float) -> None:
        mid = msg.mid(self.keys.epoch_seconds)
        local = self._is_for_me(msg.dst)
        # One write marks the message seen and tells whether it was: a new message, the
        # common case, costs no read. One that is not taken after all is unmarked again, so
        # only what this node took (or delivered) stays seen, as if marked at the end. While
        # the store cannot write, it is only read.
        marked = self.store_problem is None and self.store.mark_seen(mid, msg.expires)
        seen = not marked if self.store_problem is None else self.store.seen(mid)
        if seen and (not local or msg.src == self.me or self.delivered_here(mid, msg.dst)):
            # Handled here before: relayed, or delivered here. Seen only as a copy for
            # another destination, a message for this node is still news: it may be the
            # real one behind a forgery.
            self._on_seen_again(msg, mid, adj, now)
            return
        taken = self._on_news(msg, mid, adj, now, seen=seen, local=local, marked=marked)
        if marked and not taken:
            self.store.unmark_seen(mid)

    def _on_news(
        self, msg: Message, mid: MessageId, adj: Adjacency, now: float, *, seen: bool,
        local: bool, marked: bool,
    ) -> bool:  # fmt: skip
        """A message not handled here before (or only as a copy for another destination);
        True when it was taken (or delivered) and stays seen; `marked`: it is marked
        seen already."""
        sender = adj.neighbour
        problem = self._arrival_problem(msg, now)
        if problem is not None:
            reason, detail, final = problem
            self._reject_from(adj, reason, f"message {mid}: {detail}")
            if final:  # never acceptable anywhere: the sender may forget it
                self._ack(sender, mid, now)
            return False
        if msg.expires <= self._mission_seconds(now):
            # Not marked seen: a copy expired on purpose must not shadow the real message.
            self._expired(msg, mid, "arrival", now)
            self._ack(sender, mid, now)
            return False
        if msg.hops + 1 >= self.config.max_hops:
            self._reject_from(adj, "hop-limit", f"message {mid} looped")
            self._ack(sender, mid, now)
            return False
        if self._refuse_unwritable(sender):
            return False  # not acknowledged: the sender keeps it until this store writes again
        msg = msg.with_hops(msg.hops + 1)
        opened = None
        if local:
            # Opened before anything is recorded: a forged copy with a real message's id
            # (anyone can guess ids) is dropped here and never makes the real one a duplicate.
            try:
                opened = open_message(self.keys, msg)
            except OpenError as exc:
                self._reject_from(adj, exc.reason, str(exc))
                self._ack(sender, mid, now)
                return False
        if msg.dst != self.me:
            # Never seen: nothing is held under its id (the common case costs no lookup).
            slot, stored = self._custody_slot(msg, mid) if seen else (mid, None)
            if stored is not None and not _same_message(decode_message(stored.body), msg):
                self._reject_from(adj, "id-clash", f"another message {mid} is in custody here")
                return False
            if stored is None and not self._take_custody(msg, sender, now, local=False, slot=slot):
                return False  # refused: no acknowledgement, the sender keeps custody
        if opened is not None:
            slot = custody_slot(mid, msg.dst)
            self.store.mark_seen_many((slot,) if marked else (mid, slot), msg.expires)
            self._deliver(msg, opened, mid, now, adj)
        elif not marked:
            self.store.mark_seen(mid, msg.expires)
        if msg.dst == self.me or opened is not None:  # delivered here: a group's too
            self._mine[mid] = None
            if len(self._mine) > MINE_REMEMBERED:
                self._mine.popitem(last=False)
        # FLASH and OVERRIDE are acknowledged (and so committed) at once; the rest wait up to
        # `ack_delay` to share one commit and one acknowledgement frame with their neighbours.
        self.tx.ack(sender, mid, now, urgent=msg.precedence >= Precedence.FLASH)
        return True

    def _on_seen_again(self, msg: Message, mid: MessageId, adj: Adjacency, now: float) -> None:
        """A message this node has handled before. Still in custody here, or for this node
        alone: a duplicate. Otherwise it came back after this node handed it on (views of
        the network differed and a neighbour re-routed it): carry it again, so that no
        relay's memory of a message ever stops it, but never deliver it twice. Under
        flooding it is a duplicate all the same: the seen table is what ends a flood.

        A different message under an id held here (a forgery, or the real one behind a
        forgery) is refused without acknowledgement: its sender keeps it and tries again
        once the copy held here has moved on, so a forged copy cannot shadow the real one."""
        sender = adj.neighbour
        if msg.dst == self.me:
            self.stats.duplicates += 1
            self._ack(sender, mid, now)
            return
        slot, stored = self._custody_slot(msg, mid)
        if stored is not None and not _same_message(decode_message(stored.body), msg):
            self._reject_from(adj, "id-clash", f"another message {mid} is in custody here")
            return
        if stored is not None and sender in self.store.next_hops_of(slot):
            if self._crossed(stored, slot, sender):
                self._ack(sender, mid, now)
            return
        if stored is None and msg.hops + 1 < self.config.max_hops and not self.forwarding.floods:
            problem = self._arrival_problem(msg, now)
            expired = msg.expires <= self._mission_seconds(now)
            if problem is not None or expired:
                if expired or (problem is not None and problem[2]):
                    self._ack(sender, mid, now)  # never acceptable: the sender may forget it
                return
            moved = msg.with_hops(msg.hops + 1)
            if not self._take_custody(moved, sender, now, local=False, slot=slot):
                return  # refused: the sender keeps custody
        else:
            self.stats.duplicates += 1
        self._ack(sender, mid, now)

    def delivered_here(self, mid: MessageId, dst: int) -> bool:
        """Delivered to the application here (beside `mid` itself, which marks any copy
        handled here, a delivered one also marks its destination's slot)."""
        return self.store.seen(custody_slot(mid, dst))

    def _crossed(self, stored: StoredMessage, slot: MessageId, sender: int) -> bool:
        """The neighbour we hold a message for hands it back to us: our views of the routes
        differ, and the copies crossed. Were it a plain duplicate, each side's
        acknowledgement would let the other drop its copy, and the message would be gone.
        True: acknowledge the neighbour's copy.

        A group message: the neighbour has it, so its branch needs nothing from us; we
        drop that next hop and acknowledge (it does the same). A unicast message: one copy
        must go on, so the lower address keeps it: it stops sending to the neighbour, holds
        its copy and places it anew, and acknowledges (the neighbour drops its copy); the
        higher address refuses, and keeps its copy until that acknowledgement comes.
        Under flooding every message is treated as a group message is: other copies of the
        flood carry it on."""
        self.stats.duplicates += 1
        branches = self.forwarding.floods or self.keys.roster.is_group(stored.dst)
        if not branches and self.me > sender:
            return False
        queue = self.queues.get(sender)
        if queue is not None:
            queue.remove(slot, Input.MOVED)
        if branches:  # flooding: every copy is a branch, each carried on by the others
            self.store.remove_next_hop(slot, sender)  # its branch has it now
            return True
        # Placed as if that neighbour were out of reach: any other next hop, else held (never
        # back to it at once: its acknowledgement of our earlier copy may still be coming,
        # and would be taken for one of the new copy).
        self._place(stored, sender)
        return True

    def _custody_slot(
        self, msg: Message, mid: MessageId
    ) -> tuple[MessageId, StoredMessage | None]:
        """Where a copy of `mid` is (or would be) kept here, and what is kept there.

        Custody is by id *and destination*: a copy for another destination than the one
        held (a forgery under a guessed or overheard id, or the real message behind one)
        gets a slot of its own, so each goes where its destination leads. A forgery can
        then only wait where the real message would wait too (the same destination), and
        it leaves once that destination opens and drops it: it never pins the real one."""
        stored = self.store.get_message(mid)
        if stored is None or stored.dst == msg.dst:
            return mid, stored
        slot = custody_slot(mid, msg.dst)
        return slot, self.store.get_message(slot)

    def _arrival_problem(self, msg: Message, now: float) -> tuple[str, str, bool] | None:
        """Why a message from the network may not be taken: (reason, detail, final), where
        final means no node will ever take it (the sender may forget it); None: acceptable.

        Bounds what an insider can pin in a store: only roster addresses, a ttl no longer
        than keys live, and no creation time beyond the clock skew allowed."""
        roster = self.keys.roster
        source, dest = roster.node_at(msg.src), roster.by_address(msg.dst)
        if source is None or dest is None:
            which = "source" if source is None else "destination"
            return f"unknown-{which}", f"{which} not in roster version {roster.version}", False
        if source.revoked or roster.is_revoked(msg.dst):
            return "revoked", f"from or to a revoked node ({msg.src}->{msg.dst})", True
        longest = roster.grace_epochs * roster.epoch_seconds
        if msg.ttl > longest:
            return "ttl-too-long", f"ttl {msg.ttl} s, at most {longest} s (grace period)", True
        ahead = msg.created_seconds - (now - self.keys.t0)
        if ahead > self.config.max_clock_skew:
            return "from-the-future", f"created {ahead:.0f} s ahead of this clock", True
        return None

    def _is_for_me(self, dst: int) -> bool:
        if dst == self.me:
            return True
        roster = self.keys.roster
        return roster.is_group(dst) and self.me in roster.members(dst)

    def _next_hops(
        self, msg: Message, came_from: int | None, mid: MessageId, size: int
    ) -> set[int]:
        # The parcel matters only to a contact plan and to routes per class: with neither,
        # none is built per message.
        parcel = Parcel(mid, size, msg.precedence) if self.forwarding.wants_parcel() else None
        return self.forwarding.next_hops(
            self.keys.roster, msg.src, msg.dst, came_from, parcel, self._now
        )

    def _parcel(self, stored: StoredMessage | MessageRef) -> Parcel:
        return Parcel(stored.mid, stored.size, _PRECEDENCES[stored.precedence])

    def _group_covered(self, dst: int) -> bool:
        """True for a group whose other members are all reachable (through other nodes);
        under flooding, for any destination (`Forwarding.covered`)."""
        return self.forwarding.covered(self.keys.roster, dst)

    def _enqueue(self, hop: int, stored: StoredMessage | MessageRef) -> None:
        """Queue a reference, with the body when at hand: the queue keeps it only for the
        first few short messages waiting (`queues.BODIES_KEPT`), and reads the others'
        from the store (its source) when their turn comes, so a backlog costs no bodies in
        memory. Never the body of a message sealed here: it goes on air only once read
        back from the store, so a commit that failed and rolled it back (with the sequence
        numbers its nonce came from) can never send it (tests/test_nonce.py)."""
        if hop == HELD:
            return
        body = None
        if isinstance(stored, StoredMessage) and not stored.local_origin:
            body = stored.body
        item = Outgoing(
            stored.mid, _PRECEDENCES[stored.precedence], stored.created, body,
            wire=wire_id(stored.mid), size=stored.size,
        )  # fmt: skip
        self.forwarding.hand(hop, item)

    def _best_link(self, neighbour: int) -> Adjacency | None:
        # Late bound: forwarding is built after tx, which then asks it directly.
        return self.forwarding.best(neighbour)

    @property
    def queues(self) -> dict[int, NeighbourQueue]:
        return self.tx.queues

    def _forget_queued(self, mid: MessageId, why: Input) -> None:
        self.tx.forget(mid, why)
        self.forwarding.unpin(mid)
        self._served.pop(mid, None)
        self._owed.pop(mid, None)

    def _deliver(
        self, msg: Message, opened: Opened, mid: MessageId, now: float, adj: Adjacency
    ) -> None:
        if opened.control:
            self._on_receipt(msg, opened.payload, adj)
            return
        latency = max(0.0, now - self.keys.t0 - msg.created_seconds)
        inbox_id = self.store.put_inbox(
            mid=mid, src=msg.src, dst=msg.dst, precedence=int(msg.precedence),
            created=msg.created, received_at=now, payload=opened.payload, signed=opened.signed,
        )  # fmt: skip
        self.stats.delivered[msg.precedence.name.lower()] += 1
        self._events.append(
            Delivered(mid, msg.src, msg.dst, msg.precedence, msg.created_seconds, latency,
                      opened.payload, opened.signed, inbox_id)
        )  # fmt: skip
        if msg.flags & Flags.RECEIPT_REQUESTED and (
            msg.dst == self.me or self.keys.roster.is_group(msg.dst)
        ):  # a group's members each report their own delivery
            self._send_receipt(msg, mid, DELIVERED, now)

    def _send_receipt(self, msg: Message, mid: MessageId, kind: int, now: float) -> None:
        body = encode_receipt(ReceiptBody(kind, mid, self._mission_seconds(now)))
        ttl = max(60, msg.ttl)
        try:
            receipt = self._seal_local(
                Submission(msg.src, body, msg.precedence, ttl), now, control=True
            )
        except SubmitError:
            return  # no key for the origin any more (revoked): nobody to tell
        if self._take_custody(receipt, None, now, local=True):
            self.store.mark_seen(receipt.mid(self.keys.epoch_seconds), receipt.expires)

    def _on_receipt(self, msg: Message, payload: bytes, adj: Adjacency) -> None:
        """An end-to-end receipt, sealed by its reporter (`msg.src`, authenticated by the
        pairwise key). "delivered" counts only from the destination or a member of the
        destination group; "expired" may come from any node that held the message."""
        try:
            body = decode_receipt(payload)
        except FrameDecodeError as exc:
            self._reject_from(adj, "bad-receipt", str(exc))
            return
        if body.kind == EVICTED:
            self._on_eviction_notice(msg.src, body, adj)
            return
        dst = self.store.sent_to(body.mid) if body.mid[0] == self.me else None
        if dst is None:
            self._reject_from(
                adj, "bad-receipt", f"receipt from {msg.src} for {body.mid}, not awaited here"
            )
            return
        reporter = msg.src
        if body.kind == DELIVERED and reporter not in (dst, *self.keys.roster.members(dst)):
            self._reject_from(
                adj, "forged-receipt", f"{reporter} reports {body.mid} delivered, sent to {dst}"
            )
            return
        self.stats.receipts_received += 1
        self.store.put_receipt(body.mid, body.kind, body.at, reporter=reporter)
        self._events.append(ReceiptReceived(body.mid, reporter, KINDS[body.kind], body.at))

    def _on_eviction_notice(self, reporter: int, body: ReceiptBody, adj: Adjacency) -> None:
        """A node that held messages of ours evicted them: kept with the receipts, whether
        or not one was asked for (an eviction is a loss the application must hear of)."""
        if body.mid[0] != self.me:
            self._reject_from(
                adj, "bad-receipt", f"notice from {reporter} about {body.mid}, not sent here"
            )
            return
        for mid in body.mids:
            self.stats.receipts_received += 1
            self.store.put_receipt(mid, EVICTED, body.at, reporter=reporter)
            self._events.append(ReceiptReceived(mid, reporter, KINDS[EVICTED], body.at))

    def _expired(self, msg: Message, mid: MessageId, where: str, now: float) -> None:
        self.stats.expired[msg.precedence.name.lower()] += 1
        self._events.append(MessageExpired(mid, msg.precedence, where))
        wanted = msg.flags & Flags.RECEIPT_REQUESTED and not msg.flags & Flags.CONTROL
        if wanted and msg.src != self.me:
            self._send_receipt(msg, mid, EXPIRED, now)

    # --------------------------------------------------------------- fragments
    def _on_fragment(self, frame: FragFrame, adj: Adjacency, now: float) -> None:
        mid, sender = frame.mid, adj.neighbour
        if self.store.seen(mid) and self._probe_answered(mid, sender):
            if frame.index == frame.count - 1:  # answer the probe: we have it from them
                self._ack(sender, mid, now)
            return
        if self._refuse_unwritable(sender):
            return  # nothing stored, nothing reported: the sender probes again later
        result = self.reassembly.add(frame, neighbour=sender, now=now)
        self._housekeeping_soon(now)  # a partial message to age out
        if result.refused is not None:
            self._reject_from(adj, result.refused, f"message {mid}")
        if result.report is not None:
            self.tx.report_fragments(sender, result.report, now)
        if result.message is None:
            return
        try:
            msg = decode_message(result.message)
        except FrameDecodeError as exc:
            self._reject_from(adj, "malformed", f"reassembled {mid}: {exc}")
            return
        if msg.mid(self.keys.epoch_seconds) != mid:
            self._reject_from(adj, "malformed", f"fragments of {mid} disagree")
            return
        self._on_message(msg, adj, now)

    def _probe_answered(self, mid: MessageId, sender: int) -> bool:
        """A fragment of a message already taken: delivered here, or in custody here from
        this same neighbour (its acknowledgement was lost). A copy from elsewhere does not
        count: the fragments could be of a different message under that id."""
        if mid in self._mine:
            return True
        stored = self.store.get_message(mid)
        return stored is not None and stored.prev_hop == sender

    # --------------------------------------------------------------- acknowledgements
    def _ack(self, neighbour: int, mid: MessageId, now: float) -> None:
        self.tx.ack(neighbour, mid, now)

    def _on_ack(self, frame: AckFrame, adj: Adjacency, now: float) -> None:
        queue = self.queues.get(adj.neighbour)
        if queue is None:
            return
        acks = frame.acks
        released: set[MessageId] = set()
        if self.store_problem is None and len(set(acks)) == len(acks):
            # Distinct ids name distinct copies: the store releases them in one write,
            # before the queue lets them go (so a refill of the queue, which reads the
            # store, never reads an acknowledged one back).
            found = [m for w in acks if queue.get(m := queue.flying.get(w, w)) is not None]
            self.store.remove_next_hops(found, adj.neighbour)
            released.update(found)
        for wire in acks:
            mid = queue.flying.get(wire, wire)  # the copy of that id sent to this neighbour
            item = queue.remove(mid)
            if item is None:
                continue
            self.forwarding.unpin(mid)
            if mid in released:
                pass
            elif self.store_problem is None:
                self.store.remove_next_hop(mid, adj.neighbour)
            else:  # recorded once the store writes again (`_write_unsaved`)
                self._unsaved_acks.setdefault(mid, set()).add(adj.neighbour)
            if (served := self._served.get(mid)) is not None:
                served.add(adj.neighbour)
            if item.attempts == 1 and item.link == adj.link:  # Karn: never a resent one
                adj.add_rtt_sample(now - item.sent_at)
        for state in frame.partial:
            item = queue.in_flight.get(queue.flying.get(state.mid, state.mid))
            if item is None or not item.chunk_size:
                continue
            missing = [i for i in range(item.fragment_count) if not state.has(i)]
            if missing:
                item.to_send = missing
                self.forwarding.hand(adj.neighbour, item)

    # --------------------------------------------------------------- neighbours

    def _reroute(self) -> None:
        """Routes changed: move messages off unreachable neighbours, place held ones."""
        for hop, queue in list(self.queues.items()):
            if self.forwarding.best(hop) is not None or self.store_problem is not None:
                continue  # degraded: they stay pending for it, to go when it is back
            # Everything pending for it, in memory or on disk only, is read from the store.
            queue.forget_disk()
            for stored in self.store.pending_rows_for(hop):
                queue.remove(stored.mid, Input.MOVED)
                self._place(stored, hop)
            for item in queue.all_items():  # none is left unless the store lost its row
                queue.remove(item.mid, Input.MOVED)
        self._redirect()
        for ref in self.store.held_for(self._released_destinations()):
            self._place(ref, HELD)
        for mid in list(self._settling):
            copy = self.store.get_message(mid)  # placed again at every change of routes
            if copy is not None and HELD in self.store.next_hops_of(mid):
                self._place(copy, HELD)

    def _redirect(self) -> None:
        """Unicast messages waiting for a neighbour that is up but no longer their next hop
        go to the one that is (what is in flight stays). After a jam, the first member of a
        net heard again is every other's way to the rest until they are heard too: what
        waited for it would cross the net twice, and it would carry the whole backlog in
        its own share of the channel, while the destination is heard directly seconds
        later. Only destinations whose next hop changed since the last change of routes
        are looked at, so a change costs nothing per message elsewhere."""
        router = self.router
        hops = {dst: hop for dst in router.reached() if (hop := router.next_hop(dst)) is not None}
        before, self._hop_for = self._hop_for, hops
        changes = [(before, hops)]
        if self.store.message_count():  # and each class's (core/routing.py)
            changes += router.class_route_changes()
        else:
            router.forget_class_routes_seen()  # nothing waits: nothing for them to move
        if self.forwarding.floods or self.store_problem is not None:
            return
        left: dict[int, set[int]] = {}  # old hop, still up -> destinations it lost
        for was, now in changes:
            for dst, old in was.items():
                new = now.get(dst)
                moved = new is not None and new != old and old in self.queues
                if moved and self.forwarding.best(old) is not None:
                    left.setdefault(old, set()).add(dst)
        for old, dsts in left.items():
            queue = self.queues[old]
            for stored in self.store.pending_rows_for(old):
                if stored.dst not in dsts or stored.mid in queue.in_flight:
                    continue
                found = self.forwarding.next_hops(
                    self.keys.roster, stored.mid[0], stored.dst, None, self._parcel(stored),
                    self._now,
                )  # fmt: skip
                if old not in found:
                    queue.remove(stored.mid, Input.MOVED)
                    self._place(stored, old)

    def _released_destinations(self) -> set[int]:
        """Destinations of held messages that the routes of now may let go: a node a next
        hop reaches now (a held unicast message had none when it was held), a group with a
        member reached now that was not at the previous change. The rest stay untouched,
        so a change of routes costs nothing per message still held."""
        reached = self.router.reached()
        new, self._reached = reached - self._reached, reached
        roster = self.keys.roster
        released = set()
        for dst in self.store.held_destinations():
            if roster.is_group(dst):
                if any(m in new for m in roster.members(dst)):
                    released.add(dst)
            elif self.router.next_hop(dst) is not None:
                released.add(dst)
        return released

    def _place(
        self, stored: StoredMessage | MessageRef, old_hop: int, *, settle: bool = True
    ) -> None:
        """Hand a message that was waiting for `old_hop` (unreachable, or HELD) to the next
        hops the routes give now; other pending next hops of a group message stay as they
        are. What cannot go on yet is held, never dropped.

        A group message that lost a branch, or was held for members out of reach and is
        let go now, is also held for `3 * dead_interval`, and placed again at every change
        of routes meanwhile and once at the end (`settle` False): while the nodes' views
        differ, each may believe another covers a member, and a copy must outlast that
        disagreement. A group copy that then has no branch of ours to serve is done."""
        src, dst = stored.mid[0], stored.dst
        if self.store_problem is not None:
            self._place_in_memory(stored, src, dst, old_hop)
            return
        pending = self.store.next_hops_of(stored.mid)
        others = pending - {old_hop, HELD}
        found = self.forwarding.next_hops(
            self.keys.roster, src, dst, None, self._parcel(stored), self._now
        )
        is_group = self.keys.roster.is_group(dst)
        hops = found - others - {old_hop}
        # The end of settling (`settle` False, or a settling that ran out before housekeeping
        # saw it): what is still owed goes now, and a branch that has the copy is given it
        # again if members lie beyond it now. Before that, a branch that has it is skipped:
        # copies again at every change of routes would crowd a jammed net.
        until = self._settling.get(stored.mid)
        final = not settle or (until is not None and until <= self._now)
        if is_group:
            served = self._served.get(stored.mid, set())
            hops -= self._has_it(stored.mid, src, dst, hops) if final else served
        owed_unreached = False
        if is_group and final:
            owed, owed_unreached = self._owed_hops(stored.mid, src, dst)
            hops |= owed - others - {old_hop}
            if owed & others:
                # A branch towards members still owed has not acknowledged yet: it may take
                # the copy as a leaf, and a member beyond it would be served by nobody. Held
                # and settled again, the members it does not serve get a copy next time.
                self._settle_from(stored.mid, self._now)
        if is_group and settle and (old_hop != HELD or until is None):
            self._settle_from(stored.mid, self._now)
            self._served.setdefault(stored.mid, set())
        settling = self._settling.get(stored.mid, float("-inf")) > self._now
        # A group copy with every member reached and no branch of ours left to serve is
        # done here: we are a leaf of its tree (as in `_take_custody`).
        hold = (
            settling or owed_unreached or self._still_unreached(dst)
            or not (hops or others or is_group)
        )  # fmt: skip
        if hops:
            self.store.add_next_hops(stored.mid, hops)  # clears HELD
            for hop in hops:
                self._enqueue(hop, stored)
        if hold:
            self.store.also_hold(stored.mid)  # before the last hop goes: never vanish
        if old_hop != HELD:
            self.store.remove_next_hop(stored.mid, old_hop)
        elif not hold and not hops and HELD in pending:
            self.store.remove_next_hop(stored.mid, HELD)  # others remain: it stays

    def _place_in_memory(
        self, stored: StoredMessage | MessageRef, src: int, dst: int, old_hop: int
    ) -> None:
        """`_place` while the store cannot write: a unicast message goes to its next hop
        in memory, the store unchanged until a retry writes it; a group message waits."""
        if self.keys.roster.is_group(dst):
            return
        parcel = self._parcel(stored)
        hops = self.forwarding.next_hops(self.keys.roster, src, dst, None, parcel, self._now)
        hops -= {old_hop}
        if hops:
            for hop in hops:
                self._enqueue(hop, stored)
            self._unsaved_places[stored.mid] = (frozenset(hops), old_hop)

    def _settle(self) -> None:
        """Place once more the group messages whose settling time is over."""
        for mid, until in list(self._settling.items()):
            if until > self._now:
                continue
            del self._settling[mid]
            stored = self.store.get_message(mid)
            if stored is not None and HELD in self.store.next_hops_of(mid):
                self._place(stored, HELD, settle=False)
            if stored is None or HELD not in self.store.next_hops_of(mid):
                self._served.pop(mid, None)  # kept while held: a later settling needs it
                self._owed.pop(mid, None)
        for mid in [m for m in self._owed if m not in self._settling]:
            if self.store.get_message(mid) is None:  # expired or evicted while held
                self._served.pop(mid, None)
                self._owed.pop(mid, None)

    def _hold_to_settle(
        self, mid: MessageId, dst: int, hops: set[int], came_from: int | None, now: float
    ) -> None:
        """A group copy taken here stays, held, until the views have had time to agree
        (`_place`): a neighbour's stale view of the network (an advert lost on the way)
        can make it leave a member to us that we leave to it, and nobody would carry it.
        The members it was handed on towards (our branches to them in the tree are in
        `hops`), and those no route reaches yet (we hold it for them), are ours to see
        served: one the trees later give to another branch still gets a copy from us at
        the end, unless it acknowledged the copy itself (`_owed_hops`)."""
        self._settle_from(mid, now)
        self._served[mid] = set() if came_from is None else {came_from}
        router, src = self.router, mid[0]
        self._owed[mid] = {
            m for m in self.keys.roster.members(dst)
            if m not in (self.me, src)
            and (router.next_hop(m) is None or router.branch(src, m) in hops)
        }  # fmt: skip

    def _settle_from(self, mid: MessageId, now: float) -> None:
        """`mid` is held until views have had time to agree: `SETTLE_DEAD_INTERVALS`."""
        self._settling[mid] = now + SETTLE_DEAD_INTERVALS * self.config.dead_interval
        self._housekeeping_soon(now)

    def _has_it(self, mid: MessageId, src: int, dst: int, hops: set[int]) -> set[int]:
        """Of `hops` (our branches of the group's tree), those known to have the copy and
        with nothing more to do with it: they acknowledged it (or gave it to us) and are
        all their branch holds. One that has members beyond it now may have kept no copy
        (a leaf when it took it): it is given the copy again, and carries it on."""
        served = self._served.get(mid)
        if not served:
            return set()
        done = hops & served
        if done:
            router = self.router
            beyond = {
                router.branch(src, m) for m in self.keys.roster.members(dst)
                if m not in done and m not in (self.me, src)
            }  # fmt: skip
            done -= beyond
        return done

    def _owed_hops(self, mid: MessageId, src: int, dst: int) -> tuple[set[int], bool]:
        """Next hops towards the members this node owes a copy of `mid` and has not seen
        served, and whether some such member has no route now. A member served is one that
        acknowledged the copy itself; one beyond a neighbour that acknowledged it may not
        have it (that neighbour may have been a leaf): it gets a copy, at worst a duplicate.
        A copy owed nothing on record (held here before a restart) owes every member."""
        served = self._served.get(mid, set())
        owed = self._owed.get(mid)
        if owed is None:
            owed = {m for m in self.keys.roster.members(dst) if m not in (self.me, src)}
        hops, unreached = set(), False
        for member in owed:
            hop = self.router.next_hop(member)
            if hop is None:
                unreached = True
            elif not (hop == member and hop in served):
                hops.add(hop)
        return hops, unreached

    def _copies_owed_lost(self) -> bool:
        """Some group copy kept while views settle owes a member that has not acknowledged it
        and is a neighbour lost now, or out of reach: the copy waits for that member, as a
        held message waits for its destination, and lost neighbours are called for it
        (`_call_lost`). After a jam, the platoons of a company that had nothing to send were
        heard again only at their next hello, and the headquarters' FLASH for them with it:
        94 to 122 s after the jam in four of 30 seeds of a five-platoon company, up to 469 s
        in one of eight platoons."""
        waiting = self._owed_members()
        if not waiting:
            return False
        lost = {a.neighbour for a in self.neighbours.adjacencies.values() if not a.up}
        reached = self.router.reachable()
        return any(m in lost or m not in reached for m in waiting)

    def _owed_members(self) -> set[int]:
        """Members that some group copy kept while views settle owes, not acknowledged yet."""
        owed: set[int] = set()
        if self._owed:
            for mid in self._settling:
                owed |= self._owed.get(mid, set()) - self._served.get(mid, set())
        return owed

    def _still_unreached(self, dst: int) -> bool:
        """A group with members no route reaches now: some copy must wait for them."""
        return self.forwarding.unreached(self.keys.roster, dst)

    # =============================================================== output
    def transmit(self, now: float) -> list[Transmit]:
        """Frames to put on links now.

        The store is committed first when anything about to leave depends on it: custody
        acknowledgements (the message must be on disk before the sender may forget it), and
        new blocks of sequence numbers or link counters. Other writes wait at most
        `commit_interval`, so one commit covers many messages (group commit).

        A commit that fails acknowledges nothing it carried (`_store_failed`). While the
        store cannot write, commits wait for the retry time; acknowledgements still go (no
        custody is taken meanwhile, so each is for a message on disk before), and frames
        that would need a new block of link counters wait too (sent again on their timers).
        """
        try:
            self._notice_rollbacks(now)
            return self._transmit(now)
        except StoreUnwritable as exc:
            self._store_failed(exc, now)
            return []

    def _transmit(self, now: float) -> list[Transmit]:
        if self._dirty_since is None and (self.store.dirty or self.guard.marks_dirty):
            self._dirty_since = now
        pending = self.numbering.reservation_pending
        due = pending or self.tx.acks_due(now) or self._commit_overdue(now)
        if due and self._may_commit(now):
            self._commit()
        if self.refusals and self.store_problem is None:
            self._signal_room(now)
        frames = self.tx.transmit(now)
        if self.guard.reservation_dirty:
            if not self._may_commit(now):
                return []  # no frame leaves numbered from a block not on disk
            self._commit()  # a new block of link counters: on disk before any frame leaves
        return frames

    def _commit_overdue(self, now: float) -> bool:
        since = self._dirty_since
        return since is not None and now >= since + self.config.commit_interval

    def commit(self, *, sync: bool = False, since: int | None = None) -> bool:
        """Make everything accepted so far durable (the API calls it before answering);
        False when it is not: the store could not write (everything since the last commit
        is gone, see `_store_failed`), or cannot and its retry is not due yet. `since`:
        the store's `rollbacks` when the caller's writes began (a batch of the API); any
        rollback since took them with it, whatever the store says now."""
        try:
            self._notice_rollbacks(self._now)
            if self._may_commit(self._now):
                self._commit(sync=sync)
        except StoreUnwritable as exc:
            self._store_failed(exc, self._now)
            return False
        clean = not (self.store.dirty or self.guard.marks_dirty)
        lost = self.store.rollbacks != (self._rollbacks_at_commit if since is None else since)
        return clean and not lost

    def _commit(self, *, sync: bool = False) -> None:
        """Commit, raising StoreUnwritable when the store could not write.

        Reservations of sequence numbers and link counters are written here, at the commit
        itself, and forced to disk (`sync`) whatever the store's durability: a power cut
        must not roll back a block that frames already carry. Each is marked done only
        once its commit succeeded; a commit that failed (and rolled back) leaves it pending,
        so nothing numbered from it leaves before it is on disk."""
        seq_state = links = marks = None
        if self.numbering.reservation_pending:
            seq_state = self.numbering.state()
            self.store.set_state(SEQ_STATE_KEY, seq_state)
        if self.guard.reservation_dirty:
            links = self.guard.reservation_state()
            self.store.set_state("link-counters", links)
        if self.guard.marks_dirty:
            marks = self.guard.mark_state()
            self.store.set_state("rx-marks", marks)
        if self.store.dirty:
            forced = seq_state is not None or links is not None or marks is not None
            self.store.commit(sync=sync or forced)
        if seq_state is not None:
            self.numbering.committed(seq_state)
        self.guard.committed(links, marks)
        self._dirty_since = None
        self._rollbacks_at_commit = self.store.rollbacks

    # =============================================================== timers
    def get_timer(self) -> float | None:
        deadlines = [self._next_hello, self._next_housekeeping, *self.tx.deadlines()]
        if self.store_problem is not None:
            deadlines.append(self._store_retry_at)  # commits wait for it (`_may_commit`)
        elif self._dirty_since is not None:
            deadlines.append(self._dirty_since + self.config.commit_interval)
        if self._advert_pending:
            deadlines.append(self._next_advert)
        if (notices_due := self._notices_deadline()) is not None:
            deadlines.append(notices_due)
        if (contact_due := self.forwarding.deadline()) is not None:
            deadlines.append(contact_due)  # a contact opens for a held message, or ends
        return min(deadlines)

    def handle_timer(self, now: float) -> None:
        self._now = now
        try:
            self._notice_rollbacks(now)
            self._handle_timer(now)
        except StoreUnwritable as exc:
            self._store_failed(exc, now)

    def _handle_timer(self, now: float) -> None:
        if self.store_problem is not None and now >= self._store_retry_at:
            self._retry_store(now)
        self.tx.retransmit_due(now)
        if now >= self._next_hello:
            self._send_hellos(now)
        if now >= self._next_housekeeping:
            self._housekeeping(now)
        if self._advert_pending and now >= self._next_advert:
            self._send_advert(now)
        due = self._notices_deadline()
        if due is not None and now >= due:
            self._send_notices(now)
        contact_due = self.forwarding.deadline()
        if contact_due is not None and now >= contact_due:
            self._contacts_due(now)

    def _contacts_due(self, now: float) -> None:
        """A contact a held message waits for opens: place it again (the plan's route from
        now sends it, or holds it for a later one). A contact ended: what waited on it for
        a link that never came goes by link-state, or is held (`_reroute`)."""
        released, ended = self.forwarding.due(now)
        if ended:
            self._reroute()
        if released:
            for ref in self.store.held_for(released):
                self._place(ref, HELD)
            self._call_contacts(now)

    def _call_contacts(self, now: float) -> None:
        """A contact opened for held messages: its neighbour, not heard there yet, is called
        at once (a hello that asks for an answer), not at the link's next hello, which on a
        pass may come seconds into it."""
        for neighbour, link in self.forwarding.pinned():
            adj = self.neighbours.get(neighbour, link)
            if adj is None or adj.up or adj.peer is None or link in self.tx.silent:
                continue
            self._call(adj, now)

    def _housekeeping(self, now: float) -> None:
        self._next_housekeeping = now + self.config.housekeeping_interval
        deferred, self._deferred_adverts = self._deferred_adverts, {}
        for frame, adj in deferred.values():
            self._on_advert(frame, adj, now, deferred=True)
        self._settle()
        for adj in list(self.neighbours.adjacencies.values()):
            if adj.up and not adj.silent and now - adj.last_heard > self._dead_after(adj):
                self._set_up(adj, False)
            elif adj.probed_at is not None:
                self._probe_settled(adj, now)
        mission_now = self._mission_seconds(now)
        if self.store_problem is None:  # deletes wait for a store that writes again
            for stored in self.store.expire(mission_now):
                self._forget_queued(stored.mid, Input.EXPIRED)
                self._expired(decode_message(stored.body), wire_id(stored.mid), "store", now)
            self.store.forget_seen_before(mission_now)
            self.store.forget_refs_before(mission_now)
        self.reassembly.expire(now - self.config.reassembly_timeout)
        self._follow_clock(now)
        if now >= self._next_advert + self._refresh_s:
            self._advert_pending = True  # refresh, so the adverts of the living never age out
        too_old = now - 3 * self._refresh_s
        if self.router.expire_adverts(too_old):
            self._reroute()
        self._next_housekeeping = self._housekeeping_due(now)

    def _housekeeping_due(self, now: float) -> float:
        """When housekeeping must run next. Every `housekeeping_interval` while anything is
        settling or deferred here; otherwise when the first thing it looks after is due:
        a held message's expiry, a neighbour that may be declared dead or a probe's end,
        the next epoch, an advert refresh or expiry, and at most `SWEEP_INTERVALS` from
        now (partial messages and dedup records wait that long at most to be swept)."""
        interval = self.config.housekeeping_interval
        if self._deferred_adverts or self._jump is not None:
            return now + interval
        due = [now + SWEEP_INTERVALS * interval, self._next_advert + self._refresh_s]
        if self._settling:
            due.append(min(self._settling.values()))
        if self.store.message_count():
            expiry = self.store.next_expiry()
            if expiry is not None:  # `store.expire` takes it once the clock reaches it
                due.append(self.keys.t0 + expiry)
        adjacencies = self.neighbours.adjacencies.values()
        due += (a.last_heard + self._dead_after(a) for a in adjacencies if a.up and not a.silent)
        due += (a.probe_until for a in adjacencies if a.probed_at is not None)
        due += (a.received_at + 3 * self._refresh_s for a in self.router.adverts.values())
        next_epoch = (self._epoch + 1) * self.keys.epoch_seconds + self.keys.t0
        due.append(next_epoch)
        return max(now + interval, min(due) + 1e-6)

    def _housekeeping_soon(self, now: float) -> None:
        """Something to look after arrived: housekeeping within an interval again."""
        self._next_housekeeping = min(
            self._next_housekeeping, now + self.config.housekeeping_interval
        )

    # =============================================================== reading
    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def last_time(self) -> float:
        """The latest time given to any entry point."""
        return self._now

    def snapshot(self, now: float) -> NodeSnapshot:
        """The node's state now, frozen: what status, metrics and results read."""
        return snapshot.take(
            self.me, self.keys.roster, self.tx.specs(), self.neighbours.adjacencies.values(),
            self.queues.values(), self.store, self.stats, self.router_table(), now,
            None if self.store_problem is None else str(self.store_problem),
        )  # fmt: skip

    def status(self, now: float) -> dict[str, object]:
        return self.snapshot(now).status()

    def router_table(self) -> dict[int, int]:
        """Destination -> next hop, for every destination reachable now."""
        return {dst: hop for dst in self.router.reachable() if (hop := self.router.next_hop(dst))}

    def update_roster(self, roster: Roster) -> None:
        try:
            super().update_roster(roster)
        except StoreUnwritable as exc:
            self._store_failed(exc, self._now)

    def apply_revocation(self, notice: Revocation, *, came_from: int | None = None) -> bool:
        try:
            return super().apply_revocation(notice, came_from=came_from)
        except StoreUnwritable as exc:
            self._store_failed(exc, self._now)
            return False

    def close(self) -> None:
        with contextlib.suppress(StoreUnwritable):  # rolled back, as a crash would leave it
            self._commit()


def _digest(submission: Submission) -> bytes:
    """What makes two submissions the same one, hashed: everything but the ref."""
    fields = (
        submission.dst, int(submission.precedence), submission.ttl, submission.receipt,
        submission.sign,
    )  # fmt: skip
    digest = hashlib.sha256(repr(fields).encode())
    digest.update(submission.payload)
    return digest.digest()[:16]


def _refusal(problem: StoreUnwritable) -> str:
    """What the application is told while the store cannot write, in one line."""
    why = {"full": "the disk or the store's file cap is full", "read-only": "it is read-only"}
    reason = why.get(problem.reason, problem.reason)
    return (
        f"not accepted: the node's store cannot write ({reason}); "
        "it takes new messages again once there is room"
    )


def _same_message(a: Message, b: Message) -> bool:
    """The same message end to end (the hop count aside): header and ciphertext."""
    return a.ciphertext == b.ciphertext and a.header_fields() == b.header_fields()
