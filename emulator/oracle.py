"""The oracle bound: when each message could have arrived, knowing the whole future.

Computed from a timeline.json dict alone (docs/timeline.md), so anyone can recompute the
bound without the emulator. The oracle sends each message alone (no other traffic, no
queues), over any link the moment it is usable, and may hold it at any node for as long as
it likes (store and forward). What the stack delivered can only be at or below it.

The rules, in the order a copy meets them:

- A direction (one way of a link) is usable while its interval is up, its loss is below 1,
  its rate above 0, and both its ends are up (a node that is down neither sends nor hears).
- Sending `size` bytes takes size*8 bits at the rate in force, integrated over time: one
  transmission may run across consecutive usable intervals at different rates. It must end
  before the direction stops being usable; one that would not fit waits for the next
  usable stretch, and starts at its beginning. It arrives the delay of the interval in which
  it ends later.
- A node is down over [start, end) of each "down" span. A copy that arrives while its node
  is down is lost, and what a node holds is lost when it goes down: a copy held at a node
  can leave only before that node's next down span.
- A copy counts if it reaches its destination no later than the message's expiry
  (time + ttl_s) and the end of the run (duration_s).

The search is a time-dependent Dijkstra from the message's source. Waiting is allowed, so
the earliest arrival at a node dominates every later one, except across a node's down span
(a copy held from before the span dies with it): a label is therefore kept per (node, up
span), which for the usual node without down spans is one label per node.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emulator.stats import PRECEDENCES, latency_summary, ratio
from tawan.core.pace import PacePolicy
from tawan.core.precedence import Precedence

FORMAT = "tawan-timeline/1"
_EPS = 1e-9
"""Slack for float sums: intervals that meet within it meet; bits that fit within it fit."""


class TimelineError(ValueError):
    """The timeline dict does not follow docs/timeline.md (the writer's fault, not ours)."""


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    src: str
    dst: tuple[str, ...]
    size: int
    precedence: str
    time: float
    ttl_s: float

    @property
    def expiry(self) -> float:
        return self.time + self.ttl_s


@dataclass(frozen=True, slots=True)
class _Interval:
    start: float
    end: float
    usable: bool
    rate_bps: float
    delay_s: float


@dataclass(frozen=True, slots=True)
class _UpSpans:
    """The spans [start, end) over which a node is up, sorted; the last may end at inf."""

    starts: tuple[float, ...]
    ends: tuple[float, ...]

    def index_at(self, t: float) -> int:
        """The up span holding time t, or -1 if the node is down then."""
        k = bisect_right(self.starts, t) - 1
        return k if k >= 0 and t < self.ends[k] else -1

    def next_after(self, t: float) -> int:
        """The first up span starting after t (== len(starts) if none)."""
        return bisect_right(self.starts, t)


@dataclass(frozen=True, slots=True)
class _Direction:
    """One way of a link, as arrays for bisecting.

    `cum[i]` is the bits the direction could carry from t=0 to the start of piece i,
    counting usable pieces only; `run_last[i]` is the last piece of the usable stretch that
    piece i belongs to; `next_usable[i]` the first usable piece at or after i."""

    to: int
    start: tuple[float, ...]
    end: tuple[float, ...]
    usable: tuple[bool, ...]
    rate: tuple[float, ...]
    delay: tuple[float, ...]
    cum: tuple[float, ...]
    run_last: tuple[int, ...]
    next_usable: tuple[int, ...]
    max_rate: float
    min_delay: float
    """Over usable pieces: no copy crosses faster than bits/max_rate + min_delay."""
    bearer: str = ""

    def arrival(self, t0: float, bits: float, leave_before: float) -> float | None:
        """The earliest arrival of `bits` handed to this direction at t0, or None.

        The transmission must start before `leave_before` (when the sender's holding
        dies); later stretches are not considered."""
        n = len(self.start)
        i = bisect_right(self.start, t0) - 1
        if n == 0 or i < 0 or t0 >= self.end[-1]:
            return None
        if self.usable[i]:
            base = self.cum[i] + (t0 - self.start[i]) * self.rate[i]
            found = self._finish(i, base + bits)
            if found is not None:
                return found
            i = self.run_last[i] + 1
        while i < n:
            i = self.next_usable[i]
            if i >= n or self.start[i] >= leave_before:
                return None
            found = self._finish(i, self.cum[i] + bits)
            if found is not None:
                return found
            i = self.run_last[i] + 1
        return None

    def _finish(self, i: int, target: float) -> float | None:
        """Arrival of a transmission in the stretch of piece i that is done at `target`
        cumulative bits, or None if the stretch ends first."""
        last = self.run_last[i]
        if target > self.cum[last + 1] * (1 + _EPS) + _EPS:
            return None
        # The piece it ends in: the last one whose start is strictly before the target, so a
        # transmission ending exactly on a boundary takes the earlier piece's delay.
        j = bisect_left(self.cum, target, i + 1, last + 1) - 1
        done = min(self.start[j] + (target - self.cum[j]) / self.rate[j], self.end[j])
        return done + self.delay[j]


@dataclass(frozen=True, slots=True)
class _Network:
    names: tuple[str, ...]
    index: Mapping[str, int]
    up: tuple[_UpSpans, ...]
    out: tuple[tuple[_Direction, ...], ...]
    base: tuple[int, ...]
    """State ids: node u's up span k is state base[u] + k."""
    always_up: tuple[bool, ...]
    into: tuple[tuple[tuple[int, _Direction], ...], ...]
    """Per node, the directions that reach it, with their senders (for the A* bound)."""
    duration_s: float


def earliest_arrivals(timeline: Mapping[str, Any]) -> dict[tuple[str, str], float | None]:
    """For every (message id, destination): the oracle's earliest arrival, or None."""
    net = _network(timeline)
    pace = pace_of(timeline)
    bearers = {d.bearer for directions in net.out for d in directions}
    bounds: dict[int, tuple[list[float], list[float]]] = {}
    cache: dict[_Key, dict[int, float]] = {}
    found: dict[tuple[str, str], float | None] = {}
    for message in parse_messages(timeline, net.index):
        deadline = min(message.expiry, net.duration_s)
        targets = frozenset(net.index[d] for d in message.dst)
        precedence = Precedence[message.precedence]
        barred = frozenset(b for b in bearers if not pace.allows(b, precedence, message.size))
        key = (
            net.index[message.src], message.size * 8.0, message.time, deadline, targets, barred
        )  # fmt: skip
        reached = cache.get(key)
        if reached is None:
            floor = None
            if len(targets) == 1:
                (target,) = targets
                if target not in bounds:
                    bounds[target] = _static_bound(net, target)
                delays, seconds_per_bit = bounds[target]
                floor = [d + key[1] * w for d, w in zip(delays, seconds_per_bit, strict=True)]
            reached = _search(net, *key, floor)
            cache[key] = reached
        for d in message.dst:
            found[message.id, d] = reached.get(net.index[d])
    return found


_Key = tuple[int, float, float, float, frozenset[int], frozenset[str]]


def pace_of(timeline: Mapping[str, Any]) -> PacePolicy:
    """The PACE policy the nodes applied (timeline "pace"; none given: no restriction)."""
    raw = timeline.get("pace")
    if raw is None:
        return PacePolicy(largest={})
    try:
        return PacePolicy(
            bearers={Precedence[p]: frozenset(names) for p, names in raw["bearers"].items()},
            largest=dict(raw["largest"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise TimelineError(
            f"timeline pace: expected {{'bearers': {{PRECEDENCE: [bearer, ...]}}, "
            f"'largest': {{bearer: bytes}}}}, found {raw!r} ({exc})"
        ) from None


def _static_bound(net: _Network, target: int) -> tuple[list[float], list[float]]:
    """Per node: the least sum of delays, and of 1/rate, over any path to target.

    Any copy from u takes at least delays[u] + bits * seconds_per_bit[u] to reach the
    target (each path's time is at least its delays plus its bits at the best rates, and
    the least of a sum is at least the sum of the leasts), and the bound never drops by
    more than one hop's floor across a hop: a consistent A* estimate for unicast searches."""
    found = []
    for delays in (True, False):
        best = [math.inf] * len(net.names)
        best[target] = 0.0
        heap = [(0.0, target)]
        while heap:
            cost, v = heapq.heappop(heap)
            if cost > best[v]:
                continue
            for u, direction in net.into[v]:
                through = cost + (direction.min_delay if delays else 1 / direction.max_rate)
                if through < best[u]:
                    best[u] = through
                    heapq.heappush(heap, (through, u))
        found.append(best)
    return found[0], found[1]


def oracle_summary(
    timeline: Mapping[str, Any], arrivals: Mapping[tuple[str, str], float | None]
) -> dict[str, dict[str, Any]]:
    """Per precedence, counted per (message, destination) copy:

    {"offered": int, "deliverable": int, "delivery_ratio": float | None,
     "latency_s": {"p50", "p95", "p99"} | None, "latencies": [sorted seconds]}

    The first four keys but "offered" are results.json's "oracle" block; "latencies" is its
    "oracle_latencies" entry. Every precedence appears, offered or not."""
    offered = dict.fromkeys(PRECEDENCES, 0)
    latencies: dict[str, list[float]] = {p: [] for p in PRECEDENCES}
    for message in parse_messages(timeline, None):
        for d in message.dst:
            offered[message.precedence] += 1
            if (message.id, d) not in arrivals:
                raise TimelineError(
                    f"arrivals: expected an entry for message {message.id!r} to {d!r}, "
                    "found none (arrivals from another timeline?)"
                )
            arrival = arrivals[message.id, d]
            if arrival is not None:
                latencies[message.precedence].append(arrival - message.time)
    summary: dict[str, dict[str, Any]] = {}
    for p in PRECEDENCES:
        values = sorted(latencies[p])
        summary[p] = {
            "offered": offered[p],
            "deliverable": len(values),
            "delivery_ratio": ratio(len(values), offered[p]),
            "latency_s": latency_summary(values),
            "latencies": values,
        }
    return summary


def _search(
    net: _Network,
    src: int,
    bits: float,
    t: float,
    deadline: float,
    targets: frozenset[int],
    barred: frozenset[str],
    floor: Sequence[float] | None,
) -> dict[int, float]:
    """Earliest arrival at each target reachable by `deadline`, from src at time t.

    `floor[v]`, if given, is a consistent lower bound on the time from v to the single
    target (A*); without it the search is a plain Dijkstra."""
    floor = floor if floor is not None else [0.0] * len(net.names)
    k0 = net.up[src].index_at(t)
    if k0 < 0 or t + floor[src] > deadline:
        return {}
    start = net.base[src] + k0
    labels = {start: t}
    heap: list[tuple[float, float, int, int, int]] = [(t + floor[src], t, start, src, k0)]
    reached: dict[int, float] = {}
    while heap:
        _, a, state, u, k = heapq.heappop(heap)
        if a > labels[state]:
            continue  # a stale entry: this state was since reached earlier
        if u in targets and u not in reached:
            reached[u] = a
            if len(reached) == len(targets):
                break
        leave_before = net.up[u].ends[k]
        for direction in net.out[u]:
            if direction.bearer in barred:
                continue  # the PACE policy keeps this message off that bearer
            v = direction.to
            soonest = a + bits / direction.max_rate + direction.min_delay
            if soonest + floor[v] > deadline:
                continue
            if not net.always_up[v]:
                _relax(net, direction, a, bits, leave_before, deadline, floor[v], labels, heap)
                continue
            # The usual receiver, never down: one label, and most directions can be
            # skipped without a look at their intervals, as they cannot beat it.
            state = net.base[v]
            known = labels.get(state, math.inf)
            if soonest >= known:
                continue
            arrival = direction.arrival(a, bits, leave_before)
            if arrival is not None and arrival + floor[v] <= deadline and arrival < known:
                labels[state] = arrival
                heapq.heappush(heap, (arrival + floor[v], arrival, state, v, 0))
    return reached


def _relax(
    net: _Network,
    direction: _Direction,
    a: float,
    bits: float,
    leave_before: float,
    deadline: float,
    floor_v: float,
    labels: dict[int, float],
    heap: list[tuple[float, float, int, int, int]],
) -> None:
    """Label the receiver's up spans reachable over one direction, earliest first.

    `floor_v` is the search's bound on the time from the receiver to its target."""
    v = direction.to
    spans = net.up[v]
    t0 = a
    for _ in range(len(spans.starts)):  # at most one arrival per up span of the receiver
        arrival = direction.arrival(t0, bits, leave_before)
        if arrival is None or arrival + floor_v > deadline:
            return  # arrivals only grow with the hand-over time: none later will do
        kv = spans.index_at(arrival)
        if kv >= 0:
            state = net.base[v] + kv
            if arrival < labels.get(state, math.inf):
                labels[state] = arrival
                heapq.heappush(heap, (arrival + floor_v, arrival, state, v, kv))
            following = kv + 1
        else:
            following = spans.next_after(arrival)
        if following >= len(spans.starts) or spans.starts[following] >= leave_before:
            return
        t0 = max(t0, spans.starts[following])


# Reading the timeline dict.


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise TimelineError(f"timeline {where}: expected an object, found {type(obj).__name__}")
    if key not in obj:
        raise TimelineError(f"timeline {where}: expected a field {key!r}, found none")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise TimelineError(
            f"timeline {where}.{key}: expected {_kind_name(kind)}, found {value!r}"
        )
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


_NUMBER = (int, float)


def _network(timeline: Mapping[str, Any]) -> _Network:
    found_format = timeline.get("format") if isinstance(timeline, Mapping) else None
    if found_format != FORMAT:
        raise TimelineError(f"timeline format: expected {FORMAT!r}, found {found_format!r}")
    duration = float(_field(timeline, "duration_s", _NUMBER, "root"))
    names: list[str] = []
    up: list[_UpSpans] = []
    for n, node in enumerate(_field(timeline, "nodes", list, "root")):
        name = _field(node, "name", str, f"nodes[{n}]")
        if name in names:
            raise TimelineError(f"timeline nodes[{n}].name: expected unique, found {name!r} again")
        names.append(name)
        up.append(_up_spans(_field(node, "down", list, f"nodes[{n}]"), f"nodes[{n}].down"))
    index = {name: i for i, name in enumerate(names)}
    out: list[list[_Direction]] = [[] for _ in names]
    for n, link in enumerate(_field(timeline, "links", list, "root")):
        for m, raw in enumerate(_field(link, "directions", list, f"links[{n}]")):
            where = f"links[{n}].directions[{m}]"
            ends = [index.get(_field(raw, side, str, where)) for side in ("from", "to")]
            if ends[0] is None or ends[1] is None:
                raise TimelineError(
                    f"timeline {where}: expected nodes listed in 'nodes', found "
                    f"{raw['from']!r} -> {raw['to']!r}"
                )
            intervals = _intervals(_field(raw, "intervals", list, where), duration, where)
            direction = _direction(ends[1], intervals, up[ends[0]], up[ends[1]])
            if direction is not None:
                bearer = link.get("bearer", "") if isinstance(link, Mapping) else ""
                out[ends[0]].append(dataclasses.replace(direction, bearer=str(bearer)))
    into: list[list[tuple[int, _Direction]]] = [[] for _ in names]
    for u, directions in enumerate(out):
        for d in directions:
            into[d.to].append((u, d))
    base = [0]
    for spans in up:
        base.append(base[-1] + len(spans.starts))
    return _Network(
        names=tuple(names),
        index=index,
        up=tuple(up),
        out=tuple(tuple(d) for d in out),
        into=tuple(tuple(senders) for senders in into),
        base=tuple(base[:-1]),
        always_up=tuple(spans.starts == (0.0,) and spans.ends == (math.inf,) for spans in up),
        duration_s=duration,
    )


def _up_spans(down: Sequence[Any], where: str) -> _UpSpans:
    spans = []
    for n, span in enumerate(down):
        ok = isinstance(span, Sequence) and len(span) == 2
        ok = ok and all(isinstance(x, _NUMBER) and not isinstance(x, bool) for x in span)
        if not ok or span[0] > span[1]:
            raise TimelineError(f"timeline {where}[{n}]: expected [start, end], found {span!r}")
        spans.append((float(span[0]), float(span[1])))
    starts, ends = [0.0], []
    for down_start, down_end in sorted(spans):
        if down_start < starts[-1]:
            raise TimelineError(f"timeline {where}: expected spans apart, found overlapping ones")
        ends.append(down_start)
        starts.append(down_end)
    ends.append(math.inf)
    kept = [(s, e) for s, e in zip(starts, ends, strict=True) if e > s]
    return _UpSpans(tuple(s for s, _ in kept), tuple(e for _, e in kept))


def _intervals(raw: Sequence[Any], duration: float, where: str) -> list[_Interval]:
    intervals: list[_Interval] = []
    previous_end = 0.0
    for n, item in enumerate(raw):
        at = f"{where}.intervals[{n}]"
        start = float(_field(item, "start", _NUMBER, at))
        end = float(_field(item, "end", _NUMBER, at))
        if abs(start - previous_end) > _EPS or end < start:
            raise TimelineError(
                f"timeline {at}: expected to run on from {previous_end} (intervals cover "
                f"[0, duration_s] in order), found [{start}, {end}]"
            )
        rate = float(_field(item, "rate_bps", _NUMBER, at))
        usable = _field(item, "up", bool, at) and _field(item, "loss", _NUMBER, at) < 1
        intervals.append(
            _Interval(
                previous_end, end, usable and rate > 0, rate, _field(item, "delay_s", _NUMBER, at)
            )
        )
        previous_end = end
    if previous_end < duration - _EPS:
        raise TimelineError(
            f"timeline {where}.intervals: expected to cover [0, {duration}], found the last "
            f"ending at {previous_end}"
        )
    return intervals


def _direction(to: int, intervals: list[_Interval], a: _UpSpans, b: _UpSpans) -> _Direction | None:
    """The direction's pieces: its intervals cut where either end goes down or comes back."""
    cuts = {iv.start for iv in intervals if iv.end > iv.start}
    cuts.update(t for spans in (a, b) for t in (*spans.starts, *spans.ends))
    end = intervals[-1].end if intervals else 0.0
    times = sorted(t for t in cuts if 0 <= t < end)
    starts = [iv.start for iv in intervals]
    pieces: list[_Interval] = []
    for piece_start, piece_end in zip(times, [*times[1:], end], strict=True):
        iv = intervals[bisect_right(starts, piece_start) - 1]
        usable = iv.usable and a.index_at(piece_start) >= 0 and b.index_at(piece_start) >= 0
        if (
            pieces
            and pieces[-1].usable == usable
            and (
                not usable
                or (pieces[-1].rate_bps, pieces[-1].delay_s) == (iv.rate_bps, iv.delay_s)
            )
        ):
            pieces[-1] = _Interval(pieces[-1].start, piece_end, usable, iv.rate_bps, iv.delay_s)
        else:
            pieces.append(_Interval(piece_start, piece_end, usable, iv.rate_bps, iv.delay_s))
    carrying = [p for p in pieces if p.usable]
    if not carrying:
        return None  # never carries anything: no need to look at it in any search
    n = len(pieces)
    cum = [0.0]
    for p in pieces:
        cum.append(cum[-1] + ((p.end - p.start) * p.rate_bps if p.usable else 0.0))
    run_last, next_usable = [0] * n, [0] * n
    last, nxt = n - 1, n
    for i in range(n - 1, -1, -1):
        if not pieces[i].usable:
            last = i - 1
            next_usable[i] = nxt
        else:
            run_last[i] = last
            nxt = next_usable[i] = i
    return _Direction(
        to=to,
        start=tuple(p.start for p in pieces),
        end=tuple(p.end for p in pieces),
        usable=tuple(p.usable for p in pieces),
        rate=tuple(p.rate_bps for p in pieces),
        delay=tuple(p.delay_s for p in pieces),
        cum=tuple(cum),
        run_last=tuple(run_last),
        next_usable=tuple(next_usable),
        max_rate=max(p.rate_bps for p in carrying),
        min_delay=min(p.delay_s for p in carrying),
    )


def parse_messages(timeline: Mapping[str, Any], index: Mapping[str, int] | None) -> list[Message]:
    """The timeline's messages, checked (against the node names in `index`, if given)."""
    messages = []
    for n, raw in enumerate(_field(timeline, "messages", list, "root")):
        where = f"messages[{n}]"
        dst = _field(raw, "dst", list, where)
        message = Message(
            id=_field(raw, "id", str, where),
            src=_field(raw, "src", str, where),
            dst=tuple(dst),
            size=_field(raw, "size", int, where),
            precedence=_field(raw, "precedence", str, where),
            time=float(_field(raw, "time", _NUMBER, where)),
            ttl_s=float(_field(raw, "ttl_s", _NUMBER, where)),
        )
        if message.precedence not in PRECEDENCES:
            raise TimelineError(
                f"timeline {where}.precedence: expected one of {', '.join(PRECEDENCES)}, "
                f"found {message.precedence!r}"
            )
        if message.size < 0:
            raise TimelineError(f"timeline {where}.size: expected >= 0, found {message.size}")
        unknown = [
            name
            for name in (message.src, *message.dst)
            if not isinstance(name, str) or (index is not None and name not in index)
        ]
        if unknown:
            raise TimelineError(
                f"timeline {where}: expected node names listed in 'nodes', found {unknown!r}"
            )
        messages.append(message)
    return messages
