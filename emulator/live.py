"""The emulator's `--realtime` side: a run paced to the wall clock, watched in Prometheus.

A run is the same event heap as in virtual time; `run_paced` only decides how far it may go:
virtual time = start + speed * wall time elapsed, advanced in ticks. The metrics of every node
come from one endpoint, each sample labelled `node`, with the names and help texts a single
daemon exports (`tawan.node.metrics`), so the same Grafana dashboard shows either.

Nothing is counted per frame: a scrape takes each engine's snapshot (`Engine.snapshot`) and
turns it into samples there and then. The endpoint is served by trio on the loop that runs
the emulation, so a scrape reads the engines (and their SQLite stores, which refuse other
threads) between two ticks, never while one runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Final

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from tawan.core.events import Delivered, Event
from tawan.core.snapshot import NodeSnapshot
from tawan.node.metrics import PRECEDENCES, LatencyHistogram, empty_families, snapshot_samples

__all__ = [
    "EMULATION_METRICS",
    "EmulationMetrics",
    "run_paced",
    "serve_metrics",
    "snapshot_samples",
]

Snapshots = Callable[[], Mapping[str, NodeSnapshot]]
"""Every running node's snapshot, by node name (a destroyed node is simply absent)."""
_Scalar = CounterMetricFamily | GaugeMetricFamily


EMULATION_METRICS: Final = (
    ("tawan_emulation_virtual_time_seconds", "Virtual time of the run, from its start."),
    ("tawan_emulation_speed", "Virtual seconds per wall-clock second (the --speed asked)."),
    ("tawan_emulation_nodes", "Nodes running: neither destroyed nor down after a crash."),
)
"""Figures of the emulation as a whole, without a `node` label."""


# ================================================================== many nodes, one registry
class EmulationMetrics(Collector):
    """Every node of a run in `registry`, labelled `node`, read from `snapshots` per scrape.

    Scrapes must run where the engines live (the trio loop of `serve_metrics` does); the one
    per-event figure, delivery latency, comes through `observe_event`.
    """

    def __init__(self, registry: CollectorRegistry, snapshots: Snapshots) -> None:
        self.snapshots = snapshots
        self.virtual_time = 0.0
        self.speed = 1.0
        self._latency: dict[tuple[str, str], LatencyHistogram] = {}
        registry.register(self)

    def set_clock(self, virtual_time: float, speed: float) -> None:
        self.virtual_time, self.speed = virtual_time, speed

    def observe_event(self, node: str, event: Event) -> None:
        """Called with the events of each node; only deliveries are measured."""
        if isinstance(event, Delivered):
            key = (node, event.precedence.name.lower())
            latency = self._latency.get(key)
            if latency is None:
                latency = self._latency[key] = LatencyHistogram()
            latency.observe(event.latency)

    def describe(self) -> Iterator[Metric]:
        """The families without samples, for the registry's name check; reads no engine."""
        return iter(self._families()[0])

    def collect(self) -> Iterator[Metric]:
        families, scalars, latency = self._families()
        views = self.snapshots()
        for node in sorted(views):
            for name, values, value in snapshot_samples(views[node]):
                scalars[name].add_metric([node, *values], value)
            for precedence in PRECEDENCES:
                histogram = self._latency.get((node, precedence)) or LatencyHistogram()
                latency.add_metric([node, precedence], *histogram.snapshot())
        for name, value in zip(
            (name for name, _ in EMULATION_METRICS),
            (self.virtual_time, self.speed, float(len(views))),
            strict=True,
        ):
            scalars[name].add_metric([], value)
        return iter(families)

    def _families(
        self,
    ) -> tuple[
        list[Metric], dict[str, CounterMetricFamily | GaugeMetricFamily], HistogramMetricFamily
    ]:
        ordered, scalars, latency = empty_families(labelled=True)
        for name, help_text in EMULATION_METRICS:
            unit = "seconds" if name.endswith("_seconds") else ""
            ordered.append(
                scalars.setdefault(name, GaugeMetricFamily(name, help_text, labels=[], unit=unit))
            )
        return ordered, scalars, latency


# ================================================================== pacing
async def run_paced(
    step_until: Callable[[float], None],
    start: float,
    end: float,
    speed: float = 1.0,
    tick_s: float = 0.1,
) -> None:
    """Advance the run to `end`, `step_until(t)` once a tick, `t` = start + speed * elapsed.

    A tick that takes longer than `tick_s` is not made up for with a burst of small ones:
    the next tick comes at the next multiple of `tick_s`, and virtual time follows the wall
    clock again at once. The last call is `step_until(end)` exactly.
    """
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"speed: expected a finite number above 0, found {speed}")
    if not (math.isfinite(tick_s) and tick_s > 0):
        raise ValueError(f"tick_s: expected a finite number of seconds above 0, found {tick_s}")
    if not (math.isfinite(start) and math.isfinite(end) and end >= start):
        raise ValueError(f"run from {start} to {end}: expected a finite end at or after start")
    wall_start = trio.current_time()
    wall_span = (end - start) / speed
    ticks = math.ceil(wall_span / tick_s)
    # Each turn sleeps to a later tick than the one before, so there are at most `ticks`
    # turns, and one more for the end.
    for _ in range(ticks + 1):
        elapsed = trio.current_time() - wall_start
        next_tick = (math.floor(elapsed / tick_s + 1e-9) + 1) * tick_s
        await trio.sleep_until(wall_start + min(next_tick, wall_span))
        elapsed = trio.current_time() - wall_start
        if elapsed >= wall_span:
            step_until(end)
            return
        step_until(start + speed * elapsed)
    step_until(end)  # only when rounding ate a tick: the end is never skipped


# ================================================================== the endpoint
_MAX_REQUEST_BYTES: Final = 8192
_REQUEST_TIMEOUT_S: Final = 5.0
_REASONS: Final = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


async def serve_metrics(
    registry: CollectorRegistry,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `registry` on http://host:port/metrics until cancelled; reports the bound port.

    HTTP/1.0, one request per connection: what Prometheus and curl need, nothing more.
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    task_status.started(bound)
    await trio.serve_listeners(partial(_answer, registry), listeners)


async def _answer(registry: CollectorRegistry, stream: trio.SocketStream) -> None:
    async with stream:
        try:
            with trio.move_on_after(_REQUEST_TIMEOUT_S):
                request = await _read_head(stream)
                status, body, content_type = _respond(registry, request)
                head = (
                    f"HTTP/1.0 {status} {_REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                await stream.send_all(head.encode("ascii") + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away: nothing to answer


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """The request up to its blank line; None if too long or cut short."""
    data = b""
    while b"\r\n\r\n" not in data and b"\n\n" not in data:
        if len(data) > _MAX_REQUEST_BYTES:
            return None
        chunk = await stream.receive_some(_MAX_REQUEST_BYTES)
        if not chunk:
            return None
        data += chunk
    return data


def _respond(registry: CollectorRegistry, request: bytes | None) -> tuple[int, bytes, str]:
    text = "text/plain; charset=utf-8"
    line = request.split(b"\n", 1)[0].strip().split() if request else []
    if len(line) != 3 or not line[2].startswith(b"HTTP/"):
        return 400, b"expected a request line: GET /metrics HTTP/1.0\n", text
    method, target = line[0], line[1].split(b"?", 1)[0]
    if target not in (b"/metrics", b"/"):
        return 404, b"metrics are at /metrics\n", text
    if method != b"GET":
        return 405, b"only GET is served\n", text
    return 200, generate_latest(registry), CONTENT_TYPE_LATEST
