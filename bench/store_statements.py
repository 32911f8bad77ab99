"""How many SQL statements a generated brigade's stores execute, and for what.

Runs `topologies.generate.brigade` (49 nodes by default) for `--seconds` virtual seconds in
the emulator, with a trace callback on every store's connection. Each statement is counted
under the public store method it ran for (the first caller outside the store's private
helpers), and separately for the statements run inside the engine's housekeeping passes:
per pass, and over the passes that pruned and expired nothing (idle passes).

The last line printed is one JSON object: statements, housekeeping_passes,
housekeeping_statements, statements_per_housekeeping, idle_passes,
statements_per_idle_housekeeping, and by_method (statements per store method).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from emulator.run import Emulation
from tawan.core.engine import Engine
from topologies.generate import brigade

STORE_FILES = "tawan/core/store"
NOT_METHODS = {"execute", "executemany", "<listcomp>", "<genexpr>"}


def caller(frame: FrameType | None) -> str:
    """The public store method a statement runs for (or the first frame outside the store)."""
    while frame is not None:
        code = frame.f_code
        path = Path(code.co_filename).as_posix()
        if STORE_FILES in path:
            if not code.co_name.startswith("_") and code.co_name not in NOT_METHODS:
                return code.co_name
        elif "sqlite3" not in path:
            return f"({code.co_name})"
        frame = frame.f_back
    return "?"


class Counts:
    def __init__(self) -> None:
        self.by_method: Counter[str] = Counter()
        self.total = 0
        self.passes = 0
        self.in_housekeeping = 0
        self.idle_passes = 0
        self.idle_statements = 0

    def trace(self, _statement: str) -> None:
        self.total += 1
        self.by_method[caller(sys._getframe(1))] += 1


def run(nodes: int, seconds: float, seed: int) -> dict[str, Any]:
    counts = Counts()
    housekeeping = Engine._housekeeping

    def counted(engine: Engine, now: float) -> None:
        store = engine.store
        before, count, rollbacks = counts.total, store.message_count(), store.rollbacks
        dirty = store.dirty
        housekeeping(engine, now)
        spent = counts.total - before
        counts.passes += 1
        counts.in_housekeeping += spent
        wrote = store.dirty and not dirty  # a pass that pruned or expired opened a transaction
        if not wrote and store.message_count() == count and store.rollbacks == rollbacks:
            counts.idle_passes += 1
            counts.idle_statements += spent

    Engine._housekeeping = counted  # type: ignore[method-assign,assignment]
    try:
        scenario = brigade(seed, nodes=nodes)
        scenario = scenario.model_copy(
            update={"run": scenario.run.model_copy(update={"duration_s": seconds})}
        )
        em = Emulation(scenario)
        for store in em.stores.values():
            store._conn.set_trace_callback(counts.trace)
        em.step_until(seconds)
    finally:
        Engine._housekeeping = housekeeping  # type: ignore[method-assign]
    return {
        "statements": counts.total,
        "housekeeping_passes": counts.passes,
        "housekeeping_statements": counts.in_housekeeping,
        "statements_per_housekeeping": round(counts.in_housekeeping / max(1, counts.passes), 2),
        "idle_passes": counts.idle_passes,
        "statements_per_idle_housekeeping": round(
            counts.idle_statements / max(1, counts.idle_passes), 2
        ),
        "by_method": dict(counts.by_method.most_common()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=49)
    parser.add_argument("--seconds", type=float, default=1800.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    figures = run(args.nodes, args.seconds, args.seed)
    for method, n in figures["by_method"].items():
        print(f"  {n:8d}  {method}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
