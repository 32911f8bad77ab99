"""Prometheus metrics of a node, read from the engine's own counters when scraped.

Nothing is counted twice and nothing runs per frame: the engine keeps plain counters
(`tawan.core.stats`), the store its tallies, the neighbour table its measurements, and a scrape
turns them into metric families on the spot. The one figure the engine does not keep, the
distribution of delivery latency, is fed from `Delivered` events through `observe_event`.

The engine and its store belong to one thread (trio's, in the daemon; SQLite also refuses a
connection used from another thread), while prometheus-client answers scrapes on threads of
its own. So a node is read through its `run_in_owner`, which runs the reading on the engine's
thread and hands back plain numbers: `run_in_trio()` does that for the trio runtime.

One registry may hold many nodes (the emulator's single endpoint): give each a `node_label`
and every sample carries `node="..."`, with each family once in the exposition.
docs/metrics.md lists every metric.
"""

from __future__ import annotations

import bisect
import itertools
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final, Literal, Protocol, TypeVar
from wsgiref.simple_server import WSGIServer

import trio
from prometheus_client import start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from tawan.core.engine import Engine
from tawan.core.events import Delivered, Event
from tawan.core.precedence import Precedence
from tawan.core.snapshot import NodeSnapshot, StoreView
from tawan.node.runtime import LinkIo
from transports.link import format_endpoint, parse_endpoint

__all__ = [
    "LATENCY_BUCKETS",
    "LINK_IO_FAMILIES",
    "METRICS",
    "PRECEDENCES",
    "REJECTION_REASONS",
    "MetricSpec",
    "NodeMetrics",
    "OwnerGone",
    "RunInOwner",
    "run_directly",
    "run_in_trio",
    "server_address",
    "start_metrics_server",
    "stop_metrics_server",
]

