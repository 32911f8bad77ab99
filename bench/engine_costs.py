"""What the engine's own work costs in CPU (and in commits), measured through its public API.

Real engines (`crypto.mission.build_mission`, `Keyring`, `Store.memory()`) exchange real,
authenticated frames over ideal links (no loss) in virtual time, stepped from one event heap
in the shape of tests/harness.py's Net: after every call into an engine its driver calls
`transmit(now)`, drains `next_event()` and asks `get_timer()` again, as the runtime does.
Nothing sleeps; every random source is seeded. Figures are printed, never checked.

- get_timer_us_hub40 / _hub10: microseconds per `get_timer()` at a hub with 40 (10)
  neighbours, each on its own 9600 bit/s link and up, each with one message on the air and
  one more queued behind it that the link's pacing holds (the state of a hub with a backlog
  over slow radios).
- reroute_ms_held2000: milliseconds of the one `receive()` of the first hello of a new
  neighbour at a node holding 2000 messages for an unreachable destination (the neighbour
  comes up, the routes change, the engine re-examines its held messages; they stay held).
  reroute_ms_held2000_dst_up: the same when the new neighbour is their destination (all
  2000 are placed on its queue); reroute_ms_held0: the same hello with nothing held.
- idle_commits_per_hour / idle_timer_events_per_hour: one node with 4 idle neighbours over
  one virtual hour: store commits that wrote something, and `handle_timer` calls it got.
- relay_us_per_message: wall time inside a relay engine's calls (receive, transmit,
  handle_timer, get_timer, next_event) per 100-byte ROUTINE message relayed between two
  neighbours at a steady 500 messages/s; relay_us_per_message_burst: 5000 submitted at once.

With --profile, also prints a cProfile top 10 (cumulative) of the hub40 `get_timer` case and
of the relay's calls. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import io
import itertools
import json
import pstats
import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import ParamSpec, TypeVar

from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.roster import Roster
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec
from tawan.core.events import Delivered, Transmit
from tawan.core.precedence import Precedence
from tawan.core.specs import Submission
from tawan.core.store import Store
from transports.profile import BearerProfile

T0 = 1_000_000
START = T0 + 10.0
TTL = 3600
PAYLOAD = random.Random(100).randbytes(100)  # incompressible: sealing compresses payloads
VHF = BearerProfile(name="vhf", rate_bps=9600, delay_s=0.02, mtu=1400, cost=1.0)
IP = BearerProfile(name="ip", rate_bps=2_000_000, delay_s=0.005, mtu=1400, cost=1.0)

_R = TypeVar("_R")
_P = ParamSpec("_P")


class CountingStore(Store):
    """An in-memory store that counts the commits that wrote something (`dirty` was True),
    and which state keys each of them carried."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.commits = 0
        self.reasons: Counter[str] = Counter()
        self._keys: set[str] = set()

    def set_state(self, key: str, value: bytes) -> None:
        self._keys.add(key)
        super().set_state(key, value)

    def commit(self, *, sync: bool = False) -> None:
        if self.dirty:
            self.commits += 1
            self.reasons[" + ".join(sorted(self._keys)) or "other writes"] += 1
            self._keys = set()
        super().commit(sync=sync)

    def reset_counts(self) -> None:
        self.commits = 0
        self.reasons.clear()


