"""How fast the emulator runs generated brigades of 50, 200 and 500 nodes for an hour.

Traffic (the generators' standard traffic): every node a position report (100 B, ROUTINE)
to its headquarters every 60 s and a situation report (1 kB, PRIORITY) to its group every
10 minutes; every headquarters an IMMEDIATE order to each of its units every 5 minutes and
a FLASH to all of them every 15 minutes; one node in ten 50 kB of ROUTINE logistics an
hour. Each size runs in a child process (its own peak RSS) and stops after
`--budget` wall seconds, reporting the virtual time it reached.

The last line printed is one JSON object: speedup_N (virtual seconds per wall second),
events_N, messages_N, virtual_s_N, wall_s_N, control_share_N, engine_share_N,
peak_rss_mb_N, copies_offered_N, copies_delivered_N, and control_load_slow_N /
control_load_fast_N: the worst steady-state control load (after WARMUP_S) of any link of
9.6 kbit/s or less / of any other link, as a share of its nominal rate (the routing
budget: at most 0.01 / 0.02).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time
from collections.abc import Mapping
from typing import Any

from emulator.results import results, timeline
from emulator.run import Emulation
from topologies.generate import brigade

VIRTUAL_S = 3600.0
STEP_S = 1.0  # virtual seconds between checks of the wall budget
WARMUP_S = 600.0  # virtual seconds before the steady state is measured
SLOW_BPS = 9_600  # links of this rate or less have the tighter control budget (1 %)


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
    warm_s = min(WARMUP_S, virtual_s / 6)
    at_warm: dict[str, int] = {}
    while t < virtual_s and time.perf_counter() - started < budget_s:
        t = min(t + STEP_S, virtual_s)
        em.step_until(t)
        if not at_warm and t >= warm_s:
            at_warm = {name: tally.control_bytes for name, tally in em.record.links.items()}
    wall = time.perf_counter() - started
    loads = steady_control_loads(em, at_warm, warm_s, t)
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
        **loads,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def steady_control_loads(
    em: Emulation, at_warm: Mapping[str, int], warm_s: float, end_s: float
) -> dict[str, Any]:
    """The worst steady-state control load (hellos, adverts, setup and revocations, after
    the warm-up; acknowledgements carry custody and are not counted) as a share of the
    link's nominal rate, over links of 9.6 kbit/s or less and over the others, with the
    link that had it. A point-to-point link has that rate each way."""
    worst: dict[str, tuple[float, str]] = {"slow": (0.0, ""), "fast": (0.0, "")}
    span = end_s - warm_s
    if not at_warm or span <= 0:
        return {"control_load_slow": None, "control_load_fast": None}
    for name, model in em.links.items():
        tally = em.record.links.get(name)
        control = (tally.control_bytes if tally else 0) - at_warm.get(name, 0)
        rate = model.bearer.rate_bps * (1 if model.shared else 2)
        load = control * 8 / (span * rate)
        kind = "slow" if model.bearer.rate_bps <= SLOW_BPS else "fast"
        if load > worst[kind][0]:
            worst[kind] = (load, name)
    return {
        "control_load_slow": round(worst["slow"][0], 5),
        "control_load_slow_link": worst["slow"][1],
        "control_load_fast": round(worst["fast"][0], 5),
        "control_load_fast_link": worst["fast"][1],
        "steady_from_s": warm_s,
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
                    "engine_share", "peak_rss_mb", "nodes", "control_load_slow",
                    "control_load_fast", "copies_offered", "copies_delivered"):  # fmt: skip
            figures[f"{key}_{size}"] = row[key]
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
