"""Several engines over fake links, stepped from one event heap in virtual time.

The smallest version of what the emulator does: no sockets, no trio, no real clock. Each
link is a `transports.model.BearerModel` (rate, delay, jitter, loss, duplicates, MTU, up or
down) drawing from a random source seeded from the run's seed (trio's test_dtls "terrible
network" idea); crashes and other faults are events on the same heap as the frames. So a
run is a pure function of its seed, down to the bytes of every frame.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.keyfile import NodeKeys, StoredRoot
from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.plan import MissionPlan
from crypto.roster import Roster
from crypto.schedule import KEY_BYTES
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec, Submission
from tawan.core.events import Delivered, Event, Transmit
from tawan.core.precedence import Precedence
from tawan.core.store import Store
from transports.model import BearerModel
from transports.profile import BearerProfile

T0 = 1_000_000
START = T0 + 10.0


def profile(rate_bps: int = 1_000_000, delay_s: float = 0.01, mtu: int = 1400) -> BearerProfile:
    return BearerProfile(name="test", rate_bps=rate_bps, delay_s=delay_s, mtu=mtu, cost=1.0)


@dataclass
class FakeLink:
    """A link between nodes `a` and `b`, and the conditions a test sets on it at any time;
    the Net's BearerModel for the link applies them to every frame."""

    a: str
    b: str
    profile: BearerProfile
    loss: float = 0.0
    duplicate: float = 0.0  # chance a frame arrives twice
    jitter: float = 0.0  # up to this many seconds of extra delay: frames overtake each other
    up: bool = True  # down: frames vanish and nobody is told (jammed, cable cut)

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    @property
    def members(self) -> tuple[str, ...]:
        return (self.a, self.b)


@dataclass
class FakeNet:
    """A radio net: one link that every member reaches every other on. A frame for several
    members (`Transmit.also`) reaches each of them; each receiver has a BearerModel of its
    own (its own loss and delay draws; frames to different members do not queue behind one
    another, which a real half-duplex channel would make them do: the emulator models that)."""

    name: str
    members: tuple[str, ...]
    profile: BearerProfile
    loss: float = 0.0
    duplicate: float = 0.0
    jitter: float = 0.0
    up: bool = True


class _Arrival(NamedTuple):
    receiver: str
    link: str
    sender: str
    data: bytes


_HeapEntry = tuple[float, int, _Arrival | Callable[[], None]]


Names = Mapping[str, Sequence[str]]
"""Node names and the groups each belongs to."""
Mission = tuple[Roster, dict[str, NodeKeys]]


def seeded_mission(names: Names, seed: int) -> Mission:
    """`build_mission` with every pair root drawn from the seed as well.

    ML-KEM encapsulation draws from the operating system, so `build_mission` alone gives
    other pair roots, hence other link tags and ciphertexts, on every call; pairing itself
    is tested in test_pairing.py, and the harness wants the same frames for the same seed.
    """
    roster, keys = build_mission(names, random.Random(seed), t0=T0)
    rng = random.Random(f"{seed}/pair-roots")
    for x, y in itertools.combinations(sorted(keys), 2):
        root = rng.randbytes(KEY_BYTES)
        keys[x] = keys[x].with_pair_root(StoredRoot(keys[y].address, 0, root))
        keys[y] = keys[y].with_pair_root(StoredRoot(keys[x].address, 0, root))
    return roster, keys


