"""Goodput of the stack over one emulated 2.4 kbit/s HF link, for queues of small messages.

Two nodes share an HF net (the catalogue's bearer: 2.4 kbit/s, 1 s delay, MTU 2048 as a
STANAG 5066 node grants it, a modem queue of 8 kB) and nothing else. At t = 60 s the first
node is handed a queue of messages (ROUTINE, to the other node, incompressible payloads) of
50, 200 and 1000 bytes, one size per run. Goodput is the payload bits delivered over the
time from the first offer to the last delivery, as a share of the raw rate. Each size runs
twice: on a clean channel (no loss, no jitter) and with the catalogue's Gilbert-Elliott
loss. The same runs are repeated at MTU 256 (the catalogue's figure before it took 5066's),
for comparison.

Everything else on the air counts against goodput: the frame and message headers, link
tags, hellos, acknowledgements, fragmentation of what does not fit the MTU, and
retransmissions. Messages ready together for the same neighbour share a BATCH frame up to
the MTU. The emulator loses a whole frame per loss event where 5066 would repair a few of
its own segments (docs/bearers.md), so the lossy figures are a lower bound. STANAG 5066 ARQ
implementations report 83-94 % line utilisation.

Each run prints one JSON line. The last line printed is one JSON object: goodput_50,
goodput_200, goodput_1000 (clean), the same with _lossy, the same at MTU 256 with _mtu256,
and per run the messages delivered.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from emulator.run import Emulation
from topologies.load import scenario_from_data

RATE_BPS = 2400
START_S = 60.0


def scenario(size: int, count: int, *, lossy: bool, seed: int, mtu: int | None) -> dict[str, Any]:
    net: dict[str, Any] = {"name": "hf", "bearer": "hf", "members": ["a", "b"]}
    if mtu is not None:
        net["mtu"] = mtu
    if not lossy:
        net.update(loss=0.0, jitter_s=0.0, bursts=False)
    return {
        "run": {"name": f"hf-goodput-{size}", "duration_s": START_S + 4 * 3600.0, "seed": seed},
        "nodes": [{"name": "a", "position": [0.0, 0.0]}, {"name": "b", "position": [50.0, 0.0]}],
        "nets": [net],
        "traffic": [
            {
                "name": "queue", "sources": ["a"], "to": "b", "size_bytes": size,
                "interval_s": 0.001, "start_s": START_S,
                "stop_s": START_S + count * 0.001 - 0.0005, "ttl_s": 6 * 3600,
            }
        ],
    }  # fmt: skip


def one_run(
    size: int, count: int, *, lossy: bool, seed: int = 1, mtu: int | None = None
) -> dict[str, Any]:
    data = scenario(size, count, lossy=lossy, seed=seed, mtu=mtu)
    em = Emulation(scenario_from_data(data, f"hf-goodput-{size}"))
    started = time.perf_counter()
    t = START_S
    while t < em.duration:
        t += 60.0
        em.step_until(t)
        got = sum(1 for r in em.record.offers.values() if "b" in r.delivered)
        if got >= count:
            break
    records = list(em.record.offers.values())
    delivered = [r.delivered["b"] for r in records if "b" in r.delivered]
    first = min(r.time for r in records)
    last = max(delivered, default=first)
    payload_bits = 8 * size * len(delivered)
    tally = em.record.bearers["hf"]
    return {
        "size": size,
        "offered": len(records),
        "delivered": len(delivered),
        "seconds": round(last - first, 2),
        "goodput": round(payload_bits / ((last - first) * RATE_BPS), 4) if delivered else 0.0,
        "frames": tally.frames,
        "bytes_on_air": tally.bytes,
        "message_bytes": tally.message_bytes,
        "ack_bytes": tally.ack_bytes,
        "control_bytes": tally.control_bytes,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bytes", type=int, default=40_000, help="payload queued per run")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for mtu in (None, 256):  # None: the catalogue's
        for lossy in (False, True):
            for size in (50, 200, 1000):
                row = one_run(size, max(1, args.bytes // size), lossy=lossy, mtu=mtu)
                print(json.dumps({"lossy": lossy, "mtu": mtu or "catalogue", **row}))
                suffix = ("_lossy" if lossy else "") + (f"_mtu{mtu}" if mtu else "")
                figures[f"goodput_{size}{suffix}"] = row["goodput"]
                figures[f"delivered_{size}{suffix}"] = row["delivered"]
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