class Net:
    """Engines over ideal point-to-point links (one link per pair, named "a-b"), stepped in
    virtual time. Only `members` get an engine; frames for other nodes are lost."""

    def __init__(
        self,
        names: Sequence[str],
        wires: Iterable[tuple[str, str]],
        prof: BearerProfile,
        *,
        seed: int,
        members: Iterable[str] | None = None,
        counting: Iterable[str] = (),
    ) -> None:
        self.roster: Roster
        self.roster, self.keys = build_mission({n: [] for n in names}, random.Random(seed), t0=T0)
        self.wires = {f"{a}-{b}": (a, b) for a, b in wires}
        self.profile = prof
        self.seed = seed
        self.now = START
        self.config = EngineConfig()
        self.stores: dict[str, Store] = {}
        self.engines: dict[str, Engine] = {}
        self.timers: dict[str, float] = {}
        self.delivered: Counter[str] = Counter()
        self.timer_calls: Counter[str] = Counter()
        self._heap: list[tuple[float, int, str, str, str, bytes]] = []
        self._order = itertools.count()
        self._free_at: dict[tuple[str, str], float] = {}
        # The engine whose calls are timed (and optionally profiled), and the time by call.
        self.timed: str | None = None
        self.spent: defaultdict[str, float] = defaultdict(float)
        self.profiler: cProfile.Profile | None = None
        counted = set(counting)
        for name in names if members is None else members:
            self.add(name, counting=name in counted)

    def address(self, name: str) -> int:
        entry = self.roster.by_name(name)
        if entry is None:
            raise KeyError(name)
        return entry.address

    def links_of(self, name: str) -> list[LinkSpec]:
        specs = []
        for link, (a, b) in self.wires.items():
            if name in (a, b):
                other = b if name == a else a
                specs.append(LinkSpec(link, self.profile, (PeerSpec(self.address(other), other),)))
        return specs

    def make_engine(self, name: str, store: Store) -> Engine:
        keyring = Keyring(self.keys[name], self.roster)
        rng = random.Random(self.seed * 1000 + sorted(self.keys).index(name))
        return Engine(keyring, store, self.config, self.links_of(name), rng, self.now)

    def add(self, name: str, *, counting: bool = False) -> Engine:
        """Start `name`'s engine now and put it on the air."""
        store = CountingStore() if counting else Store.memory()
        self.stores[name] = store
        engine = self.engines[name] = self.make_engine(name, store)
        self.flush(name)
        return engine

    # ------------------------------------------------------------------ calls
    def _call(
        self, name: str, kind: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
    ) -> _R:
        """`fn(*args, **kwargs)`, a call into engine `name`: timed if it is the timed one."""
        if name != self.timed:
            return fn(*args, **kwargs)
        profiler = self.profiler
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.spent[kind] += time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
        return result

    def flush(self, name: str) -> int:
        """One turn of the driver after a call into `name`; returns the frames it sent."""
        engine, now = self.engines[name], self.now
        frames = self._call(name, "transmit", engine.transmit, now)
        for tx in frames:
            self._carry(name, tx)
        while (event := self._call(name, "next_event", engine.next_event)) is not None:
            if isinstance(event, Delivered):
                self.delivered[name] += 1
        timer = self._call(name, "get_timer", engine.get_timer)
        self.timers[name] = float("inf") if timer is None else timer
        return len(frames)

    def _carry(self, sender: str, tx: Transmit) -> None:
        if tx.peer not in self.engines:
            return
        key = (tx.link, sender)
        start = max(self.now, self._free_at.get(key, 0.0))
        done = start + len(tx.data) * 8 / self.profile.rate_bps
        self._free_at[key] = done
        arrival = done + self.profile.delay_s
        heapq.heappush(self._heap, (arrival, next(self._order), tx.peer, tx.link, sender, tx.data))

    def run(self, seconds: float) -> None:
        self.run_until(self.now + seconds)

    def run_until(self, end: float, max_steps: int = 5_000_000) -> None:
        for _ in range(max_steps):
            next_frame = self._heap[0][0] if self._heap else float("inf")
            who, next_timer = min(self.timers.items(), key=lambda item: item[1])
            t = min(next_frame, next_timer)
            if t > end:
                self.now = end
                return
            self.now = now = max(self.now, t)
            if next_frame <= next_timer:
                _, _, receiver, link, sender, data = heapq.heappop(self._heap)
                engine = self.engines[receiver]
                self._call(receiver, "receive", engine.receive, link, sender, data, now)
                self.flush(receiver)
            else:
                engine = self.engines[who]
                self.timer_calls[who] += 1
                self._call(who, "handle_timer", engine.handle_timer, now)
                self.flush(who)
        raise RuntimeError("simulation did not reach its end time")

    def submit(self, src: str, dst: str, *, flush: bool = True) -> None:
        submission = Submission(self.address(dst), PAYLOAD, Precedence.ROUTINE, TTL)
        self.engines[src].submit(submission, self.now)
        if flush:
            self.flush(src)


