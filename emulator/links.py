"""Link models: when a frame an engine sends arrives, if it does (sans-I/O, seeded).

The emulator hands every frame to `LinkModel.send(sender, receiver, size, now)` and gets a
`Sent` back: the frame's air time and its arrival at the addressed receiver, or why it was
dropped. A model has no clock: `now` is the emulator's virtual time. The fault plan gives
each link its whole schedule of conditions up front (`set_schedule`), so a frame is judged
by the conditions of its air time, not of the moment it was handed over: one that waits in
the modem queue past a cut, or is still on the air when a window closes, is lost; one
queued before a repair and sent after it goes through. Its rate is the one in force when it
is handed over.

Two shapes:

- a point-to-point link: two directions, each sender with its own transmitter (full
  duplex), frames of one sender on the air one after another;
- a radio net (`shared`): one half-duplex channel for every member. While a frame is on the
  air no other frame is (no spatial reuse); a frame is heard by every member within
  `range_km` of its sender. With the bearer's `priority_access` (the catalogue's nets), the
  channel goes to the frame of highest precedence waiting at any member when it becomes
  free, in the order handed over among equals, and a frame on the air is never cut: such a
  frame's fate is decided when it gets the channel (`grant`), not when it is handed over.
  Without it, frames take the channel in the order they were sent (FIFO).

Each send goes through: MTU, a silenced sender (EMCON), the sender's bounded queue, air time
(serialisation at `rate_bps` times the direction's rate factor), range, down (a cut, an
outage, a node destroyed, a LEO handover gap), loss (independent `loss`, the direction's
Gilbert-Elliott chain and the faults' loss, combined as 1-(1-a)(1-b)(1-c)), then the
propagation delay plus extra delay plus uniform jitter.

Every send draws exactly three numbers from the link's random source (chain step, loss,
jitter) before anything is decided, and every send steps its direction's chain: two runs
that differ only in conditions see the same draws frame by frame (a frame that waits for a
priority channel keeps its draws until it gets it).

A frame for several receivers (a NET frame, `Transmit.also`) is sent to the first of them
and takes the air once; each other receiver then hears that same air time (`heard`),
drawing its own three numbers, stepping its own direction's chain, when the frame's air
time is known (at once, or when a priority channel grants it). Its bytes and air time are
counted once, under the first receiver; each further receiver's arrival or drop (range,
down, lost) is counted in `SenderStats.delivered` and `dropped` like a frame's.
"""

from __future__ import annotations

import dataclasses
import math
import random
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from topologies.bearers import Bearer, bearer
from topologies.scenario import Scenario

Position = tuple[float, float]

DROP_REASONS = ("mtu", "queue", "silenced", "down", "lost", "range")
"""Why a frame did not arrive (`Sent.dropped`), in the order they are checked."""


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one frame: its air time and when it reached the receiver.

    `start`/`end`: when its first and last bit left the sender (equal when it never went on
    the air: "mtu", "silenced", "queue"). `arrival` is None exactly when `dropped` is set,
    or when the frame `waiting` for a priority channel: then `end` is when it would leave
    if nothing of higher precedence came first, and its fate comes from `grant`."""

    arrival: float | None
    start: float
    end: float
    dropped: str | None
    waiting: bool = False


@dataclass(slots=True)
class _Waiting:
    """A frame admitted to a priority channel, waiting for it (draws already made)."""

    precedence: int
    sender: str
    receiver: str
    size: int
    air: float  # at the rate in force when it was handed over
    bad: bool
    u_loss: float
    u_jitter: float
    tag: object
    end: float  # when it would leave if nothing of higher precedence came first


@dataclass(frozen=True, slots=True)
class Conditions:
    """What the faults in force do to one direction (or to the whole link)."""

    rate_factor: float = 1.0
    """The share of the nominal rate left (throttling multiplies)."""
    extra_delay_s: float = 0.0
    """Added to the propagation delay (latency faults add)."""
    loss: float = 0.0
    """Fault loss (jamming, loss bursts), on top of the bearer's own."""
    up: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.rate_factor <= 1:
            raise ValueError(
                f"Conditions.rate_factor: expected 0 < f <= 1, found {self.rate_factor}"
            )
        if not self.extra_delay_s >= 0:
            raise ValueError(
                f"Conditions.extra_delay_s: expected >= 0, found {self.extra_delay_s}"
            )
        if not 0 <= self.loss <= 1:
            raise ValueError(f"Conditions.loss: expected a chance 0..1, found {self.loss}")

    def combine(self, other: Conditions) -> Conditions:
        """Both at once: rates multiply, delays add, losses combine, down wins."""
        return Conditions(
            self.rate_factor * other.rate_factor,
            self.extra_delay_s + other.extra_delay_s,
            1 - (1 - self.loss) * (1 - other.loss),
            self.up and other.up,
        )


