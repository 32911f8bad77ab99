"""Shared figures: one percentile definition for the stack's results and the oracle's.

Both sides of every "stack vs oracle" comparison go through `percentile` and
`latency_summary`, so a difference in the report is a difference in the runs, never in
the arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PRECEDENCES: tuple[str, ...] = ("FLASH", "IMMEDIATE", "PRIORITY", "ROUTINE")
"""Highest first: the order of every table and plot."""

QUANTILES: tuple[tuple[str, float], ...] = (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with at least q% of values <= it.

    `sorted_values` must be sorted ascending and non-empty; `q` is in percent, 0..100.
    The rank is ceil(q * n / 100) (1-based), and at least 1, so q=0 gives the minimum and
    q=100 the maximum. The answer is always one of the values (no interpolation): a p99
    of 100 latencies is the 99th smallest, of 10 latencies the largest.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q: expected 0..100 (percent), found {q}")
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile: expected at least one value, found an empty sequence")
    rank = max(1, math.ceil(q * n / 100))  # q*n first: exact when both are whole
    return float(sorted_values[rank - 1])


def latency_summary(sorted_values: Sequence[float]) -> dict[str, float] | None:
    """{"p50", "p95", "p99"} of sorted latencies, or None when there are none."""
    if not sorted_values:
        return None
    return {name: percentile(sorted_values, q) for name, q in QUANTILES}


def ratio(part: int, whole: int) -> float | None:
    """part/whole, or None when nothing was offered (a ratio of nothing is not 0 or 1)."""
    return part / whole if whole else None
