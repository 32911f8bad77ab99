"""`tawan topo ...`: make scenario files and see how robust their network is."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tawan.cli import UserError
from topologies import generate
from topologies.analyze import analysis_json, analyze, draw, render_analysis
from topologies.bearers import BEARERS
from topologies.load import ScenarioError, dump_scenario, load_scenario
from topologies.scenario import Scenario

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

KINDS = ("brigade", "battalion", "mesh", "graphml")
MESH_NODES = 20


def add_topo_commands(subparsers: Subparsers) -> None:
    topo = subparsers.add_parser(
        "topo", help="generate scenario networks and analyse them", description=__doc__
    )
    commands = topo.add_subparsers(dest="topo_command", metavar="ACTION", required=True)

    gen = commands.add_parser("generate", help="write a generated scenario as TOML")
    gen.add_argument("kind", choices=KINDS, help="what to generate")
    gen.add_argument("--seed", type=int, default=1, metavar="N", help="random seed (default 1)")
    gen.add_argument(
        "--nodes",
        type=int,
        default=None,
        metavar="N",
        help="about this many nodes (brigade, battalion); exactly (mesh, default 20)",
    )
    gen.add_argument(
        "--from", dest="source", default=None, metavar="FILE", help="the GraphML file (graphml)"
    )
    gen.add_argument("--no-traffic", action="store_true", help="leave out the standard traffic")
    gen.add_argument(
        "--duration",
        type=float,
        default=generate.DEFAULT_DURATION_S,
        metavar="S",
        help="run length in seconds (default 3600)",
    )
    gen.add_argument(
        "--battalions", type=int, default=None, metavar="N", help="brigade: battalions"
    )
    gen.add_argument(
        "--companies",
        type=int,
        default=None,
        metavar="N",
        help="brigade, battalion: companies per battalion",
    )
    gen.add_argument(
        "--platoons",
        type=int,
        default=None,
        metavar="N",
        help="brigade, battalion: platoons per company",
    )
    gen.add_argument(
        "--area-km",
        type=float,
        default=None,
        metavar="KM",
        help="mesh: side of the square (default from the node count and range)",
    )
    gen.add_argument(
        "--bearer", default="uhf", choices=sorted(BEARERS), help="mesh: the bearer (default uhf)"
    )
    gen.add_argument("--out", default=None, metavar="FILE", help="write here, not to stdout")
    gen.set_defaults(run=run_generate)  # fmt: skip

    ana = commands.add_parser("analyze", help="components, weak points and path depth")
    ana.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    ana.add_argument(
        "--picture",
        default=None,
        metavar="FILE",
        help="also draw the network to FILE (.png or .svg)",
    )
    ana.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ana.set_defaults(run=run_analyze)  # fmt: skip


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
            # A battalion is a one-battalion brigade without the brigade HQ.
            _, companies, platoons = generate.brigade_shape(args.nodes + 1, 1, companies, platoons)
        return generate.battalion(args.seed, companies or 4, platoons or 3, **common)
    if args.kind == "mesh":
        nodes = args.nodes or MESH_NODES
        reach = BEARERS[args.bearer].range_km or 10.0
        area = args.area_km or round(reach * math.sqrt(nodes) / 2.5, 1)
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
