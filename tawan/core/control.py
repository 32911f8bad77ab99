"""The control plane of a node: neighbours' liveness (hellos), link-state adverts, the
roster and revocations, and the clock's epochs (key ratchet). A part of `Engine`
(tawan.core.engine), kept apart so each module holds one concept; it shares the engine's
state, declared below for the type checker.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

import msgpack

from crypto.errors import RevocationError, RosterError
from crypto.revocation import Revocation, decode_revocation
from crypto.roster import Roster
from crypto.schedule import LINK_TAG_BYTES
from tawan.core.events import (
    AdvertTooLarge,
    ClockJumped,
    Event,
    NeighbourChanged,
    RevocationApplied,
)
from tawan.core.forwarding import Forwarding
from tawan.core.frames import (
    U32,
    HelloFlags,
    HelloFrame,
    MessageId,
    RevokeFrame,
    RouteFrame,
    advert_signed_bytes,
    encode_frame,
)
from tawan.core.linkauth import RECEIVE_MARK_BLOCK, LinkGuard
from tawan.core.liveness import HELLO_WIRE_BYTES, PROBE_WAITS, LinkTimers
from tawan.core.neighbours import LOSS_TELL_GAP_S, LOSS_TELL_STEP, Adjacency, NeighbourTable
from tawan.core.queues import NeighbourQueue
from tawan.core.routing import Router, differs, links_differ, restricted_links, seq_newer
from tawan.core.specs import EngineConfig, Keys
from tawan.core.states import Input
from tawan.core.stats import EngineStats
from tawan.core.store import Store, StoredMessage
from tawan.core.transmitter import Transmitter

ENDPOINT_MOVE_INTERVAL = 2.0  # seconds: an adjacency's reply endpoint moves at most this often
RECALL_S = 30.0  # the longest between calls to a lost neighbour while messages wait here
_RESTARTED, _SILENT, _ROOM, _REPLY_REQUESTED = (
    int(HelloFlags.RESTARTED), int(HelloFlags.SILENT), int(HelloFlags.ROOM),
    int(HelloFlags.REPLY_REQUESTED),
)  # fmt: skip


class ControlPlane:
    """Hellos, adverts, roster and revocations, epochs: mixed into `Engine`."""

    keys: Keys
    store: Store
    config: EngineConfig
    rng: random.Random
    me: int
    stats: EngineStats
    neighbours: NeighbourTable
    router: Router
    guard: LinkGuard
    tx: Transmitter
    forwarding: Forwarding
    _events: deque[Event]
    _notices: list[bytes]
    _unsaved_notices: set[bytes]
    _told_restart: dict[int, float]
    _deferred_adverts: dict[int, tuple[RouteFrame, Adjacency]]
    _advert_seq: int
    _advert_sent: tuple[tuple[int, int], ...] | None
    _links_sent: dict[int, dict[str, int]]  # the links our last advert listed
    _advert_pending: bool
    _advert_forced: bool  # our own advert came back newer than ours: outbid it
    _advert_sent_at: float
    _refresh_s: float  # adverts refreshed this often (and kept for three times as long)
    _ever_up: set[int]  # neighbours up at some time since start
    _excused_until: dict[int, float]  # planned neighbours not missing before then
    _next_advert: float
    _next_hello: float
    _hello_due: dict[str, float]
    _probe_due: dict[str, float]  # links with a lost neighbour: when to call it again
    _called_back: dict[tuple[int, str], float]  # (neighbour, link) -> last `_call_back`
    _settling: dict[MessageId, float]
    _link_timers: dict[str, LinkTimers]
    _shortest_hello: float  # the shortest of the links' hello intervals
    _epoch: int
    _jump: tuple[int, float] | None

    if TYPE_CHECKING:  # the rest of the engine, which this part calls

        @property
        def queues(self) -> dict[int, NeighbourQueue]: ...
        def _epoch_at(self, now: float) -> int: ...
        def _mission_seconds(self, now: float) -> int: ...
        def _reject_from(self, adj: Adjacency, reason: str, detail: str) -> None: ...
        def _reroute(self) -> None: ...
        def _forget_queued(self, mid: tuple[int, int, int], why: Input) -> None: ...
        def commit(self, *, sync: bool = False) -> bool: ...
        def _housekeeping_soon(self, now: float) -> None: ...
        def _copies_owed_lost(self) -> bool: ...
        def _owed_members(self) -> set[int]: ...
        @property
        def last_time(self) -> float: ...

    def _check_roster_version(self) -> None:
        """Refuse a roster older than one this node already used: an old roster would bring
        back nodes that were revoked since."""
        known = int.from_bytes(self.store.get_state("roster-version") or b"", "big")
        version = self.keys.roster.version
        if version < known:
            raise RosterError(
                f"roster version {version} is older than version {known}, which this node "
                "already used: install the newer roster"
            )
        self._remember_roster_version()

    def _remember_roster_version(self) -> None:
        self.store.set_state("roster-version", self.keys.roster.version.to_bytes(8, "big"))
        self.store.commit()

    def _restore_notices(self) -> None:
        """Revocations received over the air before the restart: in force again at once."""
        state = self.store.get_state("revocations")
        if not state:
            return
        for data in msgpack.unpackb(state):
            notice = decode_revocation(bytes(data), source="store state 'revocations'")
            self.keys.apply_revocation(notice)
            self._notices.append(bytes(data))
            self._cut_off(notice.revoked)

    def update_roster(self, roster: Roster) -> None:
        """A newer signed roster: drop everything of nodes it revokes."""
        self.keys.update_roster(roster)
        self._remember_roster_version()
        self._cut_off(entry.address for entry in self.keys.roster.nodes if entry.revoked)

    def apply_revocation(self, notice: Revocation, *, came_from: int | None = None) -> bool:
        """A revocation notice of the mission authority (from the local API or a neighbour).

        Verified, installed durably, applied (the revoked nodes' keys, frames and traffic
        are dropped), then flooded to every neighbour. False when it brings nothing new;
        RevocationError when it is not a valid notice of this mission.
        """
        data = notice.to_bytes()
        if self.keys.apply_revocation(notice):
            self._unsaved_notices.add(data)
        if data not in self._unsaved_notices:
            return False  # in force here already
        self.store.set_state("revocations", msgpack.packb([*self._notices, data]))
        if not self.commit(sync=True):
            return False  # not on disk: left unsaved, the next copy saves it
        self._unsaved_notices.discard(data)
        self._notices.append(data)
        self._cut_off(notice.revoked)
        self._events.append(RevocationApplied(notice.version, notice.revoked, came_from))
        for adj in self._up_adjacencies():
            if adj.neighbour != came_from:
                self.tx.control(adj, RevokeFrame(self.me, 0, data))
        return True

    def _cut_off(self, addresses: Iterable[int]) -> None:
        """Revoked nodes: forget their link state, routes and adverts, and drop every
        message from or to them (their keys are gone already)."""
        revoked = set(addresses)
        if not revoked:
            return
        for address in revoked:
            self.guard.forget_peer(address)
            self.router.forget(address)
            for adj in self.neighbours.of(address):
                self._set_up(adj, False)
        doomed = {msg.mid for msg, _ in self.store.pending() if self._touches(msg, revoked)}
        held = self.store.held_messages()  # in pages: a full store's backlog never at once
        doomed |= {stored.mid for stored in held if self._touches(stored, revoked)}
        for mid in doomed:
            self._forget_queued(mid, Input.DROPPED)
            self.store.delete_message(mid)
        self._topology_changed()

    @staticmethod
    def _touches(stored: StoredMessage, revoked: set[int]) -> bool:
        return stored.mid[0] in revoked or stored.dst in revoked

    def _tell_restarted(self, link: str, peer: str, sender: int, now: float) -> None:
        """A neighbour whose frames lie below the marks this node restarted from: answer
        where the frame came from with a HELLO saying RESTARTED, so it skips past them.
        Once a second per neighbour at most (recorded frames can provoke it too; the hello
        then only makes the real neighbour skip a block of counters, which costs nothing).
        Without it, a neighbour whose endpoint is learnt from its frames (the listening
        side of TCP) would never be told, and never heard again."""
        if now - self._told_restart.get(sender, float("-inf")) < 1.0:
            return
        self._told_restart[sender] = now
        state = self.tx.links[link]
        adj = self.neighbours.get(sender, link)
        if adj is None:
            adj = self.neighbours.add(sender, link, state.spec.profile, None)
        self.tx.hello(adj, now, reply=True, restarted=True, to=peer)

    def _move_endpoint(self, adj: Adjacency, peer: str, now: float) -> None:
        """Answer where the neighbour is now, but only for a frame newer than all before it
        (a recorded frame re-sent from elsewhere is not), and not more often than
        ENDPOINT_MOVE_INTERVAL: replies cannot be steered away frame by frame."""
        if adj.peer is not None:
            if not self.guard.advanced or now - adj.moved_at < ENDPOINT_MOVE_INTERVAL:
                return
            self.stats.endpoint_moves += 1
        adj.peer, adj.moved_at = peer, now

    def _on_hello(self, frame: HelloFrame, adj: Adjacency, now: float) -> None:
        now_ms = int(now * 1000) & U32
        if frame.echo_ms:
            rtt = ((now_ms - frame.echo_ms - frame.held_ms) & U32) / 1000
            if rtt < 600:
                adj.add_rtt_sample(rtt)
        adj.tx_loss = frame.rx_loss / 1000
        adj.hello_counted(frame.counter, frame.sent, now)
        adj.last_hello_ms, adj.last_hello_at = frame.time_ms, now
        if self.forwarding.costs_measured(adj.neighbour) and self._cost_moved_far(adj.neighbour):
            # Our own links as routes and adverts take them: the cost measured now, not
            # the one of when the neighbour last came up (a jam's, an hour after it ended).
            self._topology_changed()
        flags = int(frame.flags)  # as an int: enum arithmetic costs more than the rest
        if flags & _RESTARTED and now - adj.skipped_at > _skip_gap(adj):
            # It accepts from us only counters above a mark it saved, at most a block above
            # the last one it took: jump past it rather than lose that many frames. Once per
            # round trip and a second: hellos that crossed our jump ask for nothing more.
            self.guard.skip(adj.neighbour, self._epoch_at(now), RECEIVE_MARK_BLOCK)
            adj.skipped_at = now
        adj.silent = bool(flags & _SILENT)
        if flags & _ROOM:
            self.tx.resend_now(adj.neighbour, now)  # it refused for want of room: room now
        if flags & _REPLY_REQUESTED:
            self.tx.hello(adj, now, reply=False, restarted=self._unaware(adj, now))
        elif self._loss_news(adj, now):
            adj.told_at = now
            self.tx.hello(adj, now, reply=False, restarted=self._unaware(adj, now))

    def _cost_moved_far(self, neighbour: int) -> bool:
        """Whether one of `neighbour`'s up links now costs half or twice what our routes
        take it for (its cheapest for the routes of all, any of them for the routes of a
        class): a smaller move changes few routes, and following each one (a net's loss
        moves its cost by one now and then) cost a 495-node brigade a tenth of its speed
        in routes computed again."""
        known = self.router.my_links.get(neighbour)
        if known is None:
            return False
        now = self.neighbours.up_links_of(neighbour)
        return now.keys() != known.keys() or differs(now, known)

    def _loss_news(self, adj: Adjacency, now: float) -> bool:
        """Whether this link's loss as counted here has moved so far from what our last
        hello told the neighbour that it must hear it now (`LOSS_TELL_STEP`): a net jammed
        an hour told it most of its frames were lost here, and with hellos many minutes
        apart it would keep costing the link so, and advertising it, long after the jam."""
        return (
            abs(adj.rx_loss - adj.told_loss) >= LOSS_TELL_STEP
            and now - adj.told_at >= LOSS_TELL_GAP_S
            and adj.link not in self.tx.silent
        )

    def _set_up(self, adj: Adjacency, up: bool) -> None:
        if adj.up == up:
            return
        adj.up = up
        self._events.append(NeighbourChanged(adj.link, adj.neighbour, up))
        if up:
            self._ever_up.add(adj.neighbour)
            self._housekeeping_soon(self.last_time)  # its liveness is watched from now
            self._sync_adverts(adj)
            for notice in self._notices:
                self.tx.control(adj, RevokeFrame(self.me, 0, notice))
        self.forwarding.neighbour_changed(adj.neighbour)
        if not up and adj.link in self._link_timers:
            due = self.last_time + self._probe_s(adj.link)
            self._probe_due.setdefault(adj.link, due)
            self._next_hello = min(self._next_hello, self._probe_due[adj.link])
        queue = self.queues.get(adj.neighbour)
        if not up and queue is not None:
            # What was in flight on the dead link goes again now, on the next best link.
            for item in list(queue.in_flight.values()):
                if item.link == adj.link:
                    item.to_send = []
                    self.forwarding.hand(adj.neighbour, item)
        self._topology_changed()

    def _sync_adverts(self, adj: Adjacency) -> None:
        """A new neighbour gets every advert we hold (a link-state database exchange, as in
        OSPF): flooding alone would leave it without the adverts flooded before it came."""
        for origin, advert in sorted(self.router.adverts.items()):
            adjacency = tuple(sorted(advert.adjacency.items()))
            links = _links_tuple(advert.links)
            frame = RouteFrame(self.me, 0, origin, advert.seq, adjacency, advert.signature, links)
            self._send_route([adj], frame)

    def _topology_changed(self) -> None:
        if self.router.update_local(self.neighbours.up_neighbours(), self.neighbours.up_links()):
            self._advert_pending = True
            self._reroute()

    def _on_advert(
        self, frame: RouteFrame, adj: Adjacency, now: float, *, deferred: bool = False
    ) -> None:
        """A flooded advert. Only an active roster node's, naming roster nodes, signed by
        its origin: an insider can neither forge another node's view nor outbid it.

        A newer advert of an origin arriving less than `advert_min_interval / 2` after the
        last one taken waits (the latest per origin) for the next housekeeping round: a node
        cannot make the network flood and recompute routes faster than that with adverts
        of its own (as OSPF's MinLSArrival), and no update is lost."""
        origin, seq = frame.origin, frame.lsa_seq
        self.tx.drop_adverts(adj.neighbour, origin, seq)  # it holds this one
        roster = self.keys.roster
        entry = roster.node_at(origin)
        if entry is None or entry.revoked:
            self._reject_from(adj, "bad-advert", f"advert of {origin}, not an active node")
            return
        if origin == self.me:
            mine = seq == self._advert_seq and frame.adjacency == self._advert_sent
            if mine or not (seq_newer(seq, self._advert_seq) or seq == self._advert_seq):
                return  # ours, come back round, or older: no signature to check
        known = self.router.adverts.get(origin)
        if origin != self.me and known is not None:
            if not seq_newer(seq, known.seq):
                return  # not newer: checked before the signature, which costs more
            if not deferred and now - known.received_at < self.config.advert_min_interval / 2:
                self._deferred_adverts[origin] = (frame, adj)
                self._housekeeping_soon(now)
                return
        if any(roster.node_at(n) is None for n, _ in frame.adjacency):
            self._reject_from(adj, "bad-advert", f"advert of {origin} names non-nodes")
            return
        problem = _links_problem(frame)
        if problem is not None:
            self._reject_from(adj, "bad-advert", f"advert of {origin}: {problem}")
            return
        signed = advert_signed_bytes(origin, seq, frame.adjacency, frame.links)
        if not self.keys.verify(origin, signed, frame.signature):
            self._reject_from(adj, "bad-advert", f"advert of {origin}: bad origin signature")
            return
        if origin == self.me:
            # Our own advert from before a restart (or replayed) outbids ours: answer it
            # with a newer one, so that no old view of us can stand.
            self._advert_seq = seq
            self._advert_pending = self._advert_forced = True
            return
        if self.router.update_advert(
            origin, seq, frame.adjacency, now, frame.signature, frame.links
        ):
            onward = RouteFrame(
                self.me, 0, origin, seq, frame.adjacency, frame.signature, frame.links
            )
            # Down the origin's shortest-path tree only: a neighbour whose parent on it is
            # another node hears it from that one, over the cheapest way, so an advert
            # crosses each link about once and a slow HF net only where it is the best
            # path (flooding to all, every member of a net sent it to every other). A
            # neighbour off the tree (views that differ) is sent it all the same; views
            # that are wrong are mended by the database exchange when an adjacency comes
            # up, and by refreshes.
            tree = self.router.tree(origin)
            down = []
            for other in self._up_adjacencies():
                parent = tree.get(other.neighbour)
                if other.neighbour == adj.neighbour:
                    continue
                if other.neighbour != origin and parent not in (None, self.me):
                    continue  # (the origin itself is sent it: an old one it must outbid)
                down.append(other)
            self._send_route(down, onward)
            self._reroute()

    def _on_revoke(self, frame: RevokeFrame, adj: Adjacency) -> None:
        try:
            notice = decode_revocation(frame.notice, source=f"notice from {adj.neighbour}")
            self.apply_revocation(notice, came_from=adj.neighbour)
        except RevocationError as exc:
            self._reject_from(adj, "bad-revocation", str(exc))

    def _restricted_links(self) -> dict[int, dict[str, int]]:
        """What our adverts list (core/routing.py, "Routes per class"; `restricted_links`)
        of our up links, under the PACE policy."""
        adjacency = self.router.my_adjacency
        mine = {n: by for n, by in self.router.my_links.items() if n in adjacency}
        return restricted_links(mine, self.config.pace.restricts)

    def _up_adjacencies(self) -> list[Adjacency]:
        best = (self.forwarding.best(n) for n in self.neighbours.up_neighbours())
        return [adj for adj in best if adj is not None]

    def _send_hellos(self, now: float) -> None:
        """Hellos on every link whose turn it is, each link at its own interval (jittered,
        so that the members of a net do not all speak at once)."""
        # A link due within half the node's shortest interval goes now too: links of one
        # interval then keep one schedule, and an idle node wakes once for all of them.
        soon = now + self._shortest_hello / 2
        for link, due in self._hello_due.items():
            if due > soon:
                continue
            interval = self._link_timers[link].hello_s
            self._hello_due[link] = now + interval * (0.9 + 0.2 * self.rng.random())
            if link in self.tx.silent:
                continue
            for adj in self.neighbours.on_link(link):
                if adj.peer is not None and adj.transport_up:
                    self.tx.hello(adj, now, reply=False, restarted=self._unaware(adj, now))
        self._call_lost(now)
        self._next_hello = min(
            [*self._hello_due.values(), *self._probe_due.values()],
            default=now + self.config.hello_ceiling,
        )

    def _probe_s(self, link: str) -> float:
        """How often a lost neighbour is called while messages wait here: its link's hello
        interval, but no longer than RECALL_S (a slow net's hellos are minutes apart, and
        after a jammer stops, what waited would wait for them)."""
        return max(self.config.hello_interval, min(self._link_timers[link].hello_s, RECALL_S))

    def _call_lost(self, now: float) -> None:
        """Neighbours lost on a link are called (a hello that asks for an answer) every
        `_probe_s` while this node holds messages (beyond the group copies it keeps while
        views settle, unless one owes a copy to a member lost or out of reach: it waits too),
        so a link back after a jam is found within that, not a slow net's hello interval
        later. Nothing held, nothing is called: the steady state costs no more hellos than
        before."""
        held = self.store.message_count() > len(self._settling) or self._copies_owed_lost()
        for link, due in list(self._probe_due.items()):
            if due > now:
                continue
            lost = [
                a for a in self.neighbours.on_link(link)
                if not a.up and a.peer is not None and a.transport_up
            ]  # fmt: skip
            if not lost:
                del self._probe_due[link]
                continue
            self._probe_due[link] = now + self._probe_s(link)
            if held and link not in self.tx.silent:
                for adj in lost:
                    self._call(adj, now)

    def _waiting_for(self) -> set[int]:
        """Nodes that messages here wait for: the destinations of those held, and the members
        group copies kept while views settle still owe."""
        return self.store.held_destinations() | self._owed_members()

    def _call_back(self, link: str, wanted: Collection[int], now: float) -> None:
        """A neighbour lost on `link` was heard again: the link carries again (a jammer
        stopped). The others lost there that messages here waited for (`wanted`, taken
        before that neighbour's return routed them through it) are called at once, each at
        most once per RECALL_S this way, rather than at the next round of calls up to
        RECALL_S away: orders an hour old had 20 s to live when their company's jammer
        stopped, and expired while their platoons waited to be called."""
        if link in self.tx.silent or not wanted:
            return
        for adj in self.neighbours.on_link(link):
            if adj.up or adj.peer is None or not adj.transport_up or adj.neighbour not in wanted:
                continue
            key = (adj.neighbour, link)
            if now - self._called_back.get(key, -RECALL_S) < RECALL_S:
                continue
            self._called_back[key] = now
            self._call(adj, now)

    def _call(self, adj: Adjacency, now: float) -> None:
        """A hello that asks `adj`'s neighbour to answer (RESTARTED while it may not know
        that we restarted)."""
        self.tx.hello(adj, now, reply=True, restarted=self._unaware(adj, now))

    def _dead_after(self, adj: Adjacency) -> float:
        """How long `adj` may stay silent before its neighbour is lost there."""
        timers = self._link_timers.get(adj.link)
        return timers.dead_s if timers is not None else self.config.dead_interval

    def _link_suspect(self, adj: Adjacency, now: float) -> None:
        """The transmitter saw a message go unanswered again and again over `adj`, with not
        a frame heard from its neighbour there since: ask it to answer at once. Silent
        for a few round trips more, it is lost then, not a dead interval later
        (`_probe_settled`); a busy shared channel that only delayed its answers is not."""
        if adj.probed_at is not None:
            return
        adj.probed_at = now
        backlog = max(0.0, self.tx.links[adj.link].busy_until - now)  # ahead of the probe
        answer = PROBE_WAITS * adj.retransmit_timeout(
            HELLO_WIRE_BYTES, self.config.retransmit_floor
        )
        # On a slow shared net the answer also waits behind the other members' frames,
        # which this node cannot see: a quarter of a hello interval at least.
        adj.probe_until = now + max(backlog + answer, self._link_timers[adj.link].hello_s / 4)
        self._call(adj, now)
        self._housekeeping_soon(now)

    def _probe_settled(self, adj: Adjacency, now: float) -> None:
        assert adj.probed_at is not None
        if adj.last_heard >= adj.probed_at:
            adj.probed_at = None  # it answered: only slow
        elif now >= adj.probe_until:
            adj.probed_at = None
            self.stats.suspected_links += 1
            self._set_up(adj, False)

    def _unaware(self, adj: Adjacency, now: float) -> bool:
        """The neighbour may not know we restarted: no frame of it accepted since, in a
        window resumed from saved marks. Our hellos to it say RESTARTED until one is."""
        epoch = self._epoch_at(now)
        restored = self.guard.restored
        return any((adj.neighbour, e) in restored for e in (epoch - 1, epoch, epoch + 1))

    def _follow_clock(self, now: float) -> None:
        """Ratchet the keys as epochs pass. A forward jump of more than one epoch between
        two housekeeping rounds is held: keys of the new epochs may be used, but nothing
        is erased until the new time has held for a whole epoch. A wrong clock set right
        again meanwhile (the jump undone) has then cost no key."""
        epoch = self._epoch_at(now)
        if self._jump is not None:
            target, confirm_at = self._jump
            if epoch < target:
                self._jump = None  # undone: the clock came back
                self._epoch = min(self._epoch, epoch)
            elif now >= confirm_at:
                self._jump = None
                self._set_epoch(epoch)
            return
        if epoch == self._epoch:
            return
        if epoch > self._epoch + 1:
            self._jump = (epoch, now + self.keys.epoch_seconds)
            self._events.append(ClockJumped(self._epoch, epoch))
            self.stats.clock_jumps += 1
            self.keys.advance(epoch, erase=False)
            return
        if epoch > self._epoch:
            self._set_epoch(epoch)

    def _set_epoch(self, epoch: int) -> None:
        """Ratchet to `epoch` (erasing what the grace period lets go) and remember it."""
        self._epoch = epoch
        self.keys.advance(epoch)
        if self.store.get_state("epoch") != epoch.to_bytes(8, "big"):
            self.store.set_state("epoch", epoch.to_bytes(8, "big"))

    def _send_advert(self, now: float) -> None:
        wanted = self._advert_wanted(now)
        if wanted is not True:
            if wanted is None:
                self._advert_pending = False
                self._next_advert = now  # the next refresh check an interval from now
            else:
                self._next_advert = wanted  # a planned neighbour not up yet: not lost yet
            return
        self._advert_pending = self._advert_forced = False
        self._next_advert = now + self.config.advert_min_interval
        # Sequence numbers follow the mission clock, so a node whose store rolled back (or
        # that lost it) still outbids every advert it made before; serial arithmetic
        # (`seq_newer`) carries the comparison over the 2**32 wrap.
        self._advert_seq = max(self._advert_seq + 1, self._mission_seconds(now)) & U32
        if self._advert_seq > self._mission_seconds(now):
            # Ahead of the clock (adverts more often than once a second): only then does
            # a restart need the number, since the clock alone would not outbid it.
            self.store.set_state("advert-seq", self._advert_seq.to_bytes(8, "big"))
        adjacency = tuple(sorted(self.router.my_adjacency.items()))
        listed = self._restricted_links()
        links = _links_tuple(listed)
        signed = advert_signed_bytes(self.me, self._advert_seq, adjacency, links)
        signature = self.keys.sign(signed)
        frame = RouteFrame(self.me, 0, self.me, self._advert_seq, adjacency, signature, links)
        self._advert_sent, self._advert_sent_at, self._links_sent = adjacency, now, listed
        if self.router.publish(dict(adjacency)):
            self._reroute()  # the trees are the network's now: group copies follow them
        self._send_route(self._up_adjacencies(), frame)

    def _send_route(self, adjacencies: Iterable[Adjacency], frame: RouteFrame) -> None:
        """`frame` to the neighbour of each of `adjacencies`, but on no link whose MTU it
        exceeds: that link would drop it whole. Where it does not fit, it takes the
        neighbour's best other up link where it does; with none, the link is told, once per
        frame (`AdvertTooLarge`), and that neighbour does not hear it."""
        size = len(encode_frame(frame)) + _COUNTER_SLACK + LINK_TAG_BYTES
        refused: set[str] = set()
        for adj in adjacencies:
            if size > adj.profile.mtu:
                # An older advert of the origin still waiting for this neighbour is out of
                # date now, wherever it waits: it does not go in this one's stead.
                self.tx.drop_adverts(adj.neighbour, frame.origin, frame.lsa_seq)
            way = adj if size <= adj.profile.mtu else self._wide_enough(adj.neighbour, size)
            if way is not None:
                self.tx.control(way, frame)
            elif adj.link not in refused:
                refused.add(adj.link)
                self.stats.adverts_too_large += 1
                self.stats.link(adj.link).adverts_too_large += 1
                self._events.append(AdvertTooLarge(adj.link, frame.origin, size, adj.profile.mtu))

    def _wide_enough(self, neighbour: int, size: int) -> Adjacency | None:
        """The best up link to `neighbour` that takes a frame of `size` bytes and may send."""
        narrow = {a.link for a in self.neighbours.of(neighbour) if size > a.profile.mtu}
        return self.neighbours.best_link(neighbour, avoid=narrow | self.tx.silent)

    def _advert_wanted(self, now: float) -> bool | float | None:
        """Whether to flood an advert now: True; None, not at all; a time, not before then.

        Without a plan for this node, always. With one, only where the network would
        otherwise take a wrong view of our links: they differ (`differs`) from what it
        holds of us (our last advert, or else the plan), or our last advert differed from
        the plan and is due for its refresh. A planned neighbour never heard since start
        is not missing until its link's dead interval has passed."""
        planned = self.config.planned.get(self.me)
        if planned is None or self._advert_forced:
            return True
        mine = self.router.my_adjacency
        sent = None if self._advert_sent is None else dict(self._advert_sent)
        planned_links = self.config.planned_links.get(self.me, {})
        links = self._restricted_links()
        held_links = planned_links if sent is None else self._links_sent
        if not differs(mine, planned if sent is None else sent) and not links_differ(
            links, held_links
        ):
            refresh = now >= self._advert_sent_at + self._refresh_s
            off_plan = sent is not None and (
                differs(sent, planned) or links_differ(self._links_sent, planned_links)
            )
            return True if off_plan and refresh else None
        missing = planned.keys() - mine.keys()
        present = {n: planned[n] for n in mine.keys() & planned.keys()}
        if sent is None and missing and not differs(mine, present):
            waits = [self._excused_until.get(n, now) for n in missing if n not in self._ever_up]
            if len(waits) == len(missing) and max(waits) > now:
                return max(waits)
        return True


_COUNTER_SLACK = 4
"""Bytes a frame counter may take beyond the one byte of the 0 it is encoded with here."""


def _links_tuple(links: Mapping[int, Mapping[str, int]]) -> tuple[tuple[int, str, int], ...]:
    return tuple(
        (neighbour, bearer, cost)
        for neighbour, by_bearer in sorted(links.items())
        for bearer, cost in sorted(by_bearer.items())
    )


def _links_problem(frame: RouteFrame) -> str | None:
    """What is wrong with an advert's links, or None: each must name a neighbour of its
    adjacency, and each neighbour they name cost there the cheapest of its links."""
    cheapest: dict[int, int] = {}
    for neighbour, _, cost in frame.links:
        cheapest[neighbour] = min(cost, cheapest.get(neighbour, cost))
    costs = dict(frame.adjacency)
    for neighbour, cost in cheapest.items():
        if costs.get(neighbour) != cost:
            return f"links to {neighbour} disagree with its adjacency"
    return None


def _skip_gap(adj: Adjacency) -> float:
    """How long after skipping past a restarted neighbour's marks another RESTARTED hello
    is taken as a new restart rather than one sent before it saw our jump."""
    return 1.0 + 2 * (adj.srtt if adj.srtt is not None else 0.5)
