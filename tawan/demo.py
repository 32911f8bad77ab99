"""`make demo`: a mission, three live daemons on 127.0.0.1, a message of every precedence.

The chain is alpha -(UDP, "vhf")- relay -(TCP, "wan")- charlie; alpha and charlie form the
group coy-a. Everything lives in one folder (default `demo-run/` in the current directory,
wiped first), and the daemons' logs stay there afterwards. Every wait is bounded, and the
daemons are stopped whatever happens: SIGTERM, then SIGKILL if one will not stop.

Run it with ``python -m tawan.demo [--dir FOLDER]``; exit status 0 on success, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from rich.console import Console
from rich.table import Table

from crypto.mission import keyfile_path, load_mission_roster
from tawan.cli import main as tawan
from tawan.cli_mission import roster_summary
from tawan.core.precedence import Precedence
from tawan.node.client import Client, ClientError, Json

T = TypeVar("T")

MARKER: Final = ".tawan-demo"  # only a folder holding this (or an empty one) is wiped
GROUP: Final = "coy-a"
GROUP_MEMBERS: Final = ("alpha", "charlie")
NODE_NAMES: Final = ("alpha", "relay", "charlie")

API_TIMEOUT: Final = 15.0  # seconds for a daemon's API to answer after start
ROUTE_TIMEOUT: Final = 20.0
DELIVERY_TIMEOUT: Final = 20.0
STOP_TIMEOUT: Final = 10.0

ORDERS: Final = {
    Precedence.ROUTINE: "sitrep: all 5/5",
    Precedence.PRIORITY: "resupply: water 40 l",
    Precedence.IMMEDIATE: "contact, grid 482119",
    Precedence.FLASH: "armour moving north",
    Precedence.OVERRIDE: "cease fire, all units",
}
GROUP_ORDER: Final = (Precedence.PRIORITY, "radio check at 1800")
RECEIPT_FOR: Final = Precedence.FLASH

NODE_TOML: Final = """\
[node]
name = "{name}"
key_file = "mission/nodes/{name}.key"
roster = "mission/roster.tawan"
store = "{name}.db"
durability = "process"  # a throwaway store: survive kill -9, skip an fsync per commit

[api]
address = "{api}"

[metrics]
address = "{metrics}"

[engine]
hello_interval = 0.5  # find neighbours within a second, not the field default's seconds
dead_interval = 2.0
"""

LINK_TOML: Final = """
[[links]]
name = "{bearer}"
transport = "{transport}"
{local}
[links.profile]
name = "{bearer}"
rate_bps = {rate_bps}
delay_s = {delay_s}
mtu = {mtu}
cost = {cost}
[[links.peers]]
node = "{peer}"
{peer_address}
"""

BEARERS: Final[dict[str, dict[str, object]]] = {
    "vhf": {"transport": "udp", "rate_bps": 64000, "delay_s": 0.01, "mtu": 512, "cost": 10},
    "wan": {"transport": "tcp", "rate_bps": 2000000, "delay_s": 0.005, "mtu": 1400, "cost": 1},
}


class DemoError(Exception):
    """Something in the demo did not go as it should; the message says what."""


@dataclass
class Node:
    """One daemon of the demo: where its files are, where it listens, its process."""

    name: str
    base: Path
    api: str
    metrics: str
    links: list[str] = field(default_factory=list)  # one line per link, for the operator
    link_tables: list[str] = field(default_factory=list)  # the same as [[links]] TOML
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.base / f"{self.name}.toml"

    @property
    def log(self) -> Path:
        return self.base / f"{self.name}.log"

    def status(self) -> Json:
        self.check_running()
        with Client(self.api, timeout=2) as client:
            return client.status()

    def check_running(self) -> None:
        if self.process is not None and (code := self.process.poll()) is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
            detail = "; ".join(tail) or "no log output"
            raise DemoError(f"{self.name} exited with status {code}: {detail}")


@dataclass
class Sent:
    """A message alpha submitted, and when (Unix time, taken just before submission)."""

    mid: str
    precedence: Precedence
    to: str
    text: str
    submitted: float
    receipt: bool


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 free right now (daemons, tests and benchmarks bind to it next).

    Drawn below the kernel's ephemeral range: a port from that range could be handed, before
    its listener binds it, to some connection's own end (a node dialling its neighbour)."""
    low, _ = _ephemeral_ports()
    first = 10_000 if low > 11_000 else 1_024
    draw = random.Random()
    for _ in range(200):
        port = draw.randrange(first, max(first + 1, low))
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, kind) as sock:  # crowded: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for the local ends of connections (Linux), else the IANA one."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 49152, 65535


