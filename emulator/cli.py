"""`tawan emulate`: run a scenario file through the real engines and report what survived.

Only the parser lives here (every `tawan` command line builds it, a daemon's too); the work
is in `emulator.commands`, imported when the command runs."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_emulate_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="run a scenario through the real stack in virtual time",
        description="Run every node of SCENARIO as a real tawan engine over modelled "
        "bearers, through the scenario's faults; write timeline.json, results.json and "
        "report.html into --out.",
    )
    parser.add_argument("scenario", type=Path, help="scenario file (TOML)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--out", type=Path, default=Path("emulation"), help="output folder")
    parser.add_argument("--window", type=float, default=60.0, help="results window (s)")
    parser.add_argument(
        "--pcap", nargs="+", default=[], metavar="LINK", help="write these links' frames"
    )
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or table")
    parser.add_argument(
        "--realtime", action="store_true", help="pace to the wall clock, serve metrics"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="--realtime: x wall clock")
    parser.add_argument(
        "--metrics-port", type=int, default=9400, help="--realtime: Prometheus port"
    )
    parser.set_defaults(run="emulator.commands:run_emulate")
