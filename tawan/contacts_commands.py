"""What `tawan contacts` runs (imported only when a contacts command runs)."""

from __future__ import annotations

import argparse
import json

from tawan.cli import UserError
from tawan.contact_files import load_plan
from tawan.core.contacts import ContactPlanError, Route, routes

NO_ROUTE = 1


def run_route(args: argparse.Namespace) -> int:
    if args.size < 0:
        raise UserError(f"--size: expected 0 or more bytes, found {args.size}")
    if args.alternatives < 1:
        raise UserError(f"--alternatives: expected 1 or more, found {args.alternatives}")
    try:
        plan = load_plan(
            args.plan,
            epoch=args.epoch,
            unlimited_rate_bps=args.unlimited_rate,
            skip_empty_windows=args.skip_empty_windows,
        )
    except ContactPlanError as exc:
        raise UserError(str(exc)) from None
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
    print(json.dumps(answer, indent=2))
    return 0 if found else NO_ROUTE


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
