"""The report's figures, each drawn from a results.json dict to PNG bytes.

Figures are built on matplotlib's Agg canvas directly (no pyplot: no global figure state
to leak between reports) and saved without a "Software" stamp, so the same results give
the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emulator.stats import PRECEDENCES

COLOURS = {"FLASH": "#c0392b", "IMMEDIATE": "#d68910", "PRIORITY": "#2471a3", "ROUTINE": "#555"}
_DPI = 96


def to_png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _shade_faults(axes: Any, faults: Sequence[Mapping[str, Any]], duration: float) -> None:
    for n, fault in enumerate(faults):
        end = fault.get("end")
        label = "faults" if n == 0 else None
        axes.axvspan(
            fault["start"],
            duration if end is None else end,
            color="#999",
            alpha=0.15,
            label=label,
            linewidth=0,
        )


def over_time(results: Mapping[str, Any]) -> bytes:
    """Delivered/offered per window and the oracle's deliverable/offered; p50 latency."""
    windows = results.get("windows", [])
    duration = float(results.get("duration_s", 0.0))
    figure = Figure(figsize=(9, 5.5))
    ratio_axes, latency_axes = figure.subplots(2, 1, sharex=True)
    mids = [(w["start"] + w["end"]) / 2 for w in windows]
    for p in PRECEDENCES:
        offered = [w.get("offered", {}).get(p, 0) for w in windows]
        if not any(offered):
            continue
        delivered = [w.get("delivered", {}).get(p, 0) for w in windows]
        oracle = [w.get("oracle_deliverable", {}).get(p, 0) for w in windows]
        ratio_axes.plot(
            mids,
            [d / o if o else None for d, o in zip(delivered, offered, strict=True)],
            color=COLOURS[p],
            label=p,
            marker=".",
        )
        ratio_axes.plot(
            mids,
            [d / o if o else None for d, o in zip(oracle, offered, strict=True)],
            color=COLOURS[p],
            linestyle=":",
            label=f"{p} oracle",
        )
        latency = [w.get("latency_p50", {}).get(p) for w in windows]
        latency_axes.plot(
            mids,
            [float("nan") if x is None else x for x in latency],
            color=COLOURS[p],
            label=p,
            marker=".",
        )
    for axes in (ratio_axes, latency_axes):
        _shade_faults(axes, results.get("faults", []), duration)
        axes.grid(alpha=0.3)
    ratio_axes.set_ylabel("delivered / offered")
    ratio_axes.set_ylim(-0.05, 1.05)
    if ratio_axes.get_legend_handles_labels()[0]:
        ratio_axes.legend(fontsize="x-small", ncol=4, loc="lower left")
    latency_axes.set_ylabel("p50 latency (s)")
    latency_axes.set_xlabel("time from start of run (s), by window of offer")
    figure.tight_layout()
    return to_png(figure)


def latency_cdfs(results: Mapping[str, Any]) -> bytes:
    """One panel per precedence: the stack's latency CDF beside the oracle's.

    Both curves are over offered copies, so where a curve levels off is its delivery
    ratio, and the gap between them is what the stack missed."""
    figure = Figure(figsize=(9, 6))
    panels = figure.subplots(2, 2, sharey=True).flatten()
    for axes, p in zip(panels, PRECEDENCES, strict=True):
        offered = results.get("precedence", {}).get(p, {}).get("offered", 0)
        for key, style, label in (
            ("latencies", "-", "stack"),
            ("oracle_latencies", ":", "oracle"),
        ):
            values = results.get(key, {}).get(p, [])
            if values and offered:
                heights = [0.0] + [(i + 1) / offered for i in range(len(values))]
                axes.step(
                    [values[0], *values],
                    heights,
                    where="post",
                    linestyle=style,
                    color=COLOURS[p],
                    label=label,
                )
        axes.set_title(p if offered else f"{p}: none offered", fontsize="small")
        axes.set_xscale("symlog", linthresh=1.0)
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize="x-small", loc="lower right")
    for axes in panels[2:]:
        axes.set_xlabel("latency (s)")
    for axes in panels[::2]:
        axes.set_ylabel("share of offered copies")
    figure.tight_layout()
    return to_png(figure)


def bearers(results: Mapping[str, Any]) -> bytes:
    """Per bearer: utilisation, and the share of its bytes that were control."""
    table = results.get("bearers", {})
    names = sorted(table)
    figure = Figure(figsize=(9, 3.2))
    left, right = figure.subplots(1, 2)
    left.bar(names, [table[n].get("utilisation", 0.0) for n in names], color="#2471a3")
    left.set_ylabel("utilisation")
    right.bar(names, [table[n].get("control_share") or 0.0 for n in names], color="#d68910")
    right.set_ylabel("control share of bytes")
    for axes in (left, right):
        axes.set_ylim(0, 1)
        axes.tick_params(axis="x", labelrotation=30, labelsize="small")
        axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return to_png(figure)


def store_occupancy(nodes: Sequence[tuple[str, Mapping[str, Any]]]) -> bytes:
    """Peak and end-of-run store sizes of the given nodes (already the top N)."""
    names = [name for name, _ in nodes]
    xs = range(len(names))
    figure = Figure(figsize=(9, 3.2))
    axes = figure.subplots()
    axes.bar(
        [x - 0.2 for x in xs],
        [n.get("store_peak_messages", 0) for _, n in nodes],
        0.4,
        label="peak",
        color="#2471a3",
    )
    axes.bar(
        [x + 0.2 for x in xs],
        [n.get("store_end_messages", 0) for _, n in nodes],
        0.4,
        label="at end",
        color="#999",
    )
    axes.set_xticks(list(xs), names, rotation=30, fontsize="small")
    axes.set_ylabel("messages held")
    if nodes:
        axes.legend(fontsize="x-small")
    axes.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    return to_png(figure)
