"""The output side of the engine: what goes on which link, when, numbered and tagged.

Each link is paced at its nominal rate: a frame is released only when the link would have
finished the previous one (plus a short burst allowance), so a slow radio modem is never
flooded and the choice of the next frame is made as late as possible — which is what lets a
FLASH message overtake a long transfer at the next fragment boundary. Acknowledgements,
hellos and revocations go before messages; adverts wait their turn with them (FLASH before
adverts, IMMEDIATE in turns with them, the rest after). Messages wait in flight for their
custody acknowledgement, with a retransmission deadline in one heap for the whole node.

Each frame leaves with its precedence (`Transmit.precedence`), for a radio that arbitrates
its channel by it: a message's own, a BATCH the highest of its messages', control frames
`CONTROL_PRECEDENCE` (docs/engine.md, "Precedence on the air").
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar

from tawan.core.events import Transmit
from tawan.core.frames import (
    MAX_BATCH,
    MAX_NET_RECEIVERS,
    U32,
    AckFrame,
    FragFrame,
    FragState,
    Frame,
    HelloFlags,
    HelloFrame,
    MessageId,
    RevokeFrame,
    RouteFrame,
    SetupFrame,
    encode_batch_frame,
    encode_data_frame,
    encode_frame,
    encode_net_frag,
    encode_net_frame,
)
from tawan.core.linkauth import LinkGuard, LinkReject
from tawan.core.liveness import suspect
from tawan.core.neighbours import Adjacency, NeighbourTable
from tawan.core.precedence import Precedence
from tawan.core.queues import DEFAULT_LIMIT, NeighbourQueue, Outgoing, TurnSource
from tawan.core.routing import seq_newer
from tawan.core.specs import EngineConfig, LinkSpec
from tawan.core.states import Input, Lifecycle
from tawan.core.stats import EngineStats

FRAG_OVERHEAD: Final = 48  # worst-case bytes of a FRAG frame beyond its chunk, tag included
DATA_OVERHEAD: Final = 24  # worst-case bytes of a DATA frame beyond the encoded message
BATCH_OVERHEAD: Final = 24  # worst-case bytes of a BATCH frame beyond its encoded messages
NET_OVERHEAD: Final = 16  # worst-case bytes a NET frame's receiver list adds, header included
NET_ENTRY_BYTES: Final = 16  # worst-case bytes of each receiver: address, counter, link tag
MIN_MESSAGE_BYTES: Final = 27  # the shortest encoded message: 8 one-byte fields, bin 8 of 16
_NOT_ARMED: Final = float("inf")  # a deadline not set yet: `_arm` sets it once the frame is out
ACKS_PER_FRAME: Final = 64
ACK_HOLD_FRAMES: Final = 4.0  # on slow links acknowledgements wait up to this many frame times
ACK_HOLD_MAX: Final = 4.0  # seconds, and never longer
ACK_HOLD_BELOW_BPS: Final = 4_800  # slow links: HF. Held acknowledgements lengthen the round
# trip the retransmission timer learns, so a dead link is suspected later (VHF is not held)
ACK_ENTRY_BYTES: Final = 15  # widest acknowledged message id: src, epoch, seq
ACK_FRAME_OVERHEAD: Final = 24  # kind, array, sender, counter, two list headers, link tag
BURST_SECONDS: Final = 0.02  # a link may run this far ahead of its nominal rate

CONTROL_PRECEDENCE: Final[dict[type, int]] = {
    AckFrame: Precedence.IMMEDIATE,
    HelloFrame: Precedence.IMMEDIATE,
    SetupFrame: Precedence.IMMEDIATE,
    RevokeFrame: Precedence.IMMEDIATE,
    RouteFrame: Precedence.PRIORITY,
}
"""Control frames' precedence on the air. An acknowledgement is told only whether what it
acknowledges is FLASH or OVERRIDE (`ack(urgent=True)`: then FLASH); otherwise it takes
IMMEDIATE, the highest it may answer: a few bytes that, held back behind other members'
messages, cost a resend of a whole message. Hellos (a bounded share of a net's rate) keep a
loaded link from being declared lost; setup and revocations are as small and rare. Adverts
go after IMMEDIATE messages and with PRIORITY ones, as they take their turns here
(`_advert_first`)."""

_T = TypeVar("_T")


@dataclass(slots=True)
class _LinkState:
    spec: LinkSpec
    busy_until: float = 0.0
    # (neighbour, frame, endpoint: None for the neighbour's own, precedence on the air)
    control: deque[tuple[int, Frame, str | None, int]] = field(default_factory=deque)
    # Adverts wait for the link to be free, in the order queued, the latest per (neighbour,
    # origin, endpoint): one superseded before its turn never goes (`Transmitter.control`).
    adverts: dict[tuple[int, int, str | None], RouteFrame] = field(default_factory=dict)
    advert_next: bool = True  # with IMMEDIATE waiting, adverts and messages take turns
    # Frames put on this link for each neighbour: each hello says how many went before it,
    # so the neighbour measures this link's loss alone (`Adjacency.hello_counted`).
    sent: dict[int, int] = field(default_factory=dict)


class Transmitter:
    """Paces and sends what the forwarding decision hands it (`hand`): each message waits
    in its neighbour's queue on the link chosen for it. A ready set per link (neighbours
    with a message waiting there and room in their window) keeps the choice of the next frame
    and the next deadline from walking every neighbour and queue."""

    def __init__(
        self,
        me: int,
        links: Sequence[LinkSpec],
        neighbours: NeighbourTable,
        best_link: Callable[[int], Adjacency | None],
        lifecycle: Lifecycle,
        guard: LinkGuard,
        stats: EngineStats,
        config: EngineConfig,
        epoch_at: Callable[[float], int],
        source: TurnSource | None = None,
        queue_limit: int | None = None,
    ) -> None:
        self.me = me
        self.source = source  # the store: what the queues do not keep in memory
        self.queue_limit = DEFAULT_LIMIT if queue_limit is None else queue_limit
        self.links = {spec.name: _LinkState(spec) for spec in links}
        self.neighbours = neighbours
        self.best_link = best_link
        self.lifecycle = lifecycle
        self.queues: dict[int, NeighbourQueue] = {}
        self._ready: dict[str, set[int]] = {name: set() for name in self.links}
        self._ready_on: dict[int, set[str]] = {}  # neighbour -> links where it is ready
        self.guard = guard
        self.stats = stats
        self.config = config
        self.epoch_at = epoch_at
        # Told of an adjacency whose messages go unanswered (tawan.core.liveness.suspect).
        self.link_suspect: Callable[[Adjacency, float], None] = _ignore_adjacency
        self.silent: frozenset[str] = frozenset()  # links under emission control: no sending
        # The forwarding decision's link for a message (tawan.core.forwarding.link_for).
        self.link_for: Callable[[int, Outgoing], str] = self._best_link_for
        self._epoch_time = float("nan")  # the time `_epoch` was found for (nan: none yet)
        self._epoch = 0
        self.retransmit: list[tuple[float, int, MessageId]] = []
        self._acks: dict[int, list[MessageId]] = {}
        self._urgent_acks: set[MessageId] = set()  # of FLASH and OVERRIDE: FLASH on the air
        self._frag_reports: dict[int, list[FragState]] = {}
        self._ack_due: float | None = None

    def specs(self) -> list[LinkSpec]:
        return [state.spec for state in self.links.values()]

    def link_busy(self, link: str, until: float) -> None:
        """`link`'s own transmitter holds what it was handed until `until` (a shared channel
        taken by others, a slower rate than nominal): the next frame waits for that."""
        state = self.links.get(link)
        if state is not None and until > state.busy_until:
            state.busy_until = until

    # ------------------------------------------------------------------ queues
    def hand(self, neighbour: int, via: str, item: Outgoing) -> None:
        """`item` goes to `neighbour` over link `via` ("": it waits for a link)."""
        self.queue(neighbour).push(item, via)

    def queue(self, neighbour: int) -> NeighbourQueue:
        queue = self.queues.get(neighbour)
        if queue is None:
            queue = NeighbourQueue(
                neighbour, self._refresh, self.lifecycle, source=self.source,
                limit=self.queue_limit,
            )  # fmt: skip
            self.queues[neighbour] = queue
        return queue

    def restore(self, neighbour: int) -> None:
        """After a restart: messages are pending for `neighbour` in the store; its queue
        reads the first of them back."""
        self.queue(neighbour).all_on_disk()
        self._refresh(neighbour)

    def waiting(self, neighbour: int) -> list[Outgoing]:
        queue = self.queues.get(neighbour)
        return list(queue.waiting.values()) if queue is not None else []

    def forget(self, mid: MessageId, why: Input) -> None:
        """`mid` leaves every queue: expired, evicted or dropped (`why`)."""
        for queue in self.queues.values():
            queue.remove(mid, why)

    def drop_all(self) -> None:
        """Forget every queue, acknowledgement due and retransmission (the store rolled
        back: the engine queues again what it holds). Control frames already queued on
        links stay: none of them acknowledges custody."""
        self.queues.clear()
        self._ready = {name: set() for name in self.links}
        self._ready_on.clear()
        self.retransmit.clear()
        self._acks.clear()
        self._urgent_acks.clear()
        self._frag_reports.clear()
        self._ack_due = None

    def _refresh(self, neighbour: int) -> None:
        """Recompute where `neighbour` is ready: a head waiting on the link, window open."""
        queue = self.queues[neighbour]
        ready = self._ready
        now_ready = set()
        if queue.waiting or queue.on_disk():  # else no head anywhere: ready nowhere
            if queue.wants_refill():
                adj = self.best_link(neighbour)
                queue.refill(adj.link if adj is not None else "")
            for via in queue.links():
                if via in ready:
                    head = queue.peek(via)  # never a blocked one (`NeighbourQueue.peek`)
                    if head is not None and self._window_open(queue, head):
                        now_ready.add(via)
        before = self._ready_on.get(neighbour)
        if before == now_ready:
            return  # the common case: a change that leaves the ready sets as they were
        before = before or set()
        for via in before - now_ready:
            ready[via].discard(neighbour)
        for via in now_ready - before:
            ready[via].add(neighbour)
        self._ready_on[neighbour] = now_ready

    # ------------------------------------------------------------------ what to send
    def ack(self, neighbour: int, mid: MessageId, now: float, *, urgent: bool = False) -> None:
        """Acknowledge custody, batched for `ack_delay` so one frame carries many."""
        self._acks.setdefault(neighbour, []).append(mid)
        if urgent:
            self._urgent_acks.add(mid)
            self._ack_due = now
        else:
            self._arm_ack(now, neighbour)

    def report_fragments(self, neighbour: int, state: FragState, now: float) -> None:
        self._frag_reports.setdefault(neighbour, []).append(state)
        self._arm_ack(now, neighbour)

    def acks_due(self, now: float) -> bool:
        """Acknowledgements will go out in this turn (the store must be committed first)."""
        return self._ack_due is not None and self._ack_due <= now

    def _arm_ack(self, now: float, neighbour: int) -> None:
        """Hold acknowledgements `ack_delay`, and on a link of ACK_HOLD_BELOW_BPS or less up
        to ACK_HOLD_FRAMES frame times (at most ACK_HOLD_MAX): on 2.4 kbit/s HF a frame of
        one acknowledgement per message takes 7 % of the rate; held, one frame carries a run
        of them (bench/hf_goodput.py)."""
        delay = self.config.ack_delay
        if self._ack_due is not None and self._ack_due <= now + delay:
            return  # due before any hold would make it: the common case, a run of them
        adj = self.best_link(neighbour)
        if adj is not None and adj.profile.rate_bps <= ACK_HOLD_BELOW_BPS:
            frame_s = adj.profile.mtu * 8 / adj.profile.rate_bps
            delay = max(delay, min(ACK_HOLD_MAX, ACK_HOLD_FRAMES * frame_s))
        due = now + delay
        if self._ack_due is None or due < self._ack_due:
            self._ack_due = due

    def control(
        self, adj: Adjacency, frame: Frame, to: str | None = None, precedence: int | None = None
    ) -> None:
        """A control frame for `adj`, sent to its endpoint or to `to`, on the air at
        `precedence` (None: `CONTROL_PRECEDENCE`). Adverts are paced with the messages
        (`_advert_first`); the other control frames go at once."""
        state = self.links[adj.link]
        if isinstance(frame, RouteFrame):
            # A newer advert of the same origin takes the older one's place in the line.
            state.adverts[adj.neighbour, frame.origin, to] = frame
        else:
            if precedence is None:
                precedence = _control_precedence(frame)
            state.control.append((adj.neighbour, frame, to, precedence))

    def drop_adverts(self, neighbour: int, origin: int, seq: int) -> None:
        """`neighbour` sent us `origin`'s advert `seq`, so it holds it: ours of that origin
        waiting for it, if no newer, need not go."""
        for state in self.links.values():
            waiting = state.adverts.get((neighbour, origin, None))
            if waiting is not None and not seq_newer(waiting.lsa_seq, seq):
                del state.adverts[neighbour, origin, None]

    def hello(
        self, adj: Adjacency, now: float, *, reply: bool, restarted: bool = False,
        to: str | None = None, room: bool = False, silent: bool = False,
    ) -> None:  # fmt: skip
        now_ms = int(now * 1000) & U32
        held = int((now - adj.last_hello_at) * 1000) & U32 if adj.last_hello_ms else 0
        flags = HelloFlags.REPLY_REQUESTED if reply else HelloFlags.NONE
        if restarted:
            flags |= HelloFlags.RESTARTED
        if room:
            flags |= HelloFlags.ROOM
        if silent:
            flags |= HelloFlags.SILENT
        loss = round(adj.rx_loss * 1000)
        frame = HelloFrame(self.me, 0, now_ms, adj.last_hello_ms, held, loss, flags)
        adj.told_loss = loss / 1000
        self.control(adj, frame, to)

    # ------------------------------------------------------------------ sending
    def transmit(self, now: float) -> list[Transmit]:
        out: list[Transmit] = []
        if self._ack_due is not None and self._ack_due <= now:
            self._flush_acks()
        ready = self._ready
        for name, state in self.links.items():
            if state.control or ready[name] or state.adverts:  # most turns: on one link
                self._drain_link(state, now, out)
        return out

    def _flush_acks(self) -> None:
        self._ack_due = None
        for neighbour in set(self._acks) | set(self._frag_reports):
            adj = self.best_link(neighbour)
            acks = self._acks.pop(neighbour, [])
            reports = self._frag_reports.pop(neighbour, [])
            if adj is None:
                continue
            room = adj.profile.mtu - ACK_FRAME_OVERHEAD
            per_frame = max(1, min(ACKS_PER_FRAME, room // ACK_ENTRY_BYTES))
            for start in range(0, len(acks), per_frame):
                frame = AckFrame(self.me, 0, tuple(acks[start : start + per_frame]))
                urgent = not self._urgent_acks.isdisjoint(frame.acks)
                self.control(adj, frame, precedence=Precedence.FLASH if urgent else None)
            for report in reports:
                # A map longer than the link allows is cut: fragments past its end count
                # as missing and are sent again, which costs bandwidth but never a message.
                bitmap = report.bitmap[: max(1, room - ACK_ENTRY_BYTES - 3)]
                self.control(adj, AckFrame(self.me, 0, (), (FragState(report.mid, bitmap),)))
        self._urgent_acks.clear()

    def _drain_link(self, state: _LinkState, now: float, out: list[Transmit]) -> None:
        name = state.spec.name
        if name in self.silent:
            # Emission control: only the hellos that announce it go; the rest again after.
            last = [c for c in state.control if _announces_silence(c[1])]
            state.control.clear()
            state.control.extend(last)
            state.adverts.clear()
            if not last:
                return
        while state.control:
            neighbour, frame, to, precedence = state.control.popleft()
            adj = self.neighbours.get(neighbour, name)
            if adj is not None and (to or adj.peer) is not None:
                if type(frame) is HelloFrame:  # its count of what went before, as it leaves
                    frame = _counted(frame, state.sent.get(neighbour, 0) & U32)
                self._emit(state, adj, encode_frame, frame, now, out, to, precedence=precedence)
        while state.busy_until <= now + BURST_SECONDS:
            picked = self._pick(name)
            if state.adverts and _advert_first(state, picked):
                (neighbour, origin, to), frame = next(iter(state.adverts.items()))
                del state.adverts[neighbour, origin, to]
                adj = self.neighbours.get(neighbour, name)
                if adj is not None and (to or adj.peer) is not None:
                    advert = CONTROL_PRECEDENCE[RouteFrame]
                    self._emit(state, adj, encode_frame, frame, now, out, to, precedence=advert)
                continue
            if picked is None:
                return
            adj, queue, item, rival = picked
            if queue.body(item) is None:
                queue.remove(item.mid, Input.DROPPED)  # no longer stored: nothing to send
                continue
            self._emit_piece(state, adj, queue, item, rival, now, out)

    def _pick(self, link: str) -> tuple[Adjacency, NeighbourQueue, Outgoing, int] | None:
        """The most urgent message handed to `link`, among the neighbours ready there, and
        the highest precedence waiting there for any other neighbour (-1: none), which no
        message batched behind the chosen one may fall below."""
        best: tuple[Adjacency, NeighbourQueue, Outgoing] | None = None
        best_rank = (0, 0, 0)
        rival = -1
        for neighbour in self._ready[link]:
            queue = self.queues[neighbour]
            item = queue.peek(link)
            adj = self.neighbours.get(neighbour, link)
            if item is None or adj is None or adj.peer is None:
                continue
            rank = (-item.precedence, item.created, neighbour)
            if best is None or rank < best_rank:
                if best is not None:
                    rival = max(rival, best[2].precedence)
                best, best_rank = (adj, queue, item), rank
            else:
                rival = max(rival, item.precedence)
        return None if best is None else (*best, rival)

    def _window_open(self, queue: NeighbourQueue, item: Outgoing) -> bool:
        """Room in the neighbour's window; FLASH and OVERRIDE may use twice as much, so a
        window full of routine traffic delays them by one acknowledgement at most."""
        window = self.config.window * (2 if item.precedence >= Precedence.FLASH else 1)
        return len(queue.in_flight) < window or item.mid in queue.in_flight

    def _emit_piece(
        self, state: _LinkState, adj: Adjacency, queue: NeighbourQueue, item: Outgoing,
        rival: int, now: float, out: list[Transmit],
    ) -> None:  # fmt: skip
        """One turn on the link: the whole message, alone in a DATA frame or leading a BATCH
        of the next ones for the same neighbour (`_batch_behind`), or its next fragment; in
        a NET or NET_FRAG frame when other neighbours on the link wait for the same
        (`_net_members`)."""
        mtu = state.spec.profile.mtu
        net = len(self._ready[state.spec.name]) > 1  # a net: other members may want it too
        reserve = self._net_reserve(state, adj, item) if net and _first_turn(adj, item) else 0
        self._take_turn(adj, item, mtu, now, reserve)
        if item.chunk_size:
            index = item.to_send.pop(0)
            frame = FragFrame(
                self.me, 0, item.wire_mid, index, item.fragment_count, item.chunk(index)
            )
            members = self._net_members(state, adj, item, now, index) if net else []
            if members:
                members.insert(0, (adj, queue, item))
                size = self._emit_net(state, members, frame, now, out)
                finished = [m for m in members if not m[2].to_send]
            else:
                size = self._emit(
                    state, adj, encode_frame, frame, now, out, precedence=item.precedence
                )
                finished = [(adj, queue, item)] if not item.to_send else []
            for member, member_queue, done in finished:
                member_queue.sent_all(done, now, _NOT_ARMED)
                self._arm(state, member, member_queue, (done,), size, now)
            return
        item.to_send.clear()
        queue.sent_all(item, now, _NOT_ARMED)
        members = self._net_members(state, adj, item, now) if net else []
        if members:
            members.insert(0, (adj, queue, item))
            size = self._emit_net(state, members, item.loaded(), now, out)
            for member, member_queue, taken in members:
                self._arm(state, member, member_queue, (taken,), size, now)
            return
        batch = self._batch_behind(state, adj, queue, item, rival, now)
        if batch:
            batch.insert(0, item)
            encoded = [part.loaded() for part in batch]
            highest = max(part.precedence for part in batch)
            size = self._emit(
                state, adj, self._encode_batch, encoded, now, out, precedence=highest
            )
            self.stats.link(adj.link).batched += len(batch)
        else:
            size = self._emit(
                state, adj, self._encode_data, item.loaded(), now, out,
                precedence=item.precedence,
            )  # fmt: skip
            batch = [item]
        self._arm(state, adj, queue, batch, size, now)

    def _take_turn(
        self, adj: Adjacency, item: Outgoing, mtu: int, now: float, reserve: int = 0
    ) -> None:
        """Plan `item` for this link on its first turn there, its fragments `reserve` bytes
        short of the most the MTU allows (room for a NET_FRAG frame's receivers); count it
        if sent before."""
        if _first_turn(adj, item):
            if item.link != adj.link:
                item.tries_here, item.first_here = 0, now
            item.link = adj.link
            fits = item.size + DATA_OVERHEAD <= mtu
            item.plan(0 if fits else mtu - FRAG_OVERHEAD - reserve)
        if item.attempts:
            self.stats.link(adj.link).retransmissions += 1

    def _batch_behind(
        self, state: _LinkState, adj: Adjacency, queue: NeighbourQueue, head: Outgoing,
        rival: int, now: float,
    ) -> list[Outgoing]:  # fmt: skip
        """The messages that follow `head` (already taken) for the same neighbour on this
        link, ready now, that fit one frame with it: each whole, in turn order, within the
        window, none of lower precedence than what waits there for another neighbour.
        Each is taken (in flight) as it is chosen; nothing waits for a batch to fill."""
        link = state.spec.name
        room = state.spec.profile.mtu - BATCH_OVERHEAD - head.size
        batch: list[Outgoing] = []
        while room >= MIN_MESSAGE_BYTES and len(batch) < MAX_BATCH - 1:
            item = queue.peek(link)
            if (
                item is None or item.precedence < rival or item.size > room
                or not self._window_open(queue, item)
            ):  # fmt: skip
                break
            if queue.body(item) is None:
                queue.remove(item.mid, Input.DROPPED)  # no longer stored: nothing to send
                continue
            self._take_turn(adj, item, state.spec.profile.mtu, now)
            if item.chunk_size:
                break  # its plan on this link is fragments (it cannot be: it fits)
            item.to_send.clear()
            queue.sent_all(item, now, _NOT_ARMED)
            batch.append(item)
            room -= item.size
        return batch

    def _net_reserve(self, state: _LinkState, adj: Adjacency, head: Outgoing) -> int:
        """Bytes a NET_FRAG frame's receivers take, for every other neighbour on this link
        waiting for `head` too: fragments planned that much shorter leave room for them."""
        link = state.spec.name
        others = 0
        for neighbour in self._ready[link]:
            if neighbour != adj.neighbour:
                item = self.queues[neighbour].waiting.get(head.mid)
                others += item is not None and item.via == link
        others = min(others, MAX_NET_RECEIVERS - 1)
        return NET_OVERHEAD + others * NET_ENTRY_BYTES if others else 0

    def _net_members(
        self, state: _LinkState, adj: Adjacency, head: Outgoing, now: float,
        index: int | None = None,
    ) -> list[tuple[Adjacency, NeighbourQueue, Outgoing]]:  # fmt: skip
        """The other neighbours on this link that wait for the very message `head` is
        (already taken), ready now, or with `index` for its fragment `index` next (planned
        in the same pieces): they hear it in the same transmission, a NET or NET_FRAG frame,
        each with its own counter, tag, acknowledgement and retransmission. A group message
        on a radio net is so one transmission, not one per member (docs/engine.md, "One copy
        for a net"). Each is taken as it is chosen (its piece off its list; in flight when
        whole), as far as the frame fits."""
        link = state.spec.name
        mtu = state.spec.profile.mtu
        body = head.loaded()
        if index is None:
            room = mtu - DATA_OVERHEAD - NET_OVERHEAD - head.size
        else:
            room = mtu - FRAG_OVERHEAD - NET_OVERHEAD - head.chunk_size
        epoch = self._epoch_for(now)
        members: list[tuple[Adjacency, NeighbourQueue, Outgoing]] = []
        for neighbour in sorted(self._ready[link]):
            if room < NET_ENTRY_BYTES or len(members) + 1 >= MAX_NET_RECEIVERS:
                break
            if neighbour == adj.neighbour:
                continue
            queue = self.queues[neighbour]
            item = queue.waiting.get(head.mid)
            if (
                item is None or item.via != link or queue.blocked(item)
                or item.wire_mid != head.wire_mid or not self._window_open(queue, item)
            ):  # fmt: skip
                continue
            member = self.neighbours.get(neighbour, link)
            if (
                member is None
                or member.peer is None
                or not self.guard.can_protect(neighbour, epoch)
            ):
                continue
            if queue.body(item) != body:  # another encoding under the same id: its own frame
                continue
            if index is None:
                self._take_turn(member, item, mtu, now)
                if item.chunk_size:
                    continue  # cannot be: it has head's size, which fits
                item.to_send.clear()
                queue.sent_all(item, now, _NOT_ARMED)
            else:
                if not _first_turn(member, item) and not _at_piece(item, head, index):
                    continue  # planned otherwise, or at another piece: its own frames
                self._take_turn(member, item, mtu, now, mtu - FRAG_OVERHEAD - head.chunk_size)
                if not _at_piece(item, head, index):  # planned just now, from its first piece
                    continue
                item.to_send.pop(0)
            members.append((member, queue, item))
            room -= NET_ENTRY_BYTES
        return members

    def _emit_net(
        self, state: _LinkState, members: list[tuple[Adjacency, NeighbourQueue, Outgoing]],
        what: bytes | FragFrame, now: float, out: list[Transmit],
    ) -> int:  # fmt: skip
        """One NET frame of the encoded message `what`, or NET_FRAG frame of the fragment
        `what`, for every member; returns its size on the wire (0: not sent)."""
        epoch = self._epoch_for(now)
        receivers = [(adj.neighbour, self.guard.next_counter(adj.neighbour, epoch))
                     for adj, _, _ in members]  # fmt: skip
        head = members[0][2]
        try:
            if isinstance(what, FragFrame):
                encoded = encode_net_frag(self.me, receivers, what)
            else:
                encoded = encode_net_frame(self.me, receivers, what)
            data = self.guard.protect_net(encoded, [r for r, _ in receivers], epoch)
        except LinkReject:
            return 0
        peers = [adj.peer for adj, _, _ in members if adj.peer is not None]
        out.append(Transmit(state.spec.name, peers[0], data, head.precedence, tuple(peers[1:])))
        for adj, _, _ in members:
            state.sent[adj.neighbour] = state.sent.get(adj.neighbour, 0) + 1
        self._count_sent(state, data, now)
        self.stats.link(state.spec.name).net_copies += len(members)
        return len(data)

    def _arm(
        self, state: _LinkState, adj: Adjacency, queue: NeighbourQueue,
        items: Sequence[Outgoing], size: int, now: float,
    ) -> None:  # fmt: skip
        """Retransmission deadlines for messages whose last piece just went in a frame of
        `size` bytes: each its own, backed off by its own attempts (`sent_all` counted the
        one just made)."""
        backlog = max(0.0, state.busy_until - now)
        timeout = adj.retransmit_timeout(size, self.config.retransmit_floor) + backlog
        ceiling = self.config.retransmit_ceiling
        for item in items:
            wait = min(timeout * 2 ** min(item.attempts - 1, 8), ceiling)
            if item.attempts > 1:
                wait *= _spread(item.mid, item.attempts)
            item.deadline = now + wait
            heapq.heappush(self.retransmit, (item.deadline, queue.neighbour, item.mid))

    def _encode_data(self, encoded_message: bytes, counter: int) -> bytes:
        return encode_data_frame(self.me, counter, encoded_message)

    def _encode_batch(self, encoded_messages: list[bytes], counter: int) -> bytes:
        return encode_batch_frame(self.me, counter, encoded_messages)

    def _emit(
        self, state: _LinkState, adj: Adjacency, encoder: Callable[[_T, int], bytes],
        frame: _T, now: float, out: list[Transmit], to: str | None = None, *,
        precedence: int,
    ) -> int:  # fmt: skip
        """Number, encode, tag and pace one frame, for the air at `precedence`; returns its
        size on the wire."""
        endpoint = to or adj.peer
        if endpoint is None:
            return 0
        epoch = self._epoch_for(now)
        counter = self.guard.next_counter(adj.neighbour, epoch)
        try:
            data = self.guard.protect(encoder(frame, counter), adj.neighbour, epoch)
        except LinkReject:
            return 0
        out.append(Transmit(state.spec.name, endpoint, data, precedence))
        state.sent[adj.neighbour] = state.sent.get(adj.neighbour, 0) + 1
        self._count_sent(state, data, now)
        return len(data)

    def _epoch_for(self, now: float) -> int:
        if now != self._epoch_time:  # one epoch lookup per turn, not per frame
            self._epoch_time, self._epoch = now, self.epoch_at(now)
        return self._epoch

    def _count_sent(self, state: _LinkState, data: bytes, now: float) -> None:
        """A frame of `data` left on the link: counted, and the link paced past it."""
        link_stats = self.stats.link(state.spec.name)
        link_stats.frames_sent += 1
        link_stats.bytes_sent += len(data)
        state.busy_until = max(state.busy_until, now) + len(data) * 8 / state.spec.profile.rate_bps

    # ------------------------------------------------------------------ timers
    def deadlines(self) -> list[float]:
        found = []
        if self._ack_due is not None:
            found.append(self._ack_due)
        head = self._retransmit_head()
        if head is not None:
            found.append(head)
        for name, state in self.links.items():
            # Work waiting only for acknowledgements (window full) needs no timer.
            if state.control or state.adverts or self._ready[name]:
                found.append(state.busy_until - BURST_SECONDS)
        return found

    def resend_now(self, neighbour: int, now: float) -> None:
        """`neighbour` has room again: what it refused is due now, not at its backoff."""
        self._due_now(neighbour, now, lambda item: True)

    def resend_after_silence(self, adj: Adjacency, silent_since: float, now: float) -> None:
        """`adj`'s neighbour is heard again, having been silent there since `silent_since`:
        what went over that link meanwhile, has been resent over it at least once (a
        timeout passed unanswered) and is overdue again goes again now, not at the end of its
        backoff, which a long silence has grown to many seconds (a FLASH lost through a
        platoon's deaf spell of half a minute waited 9 s more after the platoon spoke
        again). Only a copy whose backoff is at most twice the silence: a neighbour that
        speaks but does not hear us (a one-way link) brings a copy forward only after a
        silence of half its backoff."""
        silence, floor = now - silent_since, self.config.retransmit_floor

        def overdue(item: Outgoing) -> bool:
            return (
                item.tries_here >= 2 and item.link == adj.link and item.sent_at > silent_since
                and item.deadline - item.sent_at <= 2 * silence
                # its answer is overdue (the last frame's, unbacked off): a copy sent a
                # moment ago may be on its way
                and now - item.sent_at >= adj.retransmit_timeout(_last_frame(item), floor)
            )  # fmt: skip

        self._due_now(adj.neighbour, now, overdue)

    def _due_now(self, neighbour: int, now: float, which: Callable[[Outgoing], bool]) -> None:
        """Of the messages in flight to `neighbour`, wholly sent and due later, those `which`
        picks are due now."""
        queue = self.queues.get(neighbour)
        if queue is None:
            return
        for item in queue.in_flight.values():
            if item.deadline > now and not item.to_send and which(item):
                item.deadline = now
                heapq.heappush(self.retransmit, (now, neighbour, item.mid))

    def _best_link_for(self, neighbour: int, item: Outgoing) -> str:
        best = self.best_link(neighbour)
        return best.link if best is not None else ""

    def _retransmit_head(self) -> float | None:
        """The first retransmission deadline still standing. Entries of messages
        acknowledged, dropped or re-sent since stay in the heap until they come up; those
        at its head are dropped here, or the engine would wake for each (in an hour of
        the 49-node brigade, 4,662 of 40,400 timer events were such wake-ups)."""
        heap = self.retransmit
        while heap:
            deadline, neighbour, mid = heap[0]
            queue = self.queues.get(neighbour)
            item = queue.in_flight.get(mid) if queue is not None else None
            if queue is not None and item is not None and item.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def retransmit_due(self, now: float) -> None:
        while self.retransmit and self.retransmit[0][0] <= now:
            deadline, neighbour, mid = heapq.heappop(self.retransmit)
            queue = self.queues.get(neighbour)
            item = queue.in_flight.get(mid) if queue is not None else None
            if queue is None or item is None or item.deadline != deadline:
                continue  # acknowledged, dropped or re-sent since
            went = self.neighbours.get(neighbour, item.link)
            if went is not None and suspect(went, item.tries_here, item.first_here):
                self.link_suspect(went, now)
            # A fragmented transfer is probed with its last piece: the receiver answers with
            # an acknowledgement or the map of what it is missing.
            item.to_send = [item.fragment_count - 1] if item.chunk_size else [0]
            queue.push(item, self.link_for(neighbour, item))  # the decision of now, not then


def _spread(mid: MessageId, attempts: int) -> float:
    """0.75..1: how much of its backed-off timeout a resent message waits. Resends at the
    ceiling would otherwise keep one phase: against a jammer on the same period (on 48 of
    every 60 s) every one of them fell in the jammed part, for an hour. A hash of the id
    and the attempt, not a random draw: the engine's random stream stays as it was."""
    h = (mid[0] * 0x9E3779B1 + mid[1] * 0x85EBCA77 + mid[2] * 0xC2B2AE3D) & U32
    h = (h ^ attempts * 0x27D4EB2F) & U32
    h = ((h ^ (h >> 16)) * 0x85EBCA6B) & U32  # MurmurHash3's 32-bit finaliser
    h = ((h ^ (h >> 13)) * 0xC2B2AE35) & U32
    h ^= h >> 16
    return 0.75 + 0.25 * (h & 0xFFFF) / 0xFFFF


def _last_frame(item: Outgoing) -> int:
    """About the size of the frame that carried `item`'s last piece (a fragment's, or the
    whole message's)."""
    return item.chunk_size or item.size


def _first_turn(adj: Adjacency, item: Outgoing) -> bool:
    """`item` is not planned for `adj`'s link yet: its first turn there, or the link changed,
    or everything planned went (sent again: planned afresh)."""
    return item.link != adj.link or not item.to_send


def _at_piece(item: Outgoing, head: Outgoing, index: int) -> bool:
    """`item` is cut in `head`'s pieces and sends piece `index` next."""
    return item.chunk_size == head.chunk_size and item.to_send[0] == index


def _advert_first(state: _LinkState, picked: tuple[object, object, Outgoing, int] | None) -> bool:
    """Whether the link's next turn goes to its first advert rather than to `picked`, the
    most urgent message waiting there. FLASH and OVERRIDE go first, PRIORITY and ROUTINE
    after the adverts, IMMEDIATE and adverts take turns: after a jam every member of a
    net exchanges its whole database with every other, minutes of a 9.6 kbit/s channel,
    and orders an hour old waited behind it until their time to live ran out, while
    adverts still get half the turns however many orders wait."""
    if picked is None:
        return True
    precedence = picked[2].precedence
    if precedence >= Precedence.FLASH:
        return False
    if precedence < Precedence.IMMEDIATE:
        return True
    state.advert_next = not state.advert_next
    return not state.advert_next


def _control_precedence(frame: Frame) -> int:
    return CONTROL_PRECEDENCE.get(type(frame), Precedence.ROUTINE)


def _ignore_adjacency(adj: Adjacency, now: float) -> None:
    """The default for `Transmitter.link_suspect`: a transmitter without an engine."""


def _announces_silence(frame: Frame) -> bool:
    return isinstance(frame, HelloFrame) and bool(frame.flags & HelloFlags.SILENT)


def _counted(hello: HelloFrame, sent: int) -> HelloFrame:
    """`hello` saying that `sent` frames went before it (`dataclasses.replace` costs more)."""
    return HelloFrame(
        hello.sender, hello.counter, hello.time_ms, hello.echo_ms, hello.held_ms,
        hello.rx_loss, hello.flags, sent,
    )  # fmt: skip
