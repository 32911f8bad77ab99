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
from tawan.core.frames import MessageId
from tawan.core.pace import PacePolicy
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
        "pace": pace_entry(em.engine_config.pace),
    }


def pace_entry(pace: PacePolicy) -> dict[str, Any]:
    """The PACE policy as timeline.json gives it, for the oracle to apply as the nodes did."""
    return {
        "bearers": {p.name: sorted(names) for p, names in sorted(pace.bearers.items())},
        "largest": dict(sorted(pace.largest.items())),
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
    """The wire ids of messages some node not destroyed still holds at the end."""
    held: set[MessageId] = set()
    for name, store in em.stores.items():
        if name in em.destroyed:
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
        self.fates: list[dict[str, Counter[str]]] = [{} for _ in range(windows)]

    def add(self, prec: str, window: int, fate: str, latency: float | None,
            bound: float | None) -> None:  # fmt: skip
        tally = self.counts[prec]
        tally["offered"] += 1
        tally[fate] += 1
        self.offered[window][prec] += 1
        if fate != "delivered":
            self.fates[window].setdefault(fate, Counter())[prec] += 1
        if latency is not None:
            self.latencies[prec].append(latency)
            self.delivered[window][prec] += 1
            self.window_latencies[window].setdefault(prec, []).append(latency)
        if bound is not None:
            tally["deliverable"] += 1
            self.oracle_latencies[prec].append(bound)
            self.deliverable[window][prec] += 1

    def by_precedence(self, em: Emulation) -> dict[str, dict[str, Any]]:
        refused = Counter(offer.precedence.name for _, offer, _ in em.record.refusals)
        source_down = {p.name: n for p, n in em.record.source_down.items()}
        out = {}
        for prec in PRECEDENCES:
            tally = self.counts[prec]
            self.latencies[prec].sort()
            self.oracle_latencies[prec].sort()
            out[prec] = {
                **{k: tally[k] for k in ("offered", "delivered", "expired", "lost", "pending")},
                "delivery_ratio": _ratio(tally["delivered"], tally["offered"]),
                "latency_s": _latency(self.latencies[prec]),
                "refused_at_source": refused[prec],
                "not_offered_source_down": source_down.get(prec, 0),
                "oracle": {
                    "deliverable": tally["deliverable"],
                    "delivery_ratio": _ratio(tally["deliverable"], tally["offered"]),
                    "latency_s": _latency(self.oracle_latencies[prec]),
                },
            }
        return out


def _fate(em: Emulation, record: OfferRecord, delivered: bool, held: set[MessageId]) -> str:
    """Delivered; else lost if a node evicted it or refused it custody; pending if a node
    (running, or crashed and to come back) still holds it; expired if a node expired it
    (its ttl ran out); else lost (it went down with a node, or vanished)."""
    if delivered:
        return "delivered"
    if record.mid in em.record.dropped_mids:
        return "lost"
    if record.mid in held:
        return "pending"
    return "expired" if record.mid in em.record.expired_mids else "lost"


def _count_copies(em: Emulation, tl: Mapping[str, Any], windows: int) -> _Copies:
    """Each copy's fate at the end (`_fate`) and the oracle's bound."""
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
            fate = _fate(em, record, arrived is not None, held)
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
        "precedence": copies.by_precedence(em),
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
    fullest: list[list[Any]] = [[None, 0] for _ in range(windows)]
    for t, sample in em.record.store_samples:
        w = _win(t, window, windows)
        store[w] = sum(sample.values())
        if sample:
            node = max(sorted(sample), key=sample.__getitem__)
            fullest[w] = [node, sample[node]]
    sent: list[Counter[str]] = [Counter() for _ in range(windows)]
    for (w, bearer), n in sorted(em.record.window_bytes.items()):
        sent[min(w, windows - 1)][bearer] += n
    control: list[Counter[str]] = [Counter() for _ in range(windows)]
    for (w, bearer), n in sorted(em.record.window_control.items()):
        control[min(w, windows - 1)][bearer] += n
    return [
        {
            "start": _round(i * window),
            "end": _round(min((i + 1) * window, em.duration)),
            "offered": dict(copies.offered[i]),
            "delivered": dict(copies.delivered[i]),
            **{
                f"latency_p{q}": {
                    p: _round(percentile(sorted(v), q))
                    for p, v in copies.window_latencies[i].items()
                }
                for q in (50, 95)
            },
            **{fate: dict(counts) for fate, counts in sorted(copies.fates[i].items())},
            "oracle_deliverable": dict(copies.deliverable[i]),
            "bytes": dict(sent[i]),
            "control_bytes": dict(control[i]),
            "store_messages": store[i],
            "store_fullest": fullest[i],
        }
        for i in range(windows)
    ]


def _win(t: float, window: float, windows: int) -> int:
    return min(int(t // window), windows - 1)


def _load(control_bytes: int, em: Emulation, rate_bps: float) -> float:
    """Control bits per second over the run, as a share of `rate_bps` (the budget's unit)."""
    return _round(control_bytes * 8 / (em.duration * rate_bps))


def _bearers(em: Emulation) -> dict[str, Any]:
    channels: Counter[str] = Counter()
    rates = {link.bearer.name: link.bearer.rate_bps for link in em.links.values()}
    for link in em.links.values():
        # a radio net is one channel; a point-to-point link one per direction
        channels[link.bearer.name] += 1 if link.shared else 2
    out: dict[str, Any] = {}
    for name in sorted(channels):
        tally = em.record.bearers.get(name)
        if tally is None:
            out[name] = {
                "frames": 0, "bytes": 0, "control_bytes": 0, "message_bytes": 0,
                "ack_bytes": 0, "advert_bytes": 0, "control_share": None,
                "control_load": 0.0, "utilisation": 0.0, "dropped_frames": 0,
            }  # fmt: skip
            continue
        out[name] = {
            "frames": tally.frames,
            "bytes": tally.bytes,
            "control_bytes": tally.control_bytes,
            "message_bytes": tally.message_bytes,
            "ack_bytes": tally.ack_bytes,
            "advert_bytes": tally.advert_bytes,
            "control_share": _ratio(tally.control_bytes, tally.bytes),
            "control_load": _load(tally.control_bytes, em, rates[name] * channels[name]),
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


def _down_spans(entry: Mapping[str, Any]) -> list[tuple[float, float]]:
    """When some direction of a timeline link could carry nothing, merged."""
    spans = sorted(
        (interval["start"], interval["end"])
        for direction in entry["directions"]
        for interval in direction["intervals"]
        if not interval["up"] or interval["loss"] >= 1
    )
    merged: list[tuple[float, float]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _waited(moved: float, lost_since: float | None, start: float) -> float:
    """How long messages waited for a failover: from the first of their frames lost on the
    failed link since the failure began (none got through after it) to the first on another
    link. None lost there: the sender knew, and the next message took the other link at once
    (a cut carrier); a wait for that next message is not the failover's."""
    return 0.0 if lost_since is None else moved - max(start, lost_since)


def _links(em: Emulation, tl: Mapping[str, Any]) -> dict[str, Any]:
    """Per link: each realised failure (a span when some direction carried nothing), how
    long after it began the engines declared the neighbour lost (detection), and how long
    messages between its ends that it took waited until they went over another link
    (failover: the longest wait of any sender and receiver pair, `_waited`)."""
    lost_at: dict[str, list[float]] = {}
    for t, _node, link, _neighbour, up in em.record.neighbour_changes:
        if not up:
            lost_at.setdefault(link, []).append(t)
    moved_at: dict[str, list[tuple[float, tuple[str, str], float | None]]] = {}
    for t, sender, receiver, old, _new, lost_since in em.record.link_changes:
        moved_at.setdefault(old, []).append((t, (sender, receiver), lost_since))
    out = {}
    for entry in tl["links"]:
        name = entry["name"]
        spans = _down_spans(entry)
        detection, failover = [], []
        for start, end in spans:
            seen = [t - start for t in lost_at.get(name, []) if start <= t < end]
            first: dict[tuple[str, str], float] = {}  # each pair's first move in the span
            for t, pair, lost_since in moved_at.get(name, []):
                if start <= t < end and pair not in first:
                    first[pair] = _waited(t, lost_since, start)
            moved = list(first.values())
            detection.append(_round(min(seen)) if seen else None)
            failover.append(_round(max(moved)) if moved else None)
        down = sum(
            i["end"] - i["start"]
            for d in entry["directions"]
            for i in d["intervals"]
            if not i["up"] or i["loss"] >= 1
        )
        # Failures as the reroute watch saw them (point-to-point links only): how long until
        # every node that routed over the link routed around it (emulator/reroutes.py).
        watched = em.reroutes.for_link(name)
        reroute = [None if f.seconds is None else _round(f.seconds) for f in watched]
        routed_over = [f.routed_over for f in watched]
        model, tally = em.links[name], em.record.links.get(name)
        rate = model.bearer.rate_bps * (1 if model.shared else 2)
        out[name] = {
            "bearer": entry["bearer"],
            "control_bytes": tally.control_bytes if tally else 0,
            "control_load": _load(tally.control_bytes, em, rate) if tally else 0.0,
            "failures": len(spans),
            "detection_s": detection,
            "failover_s": failover,
            "reroute_s": reroute,
            "routed_over": routed_over,
            "neighbour_lost": len(lost_at.get(name, [])),
            "down_s": _round(down / max(len(entry["directions"]), 1)),
        }
    return out


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Sorted keys, no spaces to spare: the same data, the same bytes."""
    path.write_text(
        json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n"
    )