NOMINAL = Conditions()


@dataclass(frozen=True, slots=True)
class LinkState:
    """Every condition of one link at one moment, as the fault plan sets it.

    `directions[sender][receiver]`, where present, replaces `default` for that direction
    (it already includes `default`); `down_nodes` are members whose frames, both ways, go
    nowhere (destroyed or crashed); `silenced` members may not transmit (EMCON)."""

    default: Conditions = NOMINAL
    directions: Mapping[str, Mapping[str, Conditions]] = field(default_factory=dict)
    silenced: frozenset[str] = frozenset()
    down_nodes: frozenset[str] = frozenset()

    def of(self, sender: str, receiver: str) -> Conditions:
        """The conditions of one direction, the node states aside."""
        return self.directions.get(sender, {}).get(receiver, self.default)


NOMINAL_STATE = LinkState()


@dataclass(slots=True)
class SenderStats:
    """One member's counters on one link."""

    offered: int = 0
    """Frames handed to `send`."""
    frames: int = 0
    """Frames that went on the air (dropped later or not)."""
    bytes: int = 0
    air_s: float = 0.0
    delivered: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_REASONS, 0))


@dataclass(slots=True)
class _Sender:
    stats: SenderStats
    waiting: deque[tuple[float, int]]
    """(start, size) of this sender's frames admitted but maybe not yet on the air."""
    waiting_bytes: int = 0
    free_at: float = 0.0
    """Point-to-point: when this sender's transmitter is free."""


