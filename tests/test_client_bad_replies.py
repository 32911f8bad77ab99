"""The client on replies of the wrong shape: whatever a server sends, the client raises its
own `ClientError` naming what was wrong, never KeyError, TypeError or ValueError; and
`tawan status` prints whatever status it gets.

Replies are fed to `check_response` directly, or written in advance into the other end of a
socket pair (the sync client) or of a trio memory stream (the async one): no network.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Callable, Iterator

import pytest
import trio.testing
from rich.console import Console

import tawan.node.client as client_module
from tawan.cli import main
from tawan.cli_node import print_status
from tawan.node.client import AsyncClient, Client, ClientError, Json, check_response, payload_of

DIGITS = "1" * 5000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"[1]\n", "node at here sent list, not an object"),
        (b"{}\n", "node at here answered: 'ok': expected true or false, found nothing"),
        (b'{"ok": "yes"}\n', "node at here answered: 'ok': expected true or false, found 'yes'"),
        (b'{"ok": 1}\n', "node at here answered: 'ok': expected true or false, found 1"),
        (b'{"ok": false}\n', "node at here answered: 'error': expected a string saying why it "
         "refused, found nothing"),
        (b'{"ok": false, "error": ["x"]}\n', "node at here answered: 'error': expected a "
         "string saying why it refused, found ['x']"),
        (b'{"ok": false, "error": "send.to: expected a node"}\n', "send.to: expected a node"),
        (b'{"ok": true, "freed": %s}\n' % DIGITS.encode(), "node at here sent invalid JSON: "),
        (b"[" * 100_000 + b"\n", "node at here sent JSON nested too deeply"),
        (b"\xff\n", "node at here sent invalid JSON: "),
        (b'{"ok": true', "node at here closed the connection"),
    ],
)  # fmt: skip
def test_check_response_names_what_is_wrong(line: bytes, expected: str) -> None:
    with pytest.raises(ClientError) as info:
        check_response(line, "here")
    assert str(info.value).startswith(expected), info.value


CallSync = Callable[[Client], object]

BAD_ANSWERS: list[tuple[str, Json, str]] = [
    ("send", {}, "answered send: 'mid': expected a message id, found nothing"),
    ("send", {"mid": 5}, "answered send: 'mid': expected a message id, found 5"),
    ("status", {}, "answered status: 'status': expected an object, found nothing"),
    ("status", {"status": ["alpha"]}, "answered status: 'status': expected an object, found"),
    ("recv", {}, "answered recv: 'messages': expected a list of objects, found nothing"),
    ("recv", {"messages": {"id": 1}}, "answered recv: 'messages': expected a list of objects"),
    ("recv", {"messages": [5]}, "answered recv: 'messages'[0]: expected an object, found 5"),
    ("recv", {"messages": [{"id": 1}, {"mid": "1.2.3"}]},
     "answered recv: 'messages'[1]: 'id': expected an integer, found nothing"),
    ("recv", {"messages": [{"id": "1"}]},
     "answered recv: 'messages'[0]: 'id': expected an integer, found '1'"),
    ("ack", {}, "answered ack: 'freed': expected an integer, found nothing"),
    ("ack", {"freed": "many"}, "answered ack: 'freed': expected an integer, found 'many'"),
    ("ack", {"freed": True}, "answered ack: 'freed': expected an integer, found True"),
    ("receipts", {"receipts": None}, "answered receipts: 'receipts': expected a list"),
    ("ack_receipts", {"freed": 1.5}, "answered ack_receipts: 'freed': expected an integer"),
]  # fmt: skip

SYNC_CALLS: dict[str, CallSync] = {
    "send": lambda c: c.send("bravo", b"hi"),
    "status": lambda c: c.status(),
    "recv": lambda c: c.recv(),
    "ack": lambda c: c.ack(3),
    "receipts": lambda c: c.receipts(),
    "ack_receipts": lambda c: c.ack_receipts(3),
}


@pytest.fixture
def answering(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bytes], socket.socket]]:
    """Make the next `Client` connect to a socket pair whose far end has `reply` written;
    returns that far end, to read what the client sent."""
    ends: list[socket.socket] = []

    def prepare(reply: bytes) -> socket.socket:
        near, far = socket.socketpair()
        ends.extend((near, far))
        far.sendall(reply)
        monkeypatch.setattr(client_module, "_connect", lambda address, timeout: near)
        return far

    yield prepare
    for end in ends:
        end.close()


def reply_line(answer: Json) -> bytes:
    return json.dumps({"ok": True, **answer}).encode() + b"\n"


@pytest.mark.parametrize(("op", "answer", "expected"), BAD_ANSWERS)
def test_the_sync_client_refuses_a_wrong_shaped_answer(
    answering: Callable[[bytes], socket.socket], op: str, answer: Json, expected: str
) -> None:
    answering(reply_line(answer))
    with Client("127.0.0.1:9", timeout=5) as client, pytest.raises(ClientError) as info:
        SYNC_CALLS[op](client)
    assert str(info.value).startswith(f"node at 127.0.0.1:9 {expected}"), info.value


ASYNC_OPS = {"send", "status", "recv", "ack"}  # what AsyncClient has


@pytest.mark.parametrize(
    ("op", "answer", "expected"), [a for a in BAD_ANSWERS if a[0] in ASYNC_OPS]
)
async def test_the_async_client_refuses_a_wrong_shaped_answer(
    op: str, answer: Json, expected: str
) -> None:
    client_end, server_end = trio.testing.memory_stream_pair()
    await server_end.send_all(reply_line(answer))
    async with AsyncClient(client_end, "memory") as client:
        with pytest.raises(ClientError) as info:
            if op == "send":
                await client.send("bravo", b"hi")
            elif op == "status":
                await client.status()
            elif op == "recv":
                await client.recv()
            else:
                await client.ack(3)
    assert str(info.value).startswith(f"node at memory {expected}"), info.value


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"id": 4}, "message 4: 'payload_b64': expected base64 text, found nothing"),
        ({"id": 4, "payload_b64": 12}, "message 4: 'payload_b64': expected base64 text, found 12"),
        ({"id": 4, "payload_b64": "no base64!"},
         "message 4: 'payload_b64': expected base64 text, found 'no base64!'"),
        ({"id": 4, "payload_b64": "\u00e9"}, "message 4: 'payload_b64': expected base64 text"),
    ],
)  # fmt: skip
def test_payload_of_a_message_without_a_payload(message: Json, expected: str) -> None:
    with pytest.raises(ClientError) as info:
        payload_of(message)
    assert str(info.value).startswith(expected), info.value


def printed(status: Json) -> str:
    out = io.StringIO()
    print_status(status, Console(file=out, width=200))
    return out.getvalue()


def test_print_status_with_no_room_does_not_divide_by_zero() -> None:
    text = printed({"node": "alpha", "store": {"bytes": 10, "max_bytes": 0}})
    assert "10" in text
    assert "%" not in text
    assert printed({"store": {"bytes": 1, "max_bytes": 4}}).count("25.0%") == 1
    assert "%" not in printed({"store": {"bytes": True, "max_bytes": 2}})


def test_print_status_shows_brackets_the_node_sent_as_they_are() -> None:
    status: Json = {
        "node": "[/]",
        "address": "[bold]",
        "links": [{"name": "[/link]", "bearer": "[red]x"}],
        "queues": {"[/q]": 1},
        "drops": {"l": {"[/reason]": 2}},
    }
    text = printed(status)
    for shown in ("node [/]", "(address [bold])", "[/link]", "[red]x", "[/q]", "[/reason]"):
        assert shown in text


def test_tawan_status_on_a_wrong_shaped_answer_is_one_error_line(
    answering: Callable[[bytes], socket.socket], capsys: pytest.CaptureFixture[str]
) -> None:
    answering(reply_line({"state": "fine"}))
    assert main(["status", "--api", "127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "tawan: error: node at 127.0.0.1:9 answered status: 'status': expected an object, "
        "found nothing\n"
    )


def test_tawan_recv_on_a_message_without_fields_prints_what_it_has(
    answering: Callable[[bytes], socket.socket], capsys: pytest.CaptureFixture[str]
) -> None:
    message = {"id": 1, "payload_b64": "aGk="}
    answering(reply_line({"messages": [message]}) + reply_line({"messages": []}))
    assert main(["recv", "--peek", "--api", "127.0.0.1:9"]) == 0
    assert capsys.readouterr().out == "1 ? from ? to ? mid ?: hi\n"
