"""What an emulation records while it runs: offers, deliveries, frames, node and link events.

Cheap on the hot path (a frame adds to a few counters); everything derived (ratios,
percentiles, windows, the oracle's bound) is computed once at the end, in
`emulator.results`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emulator.links import LinkModel, Sent
from emulator.traffic import Offer
from tawan.core.events import (
    Delivered,
    Event,
    MessageEvicted,
    MessageExpired,
    MessageRefused,
    NeighbourChanged,
)
from tawan.core.frames import FrameType, MessageId
from tawan.core.precedence import Precedence
from tawan.core.store import wire_id

if TYPE_CHECKING:
    from emulator.run import Emulation

_MESSAGE_TYPES = frozenset(
    (FrameType.DATA, FrameType.FRAG, FrameType.BATCH, FrameType.NET, FrameType.NET_FRAG)
)


@dataclass(slots=True)
class OfferRecord:
    """One message offered at its source, and where and when it arrived."""

    mid: MessageId
    source: str
    destinations: tuple[str, ...]
    size: int
    precedence: Precedence
    time: float
    ttl_s: int
    generator: str
    delivered: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class BearerTally:
    frames: int = 0
    bytes: int = 0
    control_bytes: int = 0  # hellos, adverts, setup and revocation frames
    message_bytes: int = 0
    ack_bytes: int = 0  # acknowledgements: custody handed back, not control
    advert_bytes: int = 0  # of control_bytes: link-state adverts
    air_s: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)


class Recorder:
    def __init__(self, emulation: Emulation) -> None:
        self.emulation = emulation
        self.window_s = emulation.options.window_s
        self.offers: dict[MessageId, OfferRecord] = {}
        self.refusals: list[tuple[float, Offer, str]] = []
        self.bearers: dict[str, BearerTally] = defaultdict(BearerTally)
        self.links: dict[str, BearerTally] = defaultdict(BearerTally)  # by link name
        self.duration = emulation.duration
        self.window_bytes: dict[tuple[int, str], int] = defaultdict(int)
        self.window_control: dict[tuple[int, str], int] = defaultdict(int)
        self.duplicates = 0
        self.stack_drops: Counter[tuple[str, Precedence]] = Counter()  # (why, precedence)
        self.neighbour_changes: list[tuple[float, str, str, int, bool]] = []
        self.expired_mids: set[MessageId] = set()  # a node expired it (its ttl ran out)
        self.dropped_mids: set[MessageId] = set()  # a node evicted it, or refused custody
        self.source_down: Counter[Precedence] = Counter()  # offers a dead source never made
        # Message frames by (sender, receiver): the link the last one took, since when the
        # ones on it were lost on the air (none got through since), and every change of link
        # (time, sender, receiver, from, to, lost since or None): where a failover shows.
        self._last_link: dict[tuple[str, str], str] = {}
        self._lost_since: dict[tuple[str, str], float] = {}
        self.link_changes: list[tuple[float, str, str, str, str, float | None]] = []
        self.node_spans: dict[str, list[tuple[str, float, float | None]]] = defaultdict(list)
        self.store_peak: Counter[str] = Counter()
        self.store_samples: list[tuple[float, dict[str, int]]] = []

    # ------------------------------------------------------------------ hot path
    def frame(self, model: LinkModel, sender: str, receiver: str, data: bytes, sent: Sent) -> None:
        bearer = self.bearers[model.bearer.name]
        size = len(data)
        if sent.dropped is not None:
            bearer.dropped[sent.dropped] += 1
            if sent.start == sent.end:
                return  # never on the air (mtu, queue, silenced)
        kind = data[0] & 0xF
        # air time within the run: a frame still queued at the end has not used the link yet
        air = max(0.0, min(sent.end, self.duration) - sent.start)
        for tally in (bearer, self.links[model.name]):
            tally.air_s += air
            tally.frames += 1
            tally.bytes += size
            if kind in _MESSAGE_TYPES:
                tally.message_bytes += size
            elif kind == FrameType.ACK:
                tally.ack_bytes += size
            else:
                tally.control_bytes += size
                if kind == FrameType.ROUTE:
                    tally.advert_bytes += size
        window = int(sent.start // self.window_s), model.bearer.name
        self.window_bytes[window] += size
        if kind in _MESSAGE_TYPES:
            self._link_taken(model, sender, receiver, sent)
        elif kind != FrameType.ACK:
            self.window_control[window] += size

    def heard(self, model: LinkModel, sender: str, receiver: str, data: bytes, sent: Sent) -> None:
        """A further receiver of a frame `frame` counted (a NET frame): its drop, if any,
        and the link its messages from `sender` now take; bytes and air time are the
        frame's, counted once."""
        if sent.dropped is not None:
            self.bearers[model.bearer.name].dropped[sent.dropped] += 1
        if sent.end > sent.start and data[0] & 0xF in _MESSAGE_TYPES:
            self._link_taken(model, sender, receiver, sent)

    def _link_taken(self, model: LinkModel, sender: str, receiver: str, sent: Sent) -> None:
        pair, t, lost = (sender, receiver), sent.start, sent.dropped is not None
        last = self._last_link.get(pair)
        if last != model.name:
            since = self._lost_since.pop(pair, None)
            if last is not None:
                self.link_changes.append((t, sender, receiver, last, model.name, since))
            self._last_link[pair] = model.name
            if lost:
                self._lost_since[pair] = t
        elif lost:
            self._lost_since.setdefault(pair, t)
        elif pair in self._lost_since:
            del self._lost_since[pair]

    def event(self, node: str, event: Event, t: float) -> None:
        if isinstance(event, Delivered):
            record = self.offers.get(event.mid)
            if record is None or node not in record.destinations:
                return
            if node in record.delivered:
                self.duplicates += 1
            else:
                record.delivered[node] = t
        elif isinstance(event, MessageExpired):
            self.stack_drops["expired", event.precedence] += 1
            self.expired_mids.add(wire_id(event.mid))
        elif isinstance(event, MessageEvicted):
            self.stack_drops["evicted", event.precedence] += 1
            self.dropped_mids.add(wire_id(event.mid))
        elif isinstance(event, MessageRefused):
            self.stack_drops["refused", event.precedence] += 1
            self.dropped_mids.add(wire_id(event.mid))
        elif isinstance(event, NeighbourChanged):
            self.neighbour_changes.append((t, node, event.link, event.neighbour, event.up))

    # ------------------------------------------------------------------ the rest
    def offered(self, mid: MessageId, offer: Offer, destinations: list[str], t: float) -> None:
        self.offers[mid] = OfferRecord(
            mid, offer.source, tuple(destinations), offer.size, offer.precedence, t,
            offer.ttl_s, offer.generator,
        )  # fmt: skip

    def refused(self, offer: Offer, reason: str, t: float) -> None:
        self.refusals.append((t, offer, reason))

    def node_down(self, node: str, why: str, t: float) -> None:
        self.node_spans[node].append((why, t, None))

    def node_up(self, node: str, t: float) -> None:
        spans = self.node_spans[node]
        if spans and spans[-1][2] is None:
            why, start, _ = spans[-1]
            spans[-1] = (why, start, t)

    def sample(self, t: float) -> None:
        """Store occupancy of every live node, once per window."""
        counts = {}
        for name, store in self.emulation.stores.items():
            if self.emulation.alive[name]:
                count = store.message_count()
                counts[name] = count
                self.store_peak[name] = max(self.store_peak[name], count)
        self.store_samples.append((t, counts))
