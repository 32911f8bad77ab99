"""`python -m tawan.demo`, what `make demo` runs: a mission, three daemons, every precedence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tawan import demo
from tawan.core.precedence import Precedence


@pytest.mark.slow
def test_demo_delivers_every_precedence_and_a_receipt(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "tawan.demo", "--dir", str(folder)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    for precedence in Precedence:
        assert precedence.name in run.stdout
    assert "receipt" in run.stdout
    assert "tawan_messages_forwarded_total" in run.stdout
    for name in ("alpha", "relay", "charlie"):
        assert "event=stopped" in (folder / f"{name}.log").read_text()


def test_demo_refuses_to_wipe_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "orders.txt"
    precious.write_text("keep me")
    assert demo.main(["--dir", str(tmp_path)]) == 1
    assert precious.read_text() == "keep me"
    assert "is not a demo folder" in capsys.readouterr().out
