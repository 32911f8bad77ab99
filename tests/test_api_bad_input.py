"""The local API on hostile input: text that is not Unicode, numbers too long to convert,
ops that are not strings, nesting deep enough to exhaust the parser. Each gets an error that
names the field or the problem, never "internal error", and the connection stays usable.

Most tests call `parse_line` or a connection's `_answer` directly (no stream is touched for
these requests); the last one sends every line down one connection of a running node.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from test_api import connected, raw
from test_runtime import make_runtime, running_pair

from tawan.node.api import MAX_DEPTH, Connection, RequestError, parse_line
from tawan.node.client import Json

GOOD = b'"op": "send", "to": "bravo", "payload_b64": "aGk="'
DIGITS = b"1" * 5000


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"op": ["send"]}', "op: expected one of send, recv, ack, receipts, ack_receipts, "
         "status, revoke, found ['send']"),
        (b'{"op": {"send": 1}}', "op: expected one of send, recv"),
        (b'{"op": ' + DIGITS + b"}", "op: expected one of send, recv, ack, receipts, "
         "ack_receipts, status, revoke, found an integer of 5000 digits"),
        (b"[" * 100_000, f"request: expected a JSON object, found arrays or objects nested "
         f"more than {MAX_DEPTH} deep"),
        (b'{"op": "status", "id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
         "request: expected a JSON object, found arrays or objects nested more than"),
        (b'{"op": "status", "id": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
         "request: expected a JSON object, found arrays or objects nested more than"),
        (b'{"op": "status", "id": ' + DIGITS + b"}",
         "id: expected a JSON value to echo, found an integer of 5000 digits"),
        (b'{"op": "status", "id": [1, ' + DIGITS + b"]}",
         "id: expected a JSON value to echo, found [1, an integer of 5000 digits]"),
        (b'{"op": "status", "id": NaN}', "id: expected a JSON value to echo, found nan"),
        (b'{"op": "status", "id": [-Infinity]}',
         "id: expected a JSON value to echo, found [-inf]"),
        (b'{"op": "status", "id": 1e400}', "id: expected a JSON value to echo, found inf"),
    ],
)  # fmt: skip
def test_parse_line_refuses_what_json_alone_would_crash_on(line: bytes, expected: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_line(line)
    assert str(info.value).startswith(expected), info.value


def test_parse_line_takes_nesting_up_to_the_limit_and_an_echoable_id() -> None:
    deep = b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1)
    request = parse_line(b'{"op": "status", "id": ' + deep + b"}")
    assert request.op == "status"
    assert parse_line(b'{"op": "status", "id": "\\ud800"}').data["id"] == "\ud800"


def test_a_long_field_value_is_quoted_short() -> None:
    with pytest.raises(RequestError) as info:
        parse_line(b'{"op": "' + b"x" * 100_000 + b'"}')
    assert len(str(info.value)) < 200
    assert str(info.value).endswith("...")


BAD_FIELDS = [
    (b'{%s, "ref": "\\ud800"}' % GOOD,
     "send.ref: expected a string of Unicode text, without lone surrogates, found '\\ud800'"),
    (b'{"op": "send", "to": "bravo", "payload_b64": "aG\\udfffk="}',
     "send.payload_b64: expected a string of Unicode text, without lone surrogates"),
    (b'{"op": "send", "to": "bravo", "payload_b64": "\\u00e9"}',
     "send.payload_b64: expected base64 text, found '\u00e9'"),
    (b'{"op": "revoke", "notice_b64": "\\ud800"}',
     "revoke.notice_b64: expected a string of Unicode text, without lone surrogates"),
    (b'{"op": "revoke", "notice_b64": "\\u00e9"}', "revoke.notice_b64: expected base64 text"),
    (b'{"op": "send", "to": "\\udc80", "payload_b64": "aGk="}',
     "send.to: expected a string of Unicode text, without lone surrogates"),
    (b'{%s, "ttl": %s}' % (GOOD, DIGITS),
     "send.ttl: expected an integer in 1..4294967295, found an integer of 5000 digits"),
    (b'{%s, "ttl": 1e999}' % GOOD, "send.ttl: expected an integer in 1..4294967295, found inf"),
    (b'{%s, "ttl": %s.5}' % (GOOD, DIGITS),
     "send.ttl: expected an integer in 1..4294967295, found inf"),
    (b'{"op": "ack", "up_to": -%s}' % DIGITS,
     "ack.up_to: expected an integer in 0..9223372036854775807, found an integer of 5000 digits"),
    (b'{"op": "send", "to": ["bravo"], "payload_b64": "aGk="}',
     "send.to: expected a string, found ['bravo']"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), BAD_FIELDS)
async def test_a_bad_field_is_named_in_the_reply(line: bytes, expected: str) -> None:
    runtime = make_runtime("alpha", {})  # not running: these requests never reach it
    _, server_end = trio.testing.memory_stream_pair()
    answers: list[tuple[str, Json]] = []
    await Connection(runtime, server_end)._answer(line[:-1] + b', "id": 7}', answers)
    ((_, response),) = answers
    assert response["ok"] is False
    assert str(response["error"]).startswith(expected), response["error"]
    assert response["id"] == 7


async def test_the_connection_and_the_node_stay_usable(autojump_clock: trio.abc.Clock) -> None:
    lines = [line for line, _ in BAD_FIELDS] + [
        b'{"op": ["send"]}',
        b'{"op": "status", "id": ' + DIGITS + b"}",
        b"[" * 100_000,
    ]
    async with running_pair() as pair, connected(pair.alpha) as client:
        for line in lines:
            response = await raw(client, line + b"\n")
            assert response["ok"] is False
            assert "internal error" not in str(response["error"])
        assert (await client.status())["node"] == "alpha"
        mid = await client.send("bravo", b"still here", ref="after-the-garbage")
    assert mid.count(".") == 2
