"""One emulation from scenario to files: run it, then write timeline.json, results.json and
report.html into the output folder. The `tawan emulate` command, `make demo` and the
benchmarks all come through here."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.pcap import PcapRecorder
from emulator.report import write_report
from emulator.results import results, timeline, write_json
from emulator.run import Emulation, Options
from topologies.analyze import draw_bytes
from topologies.scenario import Scenario


class EmulationError(ValueError):
    """A request the scenario cannot satisfy (the user's to fix)."""


def check_capture(scenario: Scenario, links: Collection[str]) -> None:
    """Every link asked for a capture is a link or net of the scenario."""
    known = {Scenario.link_name(link) for link in scenario.links} | {n.name for n in scenario.nets}
    unknown = sorted(set(links) - known)
    if unknown:
        raise EmulationError(f"--pcap: expected links of the scenario, found {unknown}")


MAX_WINDOWS = 100_000
"""The most results windows a run may have (each is sampled and reported): an hour in
windows of 0.036 s, a week in windows of 6 s."""


def check_run(scenario: Scenario, options: Options | None, out: Path) -> None:
    """What the command line adds to a scenario, checked before anything runs: the results
    window, and an output folder that is one (or can be made)."""
    window = (options or Options()).window_s
    duration = scenario.run.duration_s
    if not 0 < window < math.inf:
        raise EmulationError(f"--window: expected a finite number of seconds > 0, found {window}")
    if duration / window > MAX_WINDOWS:
        raise EmulationError(
            f"--window: expected at most {MAX_WINDOWS} windows in the run's {duration} s"
            f" (a window of at least {duration / MAX_WINDOWS:.3g} s), found {window}"
        )
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise EmulationError(f"--out: expected a folder, found a file {str(folder)!r}")
            break


@dataclass(frozen=True, slots=True)
class Outcome:
    results: dict[str, Any]
    timeline_path: Path
    results_path: Path
    report_path: Path | None
    events: int


def emulate(
    scenario: Scenario,
    out: Path,
    options: Options | None = None,
    *,
    pcap_links: Collection[str] = (),
    report: bool = True,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """Run `scenario` to its end and write its outputs into `out` (created if need be)."""
    check_capture(scenario, pcap_links)
    check_run(scenario, options, out)
    out.mkdir(parents=True, exist_ok=True)
    em = Emulation(scenario, options)
    recorder = PcapRecorder(out, pcap_links) if pcap_links else None
    if recorder is not None:
        em.frame_hooks.append(recorder.frame)
    try:
        em.run(progress)
    finally:
        if recorder is not None:
            recorder.close()
    return finish(em, out, report=report)


def finish(em: Emulation, out: Path, *, report: bool = True) -> Outcome:
    """Write the outputs of a run that has ended (also used by the realtime mode)."""
    tl = timeline(em)
    res = results(em, tl)
    timeline_path, results_path = out / "timeline.json", out / "results.json"
    write_json(timeline_path, tl)
    write_json(results_path, res)
    report_path = None
    if report:
        picture = draw_bytes(em.scenario, "png")
        report_path = write_report(res, out, picture)
    events = em.events_handled
    em.close()
    return Outcome(res, timeline_path, results_path, report_path, events)
