"""Three daemons in a chain over UDP on 127.0.0.1 (alpha - relay - charlie), each its own
process with the real runtime; messages submitted at alpha through the local API and counted
when delivered at charlie.

Prints figures as it goes; the last line is one JSON object:
msgs_per_s, p50_latency_ms and p99_latency_ms (ROUTINE at low load: the slowest class, whose
acknowledgements wait to be batched), flash_p50_latency_ms, peak_rss_mb (largest node).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from crypto.mission import add_node, init_mission
from tawan.demo import free_port, wait_for
from tawan.node.client import Client, build_request, check_response

TAWAN = Path(sys.executable).parent / "tawan"
NAMES = ("alpha", "relay", "charlie")

CONFIG = """
[node]
name = "{name}"
key_file = "mission/nodes/{name}.key"
roster = "mission/roster.tawan"
store = "{name}.db"
durability = "{durability}"

[api]
address = "127.0.0.1:{api}"
{links}
"""

LINK = """
[[links]]
name = "{link}"
transport = "udp"
bind = "127.0.0.1:{port}"
[links.profile]
name = "ip"
rate_bps = 1_000_000_000
delay_s = 0.001
mtu = 1400
cost = 1
[[links.peers]]
node = "{peer}"
address = "127.0.0.1:{peer_port}"
"""


def write_configs(base: Path, durability: str) -> dict[str, str]:
    init_mission(base / "mission")
    for name in NAMES:
        add_node(base / "mission", name)
    udp = {name: free_port(socket.SOCK_DGRAM) for name in ("a", "r1", "r2", "c")}
    links = {
        "alpha": [("ab", udp["a"], "relay", udp["r1"])],
        "relay": [("ab", udp["r1"], "alpha", udp["a"]), ("bc", udp["r2"], "charlie", udp["c"])],
        "charlie": [("bc", udp["c"], "relay", udp["r2"])],
    }
    apis = {}
    for name in NAMES:
        api = free_port(socket.SOCK_STREAM)
        apis[name] = f"127.0.0.1:{api}"
        text = "".join(
            LINK.format(link=link, port=port, peer=peer, peer_port=peer_port)
            for link, port, peer, peer_port in links[name]
        )
        config = CONFIG.format(name=name, api=api, links=text, durability=durability)
        (base / f"{name}.toml").write_text(config)
    return apis


def start(base: Path) -> dict[str, subprocess.Popen[bytes]]:
    procs = {}
    for name in NAMES:
        log = (base / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(
            [str(TAWAN), "node", "run", "--config", str(base / f"{name}.toml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=base,
        )
    return procs


def stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every daemon, then SIGKILL whichever has not stopped within 10 s."""
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def has_route(api: str, to: str) -> bool:
    with Client(api, timeout=2) as client:
        routes = client.status().get("routes")
        return isinstance(routes, dict) and to in routes


def inbox_count(api: str) -> int:
    with Client(api, timeout=5) as client:
        store = client.status()["store"]
        assert isinstance(store, dict)
        return int(store["inbox"])


def send_pipelined(api: str, count: int, window: int = 256) -> float:
    """Submit `count` 100-byte messages, `window` requests in flight; returns the start time."""
    payload = base64.b64encode(os.urandom(100)).decode()
    request = build_request(
        "send", {"to": "charlie", "precedence": "routine", "ttl": 3600, "payload_b64": payload}
    )
    host, port = api.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        stream = sock.makefile("rwb")
        start = time.perf_counter()
        sent = answered = 0
        while answered < count:
            while sent < count and sent - answered < window:
                stream.write(request)
                sent += 1
            stream.flush()
            check_response(stream.readline(), api)
            answered += 1
        return start


def throughput(apis: dict[str, str], count: int, timeout: float) -> float:
    before = inbox_count(apis["charlie"])
    start = send_pipelined(apis["alpha"], count)
    print(f"  alpha accepted {count} in {time.perf_counter() - start:.2f} s")
    deadline = time.perf_counter() + timeout
    delivered = 0
    while time.perf_counter() < deadline:
        delivered = inbox_count(apis["charlie"]) - before
        if delivered >= count:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    print(f"  {delivered}/{count} delivered at charlie in {elapsed:.2f} s")
    return delivered / elapsed


def latency(apis: dict[str, str], count: int, rate: float, precedence: str) -> list[float]:
    """Send one message every 1/rate s; charlie's follower timestamps each arrival."""
    arrivals: dict[int, float] = {}
    done = threading.Event()

    def follow() -> None:
        with Client(apis["charlie"], timeout=None) as client:
            for message in client.follow(after=_last_inbox_id(apis["charlie"])):
                text = base64.b64decode(str(message["payload_b64"])).decode()
                if text.startswith("probe "):
                    arrivals[int(text.split()[1])] = time.perf_counter()
                if len(arrivals) >= count or done.is_set():
                    return

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.3)
    sent: dict[int, float] = {}
    with Client(apis["alpha"]) as client:
        for i in range(count):
            sent[i] = time.perf_counter()
            client.send("charlie", f"probe {i} ".encode().ljust(100, b"."), precedence=precedence)
            time.sleep(1 / rate)
    follower.join(timeout=10)
    done.set()
    return sorted((arrivals[i] - sent[i]) * 1000 for i in arrivals)


def _last_inbox_id(api: str) -> int:
    with Client(api, timeout=5) as client:
        messages = client.recv(after=0, limit=1000)
        ids = [int(str(m["id"])) for m in messages] if messages else [0]
        last = max(ids)
        while messages:
            messages = client.recv(after=last, limit=1000)
            if messages:
                last = max(int(str(m["id"])) for m in messages)
        return last


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--durability", choices=("process", "power"), default="process",
        help="the nodes' store durability (default: the nodes' own default, process)",
    )  # fmt: skip
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tawan-bench-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        apis = write_configs(base, args.durability)
        procs = start(base)
        wait_for("a route from alpha to charlie", lambda: has_route(apis["alpha"], "charlie"))
        print(f"three daemons up ({base})")
        flash = latency(apis, 200, 100.0, "flash")
        latencies = latency(apis, 200, 100.0, "routine")
        for name, values in (("flash", flash), ("routine", latencies)):
            print(
                f"  low load, {name}: {len(values)} probes at 100/s, p50 "
                f"{percentile(values, 0.5):.2f} ms, p99 {percentile(values, 0.99):.2f} ms"
            )
        rate = throughput(apis, args.count, args.timeout)
        peak = max(peak_rss_mb(p.pid) for p in procs.values())
        result = {
            "msgs_per_s": round(rate),
            "p50_latency_ms": round(percentile(latencies, 0.5), 2),
            "p99_latency_ms": round(percentile(latencies, 0.99), 2),
            "flash_p50_latency_ms": round(percentile(flash, 0.5), 2),
            "peak_rss_mb": round(peak, 1),
        }
        print(json.dumps(result))
    finally:
        stop(procs)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
