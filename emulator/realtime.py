"""`tawan emulate --realtime`: the same schedule as a virtual-time run, paced to the wall
clock inside trio, with one Prometheus endpoint for every node (label `node`), so the
Grafana dashboard of monitoring/ watches the emulation live. The heap decides what happens,
the pacing only when: the results equal those of the same run in virtual time."""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

import trio
from prometheus_client import CollectorRegistry
from rich.console import Console

from emulator.emulate import EmulationError, Outcome, check_capture, check_run, finish
from emulator.live import EmulationMetrics, run_paced, serve_metrics
from emulator.pcap import PcapRecorder
from emulator.run import BASE, Emulation, Options
from tawan.core.snapshot import NodeSnapshot
from topologies.scenario import Scenario


def emulate_realtime(
    scenario: Scenario,
    out: Path,
    options: Options | None = None,
    *,
    speed: float = 1.0,
    port: int = 9400,
    host: str = "127.0.0.1",
    console: Console | None = None,
    pcap_links: Collection[str] = (),
    report: bool = True,
) -> Outcome:
    if not 0 < speed < math.inf:
        raise EmulationError(f"--speed: expected a finite number > 0, found {speed}")
    if not 0 <= port <= 65535:
        raise EmulationError(f"--metrics-port: expected a TCP port 0..65535, found {port}")
    check_capture(scenario, pcap_links)
    check_run(scenario, options, out)
    out.mkdir(parents=True, exist_ok=True)
    console = console or Console(stderr=True)
    em = Emulation(scenario, options)
    registry = CollectorRegistry()

    def snapshots() -> dict[str, NodeSnapshot]:
        now = BASE + em.now
        return {n: e.snapshot(now) for n, e in em.engines.items() if em.alive[n]}

    metrics = EmulationMetrics(registry, snapshots)
    em.event_hooks.append(lambda node, event, _t: metrics.observe_event(node, event))
    recorder = PcapRecorder(out, pcap_links) if pcap_links else None
    if recorder is not None:
        em.frame_hooks.append(recorder.frame)

    def step(t: float) -> None:
        em.step_until(t)
        metrics.set_clock(t, speed)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            try:
                bound = await nursery.start(serve_metrics, registry, host, port)
            except OSError as exc:  # in use, or not ours to bind
                raise _PortRefused(exc) from None
            console.print(f"metrics of {len(em.engines)} nodes: http://{host}:{bound}/metrics")
            await run_paced(step, 0.0, em.duration, speed)
            nursery.cancel_scope.cancel()

    try:
        trio.run(main)
    except* _PortRefused as failed:  # only the metrics port's bind: not an OSError of the run
        reason = failed.exceptions[0].args[0]
        raise EmulationError(
            f"--metrics-port: expected a port free on {host}, found {port}: {reason}"
        ) from None
    finally:
        if recorder is not None:
            recorder.close()
    return finish(em, out, report=report)


class _PortRefused(Exception):
    """The metrics port could not be bound (its OSError is the argument)."""
