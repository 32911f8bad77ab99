"""Kill origin, relay and destination with SIGKILL under traffic; count what was lost.

Three daemons in a chain over UDP on 127.0.0.1 (alpha - relay - charlie), each its own
process with the real runtime and a file-backed store. A sender submits 100-byte messages of
every precedence (seeded random choice) at alpha through the local API, one connection kept
open, at `--rate` a second; an application at charlie reads and acknowledges its inbox. A
killer sends SIGKILL to a node chosen at random (seeded) at random moments, `--kills` times,
and starts it again on the same files. Then sending stops and the chain drains.

Counted, by the number each message carries in its payload:

- accepted: the API answered with a message id;
- lost: accepted, and never delivered at charlie by the end of the drain;
- duplicated: delivered to the application under two inbox ids (an inbox entry read again
  because its acknowledgement died with charlie is the same entry, not a duplicate);
- in_doubt: the request was written, and the connection died before the answer (alpha was
  killed mid-request); `in_doubt_delivered` says how many of those arrived anyway;
- resolved: in-doubt sends settled by a retry. Every send carries a client reference
  (`ref`, docs/operators.md "Sends in doubt"), so the sender sends an in-doubt one again,
  the same message under the same reference, once alpha answers again (before anything
  new, and once more after the traffic stops): the answer is the first message's id when
  alpha had taken it, a new id when it had not, never a second copy. A resolved send that
  got an id counts as accepted, so lost and duplicated cover it; `unresolved` is what no
  retry settled;
- refused: the API answered with an error (a full store, say): the client knows.

Durability. `--durability power` runs the nodes with `durability = "power"` (every commit
synced). The kill is a process death either way: what a power cut adds, and why it is not
simulated here, is in docs/operators.md ("Durability").

The last line printed is one JSON object: kills, accepted, lost, duplicated, in_doubt,
in_doubt_delivered, resolved, unresolved, refused, delivered, seconds, seed, durability.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import CONFIG  # the same node file; crash.py's own links are slower

from crypto.mission import add_node, init_mission
from tawan.core.precedence import Precedence
from tawan.demo import free_port, wait_for
from tawan.node.client import Client, ClientError, build_request, payload_of

TAWAN = Path(sys.executable).parent / "tawan"
NAMES = ("alpha", "relay", "charlie")
PRECEDENCES = tuple(p.name.lower() for p in Precedence)

LINK = """
[[links]]
name = "{link}"
transport = "udp"
bind = "127.0.0.1:{port}"
[links.profile]
name = "ip"
rate_bps = 10_000_000
delay_s = 0.001
mtu = 1400
cost = 1
[[links.peers]]
node = "{peer}"
address = "127.0.0.1:{peer_port}"
"""


class Chain:
    """The three daemons' files and processes."""

    def __init__(self, base: Path, durability: str) -> None:
        self.base = base
        init_mission(base / "mission")
        for name in NAMES:
            add_node(base / "mission", name)
        udp = {name: free_port(socket.SOCK_DGRAM) for name in ("a", "r1", "r2", "c")}
        links = {
            "alpha": [("ab", udp["a"], "relay", udp["r1"])],
            "relay": [
                ("ab", udp["r1"], "alpha", udp["a"]),
                ("bc", udp["r2"], "charlie", udp["c"]),
            ],
            "charlie": [("bc", udp["c"], "relay", udp["r2"])],
        }
        self.api: dict[str, str] = {}
        for name in NAMES:
            port = free_port(socket.SOCK_STREAM)
            self.api[name] = f"127.0.0.1:{port}"
            text = "".join(
                LINK.format(link=link, port=local, peer=peer, peer_port=remote)
                for link, local, peer, remote in links[name]
            )
            config = CONFIG.format(name=name, api=port, links=text, durability=durability)
            (base / f"{name}.toml").write_text(config)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        with (self.base / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [str(TAWAN), "node", "run", "--config", str(self.base / f"{name}.toml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.base,
            )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def wait_up(self, name: str) -> None:
        def answers() -> bool:
            with Client(self.api[name], timeout=1) as client:
                return bool(client.status())

        wait_for(f"{name} API", answers, timeout=30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


@dataclass
class Tally:
    accepted: dict[int, str] = field(default_factory=dict)  # number -> message id
    in_doubt: set[int] = field(default_factory=set)  # every send that was once in doubt
    unsettled: dict[int, str] = field(default_factory=dict)  # in doubt now -> precedence
    resolved: set[int] = field(default_factory=set)  # in doubt once, then answered
    refused: set[int] = field(default_factory=set)
    deliveries: dict[int, set[int]] = field(default_factory=dict)  # number -> inbox ids
    lock: threading.Lock = field(default_factory=threading.Lock)


def sender(api: str, tally: Tally, stop: threading.Event, rate: float, seed: int) -> None:
    """Submit numbered messages until `stop`; each request's fate goes into `tally`."""
    rng = random.Random(seed)
    host, port = api.rsplit(":", 1)
    number = 0
    sock: socket.socket | None = None
    try:
        while not stop.is_set():
            time.sleep(1 / rate)
            if sock is None:
                try:
                    sock = socket.create_connection((host, int(port)), timeout=1)
                except OSError:
                    continue  # alpha is down: nothing was sent
                sock.settimeout(5)
            if not _retry_in_doubt(sock, tally):
                sock.close()
                sock = None
                continue
            number += 1
            if not _send_one(sock, number, rng.choice(PRECEDENCES), tally):
                sock.close()
                sock = None
    finally:
        if sock is not None:
            sock.close()


def _retry_in_doubt(sock: socket.socket, tally: Tally) -> bool:
    """Send every in-doubt message again under its reference; False when the connection
    died meanwhile (what is still in doubt stays so)."""
    with tally.lock:
        unsettled = sorted(tally.unsettled.items())
    return all(_send_one(sock, number, precedence, tally) for number, precedence in unsettled)


def settle(api: str, tally: Tally, attempts: int = 20) -> None:
    """After the traffic: retry what is still in doubt until answered (bounded)."""
    host, port = api.rsplit(":", 1)
    for _ in range(attempts):
        with tally.lock:
            if not tally.unsettled:
                return
        try:
            with socket.create_connection((host, int(port)), timeout=1) as sock:
                sock.settimeout(5)
                if _retry_in_doubt(sock, tally):
                    return
        except OSError:
            pass
        time.sleep(0.5)


def _send_one(sock: socket.socket, number: int, precedence: str, tally: Tally) -> bool:
    """One request on `sock`; False when the connection died before its answer."""
    text = f"crash {number} ".ljust(100, ".").encode()
    fields = {"to": "charlie", "precedence": precedence, "ttl": 3600, "ref": f"crash-{number}",
              "payload_b64": base64.b64encode(text).decode()}  # fmt: skip
    line = b""
    try:
        with sock.makefile("rwb") as stream:
            stream.write(build_request("send", fields))
            stream.flush()
            line = stream.readline()
    except OSError:
        pass
    answer = _answer(line)
    with tally.lock:
        if answer is None:
            tally.in_doubt.add(number)
            tally.unsettled[number] = precedence
            return False
        if tally.unsettled.pop(number, None) is not None:
            tally.resolved.add(number)
        if answer:
            tally.accepted[number] = answer
        else:
            tally.refused.add(number)
    return True


def _answer(line: bytes) -> str | None:
    """The message id; "" for an error answer; None when no whole answer came."""
    if not line.endswith(b"\n"):
        return None
    response = json.loads(line)
    if response.get("ok") is True:
        return str(response["mid"])
    return ""


def receiver(api: str, tally: Tally, stop: threading.Event) -> None:
    """Read and acknowledge charlie's inbox until `stop`, across its restarts."""
    last = 0
    while not stop.is_set():
        try:
            with Client(api, timeout=2) as client:
                while not stop.is_set():
                    messages = client.recv(after=last, limit=500)
                    for message in messages:
                        inbox_id = int(str(message["id"]))
                        number = int(payload_of(message).split()[1])
                        with tally.lock:
                            tally.deliveries.setdefault(number, set()).add(inbox_id)
                        last = max(last, inbox_id)
                    if messages:
                        client.ack(last)
                    else:
                        time.sleep(0.02)
        except (ClientError, OSError):
            time.sleep(0.05)


def run(
    kills: int, *, seed: int = 1, rate: float = 150.0, durability: str = "process",
    gap: tuple[float, float] = (0.4, 1.6), drain: float = 75.0, keep: bool = False,
) -> dict[str, object]:  # fmt: skip
    """The whole run; returns the figures of the last line."""
    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="tawan-crash-"))
    chain = Chain(base, durability)
    tally = Tally()
    stop_sending, stop_reading = threading.Event(), threading.Event()
    started = time.monotonic()
    threads = []
    try:
        for name in NAMES:
            chain.start(name)
        for name in NAMES:
            chain.wait_up(name)
        threads = [
            threading.Thread(
                target=sender, args=(chain.api["alpha"], tally, stop_sending, rate, seed)
            ),
            threading.Thread(target=receiver, args=(chain.api["charlie"], tally, stop_reading)),
        ]
        for thread in threads:
            thread.start()
        for kill in range(kills):
            time.sleep(rng.uniform(*gap))
            victim = rng.choice(NAMES)
            chain.kill(victim)
            time.sleep(rng.uniform(0.0, 0.3))  # down for a moment
            chain.start(victim)
            print(f"  kill {kill + 1}/{kills}: {victim}", flush=True)
        stop_sending.set()
        threads[0].join(timeout=10)
        settle(chain.api["alpha"], tally)
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline:
            with tally.lock:
                missing = set(tally.accepted) - set(tally.deliveries)
            if not missing:
                break
            time.sleep(0.2)
        stop_reading.set()
        threads[1].join(timeout=10)
    finally:
        stop_sending.set()
        stop_reading.set()
        chain.stop_all()
        for thread in threads:
            thread.join(timeout=10)
        if keep:
            print(f"working folder kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    with tally.lock:
        delivered = set(tally.deliveries)
        result: dict[str, object] = {
            "kills": kills,
            "accepted": len(tally.accepted),
            "lost": len(set(tally.accepted) - delivered),
            "duplicated": sum(len(ids) > 1 for ids in tally.deliveries.values()),
            "in_doubt": len(tally.in_doubt),
            "in_doubt_delivered": len(tally.in_doubt & delivered),
            "resolved": len(tally.resolved),
            "unresolved": len(tally.unsettled),
            "refused": len(tally.refused),
            "delivered": len(delivered),
            "seconds": round(time.monotonic() - started, 1),
            "seed": seed,
            "durability": durability,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=150.0, help="messages a second")
    parser.add_argument("--durability", choices=("process", "power"), default="process")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    result = run(
        args.kills, seed=args.seed, rate=args.rate, durability=args.durability, keep=args.keep
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
