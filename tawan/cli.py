"""The `tawan` command line: a small dispatcher; each command family registers itself.

A family module provides ``add_<family>_commands(subparsers)``, which adds its parsers and
sets ``run=<function(args) -> int>`` on each, or ``run="module:function"``, imported only
when that command runs, so a heavy command costs the others nothing. Families outside
tawan/ (the emulator, the topology tools) register through the ``tawan.commands``
entry-point group, so tawan never imports them. Errors the user can fix (`UserError`, the
crypto package's errors, files that cannot be read or written) print one line to stderr
and exit with status 2; no traceback. Anything else is a bug in tawan: its traceback, and
status 3.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib import import_module
from importlib.metadata import entry_points

from crypto.errors import CryptoError
from tawan.cli_contacts import add_contacts_commands
from tawan.cli_mission import add_mission_commands
from tawan.cli_node import add_node_commands

USAGE_ERROR = 2
INTERNAL_ERROR = 3
"""A bug: the traceback goes to stderr. Not 1, which some commands give a meaning of their
own (`contacts route`: no route)."""

Registrar = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

COMMAND_FAMILIES: list[Registrar] = [
    add_mission_commands,
    add_node_commands,
    add_contacts_commands,
]
"""Registration functions, in the order their commands appear in --help."""


class UserError(Exception):
    """A mistake the user can fix; its message is printed as one line (exit status 2)."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError, CryptoError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tawan", description="Store-and-forward messaging over a mix of bearers."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in [*COMMAND_FAMILIES, *_plugin_families()]:
        register(subparsers)
    return parser


def _plugin_families() -> list[Registrar]:
    """The registrars named in the ``tawan.commands`` entry points, by entry name."""
    found = sorted(entry_points(group="tawan.commands"), key=lambda entry: entry.name)
    return [entry.load() for entry in found]


def command_of(args: argparse.Namespace) -> Callable[[argparse.Namespace], int] | None:
    """The function a parsed command line runs (a "module:function" is imported now)."""
    run: Callable[[argparse.Namespace], int] | str | None = getattr(args, "run", None)
    if isinstance(run, str):
        module, _, function = run.partition(":")
        found: Callable[[argparse.Namespace], int] = getattr(import_module(module), function)
        return found
    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else USAGE_ERROR
    run = command_of(args)
    if run is None:
        parser.print_usage(sys.stderr)
        return USAGE_ERROR
    try:
        return run(args)
    except USER_ERRORS as exc:
        print(f"tawan: error: {_one_line(exc)}", file=sys.stderr)
        return USAGE_ERROR
    except Exception:
        traceback.print_exc()
        print("tawan: internal error (a bug in tawan, not in what it was given)", file=sys.stderr)
        return INTERNAL_ERROR


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    # Run as `python -m tawan.cli`, this file is __main__, a second copy of the module whose
    # UserError is not the one the commands raise: call the imported module's main.
    from tawan.cli import main as imported_main

    sys.exit(imported_main())