class LinkModel:
    """One link or radio net: `send` turns a frame into a `Sent`."""

    __slots__ = (
        "_bad",
        "_chains",
        "_channel_free",
        "_delay",
        "_gap",
        "_hears",
        "_jitter",
        "_loss",
        "_loss_bad",
        "_loss_good",
        "_mtu",
        "_p",
        "_period",
        "_priority",
        "_pushed",
        "_queue_bytes",
        "_r",
        "_rate",
        "_rng",
        "_senders",
        "_state",
        "_states",
        "_times",
        "_waiting",
        "beam",
        "bearer",
        "members",
        "name",
        "positions",
        "shared",
    )

    def __init__(
        self,
        name: str,
        bearer: Bearer,
        members: tuple[str, ...],
        positions: Mapping[str, Position],
        rng: random.Random,
        *,
        shared: bool = False,
        beam: str | None = None,
    ) -> None:
        if len(set(members)) != len(members) or len(members) < 2:
            raise ValueError(
                f"link {name!r}: expected two or more distinct members, found {members}"
            )
        if not shared and len(members) != 2:
            raise ValueError(
                f"link {name!r}: a point-to-point link has 2 members, found {members}"
            )
        missing = [m for m in members if m not in positions]
        if missing:
            raise ValueError(f"link {name!r}: no position for members {missing}")
        self.name = name
        self.bearer = bearer
        self.members = members
        self.shared = shared
        self.beam = beam
        self.positions = {m: positions[m] for m in members}
        self._rng = rng
        self._rate = float(bearer.rate_bps)
        self._delay = bearer.delay_s
        self._jitter = bearer.jitter_s
        self._loss = bearer.loss
        self._mtu = bearer.mtu
        self._queue_bytes = bearer.queue_bytes
        self._period = bearer.handover_period_s
        self._gap = bearer.handover_gap_s if bearer.handover_period_s > 0 else 0.0
        ge = bearer.bursts
        self._p, self._r = (ge.p, ge.r) if ge else (0.0, 1.0)
        self._loss_good, self._loss_bad = (ge.loss_good, ge.loss_bad) if ge else (0.0, 0.0)
        self._bad = ge is not None  # whether a chain is kept at all
        self._hears = {m: self._in_range(m) for m in members}
        self._chains: dict[str, dict[str, bool]] = {m: {} for m in members}
        self._senders = {m: _Sender(SenderStats(), deque()) for m in members}
        self._channel_free = 0.0
        self._priority = shared and bearer.priority_access
        self._waiting: list[_Waiting] = []  # priority channel: in the order handed over
        self._pushed: dict[str, float] = {}  # `take_pushed_back`
        self._state = NOMINAL_STATE  # the last state `advance` or `set_state` reached
        self._times: list[float] = [-math.inf]  # the schedule: states[i] from times[i]
        self._states: list[LinkState] = [NOMINAL_STATE]

    def _in_range(self, sender: str) -> frozenset[str]:
        reach = self.bearer.range_km
        return frozenset(
            m
            for m in self.members
            if m != sender and (reach is None or self.distance_km(sender, m) <= reach)
        )

    # ------------------------------------------------------------------ queries
    def distance_km(self, a: str, b: str) -> float:
        (xa, ya), (xb, yb) = self.positions[a], self.positions[b]
        return math.hypot(xa - xb, ya - yb)

    def peers_of(self, node: str) -> tuple[str, ...]:
        """The members `node` can address: those that hear it (in range), in member order."""
        hears = self._hears[node]
        return tuple(m for m in self.members if m in hears)

    def heard_by(self, sender: str) -> tuple[str, ...]:
        """Every member that hears a transmission of `sender` (all of them get the air time;
        loss and faults aside), in member order. On a point-to-point link: the far end."""
        return self.peers_of(sender)

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def stats(self) -> dict[str, SenderStats]:
        """Per-sender counters, by member."""
        return {m: s.stats for m, s in self._senders.items()}

    def set_state(self, state: LinkState) -> None:
        """These conditions from now on, for good (tests; the emulator uses a schedule)."""
        self._state = state
        self._times, self._states = [-math.inf], [state]

    def set_schedule(self, schedule: Sequence[tuple[float, LinkState]]) -> None:
        """The link's conditions over the whole run: each state with the time it starts
        (the first from the start of time), in time order."""
        if not schedule:
            raise ValueError(f"link {self.name!r}: expected at least one state")
        times = [t for t, _ in schedule]
        if times != sorted(times):
            raise ValueError(f"link {self.name!r}: expected states in time order")
        self._times = [-math.inf, *times[1:]]
        self._states = [state for _, state in schedule]
        self._state = self._states[0]

    def state_at(self, t: float) -> LinkState:
        return self._states[bisect_right(self._times, t) - 1]

    def advance(self, t: float) -> None:
        """Note that the run reached `t` (`state` then reads the conditions in force)."""
        self._state = self.state_at(t)

    def _down_during(self, sender: str, receiver: str, start: float, end: float) -> bool:
        """Whether the direction is down, or an end is down, at any moment of [start, end]."""
        times, states = self._times, self._states
        first = bisect_right(times, start) - 1
        last = max(first, bisect_left(times, end) - 1) if end > start else first
        for i in range(first, last + 1):
            state = states[i]
            if (
                not _direction(state, sender, receiver).up
                or sender in state.down_nodes
                or receiver in state.down_nodes
            ):
                return True
        return False

    def in_gap(self, start: float, end: float) -> bool:
        """Whether air time [start, end) overlaps a LEO handover gap [kP, kP+gap), k >= 1."""
        if self._gap <= 0:
            return False
        k = math.ceil(end / self._period) - 1  # the last gap starting before `end`
        return k >= 1 and k * self._period + self._gap > start

    # ------------------------------------------------------------------ the hot path
    def send(
        self, sender: str, receiver: str, size: int, now: float, precedence: int = 0,
        tag: object = None,
    ) -> Sent:  # fmt: skip
        """`sender` hands a frame of `size` bytes for `receiver` to the link at `now`.

        On a priority channel that is busy the frame waits (`Sent.waiting`): `grant` gives
        its fate, with `tag`, when the channel goes to it."""
        rng = self._rng
        u_step, u_loss, u_jitter = rng.random(), rng.random(), rng.random()
        try:
            tx = self._senders[sender]
        except KeyError:
            raise ValueError(f"link {self.name!r}: sender {sender!r} is not a member") from None
        if receiver == sender or receiver not in self._senders:
            raise ValueError(f"link {self.name!r}: expected another member, found {receiver!r}")
        bad = self._bad and self._step_chain(sender, receiver, u_step)  # whatever becomes of it
        stats = tx.stats
        stats.offered += 1
        if size > self._mtu:
            return self._drop(stats, "mtu", now, now)
        scheduled = len(self._times) > 1
        state = self.state_at(now) if scheduled else self._state
        if sender in state.silenced:
            return self._drop(stats, "silenced", now, now)
        if not self._queue_admits(tx, size, now):
            return self._drop(stats, "queue", now, now)
        cond = _direction(state, sender, receiver)
        if self._priority and (self._waiting or now < self._channel_free):
            air = size * 8 / (self._rate * cond.rate_factor)
            return self._wait(tx, sender, receiver, size, air, now, precedence, bad, u_loss,
                              u_jitter, tag)  # fmt: skip
        if self.shared:
            start = now if now > self._channel_free else self._channel_free
            end = start + size * 8 / (self._rate * cond.rate_factor)
            self._channel_free = end
        else:
            start = now if now > tx.free_at else tx.free_at
            end = start + size * 8 / (self._rate * cond.rate_factor)
            tx.free_at = end
        if start > now:
            tx.waiting.append((start, size))
            tx.waiting_bytes += size
        return self._on_air(stats, sender, receiver, size, start, end, now, state, cond, bad,
                            u_loss, u_jitter)  # fmt: skip

    def _on_air(
        self, stats: SenderStats, sender: str, receiver: str, size: int, start: float,
        end: float, now: float, state: LinkState, cond: Conditions, bad: bool, u_loss: float,
        u_jitter: float,
    ) -> Sent:  # fmt: skip
        """The fate of a frame on the air over [start, end), handed over at `now` under
        `state` and `cond`."""
        stats.frames += 1
        stats.bytes += size
        stats.air_s += end - start
        if receiver not in self._hears[sender]:
            return self._drop(stats, "range", start, end)
        scheduled = len(self._times) > 1
        if scheduled and start > now:  # what holds while it is on the air, not when queued
            state = self.state_at(start)
            cond = _direction(state, sender, receiver)
            if sender in state.silenced:
                return self._drop(stats, "silenced", start, start)
        if (
            (self._down_during(sender, receiver, start, end) if scheduled else not cond.up)
            or (not scheduled and (sender in state.down_nodes or receiver in state.down_nodes))
            or (self._gap and self.in_gap(start, end))
        ):
            return self._drop(stats, "down", start, end)
        return self._arrival(stats, start, end, cond, bad, u_loss, u_jitter)

    def _step_chain(self, sender: str, receiver: str, u_step: float) -> bool:
        """Step the direction's Gilbert-Elliott chain: whether it is now in its bad state."""
        chain = self._chains[sender]
        was = chain.get(receiver, False)
        bad = (u_step >= self._r) if was else (u_step < self._p)
        chain[receiver] = bad
        return bad

    def _arrival(
        self, stats: SenderStats, start: float, end: float, cond: Conditions, bad: bool,
        u_loss: float, u_jitter: float,
    ) -> Sent:  # fmt: skip
        """The loss draw of a frame on the air, up at both ends, and its arrival if kept."""
        kept = (1 - self._loss) * (1 - cond.loss)
        if self._bad:
            kept *= 1 - (self._loss_bad if bad else self._loss_good)
        if u_loss >= kept:
            return self._drop(stats, "lost", start, end)
        stats.delivered += 1
        return Sent(
            end + self._delay + cond.extra_delay_s + u_jitter * self._jitter, start, end, None
        )

    def heard(self, sender: str, receiver: str, sent: Sent) -> Sent:
        """The fate at a further `receiver` of a frame whose air time `sent` gave (at the
        first receiver); one that never took the air (mtu, queue, silenced) reaches no one."""
        rng = self._rng
        u_step, u_loss, u_jitter = rng.random(), rng.random(), rng.random()
        if receiver == sender or receiver not in self._senders:
            raise ValueError(f"link {self.name!r}: expected another member, found {receiver!r}")
        stats = self._senders[sender].stats
        if sent.end <= sent.start and sent.dropped is not None:
            return Sent(None, sent.start, sent.end, sent.dropped)
        bad = self._bad and self._step_chain(sender, receiver, u_step)
        start, end = sent.start, sent.end
        if receiver not in self._hears[sender]:
            return self._drop(stats, "range", start, end)
        state = self.state_at(start)
        cond = _direction(state, sender, receiver)
        if self._down_during(sender, receiver, start, end) or (
            self._gap and self.in_gap(start, end)
        ):
            return self._drop(stats, "down", start, end)
        return self._arrival(stats, start, end, cond, bad, u_loss, u_jitter)

    # ------------------------------------------------------------------ priority channel
    def _wait(
        self, tx: _Sender, sender: str, receiver: str, size: int, air: float, now: float,
        precedence: int, bad: bool, u_loss: float, u_jitter: float, tag: object,
    ) -> Sent:  # fmt: skip
        """Admit a frame to wait for the busy priority channel. Its end, if nothing of
        higher precedence comes first, is after the frame on the air and every waiting one
        of its precedence or higher; each waiting one of lower precedence now leaves `air`
        later (`take_pushed_back`)."""
        end = max(now, self._channel_free) + air
        for other in self._waiting:
            if other.precedence >= precedence:
                end += other.air
            else:
                other.end += air
                pushed = self._pushed
                pushed[other.sender] = max(pushed.get(other.sender, 0.0), other.end)
        self._waiting.append(
            _Waiting(precedence, sender, receiver, size, air, bad, u_loss, u_jitter, tag, end)
        )
        tx.waiting_bytes += size
        return Sent(None, now, end, None, waiting=True)

    @property
    def next_grant(self) -> float | None:
        """When the channel is free for the next waiting frame (None: none waits)."""
        return self._channel_free if self._waiting else None

    def grant(self, now: float) -> tuple[object, Sent] | None:
        """The channel is free at `now` (`next_grant`): the waiting frame of highest
        precedence, the first handed over among equals, goes on the air. Its tag and fate;
        None when none waits. One silenced by then takes no air and the next goes."""
        waiting = self._waiting
        if waiting:
            at = 0
            for i, other in enumerate(waiting):  # in the order handed over: the first of the
                if other.precedence > waiting[at].precedence:  # highest goes
                    at = i
            best = waiting.pop(at)
            tx = self._senders[best.sender]
            tx.waiting_bytes -= best.size
            state = self.state_at(now)
            if best.sender in state.silenced:  # EMCON began while it waited: never on the air
                return best.tag, self._drop(tx.stats, "silenced", now, now)
            cond = _direction(state, best.sender, best.receiver)
            end = now + best.air
            self._channel_free = end
            sent = self._on_air(tx.stats, best.sender, best.receiver, best.size, now, end, now,
                                state, cond, best.bad, best.u_loss, best.u_jitter)  # fmt: skip
            return best.tag, sent
        return None

    def take_pushed_back(self) -> dict[str, float]:
        """Members whose waiting frames a frame of higher precedence put behind it since the
        last call, each with when its last waiting frame would now leave."""
        pushed, self._pushed = self._pushed, {}
        return pushed

    def _queue_admits(self, tx: _Sender, size: int, now: float) -> bool:
        """Whether the sender's frames not yet on the air, plus this one, fit its queue."""
        waiting = tx.waiting
        while waiting and waiting[0][0] <= now:  # on the air by now: out of the queue
            tx.waiting_bytes -= waiting.popleft()[1]
        return tx.waiting_bytes + size <= self._queue_bytes

    @staticmethod
    def _drop(stats: SenderStats, reason: str, start: float, end: float) -> Sent:
        stats.dropped[reason] += 1
        return Sent(None, start, end, reason)


