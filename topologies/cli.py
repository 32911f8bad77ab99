"""`tawan topo ...`: make scenario files and see how robust their network is.

Only the parsers live here: every `tawan` command line builds them, a daemon's too, so the
work (pydantic, networkx, matplotlib) is in `topologies.commands`, loaded when a topo
command runs (`tawan.cli` resolves a `run` given as "module:function")."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from topologies.bearers import BEARERS

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

KINDS = ("brigade", "battalion", "mesh", "graphml")
DEFAULT_DURATION_S = 3600.0  # topologies.generate.DEFAULT_DURATION_S, without importing it
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
        default=DEFAULT_DURATION_S,
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
    gen.set_defaults(run="topologies.commands:run_generate")  # fmt: skip

    ana = commands.add_parser("analyze", help="components, weak points and path depth")
    ana.add_argument("scenario", metavar="SCENARIO", help="a scenario TOML file")
    ana.add_argument(
        "--picture",
        default=None,
        metavar="FILE",
        help="also draw the network to FILE (.png or .svg)",
    )
    ana.add_argument("--json", action="store_true", help="print JSON instead of tables")
    ana.set_defaults(run="topologies.commands:run_analyze")  # fmt: skip