# ====================================================================== get_timer at a hub
def hub(neighbours: int, seed: int) -> tuple[Net, Engine, int]:
    """A hub with `neighbours` leaves, each on its own slow link, all up and routes settled;
    then two messages for each leaf: the first goes on the air, the second waits behind it
    (9600 bit/s: ~0.2 s a frame, far beyond the pacing burst allowance), so the hub ends in
    the steady state of a backlog on slow radios, every queue with a message pacing holds."""
    leaves = [f"n{i:02d}" for i in range(1, neighbours + 1)]
    net = Net(["hub", *leaves], [("hub", leaf) for leaf in leaves], VHF, seed=seed)
    net.run(25.0)  # hellos, then the adverts of all flooded over the slow links
    for leaf in leaves:
        for _ in range(2):
            net.submit("hub", leaf, flush=False)
    sent = net.flush("hub")  # one transmit turn: a message per link leaves, the next is held
    return net, net.engines["hub"], sent


def time_get_timer(engine: Engine, batches: int = 5, batch_seconds: float = 0.1) -> list[float]:
    """Microseconds per call, one figure per batch of calls lasting about `batch_seconds`."""
    engine.get_timer()  # warm: any cache filled on a first call is not counted
    per_call = []
    for _ in range(batches):
        calls, start = 0, time.perf_counter()
        while True:
            for _ in range(10):
                engine.get_timer()
            calls += 10
            elapsed = time.perf_counter() - start
            if elapsed >= batch_seconds:
                break
        per_call.append(elapsed / calls * 1e6)
    return per_call


def bench_get_timer(neighbours: int) -> tuple[float, Engine]:
    net, engine, sent = hub(neighbours, seed=10 + neighbours)
    due = engine.get_timer()
    due_in = float("nan") if due is None else (due - net.now) * 1000
    figures = time_get_timer(engine)
    median = statistics.median(figures)
    print(
        f"get_timer, hub with {neighbours} neighbours up, 2 messages each ({sent} frames sent, "
        f"the rest held by pacing; timer due in {due_in:.1f} ms): {median:.1f} us/call "
        f"(batches: {', '.join(f'{f:.1f}' for f in figures)})"
    )
    return median, engine


# ====================================================================== reroute
def bench_reroute(held: int, newcomer: str, seed: int) -> tuple[float, int, int]:
    """x holds `held` messages for d, which no route reaches; a is an up neighbour. Then the
    first hello of `newcomer` ("b": unrelated, the messages stay held; "d": their
    destination) reaches x. Returns the milliseconds of that one `x.receive(...)` call,
    which brings the neighbour up, changes the routes and re-examines the held messages, and
    how many messages x held before and after it."""
    names = ["x", "a", "b", "d"]
    net = Net(names, [("x", "a"), ("x", "b"), ("x", "d")], IP, seed=seed, members=["x", "a"])
    net.run(5.0)  # x and a up, adverts exchanged
    x = net.engines["x"]
    for _ in range(held):
        net.submit("x", "d", flush=False)
    net.flush("x")
    x.commit()
    net.run(1.0)  # quiet again
    newcomer_engine = net.make_engine(newcomer, Store.memory())
    newcomer_engine.handle_timer(net.now)  # its first hellos
    link = f"x-{newcomer}"
    hellos = [tx for tx in newcomer_engine.transmit(net.now) if tx.link == link]
    now = net.now
    before = len(x.store.messages_without_next_hop())
    start = time.perf_counter()
    x.receive(link, newcomer, hellos[0].data, now)  # measured: the reroute happens in here
    elapsed = (time.perf_counter() - start) * 1000
    return elapsed, before, len(x.store.messages_without_next_hop())


def median_reroute(held: int, newcomer: str, what: str, runs: int = 5) -> float:
    results = [bench_reroute(held, newcomer, seed=30 + run) for run in range(runs)]
    figures = [ms for ms, _, _ in results]
    median = statistics.median(figures)
    _, before, after = results[0]
    print(
        f"reroute, {what}: {median:.2f} ms (held {before} -> {after}; runs: "
        f"{', '.join(f'{f:.2f}' for f in figures)})"
    )
    return median


