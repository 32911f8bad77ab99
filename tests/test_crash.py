"""Thirty SIGKILLs of origin, relay and destination under traffic of every precedence
(bench/crash.py): nothing the API accepted is lost, nothing reaches the application twice,
and every send left in doubt by a kill is settled by a retry under its reference."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow


def crash_bench() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "bench" / "crash.py"
    spec = importlib.util.spec_from_file_location("bench_crash", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_crash"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_thirty_kills_lose_nothing_accepted_and_deliver_nothing_twice() -> None:
    result = crash_bench().run(30, seed=3, gap=(0.3, 1.0), drain=60.0)
    assert result["kills"] == 30
    assert isinstance(result["accepted"], int) and result["accepted"] > 300
    assert result["lost"] == 0
    assert result["duplicated"] == 0  # a retry under its ref included
    assert result["unresolved"] == 0 and result["resolved"] == result["in_doubt"]
    assert isinstance(result["seconds"], float) and result["seconds"] < 110
