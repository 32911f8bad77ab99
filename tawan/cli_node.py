"""`tawan node run`, `tawan send`, `tawan recv`, `tawan receipts`, `tawan status`.

`node run` is the daemon; the others are clients of a running node's local API, found with
``--api ADDR``, else the ``[api] address`` of ``--config FILE``, else ``$TAWAN_API``, else
the default 127.0.0.1:7470.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tawan.core.precedence import Precedence
from tawan.node.client import DEFAULT_API_ADDRESS, Client, ClientError, Json, payload_of
from tawan.node.config import ConfigError, load_config

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

USER_ERROR = 2
PRECEDENCES = [p.name.lower() for p in Precedence]
Command = Callable[[argparse.Namespace], int]


def add_node_commands(subparsers: Subparsers) -> None:
    node = subparsers.add_parser("node", help="run a node", description="Run a tawan node.")
    actions = node.add_subparsers(dest="node_command", metavar="ACTION", required=True)
    run = actions.add_parser("run", help="serve until SIGTERM/SIGINT (SIGHUP reloads the roster)")
    run.add_argument("--config", required=True, metavar="FILE", help="node configuration (TOML)")
    levels = ["debug", "info", "warning", "error"]
    run.add_argument("--log-level", default="info", choices=levels, help="default info")
    run.set_defaults(run=run_node_command)

    send = subparsers.add_parser("send", help="send a message through the local node")
    send.add_argument("--to", required=True, metavar="NAME", help="node or group name")
    send.add_argument("--precedence", default="routine", choices=PRECEDENCES,
                      help="default routine")  # fmt: skip
    send.add_argument("--ttl", type=int, default=None, metavar="SECONDS",
                      help="time to live (default: the node's, 3600)")  # fmt: skip
    send.add_argument("--receipt", action="store_true", help="ask for a delivery receipt")
    send.add_argument("--sign", action="store_true", help="sign with this node's identity")
    send.add_argument("--ref", default=None, metavar="REF",
                      help="your own reference of this message: sending again with it "
                           "returns the first id and sends nothing twice")  # fmt: skip
    send.add_argument("text", metavar="TEXT|@FILE",
                      help="message text, sent as UTF-8 (text the terminal gave in another "
                           "encoding is refused), or @FILE to send a file's bytes as they are"
                      )  # fmt: skip
    _add_api_options(send)
    send.set_defaults(run=_user_errors(run_send))

    recv = subparsers.add_parser("recv", help="print (and acknowledge) received messages")
    recv.add_argument("--follow", action="store_true", help="keep printing new messages")
    recv.add_argument("--json", action="store_true", help="one JSON object per line")
    recv.add_argument("--peek", action="store_true", help="leave the messages in the inbox")
    _add_api_options(recv)
    recv.set_defaults(run=_user_errors(run_recv))

    receipts = subparsers.add_parser("receipts", help="print (and acknowledge) receipts")
    receipts.add_argument("--json", action="store_true", help="one JSON object per line")
    receipts.add_argument("--peek", action="store_true", help="leave them for the next reader")
    _add_api_options(receipts)
    receipts.set_defaults(run=_user_errors(run_receipts))

    revoke = subparsers.add_parser(
        "revoke", help="hand the local node a revocation notice, which it floods to all"
    )
    revoke.add_argument("notice", metavar="FILE", help="a notice from `tawan mission revoke`")
    _add_api_options(revoke)
    revoke.set_defaults(run=_user_errors(run_revoke))

    status = subparsers.add_parser("status", help="links, neighbours, queues and store use")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_api_options(status)
    status.set_defaults(run=_user_errors(run_status))


def _add_api_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--api", metavar="ADDR", help="host:port or unix:/path of the node API")
    where.add_argument("--config", metavar="FILE", help="read the API address from this config")


def _user_errors(command: Command) -> Command:
    """Mistakes the user can fix print one line and exit 2, as every tawan command does."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except (ClientError, ConfigError, OSError) as exc:
            return _error(str(exc))
        except KeyboardInterrupt:
            return 130

    return run


def _error(message: str) -> int:
    print(f"tawan: error: {' '.join(message.split())}", file=sys.stderr)
    return USER_ERROR


def api_address(args: argparse.Namespace) -> str:
    if args.api:
        return str(args.api)
    if args.config:
        return load_config(args.config).api_address
    return os.environ.get("TAWAN_API", DEFAULT_API_ADDRESS)


def run_node_command(args: argparse.Namespace) -> int:
    from tawan.node.daemon import run_node  # noqa: PLC0415  # clients need not load the daemon

    return run_node(args.config, log_level=args.log_level)


def run_send(args: argparse.Namespace) -> int:
    text: str = args.text
    payload = Path(text[1:]).read_bytes() if text.startswith("@") else _utf8(text)
    if payload is None:
        return _error(_not_utf8(text))
    with Client(api_address(args)) as client:
        mid = client.send(
            args.to,
            payload,
            precedence=args.precedence,
            ttl=args.ttl,
            receipt=args.receipt,
            sign=args.sign,
            ref=args.ref,
        )
    print(mid)
    return 0


