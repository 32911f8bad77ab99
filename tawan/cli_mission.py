"""`tawan mission ...`: the mission authority's commands (crypto fill before deployment)."""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING

from crypto.mission import (
    add_node,
    init_mission,
    keyfile_path,
    load_mission_roster,
    load_revocations,
    revocation_path,
    revoke_node,
)
from crypto.revocation import Revocation
from crypto.roster import GroupEntry, NodeEntry, Roster

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def add_mission_commands(subparsers: Subparsers) -> None:
    mission = subparsers.add_parser(
        "mission", help="create a mission plan and issue node keys", description=__doc__
    )
    commands = mission.add_subparsers(dest="mission_command", metavar="ACTION", required=True)

    init = commands.add_parser("init", help="create the mission authority and an empty roster")
    init.add_argument("dir", metavar="DIR", help="mission directory (created if absent)")
    init.add_argument("--epoch-seconds", type=int, default=3600, metavar="N",
                      help="key epoch length in seconds (default 3600)")  # fmt: skip
    init.add_argument("--grace-epochs", type=int, default=24, metavar="N",
                      help="epochs of keys kept for late messages (default 24)")  # fmt: skip
    init.add_argument("--t0", type=int, default=None, metavar="UNIX_SECONDS",
                      help="mission start, the origin of epochs (default now)")  # fmt: skip
    init.set_defaults(run=run_init)

    add = commands.add_parser("add-node", help="issue a node its keys and roster entry")
    add.add_argument("dir", metavar="DIR")
    add.add_argument("name", metavar="NAME", help="node name: a-z, 0-9, '-', up to 32")
    add.add_argument("--group", action="append", default=[], metavar="G",
                     help="member of group G (created if new); repeatable")  # fmt: skip
    add.set_defaults(run=run_add_node)

    revoke = commands.add_parser("revoke", help="revoke a node (e.g. captured)")
    revoke.add_argument("dir", metavar="DIR")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(run=run_revoke)

    show = commands.add_parser("show", help="list nodes, groups, addresses and notices")
    show.add_argument("dir", metavar="DIR")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show.set_defaults(run=run_show)


def run_init(args: argparse.Namespace) -> int:
    roster = init_mission(
        args.dir, epoch_seconds=args.epoch_seconds, grace_epochs=args.grace_epochs, t0=args.t0
    )
    print(
        f"mission {roster.mission_id.hex()} created in {args.dir} "
        f"(epoch {roster.epoch_seconds} s, grace {roster.grace_epochs} epochs, "
        f"start {_utc(roster.t0)})"
    )
    return 0


def run_add_node(args: argparse.Namespace) -> int:
    entry = add_node(args.dir, args.name, args.group)
    roster = load_mission_roster(args.dir)
    groups = ", ".join(_name(roster, g) for g in entry.groups) or "none"
    print(
        f"node {entry.name}: address {entry.address}, groups {groups}, "
        f"key file {keyfile_path(args.dir, entry.name)} (roster version {roster.version})"
    )
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    roster = revoke_node(args.dir, args.name)
    path = revocation_path(args.dir, roster.version)
    print(
        f"node {args.name} revoked: roster version {roster.version}; "
        "distribute the new roster to every node"
    )
    print(f"revocation notice {path} (flood it from any node):")
    print(path.read_bytes().hex())
    return 0


def run_show(args: argparse.Namespace) -> int:
    roster = load_mission_roster(args.dir)
    notices = load_revocations(args.dir)
    if args.json:
        summary = roster_summary(roster)
        summary["revocations"] = [
            {
                "version": notice.version,
                "revoked": [_name(roster, a) for a in notice.revoked],
                "file": str(path),
                "notice": notice.to_bytes().hex(),
            }
            for path, notice in notices
        ]
        print(json.dumps(summary, indent=2))
    else:
        print(format_roster(roster))
        if notices:
            print(format_notices(roster, notices))
    return 0


def roster_summary(roster: Roster) -> dict[str, object]:
    """The roster as plain data (no keys): what `mission show --json` prints."""
    return {
        "mission_id": roster.mission_id.hex(),
        "version": roster.version,
        "t0": roster.t0,
        "epoch_seconds": roster.epoch_seconds,
        "grace_epochs": roster.grace_epochs,
        "authority": roster.authority.hex(),
        "nodes": [
            {
                "name": node.name,
                "address": node.address,
                "groups": [_name(roster, g) for g in node.groups],
                "revoked": node.revoked,
            }
            for node in roster.nodes
        ],
        "groups": [
            {
                "name": group.name,
                "address": group.address,
                "members": [_name(roster, m) for m in roster.members(group.address)],
            }
            for group in roster.groups
        ],
    }


def format_roster(roster: Roster) -> str:
    """A fixed-width table of every address, for operators."""
    rows = [("ADDRESS", "NAME", "KIND", "GROUPS / MEMBERS", "STATUS")]
    entries: list[NodeEntry | GroupEntry] = [*roster.nodes, *roster.groups]
    for entry in sorted(entries, key=lambda e: e.address):
        if isinstance(entry, GroupEntry):
            members = ", ".join(_name(roster, m) for m in roster.members(entry.address))
            rows.append((str(entry.address), entry.name, "group", members or "-", "-"))
        else:
            groups = ", ".join(_name(roster, g) for g in entry.groups) or "-"
            status = "revoked" if entry.revoked else "active"
            rows.append((str(entry.address), entry.name, "node", groups, status))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"mission {roster.mission_id.hex()}  roster version {roster.version}  "
        f"start {_utc(roster.t0)}  epoch {roster.epoch_seconds} s  "
        f"grace {roster.grace_epochs} epochs",
        "",
    ]
    for row in rows:
        cells = [row[0].rjust(widths[0])] + [
            c.ljust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_notices(roster: Roster, notices: list[tuple[Path, Revocation]]) -> str:
    """One line per revocation notice of the mission directory."""
    lines = ["", "revocation notices:"]
    for path, notice in notices:
        names = ", ".join(_name(roster, a) for a in notice.revoked)
        lines.append(f"  roster version {notice.version}: {names}  {path}")
    return "\n".join(lines)


def _name(roster: Roster, address: int) -> str:
    entry = roster.by_address(address)
    return entry.name if entry is not None else str(address)


def _utc(unix_seconds: int) -> str:
    """The moment as a UTC date; past the year 9999 (a roster made elsewhere may say so,
    `mission init` refuses it), as unix seconds."""
    try:
        moment = datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"unix {unix_seconds}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
