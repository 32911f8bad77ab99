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


def results(em: Emulation, tl: Mapping[str, Any]) -> dict[str, Any]:
    """results.json: per precedence, bearer, node, link and window; the oracle beside."""
    arrivals = earliest_arrivals(tl)
    held = _held_anywhere(em)
    end = em.duration
    per: dict[str, dict[str, Any]] = {}
    latencies: dict[str, list[float]] = {p: [] for p in PRECEDENCES}
    oracle_latencies: dict[str, list[float]] = {p: [] for p in PRECEDENCES}
    counts: dict[str, Counter[str]] = {p: Counter() for p in PRECEDENCES}
    window = em.options.window_s
    windows = int(-(-end // window))
    win_offered = [Counter[str]() for _ in range(windows)]
    win_delivered = [Counter[str]() for _ in range(windows)]
    win_oracle = [Counter[str]() for _ in range(windows)]
    win_latency: list[dict[str, list[float]]] = [{} for _ in range(windows)]
    for record in em.record.offers.values():
        prec = record.precedence.name
        if prec not in counts:
            prec = "FLASH"  # OVERRIDE counts with FLASH
        mid = message_id(record)
        for dst in record.destinations:
            tally = counts[prec]
            tally["offered"] += 1
            arrived = record.delivered.get(dst)
            offered_in = _win(record.time, window, windows)
            win_offered[offered_in][prec] += 1
            if arrived is not None:
                tally["delivered"] += 1
                lat = arrived - record.time
                latencies[prec].append(lat)
                # by the window it was offered in, so delivered/offered is a share
                win_delivered[offered_in][prec] += 1
                win_latency[offered_in].setdefault(prec, []).append(lat)
            elif record.time + record.ttl_s <= end:
                tally["expired"] += 1
            elif record.mid in held:
                tally["pending"] += 1
            else:
                tally["lost"] += 1
            best = arrivals.get((mid, dst))
            if best is not None:
                tally["deliverable"] += 1
                oracle_latencies[prec].append(best - record.time)
                win_oracle[offered_in][prec] += 1
    win_store = [0] * windows  # messages held by all live nodes at the window's start
    for t, sample in em.record.store_samples:
        win_store[_win(t, window, windows)] = sum(sample.values())
    win_bytes: list[dict[str, int]] = [{} for _ in range(windows)]
    for (w, bearer), n in sorted(em.record.window_bytes.items()):
        win_bytes[min(w, windows - 1)][bearer] = win_bytes[min(w, windows - 1)].get(bearer, 0) + n
    for prec in PRECEDENCES:
        tally = counts[prec]
        latencies[prec].sort()
        oracle_latencies[prec].sort()
        per[prec] = {
            "offered": tally["offered"],
            "delivered": tally["delivered"],
            "expired": tally["expired"],
            "lost": tally["lost"],
            "pending": tally["pending"],
            "delivery_ratio": _ratio(tally["delivered"], tally["offered"]),
            "latency_s": _latency(latencies[prec]),
            "oracle": {
                "deliverable": tally["deliverable"],
                "delivery_ratio": _ratio(tally["deliverable"], tally["offered"]),
                "latency_s": _latency(oracle_latencies[prec]),
            },
        }
    return {
        "format": RESULTS_FORMAT,
        "scenario": em.scenario.run.name,
        "seed": em.seed,
        "duration_s": end,
        "window_s": window,
        "precedence": per,
        "latencies": {p: [_round(x) for x in v] for p, v in latencies.items()},
        "oracle_latencies": {p: [_round(x) for x in v] for p, v in oracle_latencies.items()},
        "refused_at_source": len(em.record.refusals),
        "duplicate_deliveries": em.record.duplicates,
        "stack_drops": {
            f"{why}/{prec.name}": n for (why, prec), n in sorted(em.record.stack_drops.items())
        },
        "bearers": _bearers(em, tl),
        "nodes": _nodes(em),
        "links": _links(em, tl),
        "faults": [
            {"kind": f.kind, "target": f.target, "start": f.start, "end": f.end}
            for f in em.plan.intervals()
        ],
        "windows": [
            {
                "start": _round(i * window),
                "end": _round(min((i + 1) * window, end)),
                "offered": dict(win_offered[i]),
                "delivered": dict(win_delivered[i]),
                "latency_p50": {
                    p: _round(percentile(sorted(v), 50)) for p, v in win_latency[i].items()
                },
                "oracle_deliverable": dict(win_oracle[i]),
                "bytes": win_bytes[i],
                "store_messages": win_store[i],
            }
            for i in range(windows)
        ],
    }


def _win(t: float, window: float, windows: int) -> int:
    return min(int(t // window), windows - 1)


def _bearers(em: Emulation, tl: Mapping[str, Any]) -> dict[str, Any]:
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