LATENCY_BUCKETS: Final = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Upper bounds (seconds) of the delivery latency buckets: a LAN hop to an hour held in store."""

PRECEDENCES: Final = tuple(p.name.lower() for p in Precedence)

REJECTION_REASONS: Final = (
    "malformed", "unauthenticated", "replay", "unknown-sender", "no-key", "e2e-auth",
    "bad-signature", "bad-compression", "bad-receipt", "revoked", "hop-limit",
    "reassembly-limit", "unsupported", "unsigned-group", "forged-receipt", "bad-advert",
    "bad-revocation", "id-clash", "unknown-source", "unknown-destination", "ttl-too-long",
    "from-the-future", "not-addressed",
)  # fmt: skip
"""The reasons the engine gives today, exported at 0 so that a rate exists before the first
rejection. A reason added later still appears, from its first count on."""

_LATENCY: Final = "tawan_delivery_latency_seconds"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One metric family: its name (without `_total`), type, labels (before `node`) and help."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...]
    help: str
    unit: str = ""


_P, _R, _L, _LN = ("precedence",), ("reason",), ("link",), ("link", "neighbour")  # label names


def _messages(verb: str, help: str) -> MetricSpec:
    return MetricSpec(f"tawan_messages_{verb}", "counter", _P, help)


# fmt: off
METRICS: Final = (
    _messages("submitted", "Messages the local application submitted."),
    _messages("delivered", "Messages delivered to this node's inbox, once each."),
    _messages("forwarded", "Messages taken into custody to hand on towards another node."),
    _messages("expired", "Messages dropped because their time to live ran out."),
    _messages("evicted", "Messages dropped from the store to make room for higher ones."),
    _messages("refused", "Messages refused custody, not acknowledged: no room, or share used."),
    MetricSpec("tawan_frames_rejected", "counter", _R,
               "Frames or messages dropped here: malformed, unauthenticated, replayed..."),
    MetricSpec("tawan_duplicates", "counter", (),
               "Messages received again after custody was taken; acknowledged, not kept."),
    MetricSpec("tawan_receipts_received", "counter", (),
               "End-to-end receipts received for messages sent from here."),
    MetricSpec("tawan_store_messages", "gauge", _P, "Messages in custody."),
    MetricSpec("tawan_store_bytes", "gauge", _P, "Bytes of messages in custody.", "bytes"),
    MetricSpec("tawan_store_max_bytes", "gauge", (), "Capacity of the store.", "bytes"),
    MetricSpec("tawan_store_writable", "gauge", (),
               "1 when the store writes; 0 when it cannot (disk full, read-only): no custody."),
    MetricSpec("tawan_store_write_failures", "counter", (),
               "Store writes or commits that failed (full, read-only) and were rolled back."),
    MetricSpec("tawan_refused_unwritable", "counter", (),
               "Messages and fragments not taken because the store could not write."),
    MetricSpec("tawan_notices_sent", "counter", (),
               "Notices of eviction sent to the origins of evicted messages."),
    MetricSpec("tawan_notices_unsent", "counter", (),
               "Evictions never told to their origin (too many pending, origin revoked)."),
    MetricSpec("tawan_room_signals", "counter", (),
               "HELLOs with ROOM sent to neighbours refused while the store was full."),
    MetricSpec("tawan_inbox_messages", "gauge", (),
               "Delivered messages the application has not acknowledged yet."),
    MetricSpec("tawan_queue_messages", "gauge", _P,
               "Messages queued for, or in flight to, a next hop."),
    MetricSpec("tawan_link_up", "gauge", _L, "1 when some neighbour is up on the link."),
    MetricSpec("tawan_link_frames_sent", "counter", _L, "Frames put on the link."),
    MetricSpec("tawan_link_frames_received", "counter", _L, "Frames taken off the link."),
    MetricSpec("tawan_link_sent_bytes", "counter", _L, "Bytes put on the link.", "bytes"),
    MetricSpec("tawan_link_received_bytes", "counter", _L, "Bytes taken off the link.", "bytes"),
    MetricSpec("tawan_link_retransmissions", "counter", _L,
               "Messages or fragments sent again for want of an acknowledgement."),
    MetricSpec("tawan_link_batched_messages", "counter", _L,
               "Messages sent several to a frame (BATCH) rather than one (DATA)."),
    MetricSpec("tawan_link_net_copies", "counter", _L,
               "Copies of messages sent to several members of a net in one frame (NET), "
               "one per receiver."),
    MetricSpec("tawan_link_adverts_too_large", "counter", _L,
               "Route adverts not put on the link because they exceed its MTU, nor on "
               "another link to the same neighbour: that neighbour does not hear them."),
    MetricSpec("tawan_link_drops", "counter", _L + _R,
               "Frames or datagrams dropped before the engine saw them: junk the screen "
               "refused, over the MTU or the strangers' budget, buffers full (the kernel's "
               "too)."),
    MetricSpec("tawan_link_send_failures", "counter", _L + _R,
               "Frames the engine wanted sent that did not leave: peer unavailable, queue full."),
    MetricSpec("tawan_link_receive_buffer_bytes", "gauge", _L,
               "Receive buffer the operating system granted the link's socket.", "bytes"),
    MetricSpec("tawan_neighbour_up", "gauge", _LN, "1 when the neighbour is up on the link."),
    MetricSpec("tawan_neighbour_rtt_seconds", "gauge", _LN,
               "Smoothed round-trip time, from hellos; absent until measured.", "seconds"),
    MetricSpec("tawan_neighbour_loss_ratio", "gauge", _LN,
               "Frame loss, the worse of the two directions, 0 to 1.", "ratio"),
    MetricSpec(_LATENCY, "histogram", _P,
               "Seconds from creation at the origin to delivery here.", "seconds"),
)
# fmt: on
"""Every family a node exports, in exposition order."""

LINK_IO_FAMILIES: Final = (
    "tawan_link_drops", "tawan_link_send_failures", "tawan_link_receive_buffer_bytes",
)  # fmt: skip
"""Families read from a runtime's links (`link_io`), not the engine: empty without one."""

