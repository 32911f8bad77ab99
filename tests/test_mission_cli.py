"""`tawan mission ...` end to end, through main() and once through the installed script."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from crypto.keyfile import load_keyfile
from crypto.mission import keyfile_path, load_mission_roster
from crypto.plan import T0_MAX
from crypto.revocation import decode_revocation
from tawan.cli import INTERNAL_ERROR, main
from tawan.cli_mission import _utc

TAWAN = Path(sys.executable).parent / "tawan"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mission_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = str(tmp_path / "op-north")
    code, out, _ = run(
        capsys, "mission", "init", directory, "--epoch-seconds", "900", "--grace-epochs", "8"
    )
    assert code == 0 and "epoch 900 s, grace 8 epochs" in out
    code, out, _ = run(capsys, "mission", "add-node", directory, "hq", "--group", "command")
    assert code == 0 and "node hq: address 1, groups command" in out
    for name in ("relay-1", "patrol-a", "patrol-b"):
        code, _, _ = run(capsys, "mission", "add-node", directory, name, "--group", "field")
        assert code == 0
    code, out, _ = run(capsys, "mission", "revoke", directory, "patrol-b")
    assert code == 0 and "patrol-b revoked: roster version 6" in out
    notice_path = Path(directory) / "revocations" / "v6.tawan-revoke"
    assert f"revocation notice {notice_path}" in out
    notice_bytes = notice_path.read_bytes()
    assert out.splitlines()[-1] == notice_bytes.hex()
    assert stat.S_IMODE(notice_path.stat().st_mode) == 0o644
    notice = decode_revocation(notice_bytes)
    assert (notice.version, notice.revoked) == (6, (6,))
    assert len(notice_bytes) < 128  # fits in one frame of the narrowest link

    code, out, _ = run(capsys, "mission", "show", directory)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("mission ") and "roster version 6" in lines[0]
    assert lines[2].split() == ["ADDRESS", "NAME", "KIND", "GROUPS", "/", "MEMBERS", "STATUS"]
    assert lines[3].split() == ["1", "hq", "node", "command", "active"]
    assert lines[4].split() == ["2", "command", "group", "hq", "-"]
    assert lines[6].split() == ["4", "field", "group", "relay-1,", "patrol-a", "-"]
    assert lines[-4].split() == ["6", "patrol-b", "node", "field", "revoked"]
    assert lines[-2:] == [
        "revocation notices:",
        f"  roster version 6: patrol-b  {notice_path}",
    ]

    code, out, _ = run(capsys, "mission", "show", directory, "--json")
    shown = json.loads(out)
    assert shown["version"] == 6 and shown["epoch_seconds"] == 900
    assert [n["name"] for n in shown["nodes"]] == ["hq", "relay-1", "patrol-a", "patrol-b"]
    assert shown["nodes"][3] == {
        "name": "patrol-b",
        "address": 6,
        "groups": ["field"],
        "revoked": True,
    }
    assert shown["groups"][1] == {
        "name": "field",
        "address": 4,
        "members": ["relay-1", "patrol-a"],
    }
    assert shown["revocations"] == [
        {
            "version": 6,
            "revoked": ["patrol-b"],
            "file": str(notice_path),
            "notice": notice_bytes.hex(),
        }
    ]

    roster = load_mission_roster(directory)
    assert notice.verify(roster.authority, roster.mission_id)
    path = keyfile_path(directory, "hq")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert {r.peer for r in load_keyfile(path, roster).pair_roots} == {3, 5, 6}


def test_user_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = str(tmp_path / "m")
    assert run(capsys, "mission", "init", directory)[0] == 0
    assert run(capsys, "mission", "add-node", directory, "alpha")[0] == 0
    cases = [
        (["mission", "add-node", directory, "alpha"], "'alpha': already used by a node"),
        (["mission", "add-node", directory, "Bad"], "node name 'Bad': expected"),
        (["mission", "add-node", directory, "b", "--group", "alpha"], "group name 'alpha'"),
        (["mission", "revoke", directory, "zulu"], "'zulu': expected a node"),
        (["mission", "init", directory], "expected no mission here"),
        (["mission", "show", str(tmp_path / "nothing")], "expected a mission directory"),
        (["mission", "init", str(tmp_path / "x"), "--epoch-seconds", "0"], "epoch seconds 0"),
        (["mission", "init", str(tmp_path / "y"), "--t0", "99999999999999"],
         "mission start t0 99999999999999: expected unix seconds 0..253402300799"),
        (["mission", "init", str(tmp_path / "y"), "--t0", str(T0_MAX + 1)],
         f"mission start t0 {T0_MAX + 1}: expected unix seconds 0..{T0_MAX}"),
    ]  # fmt: skip
    for argv, expected in cases:
        code, out, err = run(capsys, *argv)
        assert code == 2, argv
        assert out == ""
        assert err.startswith("tawan: error: ") and expected in err, err
        assert err.count("\n") == 1 and "Traceback" not in err

    assert not (tmp_path / "y").exists()  # refused before any file is written
    assert run(capsys, "mission", "init", str(tmp_path / "last"), "--t0", str(T0_MAX))[0] == 0
    keyfile_path(directory, "alpha").chmod(0o644)
    code, _, err = run(capsys, "mission", "add-node", directory, "bravo")
    assert code == 2 and "alpha.key: key file mode is 0644" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["mission"]) == 2
    assert main(["mission", "init"]) == 2
    assert main(["mission", "add-node", "d", "n", "--bogus"]) == 2
    capsys.readouterr()
    assert main(["mission", "--help"]) == 0
    assert "add-node" in capsys.readouterr().out


def test_installed_script(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    for argv in (
        ["init", str(directory)],
        ["add-node", str(directory), "alpha", "--group", "ops"],
    ):
        result = subprocess.run(
            [str(TAWAN), "mission", *argv], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    result = subprocess.run(
        [str(TAWAN), "mission", "show", str(directory), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["groups"] == [
        {"name": "ops", "address": 2, "members": ["alpha"]}
    ]
    result = subprocess.run(
        [str(TAWAN), "mission", "revoke", str(directory), "nobody"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and result.stderr.startswith("tawan: error: ")


def test_a_start_past_the_year_9999_is_shown_in_unix_seconds() -> None:
    # A roster made elsewhere may carry any t0 up to 2^63-1; `mission show` still works.
    assert _utc(0) == "1970-01-01T00:00:00Z"
    assert _utc(T0_MAX) == "9999-12-31T23:59:59Z"
    assert _utc(T0_MAX + 1) == f"unix {T0_MAX + 1}"


def test_a_bug_in_any_command_is_its_traceback_and_status_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("tawan.cli_mission.init_mission", broken)
    code, out, err = run(capsys, "mission", "init", str(tmp_path / "m"))
    assert (code, out) == (INTERNAL_ERROR, "")
    assert "Traceback" in err and "RuntimeError: a bug" in err
    assert err.endswith("tawan: internal error (a bug in tawan, not in what it was given)\n")
