"""`tawan send TEXT` from a terminal that is not UTF-8: Python hands the bytes that are not
UTF-8 over as surrogates ("caf\\udcff"), which cannot be sent as text. The command refuses
them with one error line (exit 2) before it reaches the node, and points to @FILE, which
sends bytes as they are.

The node is one end of a socket pair (no network): what the client wrote is read back.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import tawan.node.client as client_module
from tawan.cli import main

SEND = ["send", "--to", "bravo", "--api", "127.0.0.1:9"]


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """The node's end of the connection the next `Client` makes; it has answered already."""
    near, far = socket.socketpair()
    far.settimeout(5)
    far.sendall(b'{"ok": true, "mid": "1.2.3", "to": "bravo", "to_kind": "node"}\n')
    monkeypatch.setattr(client_module, "_connect", lambda address, timeout: near)
    yield far
    near.close()
    far.close()


def sent_payload(node: socket.socket) -> bytes:
    request = json.loads(node.recv(65536).split(b"\n")[0])
    return base64.b64decode(request["payload_b64"])


@pytest.mark.parametrize(
    ("text", "shown"),
    [("caf\udce9", "byte 0xe9 at character 4"), ("\udcff\udcfe", "byte 0xff at character 1")],
)
def test_text_that_is_not_utf8_is_refused_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, shown: str
) -> None:
    def no_node(address: str, timeout: float | None) -> socket.socket:
        raise AssertionError("refused text must not reach the node")

    monkeypatch.setattr(client_module, "_connect", no_node)
    assert main([*SEND, text]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tawan: error: TEXT is not UTF-8 ({shown}): ")
    assert "@FILE" in err
    assert err.count("\n") == 1


def test_utf8_text_is_sent(node: socket.socket, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SEND, "caf\u00e9 \u0e17\u0e2b\u0e32\u0e23"]) == 0
    assert capsys.readouterr().out == "1.2.3\n"
    assert sent_payload(node) == "caf\u00e9 \u0e17\u0e2b\u0e32\u0e23".encode()


def test_bytes_that_are_not_utf8_go_as_a_file(
    node: socket.socket, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    assert main([*SEND, f"@{tmp_path}/latin1.txt"]) == 0
    assert sent_payload(node) == b"caf\xe9"


def test_the_help_says_what_text_is(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "sent as UTF-8" in help_text
    assert "@FILE to send a file's bytes as they are" in help_text
