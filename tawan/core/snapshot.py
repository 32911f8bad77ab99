"""One typed, frozen view of a node's state at one moment: what status, metrics and the
emulator's results read, instead of each reaching into queues, neighbours and the store.

`Engine.snapshot(now)` takes it; this module knows nothing of the engine (no import cycle).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from crypto.roster import Roster
from tawan.core.neighbours import Adjacency
from tawan.core.precedence import Precedence
from tawan.core.queues import NeighbourQueue
from tawan.core.specs import LinkSpec
from tawan.core.stats import EngineStats, LinkStats
from tawan.core.store import Store

PRECEDENCE_NAMES = tuple(p.name.lower() for p in Precedence)


@dataclass(frozen=True, slots=True)
class LinkView:
    name: str
    bearer: str
    rate_bps: int
    mtu: int
    up: bool  # some neighbour is up on it
    frames_sent: int
    frames_received: int
    bytes_sent: int
    bytes_received: int
    retransmissions: int
    batched: int
    net_copies: int
    adverts_too_large: int


@dataclass(frozen=True, slots=True)
class NeighbourView:
    address: int
    name: str
    link: str
    up: bool
    rtt_s: float | None
    loss: float
    last_heard_s: float | None  # seconds since, None: never


@dataclass(frozen=True, slots=True)
class StoreView:
    messages: int
    bytes: int
    max_bytes: int
    inbox: int
    held: int
    messages_by_precedence: Mapping[str, int]
    bytes_by_precedence: Mapping[str, int]
    problem: str | None = None  # why the store cannot write now; None: it can


@dataclass(frozen=True, slots=True)
class Counters:
    submitted: Mapping[str, int]
    delivered: Mapping[str, int]
    forwarded: Mapping[str, int]
    expired: Mapping[str, int]
    evicted: Mapping[str, int]
    refused: Mapping[str, int]
    rejected: Mapping[str, int]
    duplicates: int
    receipts_received: int
    store_failures: int = 0  # writes or commits the store could not do
    refused_unwritable: int = 0  # messages and fragments not taken meanwhile
    notices_sent: int = 0  # notices of eviction taken into custody for their origins
    notices_unsent: int = 0  # evictions never told (too many pending, or no key for the origin)
    room_signals: int = 0  # HELLOs with ROOM sent to refused neighbours


@dataclass(frozen=True, slots=True)
class NodeSnapshot:
    node: str
    address: int
    links: tuple[LinkView, ...]
    neighbours: tuple[NeighbourView, ...]
    queued: Mapping[str, int]  # messages waiting or in flight, by precedence
    store: StoreView
    routes: tuple[tuple[str, str], ...]  # (destination, next hop), by name
    counters: Counters

    def status(self) -> dict[str, object]:
        """JSON-ready, for `tawan status` and the local API."""
        return {
            "node": self.node,
            "address": self.address,
            "links": [
                {"name": k.name, "bearer": k.bearer, "rate_bps": k.rate_bps, "mtu": k.mtu}
                for k in self.links
            ],
            "neighbours": [
                {
                    "name": n.name,
                    "address": n.address,
                    "link": n.link,
                    "up": n.up,
                    "rtt_ms": None if n.rtt_s is None else round(n.rtt_s * 1000, 2),
                    "loss": round(n.loss, 4),
                    "last_heard_s": None if n.last_heard_s is None else round(n.last_heard_s, 2),
                }
                for n in self.neighbours
            ],
            "queues": dict(self.queued),
            "held": self.store.held,
            "store": {
                "messages": self.store.messages,
                "bytes": self.store.bytes,
                "max_bytes": self.store.max_bytes,
                "inbox": self.store.inbox,
                "writable": self.store.problem is None,
                "problem": self.store.problem,
                "notices_sent": self.counters.notices_sent,
                "notices_unsent": self.counters.notices_unsent,
                "room_signals": self.counters.room_signals,
            },
            "routes": dict(self.routes),
        }


def take(
    me: int,
    roster: Roster,
    specs: Iterable[LinkSpec],
    adjacencies: Iterable[Adjacency],
    queues: Iterable[NeighbourQueue],
    store: Store,
    stats: EngineStats,
    routes: Mapping[int, int],
    now: float,
    store_problem: str | None = None,
) -> NodeSnapshot:
    def name(address: int) -> str:
        entry = roster.by_address(address)
        return entry.name if entry is not None else str(address)

    adjacencies = list(adjacencies)
    queued = dict.fromkeys(PRECEDENCE_NAMES, 0)
    for queue in queues:
        for key, count in queue.counts_by_precedence().items():
            queued[key] += count
    counts, sizes = store.counts_by_precedence(), store.bytes_by_precedence()
    return NodeSnapshot(
        node=name(me),
        address=me,
        links=tuple(_link(spec, adjacencies, stats) for spec in specs),
        neighbours=tuple(
            NeighbourView(
                a.neighbour,
                name(a.neighbour),
                a.link,
                a.up,
                a.srtt,
                max(a.rx_loss, a.tx_loss),
                None if a.last_heard == float("-inf") else now - a.last_heard,
            )
            for a in adjacencies
        ),
        queued=_frozen(queued),
        store=StoreView(
            store.message_count(),
            store.bytes_used(),
            store.max_bytes,
            store.inbox_count(),
            store.held_count(),
            _frozen({p.name.lower(): counts.get(int(p), 0) for p in Precedence}),
            _frozen({p.name.lower(): sizes.get(int(p), 0) for p in Precedence}),
            store_problem,
        ),
        routes=tuple((name(d), name(h)) for d, h in sorted(routes.items())),
        counters=Counters(
            submitted=_frozen(dict(stats.submitted)),
            delivered=_frozen(dict(stats.delivered)),
            forwarded=_frozen(dict(stats.forwarded)),
            expired=_frozen(dict(stats.expired)),
            evicted=_frozen(dict(stats.evicted)),
            refused=_frozen(dict(stats.refused)),
            rejected=_frozen(dict(stats.rejected)),
            duplicates=stats.duplicates,
            receipts_received=stats.receipts_received,
            store_failures=stats.store_failures,
            refused_unwritable=stats.refused_unwritable,
            notices_sent=stats.notices_sent,
            notices_unsent=stats.notices_unsent,
            room_signals=stats.room_signals,
        ),
    )


def _link(spec: LinkSpec, adjacencies: list[Adjacency], stats: EngineStats) -> LinkView:
    counted = stats.links.get(spec.name) or LinkStats()
    return LinkView(
        spec.name, spec.profile.name, spec.profile.rate_bps, spec.profile.mtu,
        any(a.up for a in adjacencies if a.link == spec.name),
        counted.frames_sent, counted.frames_received, counted.bytes_sent,
        counted.bytes_received, counted.retransmissions, counted.batched,
        counted.net_copies, counted.adverts_too_large,
    )  # fmt: skip


def _frozen(values: dict[str, int]) -> Mapping[str, int]:
    return MappingProxyType(values)
