"""Three real daemons on 127.0.0.1 in a chain alpha - bravo - charlie, driven through the CLI.

alpha-bravo runs over UDP, bravo-charlie over TCP (charlie dials bravo). The mission is made
with `tawan mission` in tmp_path. Every wait is bounded, and every daemon is killed in the
fixture's teardown whatever the test did.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from crypto.keyfile import load_keyfile
from crypto.roster import load_roster
from tawan.cli import main
from tawan.core.precedence import Precedence
from tawan.demo import free_port, wait_for
from tawan.node.client import Client, Json, payload_of
from tawan.node.config import load_config
from tawan.node.daemon import open_node

pytestmark = pytest.mark.slow

TAWAN = Path(sys.executable).parent / "tawan"
T = TypeVar("T")

NODE = """
[node]
name = "{name}"
key_file = "mission/nodes/{name}.key"
roster = "mission/roster.tawan"
store = "{name}.db"
durability = "process"

[api]
address = "127.0.0.1:{api}"

[metrics]
address = "127.0.0.1:{metrics}"

[engine]
hello_interval = 0.5
dead_interval = 2.0
"""

LINK = """
[[links]]
name = "{link}"
transport = "{transport}"
{local}
[links.profile]
name = "{link}"
rate_bps = {rate}
delay_s = 0.005
mtu = 1200
cost = 1
[[links.peers]]
node = "{peer}"
{peer_address}
"""


class Daemons:
    """The three nodes' configs, processes and API addresses."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        udp_a, udp_b, tcp_b = (
            free_port(k) for k in (socket.SOCK_DGRAM, socket.SOCK_DGRAM, socket.SOCK_STREAM)
        )
        self.api = {n: f"127.0.0.1:{free_port(socket.SOCK_STREAM)}" for n in self.names}
        self.metrics = {n: f"127.0.0.1:{free_port(socket.SOCK_STREAM)}" for n in self.names}
        udp = {"transport": "udp", "rate": 64000}
        tcp = {"transport": "tcp", "rate": 9600}  # slow: bravo holds a queue for charlie
        self.links = {
            "alpha": [dict(udp, link="vhf", local=f'bind = "127.0.0.1:{udp_a}"', peer="bravo",
                           peer_address=f'address = "127.0.0.1:{udp_b}"')],
            "bravo": [dict(udp, link="vhf", local=f'bind = "127.0.0.1:{udp_b}"', peer="alpha",
                           peer_address=f'address = "127.0.0.1:{udp_a}"'),
                      dict(tcp, link="wan", local=f'listen = "127.0.0.1:{tcp_b}"',
                           peer="charlie", peer_address="")],
            "charlie": [dict(tcp, link="wan", local="", peer="bravo",
                             peer_address=f'address = "127.0.0.1:{tcp_b}"')],
        }  # fmt: skip
        for name in self.names:
            self.config(name).write_text(self.config_text(name))

    names = ("alpha", "bravo", "charlie")

    def config(self, name: str) -> Path:
        return self.base / f"{name}.toml"

    def config_text(self, name: str) -> str:
        port = {"api": self.api[name], "metrics": self.metrics[name]}
        text = NODE.format(name=name, **{k: v.rsplit(":", 1)[1] for k, v in port.items()})
        return text + "".join(LINK.format(**link) for link in self.links[name])

    def start(self, name: str) -> None:
        log = (self.base / f"{name}.log").open("ab")
        command = [str(TAWAN), "node", "run", "--config", str(self.config(name))]
        self.processes[name] = subprocess.Popen(command, stderr=log, cwd=self.base)
        log.close()
        wait_for(f"{name} API", lambda: self.status(name))

    def status(self, name: str) -> Json:
        with Client(self.api[name], timeout=2) as client:
            return client.status()

    def neighbours_up(self, name: str, expected: set[str]) -> None:
        def check() -> bool:
            with Client(self.api[name], timeout=2) as client:
                neighbours = client.status()["neighbours"]
            assert isinstance(neighbours, list)
            return {n["name"] for n in neighbours if n["up"]} >= expected

        wait_for(f"{name} to see {expected}", check)

    def log(self, name: str) -> str:
        return (self.base / f"{name}.log").read_text()

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture
def nodes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Daemons]:
    """A mission and the three nodes' configs; the test starts what it needs."""
    mission = str(tmp_path / "mission")
    assert main(["mission", "init", mission]) == 0
    for name, group in (("alpha", "ops"), ("bravo", "relays"), ("charlie", "ops")):
        assert main(["mission", "add-node", mission, name, "--group", group]) == 0
    capsys.readouterr()
    nodes = Daemons(tmp_path)
    try:
        yield nodes
    finally:
        nodes.stop_all()


@pytest.fixture
def daemons(nodes: Daemons) -> Daemons:
    """The three nodes running, bravo up with both neighbours."""
    for name in nodes.names:
        nodes.start(name)
    nodes.neighbours_up("bravo", {"alpha", "charlie"})
    return nodes


def cli(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TAWAN), *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


def received_at(nodes: Daemons, name: str) -> list[Json]:
    """Everything `tawan recv --json` prints (and acknowledges) now."""
    result = cli("recv", "--json", "--api", nodes.api[name])
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_precedence_reaches_charlie_exactly_once(daemons: Daemons) -> None:
    sent = {}
    for precedence in ("routine", "priority", "immediate", "flash"):
        config = str(daemons.config("alpha"))
        result = cli("send", "--config", config, "--to", "charlie", "--precedence", precedence,
                     "--ttl", "600", f"order {precedence}")  # fmt: skip
        assert result.returncode == 0, result.stderr
        sent[result.stdout.strip()] = precedence
    got: list[Json] = []

    def all_there() -> bool:
        got.extend(received_at(daemons, "charlie"))
        return len(got) >= len(sent)

    wait_for("4 messages at charlie", all_there)
    wait_for("custody released", lambda: released_everywhere(daemons))
    got += received_at(daemons, "charlie")  # a duplicate would have shown up by now
    assert sorted(str(m["mid"]) for m in got) == sorted(sent)
    for message in got:
        assert message["from"] == "alpha"
        assert message["precedence"] == sent[str(message["mid"])]
        assert message["text"] == f"order {message['precedence']}"


def test_relay_killed_mid_stream_loses_nothing_acknowledged(daemons: Daemons) -> None:
    total, kill_after = 80, 40
    rng = random.Random(total)
    accepted: dict[str, bytes] = {}
    with Client(daemons.api["alpha"]) as alpha:
        for i in range(total):
            if i == kill_after:
                wait_for("bravo to hold messages", lambda: held_by(daemons, "bravo"), 10)
                daemons.processes["bravo"].send_signal(signal.SIGKILL)
                daemons.processes["bravo"].wait(timeout=10)
            payload = f"{i:04d} ".encode() + rng.randbytes(60).hex().encode()
            precedence = list(Precedence)[i % 4].name.lower()
            accepted[alpha.send("charlie", payload, precedence=precedence, ttl=600)] = payload
    daemons.start("bravo")
    got: dict[str, list[bytes]] = {}

    def collect() -> bool:
        with Client(daemons.api["charlie"]) as charlie:
            messages = charlie.recv(limit=1000)
            for message in messages:
                got.setdefault(str(message["mid"]), []).append(payload_of(message))
            if messages:
                charlie.ack(int(str(messages[-1]["id"])))
        return len(got) >= total

    wait_for("every message at charlie", collect, timeout=90)
    wait_for("custody released", lambda: released_everywhere(daemons))
    collect()  # a duplicate would have shown up by now
    assert got == {mid: [payload] for mid, payload in accepted.items()}


def held_by(daemons: Daemons, name: str) -> bool:
    with Client(daemons.api[name], timeout=2) as client:
        store = client.status()["store"]
    assert isinstance(store, dict)
    return int(str(store["messages"])) > 0


def released_everywhere(daemons: Daemons) -> bool:
    """No node holds a message it could send again: a duplicate now could only be a frame
    already on its way, and charlie recognises copies by message id."""
    return not any(held_by(daemons, name) for name in ("alpha", "bravo"))


def test_cli_status_and_user_errors(daemons: Daemons) -> None:
    table = cli("status", "--api", daemons.api["bravo"])
    assert table.returncode == 0, table.stderr
    assert "node bravo" in table.stdout
    assert "neighbours" in table.stdout and "charlie" in table.stdout
    shown = cli("status", "--json", "--config", str(daemons.config("bravo")))
    status = json.loads(shown.stdout)
    assert status["node"] == "bravo"
    assert {(n["name"], n["link"], n["up"]) for n in status["neighbours"]} == {
        ("alpha", "vhf", True),
        ("charlie", "wan", True),
    }
    assert set(status["queues"]) == {p.name.lower() for p in Precedence}

    url = f"http://{daemons.metrics['bravo']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        exposition = response.read().decode()
    assert "tawan_store_max_bytes{" in exposition or "tawan_store_max_bytes " in exposition

    refused = cli("send", "--api", daemons.api["alpha"], "--to", "nobody", "hello")
    assert refused.returncode == 2
    assert refused.stderr == (
        "tawan: error: send.to: expected a node or group in the roster, found 'nobody'\n"
    )
    closed = f"127.0.0.1:{free_port(socket.SOCK_STREAM)}"
    unreachable = cli("recv", "--api", closed)
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith(f"tawan: error: cannot reach the node API at {closed}")


