"""Two real tawan daemons, alpha and bravo, whose only link is a radio link, for tests.

The daemons are `tawan node run` processes, as in tests/test_daemons.py, with a mission made
by `tawan mission` in the test's folder. What stands for the radio (a fake TNC, a fake
5066 subnetwork, two Direwolf instances) runs in a trio loop on a thread of the test
process (`trio_in_thread`), because the test itself drives the daemons with blocking API
calls. `exchange_every_precedence` is the check both radio tests make: a message of every
precedence each way, each delivered exactly once and intact.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import trio

from tawan.cli import main
from tawan.demo import free_port, wait_for
from tawan.node.client import Client, Json, payload_of

TAWAN = Path(sys.executable).parent / "tawan"
NAMES = ("alpha", "bravo")
PRECEDENCES = ("flash", "immediate", "priority", "routine")
STOP_TIMEOUT_S = 30.0

NODE = """
[node]
name = "{name}"
key_file = "mission/nodes/{name}.key"
roster = "mission/roster.tawan"
store = "{name}.db"

[api]
address = "{api}"

[engine]
{engine}
"""


@contextlib.contextmanager
def trio_in_thread(serve: Callable[..., Awaitable[object]]) -> Iterator[Any]:
    """Run `serve` (as `nursery.start(serve)` does) in a trio loop on a thread of its own;
    yield the value it passed to `task_status.started()`, then cancel it and join the
    thread. An error in the loop is raised here, at start or at the end."""
    handed: queue.Queue[tuple[trio.lowlevel.TrioToken, trio.CancelScope, Any] | BaseException]
    handed = queue.Queue()
    failure: list[BaseException] = []

    async def loop() -> None:
        async with trio.open_nursery() as nursery:
            value = await nursery.start(serve)
            handed.put((trio.lowlevel.current_trio_token(), nursery.cancel_scope, value))

    def run() -> None:
        try:
            trio.run(loop)
        except BaseException as exc:  # handed to the test's thread, raised there
            failure.append(exc)
            handed.put(exc)

    thread = threading.Thread(target=run, name="radio", daemon=True)
    thread.start()
    got = handed.get(timeout=STOP_TIMEOUT_S)
    if isinstance(got, BaseException):
        raise got
    token, scope, value = got
    try:
        yield value
    finally:
        with contextlib.suppress(trio.RunFinishedError):
            trio.from_thread.run_sync(scope.cancel, trio_token=token)
        thread.join(timeout=STOP_TIMEOUT_S)
    if failure:
        raise failure[0]


def make_mission(base: Path) -> None:
    """A mission with the two nodes, in base/mission."""
    mission = str(base / "mission")
    if main(["mission", "init", mission]) != 0:
        raise RuntimeError(f"tawan mission init {mission}: expected status 0")
    for name in NAMES:
        if main(["mission", "add-node", mission, name]) != 0:
            raise RuntimeError(f"tawan mission add-node {name}: expected status 0")


class RadioNodes:
    """alpha and bravo, each with the one link `links[name]` (a [[links]] table as text)."""

    def __init__(self, base: Path, links: Mapping[str, str], engine: str = "") -> None:
        self.base = base
        self.api = {name: f"127.0.0.1:{free_port(socket.SOCK_STREAM)}" for name in NAMES}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        for name in NAMES:
            text = NODE.format(name=name, api=self.api[name], engine=engine) + links[name]
            self.config(name).write_text(text)

    def config(self, name: str) -> Path:
        return self.base / f"{name}.toml"

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        for name in NAMES:
            with (self.base / f"{name}.log").open("ab") as log:
                command = [str(TAWAN), "node", "run", "--config", str(self.config(name))]
                self.processes[name] = subprocess.Popen(command, stderr=log, cwd=self.base)
        for name in NAMES:
            wait_for(f"{name} API", lambda name=name: self.status(name))  # type: ignore[misc]

    def status(self, name: str) -> Json:
        with Client(self.api[name], timeout=2) as client:
            return client.status()

    def neighbour_up(self, name: str, neighbour: str, timeout: float) -> None:
        def up() -> bool:
            neighbours = self.status(name)["neighbours"]
            assert isinstance(neighbours, list)
            return any(n["name"] == neighbour and n["up"] for n in neighbours)

        wait_for(f"{name} to see {neighbour} up", up, timeout)

    def held(self, name: str) -> int:
        store = self.status(name)["store"]
        assert isinstance(store, dict)
        return int(str(store["messages"]))

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def exchange_every_precedence(nodes: RadioNodes, timeout: float, payload_bytes: int = 60) -> None:
    """A message of every precedence alpha -> bravo and bravo -> alpha, sent all at once;
    each arrives once, from its sender, at its precedence, with its payload."""
    sent: dict[str, dict[str, tuple[str, bytes]]] = {name: {} for name in NAMES}
    for sender, receiver in (NAMES, NAMES[::-1]):
        with Client(nodes.api[sender]) as client:
            for precedence in PRECEDENCES:
                text = f"{precedence} {sender}->{receiver} ".encode()
                payload = text + b"x" * max(0, payload_bytes - len(text))
                mid = client.send(receiver, payload, precedence=precedence, ttl=600)
                sent[receiver][mid] = (precedence, payload)
    got: dict[str, dict[str, list[tuple[str, str, bytes]]]] = {name: {} for name in NAMES}

    def collect() -> bool:
        for name in NAMES:
            with Client(nodes.api[name], timeout=5) as client:
                messages = client.recv(limit=100)
                for message in messages:
                    entry = (str(message["from"]), str(message["precedence"]), payload_of(message))
                    got[name].setdefault(str(message["mid"]), []).append(entry)
                if messages:
                    client.ack(int(str(messages[-1]["id"])))
        return all(len(got[name]) >= len(sent[name]) for name in NAMES)

    wait_for("every message at both nodes", collect, timeout)
    wait_for("custody released", lambda: not any(nodes.held(n) for n in NAMES), timeout)
    collect()  # a duplicate would have shown up by now
    for receiver, sender in (NAMES, NAMES[::-1]):
        expected = {mid: [(sender, p, data)] for mid, (p, data) in sent[receiver].items()}
        assert got[receiver] == expected
