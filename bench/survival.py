"""What survives each campaign: the stack beside the oracle and two baselines.

Campaigns (scenarios/, documented in docs/emulation.md "Survival campaigns"): the reference
scenario and three derived from it, the same battalion, traffic and engine timers under
other faults: `jamming` (VHF nets of three companies jammed for an hour or more, the HF
sets of two companies half the time), `cuts` (the fibre and three radio relays cut, one for
good, under an hour-long GEO outage) and `all` (both at once, and the reference's restart).

Variants, each run on the same campaigns and seeds:

- `stack`: the scenario as written, link-state routing over the whole mix of bearers;
- `single-bearer`: one bearer per node, no mix (`topologies.transforms.primary_only`):
  each node keeps only the terrestrial tactical radio network it relies on, radio relay
  between headquarters and VHF within a company; the fibre, SATCOM and HF that a mix adds
  are removed, with the faults aimed at them (the jams stay: they name bands, not links).
  Between any two nodes there is then exactly one bearer. Its oracle is the oracle of that
  smaller network;
- `flood`: the scenario as written with `[engine] routing = "flood"`: naive flooding, every
  message to every up neighbour but the one it came from, ended by each node's seen table
  (tawan.core.flooding).

Each (campaign, variant, seed) is one emulation in a worker process. Figures pool the copies
of every seed: a delivery ratio is delivered over offered copies, all seeds together; a p95
is the nearest-rank percentile (emulator.stats) of the pooled latencies. Bytes per byte
delivered: every byte every bearer carried (frames of messages and of control, resent ones
too) over the payload bytes delivered (message size times destinations reached).

Options: `--seeds N` (3: the scenario's seed and the N-1 after it), `--campaigns`
(all four), `--variants` (all three), `--duration-s S` (the scenario's 7200 s; shorter runs
scale the whole fault timeline to fit, `topologies.transforms.compressed`), `--jobs J` (2).

The last line printed is one JSON object:
  {"format": "tawan-survival/1", "seeds": [...], "duration_s": S,
   "campaigns": {CAMPAIGN: {VARIANT: {
       "precedence": {PRECEDENCE: {"offered", "delivery_ratio", "oracle_delivery_ratio",
                                   "latency_p95_s", "oracle_latency_p95_s"}},
       "reroute_s": {"failures", "rerouted", "p50", "max"},
       "failover_s": {"failures", "failed_over", "p50", "max"},
       "bytes_sent", "payload_bytes_delivered", "bytes_per_delivered_byte", "wall_s"}}}}
reroute_s: the failures of point-to-point links that some node routed over (pooled over
seeds), how many every such node got round before the link came back, and the p50 and
largest time that took (emulator/reroutes.py); a link beside which another still joins
the same two nodes is not counted there (they stay neighbours). failover_s: the failures of
every link, how many saw messages between its ends move to another link, and the p50 and
largest time until they did, counted from the first message frame the failure took (lost
on the dead link; zero where the sender knew at once, a cut carrier), not from its start:
a failure between two messages is not a wait (emulator/results.py `_waited`).
A ratio or latency of nothing (no copy offered, or none delivered) is null.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulator.results import results, timeline
from emulator.run import Emulation, Options
from emulator.stats import PRECEDENCES, percentile, ratio
from topologies.load import load_scenario
from topologies.scenario import Scenario
from topologies.transforms import compressed, primary_only, with_routing

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
CAMPAIGNS = {
    "reference": "reference.toml",
    "jamming": "campaign-jamming.toml",
    "cuts": "campaign-cuts.toml",
    "all": "campaign-all.toml",
}


def _stack(scenario: Scenario) -> Scenario:
    return scenario


def _flood(scenario: Scenario) -> Scenario:
    return with_routing(scenario, "flood")


VARIANTS: dict[str, Callable[[Scenario], Scenario]] = {
    "stack": _stack,
    "single-bearer": primary_only,
    "flood": _flood,
}


@dataclass(frozen=True, slots=True)
class Job:
    campaign: str
    variant: str
    seed: int
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class Tally:
    """One run's raw figures, to be pooled across seeds."""

    job: Job
    offered: dict[str, int]
    delivered: dict[str, int]
    deliverable: dict[str, int]
    latencies: dict[str, list[float]]
    oracle_latencies: dict[str, list[float]]
    bytes_sent: int
    payload_bytes_delivered: int
    wall_s: float
    reroutes: list[float | None]
    """Per failure of a point-to-point link that some node routed over: seconds until
    every such node routed around it (None: not before the link came back)."""
    failovers: list[float | None]
    """Per failure of any link: seconds until messages between its ends took another
    link (None: none did; nothing was sent between them, or the link came back first)."""


def scenario_for(campaign: str, variant: str, duration_s: float | None) -> Scenario:
    scenario = load_scenario(SCENARIOS / CAMPAIGNS[campaign])
    if duration_s is not None:
        scenario = compressed(scenario, duration_s)
    return VARIANTS[variant](scenario)


def run_job(job: Job) -> Tally:
    scenario = scenario_for(job.campaign, job.variant, job.duration_s)
    started = time.perf_counter()
    em = Emulation(scenario, Options(seed=job.seed))
    em.run()
    res = results(em, timeline(em))
    wall = time.perf_counter() - started
    payload = sum(r.size * len(r.delivered) for r in em.record.offers.values())
    em.close()
    by_prec = res["precedence"]
    return Tally(
        job=job,
        offered={p: by_prec[p]["offered"] for p in PRECEDENCES},
        delivered={p: by_prec[p]["delivered"] for p in PRECEDENCES},
        deliverable={p: by_prec[p]["oracle"]["deliverable"] for p in PRECEDENCES},
        latencies={p: res["latencies"][p] for p in PRECEDENCES},
        oracle_latencies={p: res["oracle_latencies"][p] for p in PRECEDENCES},
        bytes_sent=sum(b["bytes"] for b in res["bearers"].values()),
        payload_bytes_delivered=payload,
        wall_s=wall,
        reroutes=[
            took
            for link in res["links"].values()
            for took, over in zip(link["reroute_s"], link["routed_over"], strict=True)
            if over
        ],
        failovers=[took for link in res["links"].values() for took in link["failover_s"]],
    )


