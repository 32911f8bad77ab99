"""What `tawan emulate` runs (imported only then: a daemon's command line must not load
the emulator, scapy and matplotlib)."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from emulator.emulate import EmulationError, Outcome, emulate
from emulator.realtime import emulate_realtime
from emulator.report import print_summary
from emulator.run import Options
from tawan.cli import UserError
from topologies.checks import notices
from topologies.load import ScenarioError, load_scenario
from topologies.scenario import Scenario


def _emulate(
    args: argparse.Namespace, scenario: Scenario, options: Options, console: Console
) -> Outcome:
    if args.realtime:
        return emulate_realtime(
            scenario, args.out, options, speed=args.speed, port=args.metrics_port,
            console=console, pcap_links=args.pcap, report=not args.no_report,
        )  # fmt: skip
    with Progress(
        TextColumn(f"[bold]{scenario.run.name}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s virtual"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("run", total=scenario.run.duration_s)
        return emulate(
            scenario, args.out, options, pcap_links=args.pcap, report=not args.no_report,
            progress=lambda t: bar.update(task, completed=t),
        )  # fmt: skip


def run_emulate(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    for path, text in notices(scenario):
        print(f"tawan: warning: {args.scenario}: {path}: {text}", file=sys.stderr)
    options = Options(seed=args.seed, window_s=args.window)
    console = Console(stderr=True, quiet=args.quiet)
    try:
        outcome = _emulate(args, scenario, options, console)
    except EmulationError as exc:
        raise UserError(str(exc)) from None
    # A log or a pipe gets the whole table, not one cut to 80 columns.
    width = None if sys.stdout.isatty() else 120
    out = Console(file=sys.stdout, quiet=args.quiet, width=width)
    print_summary(outcome.results, out)
    print(f"results: {outcome.results_path}")
    print(f"timeline: {outcome.timeline_path}")
    if outcome.report_path is not None:
        print(f"report: {outcome.report_path}")
    return 0
