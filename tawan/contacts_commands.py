"""What `tawan contacts` runs (imported only when a contacts command runs).

`tawan contacts route` exits 0 with a route, NO_ROUTE with `"route": null`, 2 (the CLI's
usage error) with one line on stderr when the plan or an option is wrong, and 3 (the CLI's
INTERNAL_ERROR) with a traceback when tawan itself fails, so that 1 always means "no route".
"""

from __future__ import annotations

import argparse
import json
import math

from tawan.cli import UserError
from tawan.contact_files import load_plan
from tawan.core.contacts import ContactPlan, ContactPlanError, Route, routes

NO_ROUTE = 1
MAX_SIZE_BYTES = 2**53
"""The largest --size: transmission times are counted in floats, which hold every integer
up to it exactly (and overflow on a 309-digit one)."""


def run_route(args: argparse.Namespace) -> int:
    _check_options(args)
    plan = _load(args)
    found = routes(plan, args.source, args.dest, args.at, args.size, k=args.alternatives)
    answer: dict[str, object] = {
        "from": args.source,
        "to": args.dest,
        "at": args.at,
        "size_bytes": args.size,
        "route": route_json(found[0]) if found else None,
    }
    if args.alternatives > 1:
        answer["alternatives"] = [route_json(r) for r in found[1:]]
    print(json.dumps(answer, indent=2, allow_nan=False))  # NaN is not JSON: never print it
    return 0 if found else NO_ROUTE


def _check_options(args: argparse.Namespace) -> None:
    if not 0 <= args.size <= MAX_SIZE_BYTES:
        raise UserError(f"--size: expected 0 to {MAX_SIZE_BYTES} bytes, found {args.size}")
    if args.alternatives < 1:
        raise UserError(f"--alternatives: expected 1 or more, found {args.alternatives}")
    for option, value in (("--at", args.at), ("--epoch", args.epoch)):
        if not math.isfinite(value):
            raise UserError(f"{option}: expected a finite number of seconds, found {value}")
    rate = args.unlimited_rate
    if rate is not None and not 0 < rate < math.inf:
        raise UserError(f"--unlimited-rate: expected a finite rate above 0, found {rate}")


def _load(args: argparse.Namespace) -> ContactPlan:
    try:
        return load_plan(
            args.plan,
            epoch=args.epoch,
            unlimited_rate_bps=args.unlimited_rate,
            skip_empty_windows=args.skip_empty_windows,
        )
    except ContactPlanError as exc:
        raise UserError(str(exc)) from None


def route_json(chosen: Route) -> dict[str, object]:
    return {
        "arrival_s": chosen.arrival_s,
        "confidence": chosen.confidence,
        "hops": [
            {
                "sender": hop.contact.sender,
                "receiver": hop.contact.receiver,
                "depart_s": hop.depart_s,
                "arrive_s": hop.arrive_s,
                "contact": {
                    "start": hop.contact.start,
                    "end": hop.contact.end,
                    "rate_bps": hop.contact.rate_bps,
                    "owlt_s": hop.contact.owlt_s,
                    "bearer": hop.contact.bearer,
                },
            }
            for hop in chosen.hops
        ],
    }
