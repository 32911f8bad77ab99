"""The trio driver around the sans-I/O engine: links in, frames out, one timer.

Three kinds of task, and no protocol logic in any of them:

- one reader per link feeds `link.events` to the engine and wakes the pump;
- one pump sleeps until `engine.get_timer()` or a wake-up, runs the timer when it is due,
  then hands `engine.transmit(now)` to the links and drains `engine.next_event()` into log
  lines and notifications for API followers;
- one sender per link performs the sends, so a peer that is slow to take a TCP frame holds
  up its own link and not the node. A sender that falls behind by more than its buffer drops
  the frame and counts it: the engine retransmits what is not acknowledged.

Everything here is single-threaded trio, so the engine and store are only ever touched by one
task at a time without locks.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import trio

from crypto.revocation import Revocation
from crypto.roster import Roster
from tawan.core.engine import Engine, Submission
from tawan.core.events import (
    AdvertTooLarge,
    ClockJumped,
    Delivered,
    Event,
    FrameRejected,
    MessageEvicted,
    MessageExpired,
    MessageRefused,
    NeighbourChanged,
    ReceiptReceived,
    RevocationApplied,
    StoreDegraded,
    StoreRecovered,
    Transmit,
)
from tawan.core.frames import MessageId
from tawan.core.screen import SCREEN_REASONS, FrameScreen
from tawan.core.store import Store
from transports.link import FrameReceived, FrameTooLarge, Link, PeerDown, PeerUnavailable, PeerUp

READ_BATCH = 256
"""Frames fed to the engine per turn of a link's reader before the pump runs."""

SEND_BUFFER = 16384
"""Frames queued per link before the sender drops (and counts) new ones. The engine paces each
link at its nominal rate, so this only fills when a link is slower than its profile says."""
SEND_FAILURE_REASONS = ("unknown_link", "queue_full", "peer_unavailable", "frame_too_large")
"""Why a frame the engine wanted sent did not leave, reported at 0 before the first."""
THROTTLE_SECONDS = 10.0
"""Lines an outsider can provoke (rejected frames, failed sends) repeat at most this often."""

log = logging.getLogger("tawan.node")

Clock = Callable[[], float]
__all__ = ["Clock", "LinkIo", "Pulse", "Runtime", "Throttle", "format_mid", "kv"]