def _direction(state: LinkState, sender: str, receiver: str) -> Conditions:
    if state.directions:
        row = state.directions.get(sender)
        if row is not None:
            return row.get(receiver, state.default)
    return state.default


def link_seed(seed: int, name: str) -> str:
    """The random source of one link: from the run's seed and the link's name only, so
    adding a link does not change the draws of the others (str seeds hash with SHA-512,
    the same in every process)."""
    return f"tawan-link:{seed}:{name}"


def build_links(scenario: Scenario, seed: int) -> dict[str, LinkModel]:
    """Every link and net of `scenario` as a model, by name; ValueError names a bad entry."""
    positions = {node.name: node.position for node in scenario.nodes}
    links: dict[str, LinkModel] = {}

    def add(model_name: str, model: LinkModel) -> None:
        if model_name in links:
            raise ValueError(f"link name {model_name!r}: expected unique names, found twice")
        links[model_name] = model

    for link in scenario.links:
        name = Scenario.link_name(link)
        base = _bearer_of(name, link.bearer)
        numbers = _overrides(link)
        add(
            name,
            LinkModel(
                name,
                _without_bursts(base.with_overrides(**numbers, shared=False), link.bursts),
                (link.a, link.b),
                _positions(name, (link.a, link.b), positions),
                random.Random(link_seed(seed, name)),
                shared=False,
                beam=link.beam,
            ),
        )
    for net in scenario.nets:
        base = _bearer_of(net.name, net.bearer)
        add(
            net.name,
            LinkModel(
                net.name,
                _without_bursts(
                    base.with_overrides(
                        **_overrides(net), shared=True, priority_access=net.priority_access
                    ),
                    net.bursts,
                ),
                net.members,
                _positions(net.name, net.members, positions),
                random.Random(link_seed(seed, net.name)),
                shared=True,
            ),
        )
    return links


def _bearer_of(name: str, bearer_name: str) -> Bearer:
    try:
        return bearer(bearer_name)
    except KeyError as error:
        raise ValueError(f"link {name!r}: {error.args[0]}") from None


def _without_bursts(bearer: Bearer, bursts: bool) -> Bearer:
    return bearer if bursts else dataclasses.replace(bearer, bursts=None)


def _overrides(entry: object) -> dict[str, object]:
    keys = ("rate_bps", "delay_s", "jitter_s", "loss", "mtu", "queue_bytes", "range_km", "hello_s")
    return {key: getattr(entry, key) for key in keys}


def _positions(
    name: str, members: tuple[str, ...], positions: Mapping[str, Position]
) -> dict[str, Position]:
    unknown = [m for m in members if m not in positions]
    if unknown:
        raise ValueError(f"link {name!r}: expected scenario nodes, found unknown {unknown}")
    return {m: positions[m] for m in members}
