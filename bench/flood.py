"""Delivered traffic through a relay while junk floods its UDP port.

Three daemons in a chain over UDP on 127.0.0.1 (alpha - relay - charlie, as in
bench/throughput.py). Messages are submitted at alpha and counted when delivered at charlie,
three times: without attack; while a flooder sends junk to the relay's port facing alpha from
127.0.0.2, an address that is no configured peer; and while it sends junk that spoofs alpha's
own address and port (raw IP datagrams with a forged source, loopback only, needs root). The
flooder is another process, so it takes CPU from the nodes as a real attacker on the same
host would; it stops after `--flood-datagrams` datagrams or `--flood-seconds`, whichever
first, and its junk is seeded random bytes.

Prints figures as it goes; the last line is one JSON object: no_attack_msgs_per_s,
junk_ratio, spoofed_ratio (delivered rate under attack over the rate without), the flood
rates, and the relay's drop counters by reason after each attack.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import has_route, start, stop, throughput, write_configs

from tawan.demo import wait_for
from tawan.node.client import Client

Counter = Any  # a multiprocessing.Value("q"): the flooder's tally, read by the parent
JUNK_SOURCE = "127.0.0.2"
JUNK_PAYLOADS = 512


def _junk(seed: int) -> list[bytes]:
    draw = random.Random(seed)
    return [draw.randbytes(draw.randrange(20, 1400)) for _ in range(JUNK_PAYLOADS)]


def _flood_from_elsewhere(
    target: tuple[str, int], count: int, seconds: float, seed: int, sent: Counter
) -> None:
    junk = _junk(seed)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((JUNK_SOURCE, 0))
        _blast(lambda data: sock.sendto(data, target), junk, count, seconds, sent)


def _flood_spoofed(
    source: tuple[str, int],
    target: tuple[str, int],
    count: int,
    seconds: float,
    seed: int,
    sent: Counter,
) -> None:
    """IPv4 and UDP headers written here, the source forged; the kernel fills the IP
    checksum, and a UDP checksum of 0 means none (allowed over IPv4)."""
    src, dst = socket.inet_aton(source[0]), socket.inet_aton(target[0])
    datagrams = []
    for ident, payload in enumerate(_junk(seed)):
        length = 28 + len(payload)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, length, ident, 0, 64, socket.IPPROTO_UDP,
                         0, src, dst)  # fmt: skip
        udp = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0)
        datagrams.append(ip + udp + payload)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        _blast(lambda data: sock.sendto(data, (target[0], 0)), datagrams, count, seconds, sent)


def _blast(
    send: Callable[[bytes], object],
    datagrams: list[bytes],
    count: int,
    seconds: float,
    sent: Counter,
) -> None:
    """Send until `count` datagrams or `seconds`; the tally is shared with the parent."""
    deadline = time.monotonic() + seconds
    done = 0
    while done < count and time.monotonic() < deadline:
        for data in datagrams[: min(len(datagrams), count - done)]:
            try:
                send(data)
            except OSError:  # ENOBUFS and the like: the attacker's problem
                continue
        done += min(len(datagrams), count - done)
        sent.value = done


def relay_drops(api: str) -> dict[str, object]:
    with Client(api, timeout=5) as client:
        drops = client.status().get("drops")
        return drops if isinstance(drops, dict) else {}


def measure(
    apis: dict[str, str],
    count: int,
    timeout: float,
    flood: multiprocessing.Process | None,
    sent: Counter,
) -> tuple[float, float]:
    """Delivered msg/s, and the flood's datagrams/s over the same span (0 without)."""
    if flood is not None:
        flood.start()
        time.sleep(0.5)  # the flood is on before the first message
    before, started = sent.value, time.perf_counter()
    try:
        rate = throughput(apis, count, timeout)
    finally:
        flood_rate = (sent.value - before) / (time.perf_counter() - started)
        if flood is not None:
            flood.terminate()
            flood.join(10)
    if flood is not None:
        print(f"  flood: {flood_rate:,.0f} datagrams/s")
    return rate, flood_rate


def spoofed_run(
    apis: dict[str, str],
    args: argparse.Namespace,
    alpha: tuple[str, int],
    target: tuple[str, int],
) -> tuple[float | None, float, dict[str, object]]:
    """The third measurement: junk from alpha's own address and port."""
    print(f"junk spoofing alpha's address {alpha[0]}:{alpha[1]}")
    if os.geteuid() != 0:
        print("  skipped: forging a source address needs root (a raw socket)")
        return None, 0.0, {}
    sent = multiprocessing.Value("q", 0)
    flood = multiprocessing.Process(
        target=_flood_spoofed,
        args=(alpha, target, args.flood_datagrams, args.flood_seconds, args.seed + 1, sent),
    )
    spoofed, spoof_flood = measure(apis, args.count, args.timeout, flood, sent)
    drops = relay_drops(apis["relay"])
    print(f"  relay drops: {drops}")
    return spoofed, spoof_flood, drops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="messages per measurement")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--flood-datagrams", type=int, default=20_000_000)
    parser.add_argument("--flood-seconds", type=float, default=150.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="tawan-flood-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        apis = write_configs(base, "process")
        relay = tomllib.loads((base / "relay.toml").read_text())
        alpha = tomllib.loads((base / "alpha.toml").read_text())
        host, port = relay["links"][0]["bind"].rsplit(":", 1)
        target = (host, int(port))
        a_host, a_port = alpha["links"][0]["bind"].rsplit(":", 1)
        procs = start(base)
        wait_for("a route from alpha to charlie", lambda: has_route(apis["alpha"], "charlie"))
        print(f"three daemons up ({base}); the relay's port facing alpha: {port}")
        throughput(apis, 1000, args.timeout)  # warm up: keys, routes, caches

        print("no attack")
        idle = multiprocessing.Value("q", 0)
        quiet, _ = measure(apis, args.count, args.timeout, None, idle)

        print(f"junk from {JUNK_SOURCE}, no configured peer")
        sent = multiprocessing.Value("q", 0)
        flood = multiprocessing.Process(
            target=_flood_from_elsewhere,
            args=(target, args.flood_datagrams, args.flood_seconds, args.seed, sent),
        )
        junk, junk_flood = measure(apis, args.count, args.timeout, flood, sent)
        junk_drops = relay_drops(apis["relay"])
        print(f"  relay drops: {junk_drops}")

        spoofed, spoof_flood, spoof_drops = spoofed_run(apis, args, (a_host, int(a_port)), target)
        junk_ratio = junk / quiet if quiet else 0.0
        spoofed_ratio = None if spoofed is None else spoofed / quiet if quiet else 0.0
        print(f"no attack {quiet:,.0f} msg/s; junk {junk:,.0f} msg/s ({junk_ratio:.2f}); "
              f"spoofed {'-' if spoofed is None else f'{spoofed:,.0f}'} msg/s "
              f"({'-' if spoofed_ratio is None else f'{spoofed_ratio:.2f}'})")  # fmt: skip
        result = {
            "no_attack_msgs_per_s": round(quiet),
            "junk_ratio": round(junk_ratio, 3),
            "spoofed_ratio": None if spoofed_ratio is None else round(spoofed_ratio, 3),
            "junk_datagrams_per_s": round(junk_flood),
            "spoofed_datagrams_per_s": round(spoof_flood),
            "relay_drops_after_junk": junk_drops,
            "relay_drops_after_spoofed": spoof_drops,
        }
        print(json.dumps(result))
    finally:
        stop(procs)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