def kv(**fields: object) -> str:
    """Structured log text: ``key=value`` pairs, values with spaces quoted."""
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not text or any(c in text for c in ' ="'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def format_mid(mid: MessageId) -> str:
    """The text form of a message id used in logs and the API: ``src.epoch.seq``."""
    return ".".join(str(part) for part in mid)


class Pulse:
    """Wakes every task waiting for "something new" (inbox, receipts); never misses a fire.

    A waiter checks its source, then waits; trio only switches tasks at an await, so no fire
    can slip in between the check and the wait.
    """

    def __init__(self) -> None:
        self._event = trio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = trio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class Throttle:
    """At most one log line per key per `interval`; the next one tells how many were skipped.

    Keys are bounded (link and reason, never the peer), so a flood of forged frames costs a
    line every `interval` seconds, not a line per frame.
    """

    def __init__(self, interval: float = THROTTLE_SECONDS) -> None:
        self.interval = interval
        self._state: dict[str, tuple[float, int]] = {}

    def allow(self, key: str, now: float) -> int | None:
        """None: stay quiet; otherwise the number of lines skipped since the last one."""
        last, skipped = self._state.get(key, (-math.inf, 0))
        if now - last < self.interval:
            self._state[key] = (last, skipped + 1)
            return None
        self._state[key] = (now, 0)
        return skipped


@dataclass(frozen=True, slots=True)
class LinkIo:
    """What one link lost outside the engine: frames dropped before the engine saw them, by
    reason, and frames the engine wanted sent that did not leave, by reason."""

    link: str
    drops: Mapping[str, int]
    send_failures: Mapping[str, int]
    receive_buffer_bytes: int | None  # granted by the operating system; None: not a socket


class Runtime:
    """Drive `engine` over `links` until cancelled; `clock` gives the engine's `now`.

    Each link gets a `FrameScreen` of the engine's roster and configured peers, so that junk
    is dropped in the link's receive loop, before it is queued, decoded or authenticated.
    """

    def __init__(
        self,
        engine: Engine,
        store: Store,
        links: Mapping[str, Link],
        *,
        clock: Clock = time.time,
    ) -> None:
        self.engine = engine
        self.store = store
        self.links = dict(links)
        self.clock = clock
        self.inbox_changed = Pulse()
        self.receipts_changed = Pulse()
        self._inbox_news = False
        self._receipts_news = False
        self.send_failures: Counter[str] = Counter()  # by "link/reason"
        self.after_timer: Callable[[], None] | None = None  # e.g. persist advanced keys
        self.observers: list[Callable[[Event], None]] = []  # see every event (metrics)
        self._throttle = Throttle()
        self._wake = trio.Event()
        self._senders: dict[str, trio.MemorySendChannel[Transmit]] = {}
        for link in self.links.values():
            link.set_screen(self._screen_for(link.name))

    def _screen_for(self, link: str) -> FrameScreen:
        expected = {
            peer.endpoint: peer.node
            for spec in self.engine.tx.specs()
            if spec.name == link
            for peer in spec.peers
            if peer.endpoint is not None
        }

        def known(address: int) -> bool:
            return self.roster.node_at(address) is not None  # the roster in force now

        return FrameScreen(known, expected)

    @property
    def roster(self) -> Roster:
        """The roster the engine's keys hold now (replaced by `update_roster`)."""
        return self.engine.keys.roster

    def name_of(self, address: int) -> str:
        entry = self.roster.by_address(address)
        return entry.name if entry is not None else str(address)

    def update_roster(self, roster: Roster) -> None:
        """Hand a newer, already verified roster to the engine and to name lookups."""
        self.engine.update_roster(roster)
        log.info(kv(event="roster_updated", version=roster.version))
        self.wake()

    def apply_revocation(self, notice: Revocation) -> bool:
        """A revocation notice from the local API: applied, installed, flooded."""
        applied = self.engine.apply_revocation(notice)
        self.wake()
        return applied

    def wake(self) -> None:
        """Something was fed to the engine: let the pump flush it now."""
        self._wake.set()

    def submit(self, submission: Submission) -> MessageId:
        """Submit a message from the local application (raises SubmitError on misuse)."""
        mid = self.engine.submit(submission, self.clock())
        if log.isEnabledFor(logging.DEBUG):  # one line per message: a trace, not the log
            log.debug(
                kv(event="submitted", mid=format_mid(mid), to=self.name_of(submission.dst),
                   precedence=submission.precedence.name.lower(),
                   size=len(submission.payload))
            )  # fmt: skip
        self.wake()
        return mid

    def link_io(self) -> tuple[LinkIo, ...]:
        """Every link's drops and send failures, each reason it may give present from 0."""
        failures = {name: dict.fromkeys(SEND_FAILURE_REASONS, 0) for name in self.links}
        for key, count in self.send_failures.items():
            link, _, reason = key.rpartition("/")
            failures.setdefault(link, {})[reason] = count
        return tuple(
            LinkIo(name, dict.fromkeys(SCREEN_REASONS, 0) | link.drop_counts(),
                   failures.get(name, {}), link.receive_buffer_bytes)
            for name, link in self.links.items()
        )  # fmt: skip

    def status(self) -> dict[str, object]:
        status = self.engine.status(self.clock())
        status["send_failures"] = dict(self.send_failures)
        io = self.link_io()
        status["drops"] = {k.link: {r: n for r, n in k.drops.items() if n} for k in io}
        status["receive_buffer_bytes"] = {k.link: k.receive_buffer_bytes for k in io}
        return status

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every link (bound when this reports started), then serve until cancelled."""
        async with trio.open_nursery() as nursery:
            for name, link in self.links.items():
                send, receive = trio.open_memory_channel[Transmit](SEND_BUFFER)
                self._senders[name] = send
                nursery.start_soon(self._send_loop, link, receive)
                nursery.start_soon(self._read_loop, link)
                try:
                    await nursery.start(link.run)
                except OSError as exc:  # e.g. the port is taken: say which link
                    raise OSError(exc.errno, f"link {name}: {exc.strerror or exc}") from exc
                log.info(kv(event="link_started", link=name, profile=link.profile.name))
            nursery.start_soon(self._pump)
            task_status.started()

    async def _read_loop(self, link: Link) -> None:
        async for first in link.events:
            self._feed(link, first)
            # Everything already waiting goes in before the pump runs: one batch, one commit.
            for _ in range(READ_BATCH):
                try:
                    event = link.events.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                self._feed(link, event)
            self._wake.set()

    def _feed(self, link: Link, event: FrameReceived | PeerUp | PeerDown) -> None:
        now = self.clock()
        if isinstance(event, FrameReceived):
            self.engine.receive(link.name, event.peer, event.data, now)
        elif isinstance(event, PeerUp):
            log.info(kv(event="peer_up", link=link.name, peer=event.peer))
            self.engine.peer_up(link.name, event.peer, now)
        elif isinstance(event, PeerDown):
            log.info(kv(event="peer_down", link=link.name, peer=event.peer))
            self.engine.peer_down(link.name, event.peer, now)

    async def _pump(self) -> None:
        while True:
            now = self.clock()
            deadline = self.engine.get_timer()
            if deadline is not None and deadline <= now:
                self.engine.handle_timer(now)
                if self.after_timer is not None:
                    self.after_timer()
            self.flush(now)
            deadline = self.engine.get_timer()
            delay = math.inf if deadline is None else max(0.0, deadline - self.clock())
            with trio.move_on_after(delay):
                await self._wake.wait()
            self._wake = trio.Event()

    def flush(self, now: float) -> None:
        """Queue what the engine wants sent, then report what it has to say."""
        for transmit in _one_per_peer(self.engine.transmit(now)):
            if self._send_at_once(transmit):
                continue
            sender = self._senders.get(transmit.link)
            if sender is None:
                self._send_failed(transmit.link, transmit.peer, "unknown_link", "not configured")
                continue
            try:
                sender.send_nowait(transmit)
            except trio.WouldBlock:
                self._send_failed(transmit.link, transmit.peer, "queue_full", "sender behind")
        while (event := self.engine.next_event()) is not None:
            self._report(event)
        self._tell_followers()

    def _tell_followers(self) -> None:
        """An application sees a message only once it is durable: were the node to crash
        after showing it, the message would arrive again and be shown twice."""
        if self.store.dirty:
            return
        if self._inbox_news:
            self._inbox_news = False
            self.inbox_changed.fire()
        if self._receipts_news:
            self._receipts_news = False
            self.receipts_changed.fire()

    def durable(self, since: int | None = None) -> bool:
        """Commit what was accepted, e.g. before the API acknowledges submissions; False
        when it is not on disk (the store cannot write: `store_problem`). `since`: the
        store's `rollbacks` when the writes to answer for began (`Engine.commit`)."""
        done = self.engine.commit(since=since)
        self._tell_followers()
        return done

    def store_problem(self) -> str | None:
        """Why the store cannot write now, in one line; None when it can."""
        problem = self.engine.store_problem
        return None if problem is None else str(problem)

    def _send_at_once(self, transmit: Transmit) -> bool:
        """Datagram links send without a hop through the sender task."""
        link = self.links.get(transmit.link)
        if link is None:
            return False
        try:
            return link.send_nowait(transmit.peer, transmit.data)
        except (PeerUnavailable, FrameTooLarge) as exc:
            self._link_refused(link.name, transmit.peer, exc)
        return True

    async def _send_loop(self, link: Link, frames: trio.MemoryReceiveChannel[Transmit]) -> None:
        async for transmit in frames:
            try:
                await link.send(transmit.peer, transmit.data, precedence=transmit.precedence)
            except (PeerUnavailable, FrameTooLarge) as exc:
                self._link_refused(link.name, transmit.peer, exc)

    def _link_refused(self, link: str, peer: str, exc: PeerUnavailable | FrameTooLarge) -> None:
        if isinstance(exc, PeerUnavailable):
            self._send_failed(link, peer, "peer_unavailable", exc.reason)
        else:
            self._send_failed(link, peer, "frame_too_large", str(exc))

    def _send_failed(self, link: str, peer: str, reason: str, detail: str) -> None:
        key = f"{link}/{reason}"
        self.send_failures[key] += 1
        if (skipped := self._throttle.allow(f"send_failed/{key}", self.clock())) is not None:
            log.info(kv(event="send_failed", link=link, peer=peer, reason=reason,
                        detail=detail, skipped=skipped))  # fmt: skip

    def _report(self, event: Event) -> None:
        """One log line per event worth knowing; wake API followers on news for them."""
        for observe in self.observers:
            observe(event)
        if isinstance(event, Delivered):
            self._inbox_news = True  # told to followers once committed (see `flush`)
        elif isinstance(event, ReceiptReceived):
            self._receipts_news = True
        elif isinstance(event, FrameRejected):
            self._log_throttled(f"frame_rejected/{event.link}/{event.reason}", logging.INFO, event)
            return
        if isinstance(event, AdvertTooLarge):
            # Each advert again finds the link too small: one line per link per interval.
            self._log_throttled(f"advert_too_large/{event.link}", logging.WARNING, event)
            return
        if isinstance(event, StoreDegraded | StoreRecovered):
            # Once per change of state, not per frame refused meanwhile (those are counted).
            degraded = isinstance(event, StoreDegraded)
            log.log(logging.WARNING if degraded else logging.INFO, kv(**self._fields(event)))
            return
        if isinstance(event, MessageRefused):
            # A refused neighbour retries: one line per reason and precedence per interval
            # (bounded keys), not one per attempt; the metrics count every refusal.
            key = f"refused/{event.reason}/{event.precedence.name.lower()}"
            self._log_throttled(key, logging.WARNING, event)
            return
        if isinstance(event, MessageEvicted | RevocationApplied | ClockJumped):
            level = logging.WARNING
        elif isinstance(event, Delivered):
            level = logging.DEBUG  # one line per message: a trace, not the log
        else:
            level = logging.INFO
        if log.isEnabledFor(level):
            log.log(level, kv(**self._fields(event)))

    def _log_throttled(self, key: str, level: int, event: Event) -> None:
        """One line for `event` at `level`, unless one of `key` went less than
        THROTTLE_SECONDS ago; it says how many were left out since (`skipped`)."""
        if (skipped := self._throttle.allow(key, self.clock())) is not None:
            log.log(level, kv(**self._fields(event), skipped=skipped))

    def _fields(self, event: Event) -> dict[str, object]:
        """What a log line says about `event`, names instead of addresses."""
        if isinstance(event, Delivered):
            return {"event": "delivered", "mid": format_mid(event.mid),
                    "src": self.name_of(event.src), "precedence": event.precedence.name.lower(),
                    "latency_s": f"{event.latency:.3f}", "size": len(event.payload),
                    "signed": event.signed}  # fmt: skip
        if isinstance(event, ReceiptReceived):
            return {"event": "receipt", "mid": format_mid(event.mid), "kind": event.kind,
                    "reporter": self.name_of(event.reporter)}  # fmt: skip
        if isinstance(event, NeighbourChanged):
            return {"event": "neighbour_up" if event.up else "neighbour_down",
                    "link": event.link, "neighbour": self.name_of(event.neighbour)}  # fmt: skip
        if isinstance(event, FrameRejected):
            return {"event": "frame_rejected", "link": event.link, "peer": event.peer,
                    "reason": event.reason, "detail": event.detail}  # fmt: skip
        if isinstance(event, RevocationApplied):
            came = "api" if event.came_from is None else self.name_of(event.came_from)
            return {"event": "revocation_applied", "version": event.version,
                    "revoked": ",".join(self.name_of(a) for a in event.revoked),
                    "from": came}  # fmt: skip
        if isinstance(event, StoreDegraded):
            return {"event": "store_unwritable", "reason": event.reason,
                    "custody": "refused until there is room", "detail": event.detail}  # fmt: skip
        if isinstance(event, StoreRecovered):
            return {"event": "store_writable", "custody": "taken again",
                    "after_s": f"{event.seconds:.1f}"}  # fmt: skip
        if isinstance(event, AdvertTooLarge):
            return {"event": "advert_too_large", "link": event.link,
                    "origin": self.name_of(event.origin), "size": event.size,
                    "mtu": event.mtu, "sent": "no"}  # fmt: skip
        if isinstance(event, ClockJumped):
            return {"event": "clock_jumped", "from_epoch": event.from_epoch,
                    "to_epoch": event.to_epoch, "erasure": "held for an epoch"}  # fmt: skip
        fields: dict[str, object] = {"mid": format_mid(event.mid),
                                     "precedence": event.precedence.name.lower()}  # fmt: skip
        if isinstance(event, MessageExpired):
            return {"event": "expired", **fields, "where": event.where}
        if isinstance(event, MessageEvicted):
            return {"event": "evicted", **fields, "size": event.size,
                    "src": self.name_of(event.src),
                    "for_precedence": event.for_precedence.name.lower()}  # fmt: skip
        return {"event": "refused", **fields, "reason": event.reason, "detail": event.detail}


def _one_per_peer(transmits: list[Transmit]) -> Iterator[Transmit]:
    """A frame for several peers (a NET frame, `Transmit.also`) as one frame to each: the
    links send datagrams and streams to one endpoint at a time. Each receiver finds its own
    entry in it; on a broadcast radio the others would drop it as not addressed to them."""
    for transmit in transmits:
        if not transmit.also:
            yield transmit
            continue
        for peer in transmit.peers:
            yield Transmit(transmit.link, peer, transmit.data, transmit.precedence)
