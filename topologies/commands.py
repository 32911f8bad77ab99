"""What `tawan topo` runs (imported only when a topo command runs: the daemon's command
line must not load pydantic, networkx and matplotlib)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from tawan.cli import UserError
from topologies import generate
from topologies.analyze import analysis_json, analyze, draw, render_analysis
from topologies.bearers import BEARERS
from topologies.cli import MESH_NODES
from topologies.load import ScenarioError, dump_scenario, load_scenario
from topologies.scenario import Scenario


def run_generate(args: argparse.Namespace) -> int:
    try:
        scenario = _generated(args)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(f"topo generate {args.kind}: {exc}") from None
    text = dump_scenario(scenario)
    if args.out is None:
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"{args.out}: {scenario.run.name}, {len(scenario.nodes)} nodes, "
              f"{len(scenario.links)} links, {len(scenario.nets)} nets")  # fmt: skip
    return 0


def _generated(args: argparse.Namespace) -> Scenario:
    common = {"traffic": not args.no_traffic, "duration_s": args.duration}
    if args.kind == "brigade":
        return generate.brigade(args.seed, args.nodes, args.battalions, args.companies,
                                args.platoons, **common)  # fmt: skip
    if args.kind == "battalion":
        companies, platoons = args.companies, args.platoons
        if args.nodes is not None:
            if args.nodes < 3:
                raise ValueError(f"battalion nodes: expected at least 3, found {args.nodes}")
            # A battalion is a one-battalion brigade without the brigade HQ.
            _, companies, platoons = generate.brigade_shape(args.nodes + 1, 1, companies, platoons)
        return generate.battalion(
            args.seed,
            4 if companies is None else companies,
            3 if platoons is None else platoons,
            **common,
        )
    if args.kind == "mesh":
        nodes = MESH_NODES if args.nodes is None else args.nodes
        reach = BEARERS[args.bearer].range_km or 10.0
        default_area = round(reach * math.sqrt(max(nodes, 1)) / 2.5, 1)  # mesh() checks nodes
        area = default_area if args.area_km is None else args.area_km
        return generate.mesh(args.seed, nodes, area, args.bearer, **common)
    if args.source is None:
        raise UserError("topo generate graphml: expected --from FILE, found none")
    return generate.from_graphml(args.source, seed=args.seed, **common)


def run_analyze(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UserError(str(exc)) from None
    analysis = analyze(scenario)
    if args.picture is not None:
        try:
            draw(scenario, args.picture)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(analysis_json(analysis), indent=2))
    else:
        sys.stdout.write(render_analysis(analysis))
        if args.picture is not None:
            print(f"picture: {args.picture}")
    return 0
