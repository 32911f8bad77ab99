"""Several engines over fake links, stepped from one event heap in virtual time.

The smallest version of what the emulator does: no sockets, no trio, no real clock. Links
serialise at their rate, add their delay, and lose frames from a seeded random source
(trio's test_dtls "terrible network" idea), so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.plan import MissionPlan
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec
from tawan.core.events import Delivered, Event
from tawan.core.precedence import Precedence
from tawan.core.store import Store
from transports.profile import BearerProfile

T0 = 1_000_000
START = T0 + 10.0


def profile(rate_bps: int = 1_000_000, delay_s: float = 0.01, mtu: int = 1400) -> BearerProfile:
    return BearerProfile(name="test", rate_bps=rate_bps, delay_s=delay_s, mtu=mtu, cost=1.0)


@dataclass
class FakeLink:
    a: str
    b: str
    profile: BearerProfile
    loss: float = 0.0
    duplicate: float = 0.0  # chance a frame arrives twice
    jitter: float = 0.0  # up to this many seconds of extra delay: frames overtake each other
    up: bool = True
    free_at: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"


class Net:
    def __init__(
        self,
        names: Mapping[str, Sequence[str]],
        links: Iterable[FakeLink],
        *,
        seed: int = 1,
        config: EngineConfig | None = None,
        store_max_bytes: int = 64 << 20,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.roster, self.keys = build_mission(names, random.Random(seed), t0=T0)
        self.links = {link.name: link for link in links}
        self.now = START
        self.config = config or EngineConfig()
        self.stores = {n: Store.memory(max_bytes=store_max_bytes) for n in names}
        self.engines: dict[str, Engine] = {}
        self.events: dict[str, list[Event]] = {n: [] for n in names}
        self._heap: list[tuple[float, int, str, str, str, bytes]] = []
        self._order = itertools.count()
        self.largest_frame: dict[str, int] = {}
        self._spies: list[Callable[[str, str, bytes], None]] = []
        for index, name in enumerate(names):
            self.engines[name] = self._make_engine(name, seed * 1000 + index)

    def address(self, name: str) -> int:
        entry = self.roster.by_name(name)
        assert entry is not None
        return entry.address

    def _make_engine(self, name: str, seed: int) -> Engine:
        specs = []
        for link in self.links.values():
            if name in (link.a, link.b):
                other = link.b if name == link.a else link.a
                peer = PeerSpec(self.address(other), other)
                specs.append(LinkSpec(link.name, link.profile, (peer,)))
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

    # ------------------------------------------------------------------ running
    def _flush(self) -> None:
        for name, engine in self.engines.items():
            for tx in engine.transmit(self.now):
                self._carry(name, tx.link, tx.peer, tx.data)
            while (event := engine.next_event()) is not None:
                self.events[name].append(event)

    def _carry(self, sender: str, link_name: str, peer: str, data: bytes) -> None:
        link = self.links[link_name]
        self.largest_frame[link_name] = max(self.largest_frame.get(link_name, 0), len(data))
        for spy in self._spies:
            spy(sender, link_name, data)
        if not link.up or self.rng.random() < link.loss:
            return
        start = max(self.now, link.free_at.get(sender, 0.0))
        done = start + len(data) * 8 / link.profile.rate_bps
        link.free_at[sender] = done
        copies = 2 if self.rng.random() < link.duplicate else 1
        for _ in range(copies):
            arrival = done + link.profile.delay_s + self.rng.random() * link.jitter
            heapq.heappush(self._heap, (arrival, next(self._order), peer, link_name, sender, data))

    def run(self, seconds: float, max_steps: int = 2_000_000) -> None:
        end = self.now + seconds
        self._flush()
        for _ in range(max_steps):
            next_frame = self._heap[0][0] if self._heap else float("inf")
            timers = [(e.get_timer() or float("inf"), n) for n, e in self.engines.items()]
            next_timer, who = min(timers)
            t = min(next_frame, next_timer)
            if t > end:
                self.now = end
                return
            self.now = max(self.now, t)
            if next_frame <= next_timer:
                _, _, receiver, link_name, sender, data = heapq.heappop(self._heap)
                self.engines[receiver].receive(link_name, sender, data, self.now)
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
        mid = engine.submit(
            self.address(dst), payload, precedence=precedence, ttl=ttl, receipt=receipt,
            sign=sign, now=self.now,
        )  # fmt: skip
        self._flush()
        return mid

    def tap(self, spy: Callable[[str, str, bytes], None]) -> None:
        """Call `spy(sender, link, frame)` for every frame put on a link."""
        self._spies.append(spy)

    def delivered(self, name: str) -> list[Delivered]:
        return [e for e in self.events[name] if isinstance(e, Delivered)]


def chain(*names: str, rate_bps: int = 1_000_000, mtu: int = 1400) -> list[FakeLink]:
    """Links a-b, b-c, ... with the same profile."""
    prof = profile(rate_bps=rate_bps, mtu=mtu)
    return [FakeLink(a, b, prof) for a, b in itertools.pairwise(names)]