def _p95(values: list[float]) -> float | None:
    return round(percentile(sorted(values), 95), 3) if values else None


def _ratio(part: int, whole: int) -> float | None:
    value = ratio(part, whole)
    return None if value is None else round(value, 4)


def _times(values: list[float | None], done: str) -> dict[str, Any]:
    """How many failures, how many of them got a time (`done`), its p50 and largest."""
    took = sorted(x for x in values if x is not None)
    return {
        "failures": len(values),
        done: len(took),
        "p50": round(percentile(took, 50), 3) if took else None,
        "max": round(took[-1], 3) if took else None,
    }


def pooled(tallies: Sequence[Tally]) -> dict[str, Any]:
    """The figures of one (campaign, variant) over all its seeds."""
    precedence = {}
    for p in PRECEDENCES:
        offered = sum(t.offered[p] for t in tallies)
        precedence[p] = {
            "offered": offered,
            "delivery_ratio": _ratio(sum(t.delivered[p] for t in tallies), offered),
            "oracle_delivery_ratio": _ratio(sum(t.deliverable[p] for t in tallies), offered),
            "latency_p95_s": _p95([x for t in tallies for x in t.latencies[p]]),
            "oracle_latency_p95_s": _p95([x for t in tallies for x in t.oracle_latencies[p]]),
        }
    sent = sum(t.bytes_sent for t in tallies)
    payload = sum(t.payload_bytes_delivered for t in tallies)
    return {
        "precedence": precedence,
        "reroute_s": _times([x for t in tallies for x in t.reroutes], "rerouted"),
        "failover_s": _times([x for t in tallies for x in t.failovers], "failed_over"),
        "bytes_sent": sent,
        "payload_bytes_delivered": payload,
        "bytes_per_delivered_byte": round(sent / payload, 3) if payload else None,
        "wall_s": round(sum(t.wall_s for t in tallies), 1),
    }


def survival(
    campaigns: Sequence[str], variants: Sequence[str], seeds: Sequence[int],
    duration_s: float | None, jobs: int,
) -> dict[str, Any]:  # fmt: skip
    """Run every (campaign, variant, seed) on `jobs` processes; the pooled figures."""
    work = [Job(c, v, s, duration_s) for c in campaigns for v in variants for s in seeds]
    done: list[Tally] = []
    if jobs <= 1:
        for job in work:
            done.append(_report(run_job(job)))
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for tally in pool.imap_unordered(run_job, work):
                done.append(_report(tally))
    out: dict[str, Any] = {}
    for c in campaigns:
        out[c] = {}
        for v in variants:
            mine = sorted(
                (t for t in done if (t.job.campaign, t.job.variant) == (c, v)),
                key=lambda t: t.job.seed,
            )
            out[c][v] = pooled(mine)
    return out


def _report(tally: Tally) -> Tally:
    job = tally.job
    print(
        f"  {job.campaign:<9} {job.variant:<13} seed {job.seed}: {tally.wall_s:6.1f} s wall",
        file=sys.stderr,
        flush=True,
    )
    return tally


def print_table(figures: dict[str, Any]) -> None:
    print(f"{'campaign':<10}{'variant':<14}{'prec':<10}{'ratio':>7}{'oracle':>8}"
          f"{'p95 s':>9}{'oracle':>9}{'B/B':>9}")  # fmt: skip
    for campaign, variants in figures.items():
        for variant, fig in variants.items():
            for p, row in fig["precedence"].items():
                cells = [row[k] for k in ("delivery_ratio", "oracle_delivery_ratio",
                                           "latency_p95_s", "oracle_latency_p95_s")]  # fmt: skip
                shown = ["-" if x is None else f"{x:.3f}" if x < 10 else f"{x:.0f}" for x in cells]
                bpb = fig["bytes_per_delivered_byte"] if p == PRECEDENCES[0] else ""
                print(f"{campaign:<10}{variant:<14}{p:<10}{shown[0]:>7}{shown[1]:>8}"
                      f"{shown[2]:>9}{shown[3]:>9}{bpb!s:>9}")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds per run (default 3)")
    parser.add_argument("--campaigns", nargs="+", choices=list(CAMPAIGNS), default=list(CAMPAIGNS))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument(
        "--duration-s", type=float, default=None,
        help="run length (default the scenario's); faults scaled to fit",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1:
        parser.error("--seeds and --jobs: expected at least 1")
    if args.duration_s is not None and not args.duration_s > 0:
        parser.error(f"--duration-s: expected seconds > 0, found {args.duration_s}")
    base = load_scenario(SCENARIOS / CAMPAIGNS["reference"])
    seeds = [base.run.seed + i for i in range(args.seeds)]
    started = time.perf_counter()
    figures = survival(args.campaigns, args.variants, seeds, args.duration_s, args.jobs)
    print_table(figures)
    print(f"wall {time.perf_counter() - started:.0f} s", file=sys.stderr)
    duration = base.run.duration_s if args.duration_s is None else args.duration_s
    print(json.dumps({"format": "tawan-survival/1", "seeds": seeds, "duration_s": duration,
                      "campaigns": figures}, sort_keys=True))  # fmt: skip


if __name__ == "__main__":
    main()
