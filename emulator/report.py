"""The results of one run as one self-contained HTML page, and as a terminal table.

The page carries everything inline (CSS, figures as base64 PNG), so it can be mailed or
opened offline, and fetches nothing. Every name from the scenario goes through
html.escape: a node may be called anything. The same results give the same bytes.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from emulator import plots
from emulator.stats import PRECEDENCES, QUANTILES

TOP_NODES = 15
TOP_LINKS = 20
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e5e5e5; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
img { max-width: 100%; }
p.note { color: #666; font-size: 0.9em; }
"""


def write_report(results: Mapping[str, Any], out: Path, topology_png: bytes | None = None) -> Path:
    """Write out/report.html from a results.json dict; returns its path."""
    if topology_png is not None and not topology_png.startswith(_PNG_MAGIC):
        raise ValueError(
            f"topology_png: expected PNG bytes, found bytes starting {topology_png[:8]!r}"
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    path.write_text(render(results, topology_png), encoding="utf-8")
    return path


def render(results: Mapping[str, Any], topology_png: bytes | None = None) -> str:
    """The report page as a string."""
    title = f"tawan emulation: {results.get('scenario', '?')} (seed {results.get('seed', '?')})"
    duration = results.get("duration_s", 0.0)
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>Run of {_e(_seconds(duration))}; results per (message, destination) copy, "
        f"in windows of {_e(_seconds(results.get('window_s')))}.</p>",
        "<h2>Delivery per precedence</h2>",
        _summary_html(results),
        "<p class=note>The oracle knows the whole link timeline and sends each message "
        "alone: its figures bound what any stack could do on this run.</p>",
        "<h2>Over time</h2>",
        _img(plots.over_time(results), "delivery ratio and p50 latency per window"),
        "<p class=note>Dotted: the oracle. Grey bands: faults in force.</p>",
        "<h2>Latency distribution</h2>",
        _img(plots.latency_cdfs(results), "latency CDF per precedence, stack and oracle"),
        "<h2>Bearers</h2>",
        *_bearers_html(results),
        "<h2>Stores</h2>",
        *_stores_html(results),
        "<h2>Links</h2>",
        _links_html(results),
        "<h2>Faults</h2>",
        _faults_html(results),
    ]
    if topology_png is not None:
        parts += ["<h2>Topology</h2>", _img(topology_png, "the scenario's topology")]
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n"
        "</body>\n</html>\n"
    )


def summary_table(results: Mapping[str, Any]) -> Table:
    """The per-precedence summary for a terminal: stack beside oracle."""
    table = Table(title=f"{results.get('scenario', '?')} (seed {results.get('seed', '?')})")
    for header in _SUMMARY_HEADERS:
        table.add_column(header, justify="left" if header == "precedence" else "right")
    for row in _summary_rows(results):
        table.add_row(*row)
    return table


def print_summary(results: Mapping[str, Any], console: Console) -> None:
    console.print(summary_table(results))


_SUMMARY_HEADERS = (
    "precedence",
    "offered",
    "delivered",
    "ratio",
    "oracle",
    *(f"{label} {side}" for label, _ in QUANTILES for side in ("s", "oracle s")),
)


def _summary_rows(results: Mapping[str, Any]) -> list[tuple[str, ...]]:
    rows = []
    for p in PRECEDENCES:
        line = results.get("precedence", {}).get(p)
        if not line or not line.get("offered"):
            continue
        oracle = line.get("oracle") or {}
        stack_latency = line.get("latency_s") or {}
        oracle_latency = oracle.get("latency_s") or {}
        rows.append(
            (
                p,
                str(line.get("offered", 0)),
                str(line.get("delivered", 0)),
                _share(line.get("delivery_ratio")),
                _share(oracle.get("delivery_ratio")),
                *(
                    _number(figures.get(label))
                    for label, _ in QUANTILES
                    for figures in (stack_latency, oracle_latency)
                ),
            )
        )
    return rows


def _summary_html(results: Mapping[str, Any]) -> str:
    rows = _summary_rows(results)
    if not rows:
        return "<p>No messages were offered.</p>"
    return _table(_SUMMARY_HEADERS, rows)


def _bearers_html(results: Mapping[str, Any]) -> list[str]:
    bearers = results.get("bearers", {})
    if not bearers:
        return ["<p>No bearer figures.</p>"]
    headers = (
        "bearer",
        "frames",
        "bytes",
        "control bytes",
        "message bytes",
        "control share",
        "utilisation",
        "dropped frames",
    )
    rows = [
        (
            name,
            str(b.get("frames", 0)),
            str(b.get("bytes", 0)),
            str(b.get("control_bytes", 0)),
            str(b.get("message_bytes", 0)),
            _share(b.get("control_share")),
            _share(b.get("utilisation")),
            str(b.get("dropped_frames", 0)),
        )
        for name, b in sorted(bearers.items())
    ]
    return [
        _table(headers, rows),
        _img(plots.bearers(results), "bearer utilisation and control share"),
    ]


def _stores_html(results: Mapping[str, Any]) -> list[str]:
    nodes = results.get("nodes", {})
    if not nodes:
        return ["<p>No node figures.</p>"]
    top = sorted(nodes.items(), key=lambda kv: (-kv[1].get("store_peak_messages", 0), kv[0]))
    top = top[:TOP_NODES]
    headers = ("node", "store peak (messages)", "store at end", "delivered to it")
    rows = [
        (
            name,
            str(n.get("store_peak_messages", 0)),
            str(n.get("store_end_messages", 0)),
            str(n.get("delivered", 0)),
        )
        for name, n in top
    ]
    note = f"<p class=note>The {len(top)} of {len(nodes)} nodes that held the most.</p>"
    return [_table(headers, rows), _img(plots.store_occupancy(top), "store occupancy"), note]


def _links_html(results: Mapping[str, Any]) -> str:
    links = results.get("links", {})
    if not links:
        return "<p>No link figures.</p>"
    worst = sorted(
        links.items(), key=lambda kv: (-kv[1].get("failures", 0), -kv[1].get("down_s", 0.0), kv[0])
    )
    rows = [
        (
            name,
            str(link.get("bearer", "")),
            str(link.get("failures", 0)),
            _number(link.get("down_s")),
            _median(link.get("detection_s")),
            _median(link.get("failover_s")),
        )
        for name, link in worst[:TOP_LINKS]
    ]
    note = (
        f"<p class=note>The {len(rows)} of {len(links)} links that failed most. Detection: "
        "from a failure until an engine declared the neighbour lost; failover: from the "
        "first message the failure took until messages between its ends took another link "
        "(the longest such wait); medians over failures that had one."
        "</p>"
    )
    headers = ("link", "bearer", "failures", "down (s)", "detection (s)", "failover (s)")
    return _table(headers, rows) + note


def _median(values: list[float | None] | None) -> str:
    known = sorted(v for v in values or () if v is not None)
    return _number(known[(len(known) - 1) // 2]) if known else "-"


def _faults_html(results: Mapping[str, Any]) -> str:
    faults = results.get("faults", [])
    if not faults:
        return "<p>No faults in this scenario.</p>"
    rows = [
        (
            str(f.get("kind", "")),
            str(f.get("target", "")),
            _number(f.get("start")),
            "to the end" if f.get("end") is None else _number(f.get("end")),
        )
        for f in faults
    ]
    return _table(("fault", "target", "start (s)", "end (s)"), rows)


def _table(headers: Iterable[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}\n</table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


_e: Callable[[str], str] = html.escape


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:g} s"