def _utf8(text: str) -> bytes | None:
    """`text` in UTF-8, or None if it cannot be: it holds the surrogates with which Python
    stands in for the bytes of a command line that were not UTF-8."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return None


def _not_utf8(text: str) -> str:
    at = next((i for i, c in enumerate(text) if 0xD800 <= ord(c) <= 0xDFFF), 0)
    code = ord(text[at])
    what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"U+{code:04X}"
    return (
        f"TEXT is not UTF-8 ({what} at character {at + 1}): is the terminal set to UTF-8? "
        "To send bytes as they are, put them in a file and send @FILE"
    )


def run_recv(args: argparse.Namespace) -> int:
    address = api_address(args)
    with Client(address) as client:
        if not args.follow:
            last = 0
            while messages := client.recv(after=last):
                for message in messages:
                    _print_message(message, as_json=args.json)
                last = int(str(messages[-1]["id"]))
            if last and not args.peek:
                client.ack(last)
            return 0
        with Client(address) as acker:  # the followed connection serves nothing else
            for message in client.follow():
                _print_message(message, as_json=args.json)
                if not args.peek:
                    acker.ack(int(str(message["id"])))
    return 0


def _print_message(message: Json, *, as_json: bool) -> None:
    payload = payload_of(message)
    try:
        text: str | None = payload.decode()
    except UnicodeDecodeError:
        text = None
    if as_json:
        print(json.dumps({**message, "text": text}), flush=True)
        return
    body = text if text is not None else f"<{len(payload)} bytes, not UTF-8>"
    signed = " signed" if message.get("signed") else ""
    m = dict.fromkeys(("precedence", "from", "to", "mid"), "?") | message
    print(
        f"{m['id']} {str(m['precedence']).upper()} from {m['from']} to {m['to']} "
        f"mid {m['mid']}{signed}: {body}",
        flush=True,
    )


def run_receipts(args: argparse.Namespace) -> int:
    with Client(api_address(args)) as client:
        receipts = client.receipts()
        for receipt in receipts:
            r = dict.fromkeys(("mid", "kind", "reporter"), "?") | receipt
            text = f"{r['mid']} {r['kind']} by {r['reporter']}"
            line = json.dumps(receipt) if args.json else text
            print(line)
        if receipts and not args.peek:
            client.ack_receipts(int(str(receipts[-1]["id"])))
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    notice = Path(args.notice).read_bytes()  # OSError: one line, from _user_errors
    with Client(api_address(args)) as client:
        answer = client.revoke(notice)
    names = answer.get("revoked")
    revoked = ", ".join(str(n) for n in names) if isinstance(names, list) else "?"
    state = "applied and flooded" if answer.get("applied") else "already in force"
    print(f"revocation of {revoked} (roster version {answer.get('version')}): {state}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    with Client(api_address(args)) as client:
        status = client.status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print_status(status, Console())
    return 0


def print_status(status: Json, console: Console) -> None:
    """The status as tables: links, neighbours, queues by precedence, store use."""
    node, address = escape(str(status.get("node"))), escape(str(status.get("address")))
    console.print(f"[bold]node {node}[/] (address {address})")
    console.print(_table("links", _rows(status, "links"), ["name", "bearer", "rate_bps", "mtu"]))
    neighbour_columns = ["name", "link", "up", "rtt_ms", "loss", "last_heard_s"]
    console.print(_table("neighbours", _rows(status, "neighbours"), neighbour_columns))
    queues = status.get("queues")
    if isinstance(queues, dict):
        console.print(_table("queued", [queues], list(queues)))
    store = status.get("store")
    if isinstance(store, dict):
        share = _share(store.get("bytes"), store.get("max_bytes"))
        row = {**store, "used": share, "held": status.get("held")}
        console.print(_table("store", [row], [*store, "used", "held"]))
    failures = status.get("send_failures")
    if isinstance(failures, dict) and failures:
        console.print(_table("send failures", [failures], list(failures)))
    drops = status.get("drops")
    if isinstance(drops, dict):
        rows = [{"link": link, "reason": reason, "dropped": count}
                for link, reasons in drops.items() if isinstance(reasons, dict)
                for reason, count in reasons.items()]  # fmt: skip
        if rows:
            console.print(_table("dropped before the engine", rows, ["link", "reason", "dropped"]))
    buffers = status.get("receive_buffer_bytes")
    if isinstance(buffers, dict) and any(v is not None for v in buffers.values()):
        console.print(_table("receive buffer bytes", [buffers], list(buffers)))


def _share(used: object, room: object) -> str | None:
    """`used` as a share of `room`; None (printed "-") unless both are counts and room is
    not 0."""
    if type(used) is not int or type(room) is not int or room <= 0:
        return None
    return f"{used / room:.1%}"


def _rows(status: Json, key: str) -> list[Json]:
    rows = status.get(key)
    return [row for row in rows if isinstance(row, dict)] if isinstance(rows, list) else []


def _table(title: str, rows: list[Json], columns: list[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(Text(column))  # Text: what the node sent is not read as markup
    for row in rows:
        table.add_row(*(Text(_cell(row.get(column))) for column in columns))
    return table


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