def local_address(kind: socket.SocketKind = socket.SOCK_STREAM) -> str:
    return f"127.0.0.1:{free_port(kind)}"


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll `check` until it returns something true; a node not answering yet is retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except ClientError:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise DemoError(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def shown(path: Path) -> str:
    """`path` relative to the current directory when it is below it, for shorter lines."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def tawan_command() -> list[str]:
    """The installed `tawan` script beside this interpreter, else the module."""
    script = Path(sys.executable).parent / "tawan"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tawan.cli"]


def prepare_folder(base: Path) -> None:
    """Wipe a previous demo folder; refuse to touch a folder the demo did not make."""
    if base.exists():
        if not base.is_dir() or not ((base / MARKER).exists() or not any(base.iterdir())):
            raise DemoError(f"{base} exists and is not a demo folder; remove it or pick --dir")
        shutil.rmtree(base)
    base.mkdir(parents=True)
    (base / MARKER).write_text("made by python -m tawan.demo; wiped by the next run\n")


class Demo:
    """The steps of the demo, in order; `nodes` is filled in as the daemons start."""

    def __init__(self, base: Path, console: Console) -> None:
        self.base = base
        self.mission = base / "mission"
        self.console = console
        self.nodes: dict[str, Node] = {}

    def heading(self, step: int, title: str) -> None:
        self.console.print()
        self.console.rule(f"[bold cyan]{step}. {title}", align="left")

    def run(self) -> None:
        self.heading(1, "Mission plan")
        prepare_folder(self.base)
        self.issue_mission()
        self.heading(2, "Three daemons: alpha -(UDP vhf)- relay -(TCP wan)- charlie")
        self.start_nodes()
        self.heading(3, "Routing")
        self.wait_for_route()
        self.heading(4, "Traffic: every precedence from alpha")
        sent = self.send_orders()
        self.show_arrivals(sent, self.collect_at_charlie(sent))
        self.show_receipt(sent)
        self.heading(5, "The relay's view")
        self.show_relay()

    # 1. the mission plan, issued with the real `tawan mission` commands

    def issue_mission(self) -> None:
        mission = str(self.mission)
        commands = [["mission", "init", mission]]
        for name in NODE_NAMES:
            groups = ["--group", GROUP] if name in GROUP_MEMBERS else []
            commands.append(["mission", "add-node", mission, name, *groups])
        for argv in commands:
            self.console.print(f"$ tawan {' '.join(map(shown_arg, argv))}", style="dim")
            self.cli(argv)
        summary = roster_summary(load_mission_roster(self.mission))
        table = Table(title=f"mission {str(summary['mission_id'])[:16]}...", title_justify="left")
        for column in ("name", "kind", "address", "groups / members"):
            table.add_column(column)
        for node in _dicts(summary["nodes"]):
            table.add_row(str(node["name"]), "node", str(node["address"]), _joined(node["groups"]))
        for group in _dicts(summary["groups"]):
            members = _joined(group["members"])
            table.add_row(str(group["name"]), "group", str(group["address"]), members)
        self.console.print(table)
        key = keyfile_path(self.mission, "alpha")
        mode = key.stat().st_mode
        if stat.S_IMODE(mode) != 0o600:
            raise DemoError(f"{key} has mode {stat.S_IMODE(mode):04o}, expected 0600")
        self.console.print(
            f"{shown(key)}  {stat.filemode(mode)} ({stat.S_IMODE(mode):04o}): owner only"
        )

    def cli(self, argv: list[str]) -> None:
        """Run a `tawan` command in this process, keeping its output unless it fails."""
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            status = tawan(argv)
        if status != 0:
            raise DemoError(f"tawan {' '.join(argv)}: {output.getvalue().strip()}")

    # 2. configurations and daemons

    def start_nodes(self) -> None:
        self.write_configs()
        self.console.print("every socket on 127.0.0.1; " + ", ".join(
            f"{bearer} {profile['transport']} {profile['rate_bps']} bit/s"
            for bearer, profile in BEARERS.items()
        ))  # fmt: skip
        table = Table(box=None, pad_edge=False)
        for column in ("node", "api", "metrics", "links (local -> peer)"):
            table.add_column(column, no_wrap=True)
        for node in self.nodes.values():
            table.add_row(node.name, _port(node.api), _port(node.metrics), "\n".join(node.links))
        self.console.print(table)
        pids = {}
        for node in self.nodes.values():
            self.console.print(
                f"$ tawan node run --config {shown(node.config)} 2> {shown(node.log)} &",
                style="dim",
            )
            with node.log.open("wb") as log:
                node.process = subprocess.Popen(
                    [*tawan_command(), "node", "run", "--config", str(node.config)],
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.base,
                )  # fmt: skip
            pids[node.name] = node.process.pid
        for node in self.nodes.values():
            wait_for(f"{node.name}'s API at {node.api}", node.status, API_TIMEOUT)
        running = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items())
        self.console.print(f"[green]answering:[/] {running}")

    def write_configs(self) -> None:
        udp_alpha, udp_relay = (local_address(socket.SOCK_DGRAM) for _ in range(2))
        tcp_relay = local_address()
        for name in NODE_NAMES:
            self.nodes[name] = Node(name, self.base, local_address(), local_address())
        alpha, relay, charlie = (self.nodes[name] for name in NODE_NAMES)
        self.add_link(alpha, "vhf", f'bind = "{udp_alpha}"', relay, udp_relay)
        self.add_link(relay, "vhf", f'bind = "{udp_relay}"', alpha, udp_alpha)
        self.add_link(relay, "wan", f'listen = "{tcp_relay}"', charlie, None)  # charlie dials
        self.add_link(charlie, "wan", "", relay, tcp_relay)
        for node in self.nodes.values():
            text = NODE_TOML.format(name=node.name, api=node.api, metrics=node.metrics)
            node.config.write_text(text + "".join(node.link_tables))

    @staticmethod
    def add_link(
        node: Node, bearer: str, local: str, peer: Node, peer_address: str | None
    ) -> None:
        """Give `node` a link to `peer`: its [[links]] table and a line for the operator."""
        profile = BEARERS[bearer]
        address = f'address = "{peer_address}"' if peer_address else ""
        node.link_tables.append(LINK_TOML.format(bearer=bearer, local=local, peer=peer.name,
                                                 peer_address=address, **profile))  # fmt: skip
        where = _port(local.split("=")[1].strip(' "')) if local else "dials"
        towards = f"{peer.name} {_port(peer_address)}" if peer_address else peer.name
        node.links.append(f"{bearer}/{profile['transport']} {where} -> {towards}")

    # 3. routing

    def wait_for_route(self) -> None:
        alpha = self.nodes["alpha"]
        self.console.print("waiting for alpha to learn a route to charlie ...")
        started = time.monotonic()

        def next_hop() -> str | None:
            routes = alpha.status().get("routes")
            hop = routes.get("charlie") if isinstance(routes, dict) else None
            return None if hop is None else str(hop)

        hop = wait_for("a route from alpha to charlie", next_hop, ROUTE_TIMEOUT)
        self.console.print(
            f"alpha -> charlie via [bold]{hop}[/], "
            f"learnt {time.monotonic() - started:.1f} s after the daemons answered"
        )

    # 4. traffic

    def send_orders(self) -> list[Sent]:
        orders = [(p, "charlie", text) for p, text in ORDERS.items()]
        orders.append((GROUP_ORDER[0], GROUP, GROUP_ORDER[1]))
        sent = []
        with Client(self.nodes["alpha"].api, timeout=10) as alpha:
            for precedence, to, text in orders:
                receipt = precedence is RECEIPT_FOR and to == "charlie"
                submitted = time.time()
                mid = alpha.send(to, text.encode(), precedence=precedence.name.lower(),
                                 ttl=600, receipt=receipt)  # fmt: skip
                sent.append(Sent(mid, precedence, to, text, submitted, receipt))
        self.console.print(
            f"alpha took {len(sent)} messages into custody: one of each precedence to "
            f"charlie,\none to group {GROUP}; {RECEIPT_FOR.name} asks for a delivery receipt"
        )
        return sent

    def collect_at_charlie(self, sent: list[Sent]) -> list[Json]:
        """Read charlie's inbox until every message is there, then acknowledge them."""
        expected = {s.mid for s in sent}
        got: dict[str, Json] = {}
        last = 0
        charlie = self.nodes["charlie"]
        with Client(charlie.api, timeout=10) as client:

            def all_there() -> bool:
                nonlocal last
                charlie.check_running()
                for message in client.recv(after=last):
                    got.setdefault(str(message["mid"]), message)
                    last = int(str(message["id"]))
                return expected <= got.keys()

            wait_for(f"{len(expected)} messages at charlie", all_there, DELIVERY_TIMEOUT)
            client.ack(last)
        return sorted(got.values(), key=lambda message: int(str(message["id"])))

    def show_arrivals(self, sent: list[Sent], arrived: list[Json]) -> None:
        by_mid = {s.mid: s for s in sent}
        engine = delivered_latencies(self.nodes["charlie"].log)  # if it logs each delivery
        caption = "latency: received at charlie minus submitted at alpha (one clock)"
        if engine:
            caption += "; engine: the node's latency_s, from creation times in whole seconds"
        table = Table(title="received at charlie, in order of arrival", title_justify="left",
                      caption=caption, caption_justify="left")  # fmt: skip
        for column in ("precedence", "from", "to"):
            table.add_column(column, no_wrap=True)
        table.add_column("text")
        table.add_column("latency ms", justify="right", no_wrap=True)
        if engine:
            table.add_column("engine s", justify="right", no_wrap=True)
        for message in arrived:
            origin = by_mid[str(message["mid"])]
            latency = (float(str(message["received_at"])) - origin.submitted) * 1000
            cells = [str(message["precedence"]).upper(), str(message["from"]),
                     str(message["to"]), origin.text, f"{latency:.0f}"]  # fmt: skip
            if engine:
                cells.append(engine.get(origin.mid, "-"))
            table.add_row(*cells)
        self.console.print(table)

    def show_receipt(self, sent: list[Sent]) -> None:
        wanted = next(s for s in sent if s.receipt)
        with Client(self.nodes["alpha"].api, timeout=10) as alpha:

            def receipt() -> Json | None:
                self.nodes["alpha"].check_running()
                return next((r for r in alpha.receipts() if r["mid"] == wanted.mid), None)

            found = wait_for(f"the receipt for {wanted.mid} at alpha", receipt, DELIVERY_TIMEOUT)
            seen = time.time()
            alpha.ack_receipts(int(str(found["id"])))
        self.console.print(
            f"receipt for {wanted.precedence.name} {wanted.mid}: [bold green]{found['kind']}[/], "
            f"seen at alpha {(seen - wanted.submitted) * 1000:.0f} ms after submission"
        )

    # 5. the relay

    def show_relay(self) -> None:
        relay = self.nodes["relay"]
        self.console.print(f"$ tawan status --config {shown(relay.config)}", style="dim")
        sys.stdout.flush()
        if tawan(["status", "--config", str(relay.config)]) != 0:
            raise DemoError("tawan status failed for the relay")
        url = f"http://{relay.metrics}/metrics"
        self.console.print(f"$ curl -s {url} | grep tawan_messages_forwarded_total", style="dim")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no $http_proxy
        with direct.open(url, timeout=5) as response:
            exposition = response.read().decode()
        lines = [
            line
            for line in exposition.splitlines()
            if line.startswith("tawan_messages_forwarded_total")
        ]
        if not lines:
            raise DemoError(f"{url} has no tawan_messages_forwarded_total")
        for line in lines:
            self.console.print(line, highlight=False)

    # 6. stopping, always

    def stop(self) -> None:
        self.heading(6, "Stop")
        started = [(n, n.process) for n in self.nodes.values() if n.process is not None]
        exited = {n.name: code for n, p in started if (code := p.poll()) is not None}
        for node, process in started:
            if node.name not in exited:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for node, process in started:
            try:
                code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
                verb = "had exited" if node.name in exited else "stopped"
                how = f"{verb} (exit status {code})"
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                how = "[red]did not stop on SIGTERM: killed[/]"
            self.console.print(f"{node.name}: {how}, log {shown(node.log)}")
        if not started:
            self.console.print("no daemon was started")
        self.console.print(f"everything is in {shown(self.base)}/")


def shown_arg(arg: str) -> str:
    return shown(Path(arg)) if os.sep in arg else arg


def delivered_latencies(log: Path) -> dict[str, str]:
    """The `latency_s` of each `event=delivered` line of a node's log, by message id."""
    pattern = re.compile(r"event=delivered mid=(\S+) .*?latency_s=([0-9.]+)")
    text = log.read_text(errors="replace") if log.exists() else ""
    return {match[1]: match[2] for match in pattern.finditer(text)}


def _port(address: str) -> str:
    """`:PORT` of a 127.0.0.1 address, to keep the lines short."""
    return address.removeprefix("127.0.0.1")


def _dicts(value: object) -> list[dict[str, object]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _joined(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) and value else "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tawan.demo", description=__doc__)
    parser.add_argument("--dir", default="demo-run", type=Path,
                        help="demo folder, wiped first (default: demo-run)")  # fmt: skip
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    demo = Demo(Path(args.dir).absolute(), console)
    started = time.monotonic()
    try:
        try:
            demo.run()
        finally:
            demo.stop()
    except (DemoError, ClientError, OSError) as exc:
        console.print(f"\n[bold red]demo failed:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("\n[bold red]demo interrupted[/]")
        return 1
    console.print(f"\n[bold green]demo finished[/] in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
