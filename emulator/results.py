"""An emulation's outputs: timeline.json (what the links really were, every message offered)
and results.json (what the stack did, beside the oracle's bound), both as plain data.

Both are pure functions of the run, so the same scenario and seed give the same bytes:
keys sorted, floats rounded to the microsecond, nothing from the wall clock.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.oracle import earliest_arrivals
from emulator.record import OfferRecord
from emulator.stats import PRECEDENCES, latency_summary, percentile, ratio
from emulator.timeline import link_timeline, node_timeline
from tawan.core.store import wire_id

if TYPE_CHECKING:
    from emulator.run import Emulation

TIMELINE_FORMAT = "tawan-timeline/1"
RESULTS_FORMAT = "tawan-results/1"


def message_id(record: OfferRecord) -> str:
    src, epoch, seq = record.mid
    return f"{src}.{epoch}.{seq}"


def timeline(em: Emulation) -> dict[str, Any]:
    """timeline.json: the realised state of every link and node, every message offered."""
    messages = [
        {
            "id": message_id(r),
            "src": r.source,
            "dst": list(r.destinations),
            "size": r.size,
            "precedence": r.precedence.name,
            "time": _round(r.time),
            "ttl_s": float(r.ttl_s),
        }
        for r in em.record.offers.values()
    ]
    return {
        "format": TIMELINE_FORMAT,
        "scenario": em.scenario.run.name,
        "seed": em.seed,
        "duration_s": em.duration,
        "nodes": node_timeline([n.name for n in em.scenario.nodes], em.plan, em.duration),
        "links": link_timeline(em.links, em.plan, em.duration),
        "messages": messages,
    }


def _round(x: float) -> float:
    return round(x, 6)


def _latency(values: list[float]) -> dict[str, float] | None:
    summary = latency_summary(values)
    return None if summary is None else {k: _round(v) for k, v in summary.items()}


def _ratio(part: int, whole: int) -> float | None:
    value = ratio(part, whole)
    return None if value is None else _round(value)


def _held_anywhere(em: Emulation) -> set[tuple[int, int, int]]:
    """The wire ids of messages some live node still holds at the end."""
    held: set[tuple[int, int, int]] = set()
    for name, store in em.stores.items():
        if not em.alive[name]:
            continue
        held.update(wire_id(msg.mid) for msg, _ in store.pending())
        held.update(wire_id(msg.mid) for msg in store.messages_without_next_hop())
    return held


class _Copies:
    """Every (message, destination) copy counted once: per precedence, and per window of
    offer (so a window's delivered/offered is a share, whenever the copies arrived)."""

    def __init__(self, windows: int) -> None:
        self.counts: dict[str, Counter[str]] = {p: Counter() for p in PRECEDENCES}
        self.latencies: dict[str, list[float]] = {p: [] for p in PRECEDENCES}
        self.oracle_latencies: dict[str, list[float]] = {p: [] for p in PRECEDENCES}
        self.offered = [Counter[str]() for _ in range(windows)]
        self.delivered = [Counter[str]() for _ in range(windows)]
        self.deliverable = [Counter[str]() for _ in range(windows)]
        self.window_latencies: list[dict[str, list[float]]] = [{} for _ in range(windows)]

    def add(self, prec: str, window: int, fate: str, latency: float | None,
            bound: float | None) -> None:  # fmt: skip
        tally = self.counts[prec]
        tally["offered"] += 1
        tally[fate] += 1
        self.offered[window][prec] += 1
        if latency is not None:
            self.latencies[prec].append(latency)
            self.delivered[window][prec] += 1
            self.window_latencies[window].setdefault(prec, []).append(latency)
        if bound is not None:
            tally["deliverable"] += 1
            self.oracle_latencies[prec].append(bound)
            self.deliverable[window][prec] += 1

    def by_precedence(self) -> dict[str, dict[str, Any]]:
        out = {}
        for prec in PRECEDENCES:
            tally = self.counts[prec]
            self.latencies[prec].sort()
            self.oracle_latencies[prec].sort()
            out[prec] = {
                **{k: tally[k] for k in ("offered", "delivered", "expired", "lost", "pending")},
                "delivery_ratio": _ratio(tally["delivered"], tally["offered"]),
                "latency_s": _latency(self.latencies[prec]),
                "oracle": {
                    "deliverable": tally["deliverable"],
                    "delivery_ratio": _ratio(tally["deliverable"], tally["offered"]),
                    "latency_s": _latency(self.oracle_latencies[prec]),
                },
            }
        return out


def _count_copies(em: Emulation, tl: Mapping[str, Any], windows: int) -> _Copies:
    """Each copy's fate at the end: delivered; expired (its ttl ran out first); pending
    (some live node still holds it); lost (nobody does); and the oracle's bound."""
    arrivals = earliest_arrivals(tl)
    held = _held_anywhere(em)
    copies = _Copies(windows)
    for record in em.record.offers.values():
        prec = record.precedence.name
        if prec not in copies.counts:
            prec = "FLASH"  # OVERRIDE counts with FLASH
        mid = message_id(record)
        window = _win(record.time, em.options.window_s, windows)
        for dst in record.destinations:
            arrived = record.delivered.get(dst)
            if arrived is not None:
                fate = "delivered"
            elif record.time + record.ttl_s <= em.duration:
                fate = "expired"
            else:
                fate = "pending" if record.mid in held else "lost"
            best = arrivals.get((mid, dst))
            copies.add(
                prec, window, fate,
                None if arrived is None else arrived - record.time,
                None if best is None else best - record.time,
            )  # fmt: skip
    return copies


def results(em: Emulation, tl: Mapping[str, Any]) -> dict[str, Any]:
    """results.json: per precedence, bearer, node, link and window; the oracle beside."""
    window = em.options.window_s
    windows = int(-(-em.duration // window))
    copies = _count_copies(em, tl, windows)
    return {
        "format": RESULTS_FORMAT,
        "scenario": em.scenario.run.name,
        "seed": em.seed,
        "duration_s": em.duration,
        "window_s": window,
        "precedence": copies.by_precedence(),
        "latencies": {p: [_round(x) for x in v] for p, v in copies.latencies.items()},
        "oracle_latencies": {
            p: [_round(x) for x in v] for p, v in copies.oracle_latencies.items()
        },
        "refused_at_source": len(em.record.refusals),
        "duplicate_deliveries": em.record.duplicates,
        "stack_drops": {
            f"{why}/{prec.name}": n for (why, prec), n in sorted(em.record.stack_drops.items())
        },
        "bearers": _bearers(em),
        "nodes": _nodes(em),
        "links": _links(em, tl),
        "faults": [
            {"kind": f.kind, "target": f.target, "start": f.start, "end": f.end}
            for f in em.plan.intervals()
        ],
        "windows": _windows(em, copies, windows),
    }


def _windows(em: Emulation, copies: _Copies, windows: int) -> list[dict[str, Any]]:
    window = em.options.window_s
    store = [0] * windows  # messages held by all live nodes at the window's start
    for t, sample in em.record.store_samples:
        store[_win(t, window, windows)] = sum(sample.values())
    sent: list[Counter[str]] = [Counter() for _ in range(windows)]
    for (w, bearer), n in sorted(em.record.window_bytes.items()):
        sent[min(w, windows - 1)][bearer] += n
    return [
        {
            "start": _round(i * window),
            "end": _round(min((i + 1) * window, em.duration)),
            "offered": dict(copies.offered[i]),
            "delivered": dict(copies.delivered[i]),
            "latency_p50": {
                p: _round(percentile(sorted(v), 50)) for p, v in copies.window_latencies[i].items()
            },
            "oracle_deliverable": dict(copies.deliverable[i]),
            "bytes": dict(sent[i]),
            "store_messages": store[i],
        }
        for i in range(windows)
    ]


def _win(t: float, window: float, windows: int) -> int:
    return min(int(t // window), windows - 1)


def _bearers(em: Emulation) -> dict[str, Any]:
    channels: Counter[str] = Counter()
    for link in em.links.values():
        # a radio net is one channel; a point-to-point link one per direction
        channels[link.bearer.name] += 1 if link.shared else 2
    out: dict[str, Any] = {}
    for name in sorted(channels):
        tally = em.record.bearers.get(name)
        if tally is None:
            out[name] = {
                "frames": 0, "bytes": 0, "control_bytes": 0, "message_bytes": 0,
                "control_share": None, "utilisation": 0.0, "dropped_frames": 0,
            }  # fmt: skip
            continue
        out[name] = {
            "frames": tally.frames,
            "bytes": tally.bytes,
            "control_bytes": tally.control_bytes,
            "message_bytes": tally.message_bytes,
            "control_share": _ratio(tally.control_bytes, tally.bytes),
            "utilisation": _round(tally.air_s / (em.duration * channels[name])),
            "dropped_frames": sum(tally.dropped.values()),
            "dropped_by_reason": dict(sorted(tally.dropped.items())),
        }
    return out


def _nodes(em: Emulation) -> dict[str, Any]:
    delivered: Counter[str] = Counter()
    for record in em.record.offers.values():
        for dst in record.delivered:
            delivered[dst] += 1
    return {
        name: {
            "store_peak_messages": em.record.store_peak[name],
            "store_end_messages": em.stores[name].message_count(),
            "delivered": delivered[name],
            "down": [
                {"why": why, "start": _round(s), "end": None if e is None else _round(e)}
                for why, s, e in em.record.node_spans.get(name, [])
            ],
        }
        for name in sorted(em.stores)
    }


def _links(em: Emulation, tl: Mapping[str, Any]) -> dict[str, Any]:
    """Per link: realised time down, and each time an engine declared a neighbour on it
    lost, how long after the link really went down (failure detection, before failover)."""
    lost_at: dict[str, list[float]] = {}
    for t, _node, link, _neighbour, up in em.record.neighbour_changes:
        if not up:
            lost_at.setdefault(link, []).append(t)
    out = {}
    for entry in tl["links"]:
        name = entry["name"]
        down, went_down = 0.0, set()
        for direction in entry["directions"]:
            usable = True
            for interval in direction["intervals"]:
                if not interval["up"] or interval["loss"] >= 1:
                    down += interval["end"] - interval["start"]
                    if usable:
                        went_down.add(interval["start"])
                    usable = False
                else:
                    usable = True
        starts = sorted(went_down)
        detection = []
        for t in lost_at.get(name, []):
            before = [s for s in starts if s <= t]
            if before:
                detection.append(_round(t - before[-1]))
        out[name] = {
            "bearer": entry["bearer"],
            "failures": len(lost_at.get(name, [])),
            "neighbour_lost_at": [_round(t) for t in lost_at.get(name, [])],
            "detection_s": detection,
            "down_s": _round(down / max(len(entry["directions"]), 1)),
        }
    return out


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Sorted keys, no spaces to spare: the same data, the same bytes."""
    path.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