def test_signals_reload_roster_and_stop_cleanly(
    daemons: Daemons, capsys: pytest.CaptureFixture[str]
) -> None:
    bravo = daemons.processes["bravo"]
    roster = daemons.base / "mission" / "roster.tawan"
    assert main(["mission", "add-node", str(daemons.base / "mission"), "delta"]) == 0
    bravo.send_signal(signal.SIGHUP)
    wait_for("roster update", lambda: "event=roster_updated version=5" in daemons.log("bravo"))
    good = roster.read_bytes()
    roster.write_bytes(b"not a roster")
    bravo.send_signal(signal.SIGHUP)
    wait_for("roster refusal", lambda: "event=roster_refused" in daemons.log("bravo"))
    roster.write_bytes(good)
    assert bravo.poll() is None  # a bad roster is refused, not fatal
    bravo.send_signal(signal.SIGTERM)
    assert bravo.wait(timeout=15) == 0
    log = daemons.log("bravo")
    assert "event=stopping signal=SIGTERM" in log
    assert "event=stopped node=bravo" in log
    capsys.readouterr()


def test_a_revocation_handed_to_one_node_reaches_the_others(
    daemons: Daemons, capsys: pytest.CaptureFixture[str]
) -> None:
    mission = daemons.base / "mission"
    assert main(["mission", "revoke", str(mission), "charlie"]) == 0
    notice = mission / "revocations" / "v5.tawan-revoke"
    handed = cli("revoke", str(notice), "--api", daemons.api["alpha"])
    assert handed.returncode == 0, handed.stderr
    assert handed.stdout == "revocation of charlie (roster version 5): applied and flooded\n"
    wait_for(
        "the notice at bravo",
        lambda: (
            "event=revocation_applied version=5 revoked=charlie from=alpha" in daemons.log("bravo")
        ),
    )
    wait_for("bravo's key file rewritten", lambda: "event=keys_saved" in daemons.log("bravo"))
    again = cli("revoke", str(notice), "--api", daemons.api["bravo"])
    assert again.stdout.endswith("already in force\n")
    refused = cli("send", "--api", daemons.api["alpha"], "--to", "charlie", "hello")
    assert refused.returncode == 2
    assert "revoked" in refused.stderr
    capsys.readouterr()


def test_node_refuses_to_start_with_one_line(nodes: Daemons) -> None:
    config = nodes.config("alpha")
    config.write_text(nodes.config_text("alpha").replace("mtu = 1200", "mtu = 12"))
    bad = cli("node", "run", "--config", str(config))
    assert bad.returncode == 2
    assert bad.stderr == (
        f"tawan node: {config}: links[0].profile.mtu: expected an integer 128..65507, "
        "found integer 12\n"
    )
    config.write_text(nodes.config_text("alpha"))
    key = nodes.base / "mission" / "nodes" / "alpha.key"
    key.chmod(0o644)
    loose = cli("node", "run", "--config", str(config))
    assert loose.returncode == 2
    assert loose.stderr.startswith(f"tawan node: {key}: key file mode is 0644, expected 0600")
    assert loose.stderr.count("\n") == 1
    key.chmod(0o600)

    nodes.start("alpha")
    twice = cli("node", "run", "--config", str(config))
    assert twice.returncode == 2
    assert (
        twice.stderr
        == f"tawan node: {nodes.base / 'alpha.db'}: in use by another node process (locked)\n"
    )


def test_keys_erased_at_start_up_leave_the_key_file_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A node started three days into the mission ratchets its roots at once; the key file
    # used to keep the old ones until the next epoch change, up to an hour later.
    mission = tmp_path / "mission"
    t0 = int(time.time()) - 3 * 86400
    assert main(["mission", "init", str(mission), "--t0", str(t0)]) == 0
    for name in ("alpha", "bravo", "charlie"):
        assert main(["mission", "add-node", str(mission), name]) == 0
    capsys.readouterr()
    nodes = Daemons(tmp_path)
    nodes.config("alpha").write_text(nodes.config_text("alpha"))
    key_file = mission / "nodes" / "alpha.key"
    roster = load_roster(mission / "roster.tawan")
    assert {root.epoch for root in load_keyfile(key_file, roster).pair_roots} == {0}
    monkeypatch.chdir(tmp_path)  # the config's paths are relative to where the node runs
    node = open_node(load_config(nodes.config("alpha")))
    try:
        epochs = {root.epoch for root in load_keyfile(key_file, roster).pair_roots}
        assert epochs == {node.keyring.oldest_epoch} and min(epochs) >= 48
    finally:
        node.close()