_Sample = tuple[str, tuple[str, ...], float]  # family name, label values, value
_Buckets = list[tuple[str, float]]  # cumulative counts by `le`, ending with "+Inf"
_T = TypeVar("_T")


# ================================================================== the engine's thread
class RunInOwner(Protocol):
    """Run `read` on the thread that owns the engine and return its result."""

    def __call__(self, read: Callable[[], _T], /) -> _T: ...


class OwnerGone(Exception):
    """The engine's thread has stopped: there is nothing to read any more."""


def run_directly(read: Callable[[], _T], /) -> _T:
    """For a caller that scrapes on the engine's own thread (tests, the virtual-time loop)."""
    return read()


def run_in_trio(token: trio.lowlevel.TrioToken | None = None) -> RunInOwner:
    """Read on the trio loop that calls this (or owns `token`), from whichever thread scrapes."""
    owner = token if token is not None else trio.lowlevel.current_trio_token()

    def run(read: Callable[[], _T], /) -> _T:
        try:
            on_owner = trio.lowlevel.current_trio_token() is owner
        except RuntimeError:  # not in any trio thread: the usual case, a server thread
            on_owner = False
        if on_owner:
            return read()
        try:
            return trio.from_thread.run_sync(read, trio_token=owner)
        except trio.RunFinishedError:
            raise OwnerGone("the node's trio loop has finished") from None

    return run