# ====================================================================== idle hour
def bench_idle(seed: int = 50) -> tuple[int, int, Counter[str]]:
    """A node with 4 neighbours, nothing submitted: after a minute to settle, one virtual
    hour of hellos, adverts and housekeeping only."""
    leaves = ["l1", "l2", "l3", "l4"]
    net = Net(["node", *leaves], [("node", leaf) for leaf in leaves], IP, seed=seed,
              counting=["node"])  # fmt: skip
    net.run(60.0)
    store = net.stores["node"]
    if not isinstance(store, CountingStore):
        raise TypeError("the idle node's store does not count commits")
    store.reset_counts()
    net.timer_calls.clear()
    net.run(3600.0)
    return store.commits, net.timer_calls["node"], store.reasons


# ====================================================================== relay
def bench_relay(
    messages: int, interval: float, *, seed: int = 70, profiler: cProfile.Profile | None = None
) -> tuple[float, dict[str, float], int]:
    """a -> r -> c, `messages` 100-byte ROUTINE messages submitted at a, one every
    `interval` seconds (0: all at once); r's calls timed. Returns (us per message, seconds
    by call kind, messages delivered at c)."""
    net = Net(["a", "r", "c"], [("a", "r"), ("r", "c")], IP, seed=seed)
    net.run(5.0)  # up and routed
    net.timed, net.profiler = "r", profiler
    net.spent.clear()
    if interval > 0:
        for _ in range(messages):
            net.submit("a", "c")
            net.run(interval)
    else:
        for _ in range(messages):
            net.submit("a", "c", flush=False)
        net.flush("a")
    for _ in range(600):  # until c has them all and r's custody acknowledgements are in
        net.run(0.5)
        if net.delivered["c"] >= messages:
            break
    net.run(2.0)
    return sum(net.spent.values()) * 1e6 / messages, dict(net.spent), net.delivered["c"]


def print_relay(label: str, per_message: float, spent: dict[str, float], delivered: int) -> None:
    by_time = sorted(spent.items(), key=lambda item: -item[1])
    parts = ", ".join(f"{kind} {seconds * 1000:.0f} ms" for kind, seconds in by_time)
    print(f"relay, {label}: {per_message:.1f} us/message ({delivered} delivered; {parts})")


def print_profile(title: str, profiler: cProfile.Profile) -> None:
    """Top 10 by cumulative time, then by own time (which names the inner loops)."""
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(10)
        print(f"--- profile: {title} (top 10 by {order})")
        print(out.getvalue().strip())


# ====================================================================== main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true", help="also print cProfile top 10s")
    args = parser.parse_args()
    began = time.perf_counter()

    hub10, _ = bench_get_timer(10)
    hub40, hub40_engine = bench_get_timer(40)

    held0 = median_reroute(0, "b", "receive of a new neighbour's first hello, nothing held")
    held2000 = median_reroute(2000, "b", "2000 held for an unreachable node, another comes up")
    dst_up = median_reroute(2000, "d", "2000 held, their destination comes up")

    commits, timer_events, reasons = bench_idle()
    print(f"idle hour, node with 4 neighbours: {commits} commits, {timer_events} handle_timer")
    for why, count in reasons.most_common():
        print(f"  {count:5d} commits writing {why}")

    steady = bench_relay(5000, 0.002)
    print_relay("5000 messages at 500/s", *steady)
    burst = bench_relay(5000, 0.0)
    print_relay("5000 messages submitted at once", *burst)

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(200):
            hub40_engine.get_timer()
        profiler.disable()
        print_profile("200 get_timer calls at the hub with 40 neighbours", profiler)
        profiler = cProfile.Profile()
        bench_relay(5000, 0.002, profiler=profiler)
        print_profile("the relay's calls, 5000 messages at 500/s", profiler)

    print(f"total {time.perf_counter() - began:.1f} s")
    print(
        json.dumps(
            {
                "get_timer_us_hub40": round(hub40, 2),
                "get_timer_us_hub10": round(hub10, 2),
                "reroute_ms_held2000": round(held2000, 3),
                "reroute_ms_held2000_dst_up": round(dst_up, 3),
                "reroute_ms_held0": round(held0, 3),
                "idle_commits_per_hour": commits,
                "idle_timer_events_per_hour": timer_events,
                "relay_us_per_message": round(steady[0], 2),
                "relay_us_per_message_burst": round(burst[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
