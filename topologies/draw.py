"""A picture of a scenario's network: nodes at their positions, edges coloured by bearer.

Drawn on a bare matplotlib Figure (the Agg canvas, no pyplot state), so it works without
a display and from many threads' worth of reports alike.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from topologies.graph import network_graph
from topologies.scenario import Scenario

FORMATS = ("png", "svg")

COLOURS = {
    "fibre": "#333333",
    "radio-relay": "#1f77b4",
    "satcom-geo": "#9467bd",
    "satcom-leo": "#e377c2",
    "uhf": "#2ca02c",
    "vhf": "#ff7f0e",
    "hf": "#d62728",
}
"""By bearer; an unknown bearer is grey."""

_SATCOM_STYLE = (0, (4, 3))
"""Dashed: a satellite hop is not a line on the ground."""


def draw_bytes(scenario: Scenario, fmt: str) -> bytes:
    """The picture as PNG or SVG bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"picture format: expected one of {list(FORMATS)}, found {fmt!r}")
    figure = _figure(scenario)
    out = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(out, format=fmt, dpi=120, bbox_inches="tight")
    return out.getvalue()


def draw(scenario: Scenario, path: str | Path) -> None:
    """Write the picture to `path`; its suffix (.png or .svg) chooses the format."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(
            f"{path}: expected a .png or .svg file name, found suffix {path.suffix!r}"
        )
    path.write_bytes(draw_bytes(scenario, fmt))


def _figure(scenario: Scenario) -> Figure:
    graph = network_graph(scenario)
    figure = Figure(figsize=(9, 8))
    axes = figure.add_subplot()
    position = {name: graph.nodes[name]["position"] for name in graph}
    segments: dict[tuple[str, bool], list[list[tuple[float, float]]]] = {}
    for a, b, data in graph.edges(data=True):
        segments.setdefault((data["bearer"], data["shared"]), []).append(
            [position[a], position[b]]
        )
    # One collection per bearer: a 500-radio mesh has some ten thousand edges.
    for (bearer, shared), lines in sorted(segments.items()):
        axes.add_collection(
            LineCollection(
                lines,
                colors=COLOURS.get(bearer, "#999999"),
                linewidths=0.8 if shared else 1.6,
                linestyles=[_SATCOM_STYLE if bearer.startswith("satcom") else "solid"],
                alpha=0.55 if shared else 0.85,
                zorder=1,
            )
        )
    used = {bearer for bearer, _ in segments}
    small = len(graph) <= 60
    for role, marker, size in (("unit", "o", 18), ("relay", "^", 30), ("hq", "s", 60)):
        names = [n for n in graph if graph.nodes[n]["role"] == role]
        if names:
            axes.scatter(
                [position[n][0] for n in names],
                [position[n][1] for n in names],
                marker=marker,
                s=size if role != "hq" or small else size * 0.6,
                c="black" if role == "hq" else "white",
                edgecolors="black",
                linewidths=0.8,
                zorder=3,
                label={"hq": "headquarters", "unit": "unit", "relay": "relay"}[role],
            )
    if small:
        for name in graph:
            x, y = position[name]
            axes.annotate(name, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    handles = [
        Line2D([0], [0], color=COLOURS.get(b, "#999999"),
               linestyle=_SATCOM_STYLE if b.startswith("satcom") else "-", label=b)
        for b in sorted(used)
    ]  # fmt: skip
    node_handles, _ = axes.get_legend_handles_labels()
    axes.legend(handles=[*handles, *node_handles], loc="best", fontsize=7, framealpha=0.8)
    axes.set_title(f"{scenario.run.name}: {len(graph)} nodes")
    axes.set_xlabel("km")
    axes.set_ylabel("km")
    axes.set_aspect("equal", adjustable="datalim")
    axes.grid(visible=True, linewidth=0.3, alpha=0.5)
    return figure