# ================================================================== one node
class LatencyHistogram:
    """Delivery latency of one precedence (of one node): counts per bucket (not cumulative)
    and their sum; the emulator keeps one per node and precedence too."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def snapshot(self) -> tuple[_Buckets, float]:
        bounds = [*map(floatToGoString, LATENCY_BUCKETS), "+Inf"]
        cumulative = map(float, itertools.accumulate(self.counts))
        return list(zip(bounds, cumulative, strict=True)), self.total


@dataclass(frozen=True, slots=True)
class _Reading:
    samples: list[_Sample]
    latency: list[tuple[str, _Buckets, float]]  # precedence, buckets, sum


class NodeMetrics:
    """Exports `engine` through `registry`; `observe_event` must see every event it emits.

    `engine` may be replaced (a restarted node): its counters then start again from zero,
    which Prometheus' rate() reads as a counter reset. `close()` takes the node out.
    `link_io` reads what the links lost outside the engine (`Runtime.link_io`); without it
    (the emulator) the link drop and send failure families have no samples.
    """

    def __init__(
        self,
        engine: Engine,
        registry: CollectorRegistry,
        node_label: str | None = None,
        *,
        run_in_owner: RunInOwner = run_directly,
        link_io: Callable[[], Iterable[LinkIo]] | None = None,
    ) -> None:
        if node_label == "":
            raise ValueError("node_label: expected a node name or None, found ''")
        self.engine = engine
        self.node_label = node_label
        self.run_in_owner = run_in_owner
        self.link_io = link_io
        self._latency = {p: LatencyHistogram() for p in Precedence}
        self._collector = _collector_for(registry, labelled=node_label is not None)
        self._collector.add(self)

    def observe_event(self, event: Event) -> None:
        """Called with every event the engine emits; only deliveries are measured."""
        if isinstance(event, Delivered):
            self._latency[event.precedence].observe(event.latency)

    def read(self) -> _Reading:
        """The node's figures, read on the engine's thread (OwnerGone if it has stopped)."""
        return self.run_in_owner(self._read_here)

    def _read_here(self) -> _Reading:
        latency = [(p.name.lower(), *h.snapshot()) for p, h in self._latency.items()]
        samples = _engine_samples(self.engine)
        if self.link_io is not None:
            samples += _link_io_samples(self.link_io())
        return _Reading(samples, latency)

    def close(self) -> None:
        self._collector.remove(self)


def _engine_samples(engine: Engine) -> list[_Sample]:
    return snapshot_samples(engine.snapshot(engine.last_time))


def snapshot_samples(view: NodeSnapshot) -> list[_Sample]:
    """Every sample of one node (but its latency histogram), read from one snapshot: what
    a daemon exports, and the emulator for each of its nodes (emulator/live.py)."""
    counters = view.counters
    samples: list[_Sample] = []
    for name, counts in (
        ("tawan_messages_submitted", counters.submitted),
        ("tawan_messages_delivered", counters.delivered),
        ("tawan_messages_forwarded", counters.forwarded),
        ("tawan_messages_expired", counters.expired),
        ("tawan_messages_evicted", counters.evicted),
        ("tawan_messages_refused", counters.refused),
    ):
        samples += ((name, (p,), counts.get(p, 0)) for p in PRECEDENCES)
    reasons = dict.fromkeys(REJECTION_REASONS) | dict.fromkeys(sorted(counters.rejected))
    samples += (("tawan_frames_rejected", (r,), counters.rejected.get(r, 0)) for r in reasons)
    samples.append(("tawan_duplicates", (), counters.duplicates))
    samples.append(("tawan_receipts_received", (), counters.receipts_received))
    samples.append(("tawan_store_write_failures", (), counters.store_failures))
    samples.append(("tawan_refused_unwritable", (), counters.refused_unwritable))
    samples.append(("tawan_notices_sent", (), counters.notices_sent))
    samples.append(("tawan_notices_unsent", (), counters.notices_unsent))
    samples.append(("tawan_room_signals", (), counters.room_signals))
    samples += _store_samples(view.store)
    samples += (("tawan_queue_messages", (p,), view.queued[p]) for p in PRECEDENCES)
    samples += _link_samples(view)
    return samples


def _store_samples(store: StoreView) -> Iterator[_Sample]:
    for precedence in PRECEDENCES:
        label = (precedence,)
        yield "tawan_store_messages", label, store.messages_by_precedence[precedence]
        yield "tawan_store_bytes", label, store.bytes_by_precedence[precedence]
    yield "tawan_store_max_bytes", (), store.max_bytes
    yield "tawan_store_writable", (), 1.0 if store.problem is None else 0.0
    yield "tawan_inbox_messages", (), store.inbox


def _link_samples(view: NodeSnapshot) -> Iterator[_Sample]:
    for link in view.links:
        label = (link.name,)
        yield "tawan_link_up", label, 1.0 if link.up else 0.0
        yield "tawan_link_frames_sent", label, link.frames_sent
        yield "tawan_link_frames_received", label, link.frames_received
        yield "tawan_link_sent_bytes", label, link.bytes_sent
        yield "tawan_link_received_bytes", label, link.bytes_received
        yield "tawan_link_retransmissions", label, link.retransmissions
        yield "tawan_link_batched_messages", label, link.batched
        yield "tawan_link_net_copies", label, link.net_copies
        yield "tawan_link_adverts_too_large", label, link.adverts_too_large
    for neighbour in view.neighbours:
        pair = (neighbour.link, neighbour.name)
        yield "tawan_neighbour_up", pair, 1.0 if neighbour.up else 0.0
        if neighbour.rtt_s is not None:
            yield "tawan_neighbour_rtt_seconds", pair, neighbour.rtt_s
        yield "tawan_neighbour_loss_ratio", pair, neighbour.loss


def _link_io_samples(links: Iterable[LinkIo]) -> Iterator[_Sample]:
    for link in links:
        for reason, count in link.drops.items():
            yield "tawan_link_drops", (link.link, reason), count
        for reason, count in link.send_failures.items():
            yield "tawan_link_send_failures", (link.link, reason), count
        if link.receive_buffer_bytes is not None:
            yield "tawan_link_receive_buffer_bytes", (link.link,), link.receive_buffer_bytes


# ================================================================== the registry's side
_Scalar = CounterMetricFamily | GaugeMetricFamily


class _NodesCollector(Collector):
    """Every node of one registry, so that each family appears once however many nodes."""

    def __init__(self, *, labelled: bool) -> None:
        self.labelled = labelled
        self._nodes: dict[str | None, NodeMetrics] = {}
        self._lock = threading.Lock()

    def add(self, node: NodeMetrics) -> None:
        with self._lock:
            if (node.node_label is not None) != self.labelled:
                expected = "a node_label" if self.labelled else "no node_label"
                raise ValueError(
                    f"node_label: this registry's nodes have {expected}, found "
                    f"{node.node_label!r}; one registry cannot mix the two"
                )
            if node.node_label in self._nodes:
                raise ValueError(f"node_label {node.node_label!r} is already in this registry")
            self._nodes[node.node_label] = node

    def remove(self, node: NodeMetrics) -> None:
        with self._lock:
            if self._nodes.get(node.node_label) is node:
                del self._nodes[node.node_label]

    def describe(self) -> Iterator[Metric]:
        """The families without samples: lets the registry check names, touches no engine."""
        return self._families()[0]

    def collect(self) -> Iterator[Metric]:
        families, scalars, latency = self._families()
        with self._lock:
            nodes = list(self._nodes.values())
        for node in nodes:
            try:
                reading = node.read()
            except OwnerGone:
                continue  # a node stopping while scraped: its series go stale
            prefix = (node.node_label,) if node.node_label is not None else ()
            for name, values, value in reading.samples:
                scalars[name].add_metric([*prefix, *values], value)
            for precedence, buckets, total in reading.latency:
                latency.add_metric([*prefix, precedence], buckets, total)
        return families

    def _families(
        self,
    ) -> tuple[Iterator[Metric], dict[str, _Scalar], HistogramMetricFamily]:
        ordered, scalars, latency = empty_families(labelled=self.labelled)
        return iter(ordered), scalars, latency


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, _NodesCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def _collector_for(registry: CollectorRegistry, *, labelled: bool) -> _NodesCollector:
    """The registry's collector of nodes, registered with it on first use."""
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _NodesCollector(labelled=labelled)
            registry.register(collector)
            _collectors[registry] = collector
        return collector


