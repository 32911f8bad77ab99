"""The realised timeline of a run: every link direction's conditions and every node's down
spans, as JSON-ready data, and `write_timeline` to put them in timeline.json.

The format is in docs/timeline.md: enough to recompute the oracle bound without the
emulator. The numbers come from the same place the link models take theirs (the bearer
with its overrides, the fault plan's link states), so the file says what the links did.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from emulator.faults import FaultPlan
from emulator.links import LinkModel, LinkState

FORMAT = "tawan-timeline/1"

Values = tuple[bool, float, float, float]
"""(up, rate_bps, delay_s, loss) of one stretch of a direction."""


def link_timeline(
    links: Mapping[str, LinkModel], plan: FaultPlan, duration_s: float
) -> list[dict[str, Any]]:
    """The "links" part: per link (by name), per direction that hears, contiguous intervals
    covering [0, duration_s]."""
    duration_s = float(duration_s)
    out = []
    for name in sorted(links):
        model = links[name]
        states = plan.link_states(name)
        segments = _segments(states, _handover_gaps(model, duration_s), duration_s)
        directions = [
            {"from": s, "to": r, "intervals": _intervals(model, states, segments, s, r)}
            for s in model.members
            for r in model.heard_by(s)
        ]
        out.append(
            {
                "name": name,
                "bearer": model.bearer.name,
                "shared": model.shared,
                "members": list(model.members),
                "directions": directions,
            }
        )
    return out


def node_timeline(
    nodes: Iterable[str], plan: FaultPlan, duration_s: float
) -> list[dict[str, Any]]:
    """The "nodes" part: per node (by name), the spans it was destroyed or crashed."""
    duration_s = float(duration_s)
    spans: dict[str, list[tuple[float, float]]] = {name: [] for name in nodes}
    crashed: dict[str, float] = {}
    for event in plan.node_events:
        if event.kind == "destroy":
            spans[event.node].append((event.time, duration_s))
        elif event.kind == "crash":
            crashed[event.node] = event.time
        else:
            spans[event.node].append((crashed.pop(event.node), event.time))
    return [
        {"name": name, "down": [[s, e] for s, e in _merge_spans(spans[name], duration_s)]}
        for name in sorted(spans)
    ]


def write_timeline(
    path: str | os.PathLike[str],
    links_part: list[dict[str, Any]],
    nodes_part: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    meta: Mapping[str, Any],
) -> None:
    """Write timeline.json: `meta` gives "scenario", "seed" and "duration_s". Keys sorted,
    no whitespace, so the same run gives the same bytes."""
    missing = {"scenario", "seed", "duration_s"} - set(meta)
    if missing:
        raise ValueError(f"write_timeline: meta lacks {sorted(missing)}, found {sorted(meta)}")
    document = {
        **meta,
        "format": FORMAT,
        "nodes": nodes_part,
        "links": links_part,
        "messages": messages,
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(text + "\n")


# ---------------------------------------------------------------------- the intervals
def values_of(model: LinkModel, state: LinkState, sender: str, receiver: str) -> Values:
    """One direction's (up, rate, minimum delay, mean loss) under `state`."""
    b = model.bearer
    cond = state.of(sender, receiver)
    up = (
        cond.up
        and sender not in state.down_nodes
        and receiver not in state.down_nodes
        and sender not in state.silenced
    )
    bursts = b.bursts.mean_loss if b.bursts else 0.0
    loss = 1 - (1 - b.loss) * (1 - bursts) * (1 - cond.loss)
    return up, b.rate_bps * cond.rate_factor, b.delay_s + cond.extra_delay_s, loss


def _handover_gaps(model: LinkModel, duration_s: float) -> list[tuple[float, float]]:
    """LEO handover gaps [kP, kP + gap), k >= 1, that start before the end of the run."""
    period, gap = model.bearer.handover_period_s, model.bearer.handover_gap_s
    if period <= 0 or gap <= 0:
        return []
    count = int(duration_s // period)
    return [(k * period, min(k * period + gap, duration_s)) for k in range(1, count + 1)
            if k * period < duration_s]  # fmt: skip


Segment = tuple[float, float, int, bool]
"""(start, end, index of the link state in force, in a handover gap)."""


def _segments(
    states: list[tuple[float, LinkState]], gaps: list[tuple[float, float]], duration_s: float
) -> list[Segment]:
    """The stretches of one link between any two changes (of its state or a gap)."""
    points = sorted(
        {0.0, duration_s}
        | {t for t, _ in states if t < duration_s}
        | {t for gap in gaps for t in gap if t < duration_s}
    )
    out = []
    si = gi = 0
    for start, end in itertools.pairwise(points):
        while si + 1 < len(states) and states[si + 1][0] <= start:
            si += 1
        while gi < len(gaps) and gaps[gi][1] <= start:
            gi += 1
        out.append((start, end, si, gi < len(gaps) and gaps[gi][0] <= start))
    return out


def _intervals(
    model: LinkModel,
    states: list[tuple[float, LinkState]],
    segments: list[Segment],
    sender: str,
    receiver: str,
) -> list[dict[str, Any]]:
    values = [values_of(model, state, sender, receiver) for _, state in states]
    out: list[dict[str, Any]] = []
    last: Values | None = None
    for start, end, index, gap in segments:
        up, rate, delay, loss = values[index]
        now = (up and not gap, rate, delay, loss)
        if now == last:
            out[-1]["end"] = end
            continue
        last = now
        out.append(
            {
                "start": start,
                "end": end,
                "up": now[0],
                "rate_bps": rate,
                "delay_s": delay,
                "loss": loss,
            }
        )
    return out


def _merge_spans(spans: list[tuple[float, float]], duration_s: float) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for first, last in sorted(spans):
        s, e = min(first, duration_s), min(last, duration_s)
        if e <= s:
            continue
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged
