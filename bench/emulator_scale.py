"""How fast the emulator runs generated brigades of 50, 200 and 500 nodes for an hour.

Traffic (the generators' standard traffic): every node a position report (100 B, ROUTINE)
to its headquarters every 60 s and a situation report (1 kB, PRIORITY) to its group every
10 minutes; every headquarters an IMMEDIATE order to each of its units every 5 minutes and
a FLASH to all of them every 15 minutes; one node in ten 50 kB of ROUTINE logistics an
hour. Each size runs in a child process (its own peak RSS) and stops after
`--budget` wall seconds, reporting the virtual time it reached.

The last line printed is one JSON object: speedup_N (virtual seconds per wall second),
events_N, messages_N, virtual_s_N, wall_s_N, control_share_N, engine_share_N,
peak_rss_mb_N.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from typing import Any

from emulator.results import results, timeline
from emulator.run import Emulation
from topologies.generate import brigade

VIRTUAL_S = 3600.0
STEP_S = 1.0  # virtual seconds between checks of the wall budget


def one_size(nodes: int, budget_s: float, virtual_s: float, seed: int) -> dict[str, Any]:
    scenario = brigade(seed, nodes=nodes)
    scenario = scenario.model_copy(
        update={"run": scenario.run.model_copy(update={"duration_s": virtual_s})}
    )
    built = time.perf_counter()
    em = Emulation(scenario)
    setup_s = time.perf_counter() - built
    started = time.perf_counter()
    t = 0.0
    while t < virtual_s and time.perf_counter() - started < budget_s:
        t = min(t + STEP_S, virtual_s)
        em.step_until(t)
    wall = time.perf_counter() - started
    tl = timeline(em)
    res = results(em, tl)
    sent = sum(b["bytes"] for b in res["bearers"].values())
    control = sum(b["control_bytes"] for b in res["bearers"].values())
    delivered = sum(p["delivered"] for p in res["precedence"].values())
    offered = sum(p["offered"] for p in res["precedence"].values())
    return {
        "nodes": len(scenario.nodes),
        "virtual_s": t,
        "wall_s": round(wall, 2),
        "setup_s": round(setup_s, 2),
        "speedup": round(t / wall, 2) if wall else None,
        "events": em.events_handled,
        "messages": len(em.record.offers),
        "copies_offered": offered,
        "copies_delivered": delivered,
        "control_share": round(control / sent, 4) if sent else None,
        "engine_share": round(em.engine_s / wall, 3) if wall else None,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _child(nodes: int, budget: float, virtual: float, seed: int, queue: Any) -> None:
    queue.put(one_size(nodes, budget, virtual, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument("--budget", type=float, default=300.0, help="wall seconds per size")
    parser.add_argument("--virtual", type=float, default=VIRTUAL_S)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    context = multiprocessing.get_context("spawn")
    for size in args.sizes:
        queue = context.Queue()
        child = context.Process(
            target=_child, args=(size, args.budget, args.virtual, args.seed, queue)
        )
        child.start()
        row = queue.get()
        child.join()
        print(json.dumps({"size": size, **row}))
        for key in ("speedup", "events", "messages", "virtual_s", "wall_s", "control_share",
                    "engine_share", "peak_rss_mb", "nodes"):  # fmt: skip
            figures[f"{key}_{size}"] = row[key]
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