# ================================================================== the endpoint
def start_metrics_server(
    registry: CollectorRegistry, address: str
) -> tuple[WSGIServer, threading.Thread]:
    """Serve `registry` over HTTP on `address` ("host:port", "[v6]:port"; port 0 picks one).

    The server runs on a daemon thread; `server_address(server)` gives the bound address.
    ValueError for a malformed address, OSError (naming it) when it cannot be bound.
    """
    host, port = parse_endpoint(address, "metrics.address")
    try:
        return start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise OSError(exc.errno, f"metrics.address {address}: {exc.strerror or exc}") from exc


def server_address(server: WSGIServer) -> str:
    """The address the server is bound to, as "host:port" (the real port when 0 was asked)."""
    host, port = server.server_address[:2]
    return format_endpoint(str(host), int(port))


def stop_metrics_server(
    server: WSGIServer, thread: threading.Thread, timeout: float = 5.0
) -> None:
    """Stop serving and close the socket; blocks for up to half a second plus `timeout`."""
    server.shutdown()
    server.server_close()
    thread.join(timeout)


def empty_families(
    *, labelled: bool
) -> tuple[list[Metric], dict[str, _Scalar], HistogramMetricFamily]:
    """Empty families in METRICS order, with the scalar ones and the histogram by name;
    `labelled`: each with a `node` label first (several nodes from one endpoint)."""
    node = ["node"] if labelled else []
    scalars: dict[str, _Scalar] = {}
    latency = HistogramMetricFamily(_LATENCY, "", labels=[])
    ordered: list[Metric] = []
    for spec in METRICS:
        labels = [*node, *spec.labels]
        family: Metric
        if spec.kind == "counter":
            family = scalars[spec.name] = CounterMetricFamily(
                spec.name, spec.help, labels=labels, unit=spec.unit
            )
        elif spec.kind == "gauge":
            family = scalars[spec.name] = GaugeMetricFamily(
                spec.name, spec.help, labels=labels, unit=spec.unit
            )
        else:
            family = latency = HistogramMetricFamily(
                spec.name, spec.help, labels=labels, unit=spec.unit
            )
        ordered.append(family)
    return ordered, scalars, latency
