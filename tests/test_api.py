"""The local API: request parsing, error responses that name the problem, the ops end to end.

Most tests talk to `Connection` over trio's in-memory stream pair, in virtual time; the last
ones go through real loopback TCP and unix sockets with the synchronous client.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import stat
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_runtime import ROSTER, Pair, address, running_pair

from crypto.revocation import make_revocation
from tawan.node.api import (
    MAX_REQUEST_BYTES,
    Connection,
    RequestError,
    listener_address,
    open_listeners,
    parse_line,
    serve_api,
)
from tawan.node.client import AsyncClient, Client, ClientError, Json, payload_of
from tawan.node.runtime import Runtime


@asynccontextmanager
async def connected(runtime: Runtime) -> AsyncIterator[AsyncClient]:
    client_end, server_end = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(Connection(runtime, server_end).serve)
        async with AsyncClient(client_end, "memory") as client:
            yield client
        nursery.cancel_scope.cancel()


async def raw(client: AsyncClient, line: bytes) -> Json:
    """Send one raw line; return the parsed response, whatever its "ok"."""
    await client._stream.send_all(line)
    with trio.fail_after(10):
        while b"\n" not in client._buffer:
            data = await client._stream.receive_some(65536)
            if not data:
                raise EOFError
            client._buffer += data
    end = client._buffer.index(b"\n")
    response = json.loads(bytes(client._buffer[:end]))
    del client._buffer[: end + 1]
    assert isinstance(response, dict)
    return response


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"{", "request: expected a JSON object, found invalid JSON"),
        (b"\xff\xfe", "request: expected a JSON object, found invalid JSON"),
        (b"[1, 2]", "request: expected a JSON object, found list"),
        (b'{"to": "bravo"}', "op: expected one of send, recv, ack, receipts, ack_receipts, "
         "status, revoke, found None"),
        (b'{"op": "launch"}', "op: expected one of send, recv"),
        (b'{"op": 3}', "op: expected one of"),
    ],
)  # fmt: skip
def test_parse_line_errors(line: bytes, expected: str) -> None:
    with pytest.raises(RequestError) as info:
        parse_line(line)
    assert str(info.value).startswith(expected)


PAYLOAD = base64.b64encode(b"hi").decode()


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"op": "send", "payload_b64": PAYLOAD}, "send.to: required"),
        ({"op": "send", "to": "zulu", "payload_b64": PAYLOAD},
         "send.to: expected a node or group in the roster, found 'zulu'"),
        ({"op": "send", "to": "alpha", "payload_b64": PAYLOAD},
         "send: destination"),  # the engine refuses a message to oneself
        ({"op": "send", "to": "bravo", "precedence": "urgent", "payload_b64": PAYLOAD},
         "send.precedence: precedence 'urgent' is not one of: routine, priority"),
        ({"op": "send", "to": "bravo", "ttl": 0, "payload_b64": PAYLOAD},
         "send.ttl: expected an integer in 1..4294967295, found 0"),
        ({"op": "send", "to": "bravo", "ttl": "60", "payload_b64": PAYLOAD},
         "send.ttl: expected an integer in 1..4294967295, found '60'"),
        ({"op": "send", "to": "bravo", "receipt": 1, "payload_b64": PAYLOAD},
         "send.receipt: expected true or false, found 1"),
        ({"op": "send", "to": "bravo", "payload_b64": "not base64!"},
         "send.payload_b64: expected base64 text, found 'not base64!'"),
        ({"op": "send", "to": "bravo", "payload_b64": 5},
         "send.payload_b64: expected a string, found 5"),
        ({"op": "send", "to": "bravo", "payload_b64": PAYLOAD, "text": "hi"},
         "send.text: unknown field"),
        ({"op": "recv", "limit": 0}, "recv.limit: expected an integer in 1..1000, found 0"),
        ({"op": "recv", "after": -1}, "recv.after: expected an integer in 0.."),
        ({"op": "recv", "follow": "yes"}, "recv.follow: expected true or false, found 'yes'"),
        ({"op": "ack"}, "ack.up_to: expected an integer in 0..9223372036854775807, found nothing"),
        ({"op": "ack", "up_to": 1.5}, "ack.up_to: expected an integer in 0.."),
        ({"op": "status", "verbose": True}, "status.verbose: unknown field"),
        ({"op": "receipts", "limit": 5000}, "receipts.limit: expected an integer in 1..1000"),
    ],
)  # fmt: skip
async def test_bad_requests_get_an_error_and_the_connection_stays_usable(
    autojump_clock: trio.abc.Clock, request_: Json, expected: str
) -> None:
    async with running_pair() as pair, connected(pair.alpha) as client:
        response = await raw(client, json.dumps({**request_, "id": 7}).encode() + b"\n")
        assert response["ok"] is False
        assert str(response["error"]).startswith(expected), response["error"]
        assert response["id"] == 7
        status = await client.status()
    assert status["node"] == "alpha"


async def test_garbage_line_then_a_good_request(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair, connected(pair.alpha) as client:
        response = await raw(client, b"\x00\x01 not json\n\n")
        assert response == {"ok": False, "error": response["error"]}
        assert "invalid JSON" in str(response["error"])
        assert (await client.recv()) == []


async def test_oversized_request_is_refused_and_closed(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair, connected(pair.alpha) as client:
        response = await raw(client, b"x" * (MAX_REQUEST_BYTES + 10))
        assert response["ok"] is False
        assert f"longer than {MAX_REQUEST_BYTES} bytes" in str(response["error"])
        assert await client._stream.receive_some(10) == b""


async def follow_one(pair: Pair, results: list[Json], task_status: trio.TaskStatus[None]) -> None:
    async with connected(pair.bravo) as client:
        task_status.started()
        async with aclosing(client.follow()) as messages:
            async for message in messages:
                results.append(message)
                return


async def test_send_then_recv_follow_and_ack(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair:
        followed: list[Json] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(follow_one, pair, followed)
            async with connected(pair.alpha) as alpha:
                mid = await alpha.send("bravo", b"attack at dawn", precedence="flash", sign=True)
        (message,) = followed
        assert (message["mid"], message["from"], message["to"]) == (mid, "alpha", "bravo")
        assert (message["precedence"], message["signed"]) == ("flash", True)
        assert payload_of(message) == b"attack at dawn"
        async with connected(pair.bravo) as bravo:
            assert [m["mid"] for m in await bravo.recv()] == [mid]
            assert await bravo.ack(int(str(message["id"]))) == 1
            assert await bravo.recv() == []


async def test_receipt_reaches_the_sender(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair, connected(pair.alpha) as alpha:
        response = await alpha.request(
            "send", to="bravo", payload_b64=PAYLOAD, receipt=True, ttl=60
        )
        with trio.fail_after(60):
            while not (receipts := (await alpha.request("receipts"))["receipts"]):
                await pair.alpha.receipts_changed.wait()
        assert isinstance(receipts, list)
        assert receipts[0]["mid"] == response["mid"]
        assert receipts[0]["kind"] == "delivered"
        freed = await alpha.request("ack_receipts", up_to=receipts[-1]["id"])
        assert freed["freed"] == len(receipts)


async def test_send_to_a_group_names_it(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair, connected(pair.alpha) as alpha:
        response = await alpha.request("send", to="ops", payload_b64=PAYLOAD)
    assert (response["to"], response["to_kind"]) == ("ops", "group")
    assert address("ops") != 0


async def serve_on(pair: Pair, address: str, task_status: trio.TaskStatus[str]) -> None:
    listeners = await open_listeners(address)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_api, pair.alpha, listeners)
        task_status.started(listener_address(listeners[0]))


@pytest.mark.parametrize("kind", ["tcp", "unix"])
async def test_sync_client_over_real_sockets(tmp_path: Path, kind: str) -> None:
    where = "127.0.0.1:0" if kind == "tcp" else f"unix:{tmp_path}/api.sock"
    with trio.fail_after(20):
        async with running_pair() as pair, trio.open_nursery() as nursery:
            api = await nursery.start(serve_on, pair, where)
            if kind == "unix":
                assert stat.S_IMODE((tmp_path / "api.sock").stat().st_mode) == 0o600

            def use_the_api() -> Json:
                with Client(api, timeout=10) as client:
                    client.send("bravo", b"over a socket", precedence="immediate")
                    with pytest.raises(ClientError, match=r"send\.to: expected a node or group"):
                        client.send("nobody", b"x")
                    return client.status()

            status = await trio.to_thread.run_sync(use_the_api)
            assert status["node"] == "alpha"
            nursery.cancel_scope.cancel()


def test_client_reports_an_unreachable_node(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="cannot reach the node API at unix:"):
        Client(f"unix:{tmp_path}/absent.sock")


async def test_a_follower_that_leaves_ends_its_connection_quietly(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_pair() as pair:
        client_end, server_end = trio.testing.memory_stream_pair()
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(Connection(pair.bravo, server_end).serve)
                await client_end.send_all(b'{"op": "recv", "follow": true}\n')
                assert await client_end.receive_some() == b'{"ok":true,"messages":[]}\n'
                await client_end.aclose()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_revoke_applies_a_notice_and_refuses_a_bad_one(
    autojump_clock: trio.abc.Clock,
) -> None:
    authority = Ed25519PrivateKey.from_private_bytes(random.Random(7).randbytes(32))
    notice = make_revocation(
        authority, ROSTER.mission_id, ROSTER.version + 1, (address("charlie"),)
    )
    forged = make_revocation(
        Ed25519PrivateKey.generate(), ROSTER.mission_id, ROSTER.version + 1, (address("bravo"),)
    )
    async with running_pair() as pair, connected(pair.alpha) as alpha:
        encoded = base64.b64encode(notice.to_bytes()).decode()
        answer = await alpha.request("revoke", notice_b64=encoded)
        assert (answer["applied"], answer["revoked"]) == (True, ["charlie"])
        assert pair.alpha.roster.is_revoked(address("charlie"))
        again = await alpha.request("revoke", notice_b64=encoded)
        assert again["applied"] is False
        bad = await raw(alpha, json.dumps({"op": "revoke", "notice_b64": base64.b64encode(
            forged.to_bytes()).decode()}).encode() + b"\n")  # fmt: skip
        assert bad == {"ok": False, "error": bad["error"]}
        assert "bad authority signature" in str(bad["error"])
        junk = await raw(alpha, b'{"op": "revoke", "notice_b64": "AAAA"}\n')
        assert str(junk["error"]).startswith("revoke: ")
        assert not pair.alpha.roster.is_revoked(address("bravo"))


async def test_revoke_refuses_a_notice_that_revokes_the_node_itself(
    autojump_clock: trio.abc.Clock,
) -> None:
    authority = Ed25519PrivateKey.from_private_bytes(random.Random(7).randbytes(32))
    notice = make_revocation(authority, ROSTER.mission_id, ROSTER.version + 1, (address("alpha"),))
    async with running_pair() as pair, connected(pair.alpha) as alpha:
        line = {"op": "revoke", "notice_b64": base64.b64encode(notice.to_bytes()).decode()}
        answer = await raw(alpha, json.dumps(line).encode() + b"\n")
        assert "revokes this node (alpha) itself" in str(answer["error"])
        assert not pair.alpha.roster.is_revoked(address("alpha"))
