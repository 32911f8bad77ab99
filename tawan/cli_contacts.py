"""`tawan contacts ...`: read contact plans and route over them (docs/contacts.md).

Only the parsers live here; the work is in `tawan.contacts_commands`, loaded when a contacts
command runs."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

ROUTE_EXIT_STATUS = (
    'exit status: 0 a route was found; 1 no route (the JSON says "route": null); '
    "2 the plan or an option is wrong, or the plan cannot be read (one line on stderr); "
    "3 an internal error (a traceback on stderr)."
)


def add_contacts_commands(subparsers: Subparsers) -> None:
    contacts = subparsers.add_parser(
        "contacts", help="route over a contact plan (scheduled windows)", description=__doc__
    )
    commands = contacts.add_subparsers(dest="contacts_command", metavar="ACTION", required=True)

    route = commands.add_parser(
        "route",
        help="the earliest-arrival route from one node to another, as JSON",
        description="Print the earliest-arrival route from one node to another, as JSON.",
        epilog=ROUTE_EXIT_STATUS,
    )
    route.add_argument("plan", metavar="PLAN", help="a plan file: .json (HDTN or ours), "
                       ".toml (ours), .rc/.ionrc/.txt (ION)")  # fmt: skip
    route.add_argument("--from", dest="source", required=True, metavar="NODE")
    route.add_argument("--to", dest="dest", required=True, metavar="NODE")
    route.add_argument("--at", type=float, default=0.0, metavar="S",
                       help="when the message is ready, in plan seconds (default 0)")  # fmt: skip
    route.add_argument("--size", type=int, required=True, metavar="BYTES",
                       help="the message's size in bytes")  # fmt: skip
    route.add_argument("--alternatives", type=int, default=1, metavar="K",
                       help="up to K routes, on different first contacts (default 1)")  # fmt: skip
    route.add_argument("--epoch", type=float, default=0.0, metavar="UNIX_S",
                       help="POSIX time of plan second 0 (ION absolute times, HDTN unix "
                       "times; default 0)")  # fmt: skip
    route.add_argument("--unlimited-rate", type=float, default=None, metavar="BPS",
                       help="rate to count for HDTN's rate 0 ('unlimited')")  # fmt: skip
    route.add_argument("--skip-empty-windows", action="store_true",
                       help="HDTN: leave out windows ending at or before their start")  # fmt: skip
    route.set_defaults(run="tawan.contacts_commands:run_route")
