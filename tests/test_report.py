"""The HTML report and the terminal summary, from results dicts made by hand."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure
from rich.console import Console

from emulator.plots import to_png
from emulator.report import print_summary, render, summary_table, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def results() -> dict[str, Any]:
    latency = {"p50": 2.0, "p95": 9.5, "p99": 12.0}
    oracle_latency = {"p50": 1.0, "p95": 3.0, "p99": 4.0}
    return {
        "format": "tawan-results/1",
        "scenario": "valley & <ridge>",
        "seed": 7,
        "duration_s": 600.0,
        "window_s": 300.0,
        "precedence": {
            "FLASH": {
                "offered": 4,
                "delivered": 3,
                "expired": 1,
                "lost": 0,
                "pending": 0,
                "delivery_ratio": 0.75,
                "latency_s": latency,
                "oracle": {"deliverable": 4, "delivery_ratio": 1.0, "latency_s": oracle_latency},
            },
            "ROUTINE": {
                "offered": 2,
                "delivered": 0,
                "expired": 0,
                "lost": 2,
                "pending": 0,
                "delivery_ratio": 0.0,
                "latency_s": None,
                "oracle": {"deliverable": 0, "delivery_ratio": 0.0, "latency_s": None},
            },
        },
        "latencies": {"FLASH": [2.0, 9.5, 12.0], "ROUTINE": []},
        "oracle_latencies": {"FLASH": [1.0, 1.0, 3.0, 4.0], "ROUTINE": []},
        "bearers": {
            "vhf": {
                "frames": 40,
                "bytes": 9000,
                "control_bytes": 1000,
                "message_bytes": 8000,
                "control_share": 0.111,
                "utilisation": 0.42,
                "dropped_frames": 3,
            },
            "satcom-geo": {
                "frames": 5,
                "bytes": 500,
                "control_bytes": 500,
                "message_bytes": 0,
                "control_share": 1.0,
                "utilisation": 0.01,
                "dropped_frames": 0,
            },
        },
        "nodes": {
            "<b>": {"store_peak_messages": 5, "store_end_messages": 1, "delivered": 3},
            "hq": {"store_peak_messages": 2, "store_end_messages": 0, "delivered": 0},
        },
        "links": {
            "<b>-hq": {"bearer": "vhf", "failures": 2, "down_s": 120.0},
            "hq-sat": {"bearer": "satcom-geo", "failures": 0, "down_s": 0.0},
        },
        "faults": [
            {"kind": "jam", "target": "vhf-net", "start": 100.0, "end": 220.0},
            {"kind": "destroy", "target": "<b>", "start": 400.0, "end": None},
        ],
        "windows": [
            {
                "start": 0.0,
                "end": 300.0,
                "offered": {"FLASH": 3, "ROUTINE": 2},
                "delivered": {"FLASH": 3, "ROUTINE": 0},
                "latency_p50": {"FLASH": 2.0, "ROUTINE": None},
                "oracle_deliverable": {"FLASH": 3, "ROUTINE": 0},
                "bytes": {"vhf": 9000},
            },
            {
                "start": 300.0,
                "end": 600.0,
                "offered": {"FLASH": 1, "ROUTINE": 0},
                "delivered": {"FLASH": 0, "ROUTINE": 0},
                "latency_p50": {"FLASH": None, "ROUTINE": None},
                "oracle_deliverable": {"FLASH": 1, "ROUTINE": 0},
                "bytes": {"vhf": 0},
            },
        ],
    }


def images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def a_png() -> bytes:
    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    return to_png(figure)


def test_writes_one_self_contained_page(tmp_path: Path) -> None:
    path = write_report(results(), tmp_path / "out", topology_png=a_png())
    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Tables: the summary with the stack beside the oracle, bearers, stores, links, faults.
    assert "<td>FLASH</td><td>4</td><td>3</td><td>75.0%</td><td>100.0%</td>" in page
    assert "<td>2</td><td>1</td><td>9.5</td><td>3</td><td>12</td><td>4</td>" in page
    for text in ("vhf", "satcom-geo", "42.0%", "jam", "to the end", "hq-sat"):
        assert f"<td>{text}</td>" in page
    # Figures: over time, CDFs, bearers, stores, and the topology given.
    pictures = images(page)
    assert len(pictures) == 5
    assert all(p.startswith(PNG_MAGIC) for p in pictures)
    assert pictures[-1] == a_png()
    # Nothing to fetch: no URL of any scheme (':' is not in base64's alphabet).
    assert "http:" not in page and "https:" not in page and "url(" not in page
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []


def test_names_are_escaped() -> None:
    page = render(results())
    assert "<b>" not in page
    assert "<td>&lt;b&gt;</td>" in page
    assert "<td>&lt;b&gt;-hq</td>" in page
    assert "valley &amp; &lt;ridge&gt;" in page


def test_same_results_same_bytes(tmp_path: Path) -> None:
    first = write_report(results(), tmp_path / "a").read_bytes()
    second = write_report(results(), tmp_path / "b").read_bytes()
    assert first == second


def test_an_empty_run_still_renders() -> None:
    bare = {
        "scenario": "nothing",
        "seed": 0,
        "duration_s": 10.0,
        "window_s": 5.0,
        "precedence": {},
    }
    page = render(bare)
    assert "No messages were offered." in page
    assert "No faults in this scenario." in page
    assert all(p.startswith(PNG_MAGIC) for p in images(page))


def test_a_topology_that_is_not_png_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected PNG"):
        write_report(results(), tmp_path, topology_png=b"GIF89a...")


def test_summary_table_renders() -> None:
    table = summary_table(results())
    assert table.row_count == 2  # precedences with nothing offered are left out
    console = Console(record=True, width=160, color_system=None)
    print_summary(results(), console)
    text = console.export_text()
    assert "FLASH" in text and "ROUTINE" in text and "PRIORITY" not in text
    assert "75.0%" in text and "100.0%" in text
    assert "p99 oracle s" in text