class Net:
    def __init__(
        self,
        names: Mapping[str, Sequence[str]],
        links: Iterable[FakeLink | FakeNet],
        *,
        seed: int = 1,
        config: EngineConfig | None = None,
        store_max_bytes: int = 64 << 20,
    ) -> None:
        self.rng = random.Random(seed)  # for the test's own draws (crash times, victims)
        self.seed = seed
        self.roster, self.keys = seeded_mission(names, seed)
        self.links = {link.name: link for link in links}
        # One random stream per link: what happens on one link does not reshuffle the others.
        self.bearers = {
            name: BearerModel(link.profile, random.Random(f"{seed}/{name}"))
            for name, link in self.links.items()
            if isinstance(link, FakeLink)
        }
        for name, link in self.links.items():
            if isinstance(link, FakeNet):
                for member in link.members:
                    direction = f"{name}>{member}"
                    self.bearers[direction] = BearerModel(
                        link.profile, random.Random(f"{seed}/{direction}")
                    )
        self.now = START
        self.config = config or EngineConfig(strict_states=True)  # a bad transition raises
        self.stores = {n: Store.memory(max_bytes=store_max_bytes) for n in names}
        self.engines: dict[str, Engine] = {}
        self.events: dict[str, list[Event]] = {n: [] for n in names}
        self._heap: list[_HeapEntry] = []
        self._order = itertools.count()
        self.largest_frame: dict[str, int] = {}
        self._spies: list[Callable[[str, str, bytes], None]] = []
        self._transmit_spies: list[Callable[[str, Transmit], None]] = []
        self._watchers: list[Callable[[str, str, str, bytes], None]] = []
        for index, name in enumerate(names):
            self.engines[name] = self._make_engine(name, seed * 1000 + index)

    def address(self, name: str) -> int:
        entry = self.roster.by_name(name)
        assert entry is not None
        return entry.address

    def _make_engine(self, name: str, seed: int) -> Engine:
        specs = []
        for link in self.links.values():
            if name in link.members:
                peers = tuple(PeerSpec(self.address(m), m) for m in link.members if m != name)
                specs.append(LinkSpec(link.name, link.profile, peers))
        keyring = Keyring(self.keys[name], self.roster)
        return Engine(
            keyring, self.stores[name], self.config, specs, random.Random(seed), self.now
        )

    def authority_key(self) -> Ed25519PrivateKey:
        """The mission authority's key (`build_mission` draws it from the seed)."""
        return MissionPlan.new(
            random.Random(self.seed).randbytes, t0=T0, epoch_seconds=3600, grace_epochs=24
        ).authority

    def revoke(self, name: str) -> None:
        """The mission authority revokes `name`; every other node gets the new roster."""
        plan = MissionPlan.from_roster(self.authority_key(), self.roster, {})
        plan.revoke(name)
        self.roster = plan.roster()
        for other, engine in self.engines.items():
            if other != name:
                engine.update_roster(self.roster)

    def crash(self, name: str) -> None:
        """The node dies (what it had not committed is lost) and comes back at once."""
        self.stores[name].rollback()
        self.restart(name)

    def restart(self, name: str) -> None:
        """The node's process dies and comes back on the same (committed) store."""
        index = list(self.engines).index(name)
        self.engines[name] = self._make_engine(name, 7777 + index)

    def at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` at virtual time `when`, in its turn among the frames and timers
        (ties: frames and actions in the order they were put on the heap, then timers)."""
        heapq.heappush(self._heap, (when, next(self._order), action))

    def crash_at(self, when: float, name: str) -> None:
        """`name` crashes at `when` (see `crash`): between any two events, not only between
        calls to `run`."""
        self.at(when, lambda: self.crash(name))

    # ------------------------------------------------------------------ running
    def _flush(self) -> None:
        for name, engine in self.engines.items():
            for tx in engine.transmit(self.now):
                for transmit_spy in self._transmit_spies:
                    transmit_spy(name, tx)
                self._carry(name, tx.link, tx.peers, tx.data)
            while (event := engine.next_event()) is not None:
                self.events[name].append(event)

    def _carry(self, sender: str, link_name: str, peers: tuple[str, ...], data: bytes) -> None:
        link = self.links[link_name]
        self.largest_frame[link_name] = max(self.largest_frame.get(link_name, 0), len(data))
        for spy in self._spies:
            spy(sender, link_name, data)
        for peer in peers:
            net = isinstance(link, FakeNet)
            bearer = self.bearers[f"{link_name}>{peer}" if net else link_name]
            # the test may have changed the link's conditions since its last frame
            bearer.loss, bearer.duplicate, bearer.jitter_s = link.loss, link.duplicate, link.jitter
            bearer.up = link.up
            for arrival in bearer.send(sender, len(data), self.now):
                entry = _Arrival(peer, link_name, sender, data)
                heapq.heappush(self._heap, (arrival, next(self._order), entry))

    def run(self, seconds: float, max_steps: int = 2_000_000) -> None:
        end = self.now + seconds
        self._flush()
        for _ in range(max_steps):
            next_on_heap = self._heap[0][0] if self._heap else float("inf")
            timers = [(e.get_timer() or float("inf"), n) for n, e in self.engines.items()]
            next_timer, who = min(timers)
            t = min(next_on_heap, next_timer)
            if t > end:
                self.now = end
                return
            self.now = max(self.now, t)
            if next_on_heap <= next_timer:
                _, _, entry = heapq.heappop(self._heap)
                if isinstance(entry, _Arrival):
                    receiver = self.engines[entry.receiver]
                    receiver.receive(entry.link, entry.sender, entry.data, self.now)
                    for watcher in self._watchers:
                        watcher(*entry)
                else:
                    entry()
            else:
                self.engines[who].handle_timer(self.now)
            self._flush()
        raise RuntimeError("simulation did not reach its end time")

    def submit(
        self,
        src: str,
        dst: str,
        payload: bytes,
        *,
        precedence: Precedence,
        ttl: int,
        receipt: bool = False,
        sign: bool = False,
    ) -> tuple[int, int, int]:
        engine = self.engines[src]
        submission = Submission(self.address(dst), payload, precedence, ttl, receipt, sign)
        mid = engine.submit(submission, self.now)
        self._flush()
        return mid

    def tap(self, spy: Callable[[str, str, bytes], None]) -> None:
        """Call `spy(sender, link, frame)` for every frame put on a link."""
        self._spies.append(spy)

    def tap_transmits(self, spy: Callable[[str, Transmit], None]) -> None:
        """Call `spy(sender, transmit)` for every frame an engine hands to a link."""
        self._transmit_spies.append(spy)

    def watch(self, watcher: Callable[[str, str, str, bytes], None]) -> None:
        """Call `watcher(receiver, link, sender, frame)` for every frame handed to a node."""
        self._watchers.append(watcher)

    def delivered(self, name: str) -> list[Delivered]:
        return [e for e in self.events[name] if isinstance(e, Delivered)]


def chain(*names: str, rate_bps: int = 1_000_000, mtu: int = 1400) -> list[FakeLink]:
    """Links a-b, b-c, ... with the same profile."""
    prof = profile(rate_bps=rate_bps, mtu=mtu)
    return [FakeLink(a, b, prof) for a, b in itertools.pairwise(names)]
