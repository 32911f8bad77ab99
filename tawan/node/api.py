"""The local client API: newline-delimited JSON over a loopback TCP port or a unix socket.

One request per line, one response per line, in order. A request is a JSON object with an
``op`` ("send", "recv", "ack", "receipts", "ack_receipts", "status") and the op's fields; an
optional ``id`` is echoed back. A response is ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; a bad request gets an error naming the field, what was
expected and what was found, and the connection stays usable. ``recv`` and ``receipts`` with
``"follow": true`` turn the connection into a stream: one response with what is there now,
then one response per batch of new entries, until the client closes it.
docs/operators.md documents every op.

The API has no authentication: it listens on loopback or on a unix socket made 0600, so
only the node's own operators (its user) can use it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Final

import trio

from crypto.errors import RevocationError
from crypto.revocation import decode_revocation
from crypto.roster import GroupEntry
from tawan.core.engine import Submission, SubmitError
from tawan.core.precedence import Precedence
from tawan.core.receipts import KINDS
from tawan.core.specs import MAX_REF_BYTES
from tawan.core.store import InboxEntry, Receipt, StoreUnwritable
from tawan.node.client import UNIX_PREFIX, shown
from tawan.node.runtime import Pulse, Runtime, format_mid, kv
from transports.link import parse_endpoint

MAX_REQUEST_BYTES: Final = 2 * 1024 * 1024  # a 1 MiB payload in base64, with room to spare
MAX_LIMIT: Final = 1000
MAX_TTL: Final = 0xFFFF_FFFF
DEFAULT_TTL: Final = 3600
MAX_DEPTH: Final = 32  # of nested arrays and objects: no field needs more than 1
MAX_DIGITS: Final = 100  # of an integer: no field takes more than 19

log = logging.getLogger("tawan.node.api")

Json = dict[str, object]


class RequestError(Exception):
    """The client's request is malformed or cannot be served; the message says why."""


class LongInteger:
    """A JSON integer of more than MAX_DIGITS digits, which no field takes: it stands in
    for the number (never converted, so that no digit limit of int() is hit), and the field
    reader that meets it names the field."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


class Request:
    """One parsed request: typed field readers that name the field in their errors."""

    def __init__(self, data: Json) -> None:
        self.data = data
        self.used = {"op", "id"}
        op = data.get("op")
        if not isinstance(op, str) or op not in HANDLERS:
            raise RequestError(f"op: expected one of {', '.join(HANDLERS)}, found {shown(op)}")
        self.op = op

    def fail(self, key: str, expected: str) -> RequestError:
        found = shown(self.data[key]) if key in self.data else "nothing"
        return RequestError(f"{self.op}.{key}: expected {expected}, found {found}")

    def get(self, key: str, default: object) -> object:
        self.used.add(key)
        return self.data.get(key, default)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key, default)
        if value is None:
            raise RequestError(f"{self.op}.{key}: required")
        if not isinstance(value, str):
            raise self.fail(key, "a string")
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:  # a lone surrogate: "\ud800" is valid JSON
                raise self.fail(key, "a string of Unicode text, without lone surrogates") from None
        return value

    def base64(self, key: str) -> bytes:
        try:
            return base64.b64decode(self.text(key), validate=True)
        except ValueError:  # binascii.Error, or a character that is not ASCII
            raise self.fail(key, "base64 text") from None

    def integer(self, key: str, low: int, high: int, default: int | None = None) -> int:
        value = self.get(key, default)
        if type(value) is not int or not low <= value <= high:
            raise self.fail(key, f"an integer in {low}..{high}")
        return value

    def flag(self, key: str) -> bool:
        value = self.get(key, False)
        if type(value) is not bool:
            raise self.fail(key, "true or false")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise RequestError(
                f"{self.op}.{unknown[0]}: unknown field "
                f"(expected: {', '.join(sorted(self.used - {'op', 'id'}))})"
            )


def parse_line(line: bytes) -> Request:
    """Decode one request line into a Request, or raise RequestError saying why not."""
    try:
        data = json.loads(line, parse_int=_integer)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RequestError(
            f"request: expected a JSON object, found invalid JSON ({exc})"
        ) from None
    except RecursionError:  # far deeper than MAX_DEPTH
        raise _too_deep() from None
    if _deeper_than(data, MAX_DEPTH):
        raise _too_deep()
    if not isinstance(data, dict):
        raise RequestError(f"request: expected a JSON object, found {type(data).__name__}")
    _check_id(data)
    return Request(data)


def _too_deep() -> RequestError:
    return RequestError(
        f"request: expected a JSON object, found arrays or objects nested more than "
        f"{MAX_DEPTH} deep"
    )


def _integer(digits: str) -> int | LongInteger:
    count = len(digits.lstrip("-"))
    return LongInteger(count) if count > MAX_DIGITS else int(digits)


def _deeper_than(data: object, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` deep in `data` (walked level by
    level, not recursively, so that no later repr or encoding of it can run out of stack)."""
    level = _containers([data])
    for _ in range(limit):
        level = _containers(child for value in level for child in _children(value))
    return bool(level)


def _containers(values: Iterable[object]) -> list[Json | list[object]]:
    return [value for value in values if isinstance(value, dict | list)]


def _children(value: Json | list[object]) -> Iterable[object]:
    return value.values() if isinstance(value, dict) else value


def _check_id(data: Json) -> None:
    """The `id` is echoed in the response: it must be something the response can carry."""
    try:
        json.dumps(data.get("id"), allow_nan=False)
    except (TypeError, ValueError):  # a LongInteger in it; NaN or Infinity, not JSON
        raise RequestError(
            f"id: expected a JSON value to echo, found {shown(data['id'])}"
        ) from None


def encode(response: Json) -> bytes:
    return json.dumps(response, separators=(",", ":")).encode() + b"\n"


def message_json(runtime: Runtime, entry: InboxEntry) -> Json:
    return {
        "id": entry.rowid,
        "mid": format_mid(entry.mid),
        "from": runtime.name_of(entry.src),
        "to": runtime.name_of(entry.dst),
        "precedence": Precedence(entry.precedence).name.lower(),
        "created": entry.created,
        "received_at": entry.received_at,
        "signed": entry.signed,
        "payload_b64": base64.b64encode(entry.payload).decode(),
    }


def receipt_json(runtime: Runtime, receipt: Receipt) -> Json:
    kind = KINDS.get(receipt.kind, str(receipt.kind))
    return {
        "id": receipt.rowid,
        "mid": format_mid(receipt.mid),
        "kind": kind,
        "at": receipt.at,
        "reporter": runtime.name_of(receipt.reporter),
    }


# ---- ops: each reads its fields, then acts on the runtime ----------------------------------


def op_send(runtime: Runtime, request: Request) -> Json:
    to = request.text("to")
    entry = runtime.roster.by_name(to)
    if entry is None:
        raise RequestError(f"send.to: expected a node or group in the roster, found {shown(to)}")
    try:
        precedence = Precedence.parse(request.text("precedence", "routine"))
    except ValueError as exc:
        raise RequestError(f"send.precedence: {exc}") from None
    ttl = request.integer("ttl", 1, MAX_TTL, DEFAULT_TTL)
    receipt, sign = request.flag("receipt"), request.flag("sign")
    payload = request.base64("payload_b64")
    ref = _ref(request)
    request.done()
    submission = Submission(entry.address, payload, precedence, ttl, receipt, sign, ref)
    try:
        mid = runtime.submit(submission)
    except SubmitError as exc:
        raise RequestError(f"send: {exc}") from None
    kind = "group" if isinstance(entry, GroupEntry) else "node"
    return {"mid": format_mid(mid), "to": to, "to_kind": kind}


def _ref(request: Request) -> bytes | None:
    """The client's reference of a send: text of 1..MAX_REF_BYTES bytes (UTF-8), or none."""
    if request.get("ref", None) is None:
        return None
    ref = request.text("ref").encode()
    if not 1 <= len(ref) <= MAX_REF_BYTES:
        raise request.fail("ref", f"text of 1..{MAX_REF_BYTES} bytes (UTF-8)")
    return ref


def op_ack(runtime: Runtime, request: Request) -> Json:
    up_to = request.integer("up_to", 0, 2**63 - 1)
    request.done()
    try:
        freed = runtime.store.ack_inbox(up_to)
    except StoreUnwritable as exc:  # rolled back: the engine notices at its next call
        raise RequestError(f"ack: not done, try again: {exc}") from None
    _durable_or_refuse(runtime, "ack")
    return {"freed": freed}


def op_ack_receipts(runtime: Runtime, request: Request) -> Json:
    up_to = request.integer("up_to", 0, 2**63 - 1)
    request.done()
    try:
        freed = runtime.store.ack_receipts(up_to)
    except StoreUnwritable as exc:
        raise RequestError(f"ack_receipts: not done, try again: {exc}") from None
    _durable_or_refuse(runtime, "ack_receipts")
    return {"freed": freed}


def _durable_or_refuse(runtime: Runtime, op: str) -> None:
    if not runtime.durable():
        raise RequestError(f"{op}: not done, try again: {runtime.store_problem()}")


def op_revoke(runtime: Runtime, request: Request) -> Json:
    """A revocation notice of the mission authority, to apply here and flood."""
    data = request.base64("notice_b64")
    request.done()
    try:
        notice = decode_revocation(data, source="revoke.notice_b64")
    except RevocationError as exc:
        raise RequestError(f"revoke: {exc}") from None
    me = runtime.engine.me
    if me in notice.revoked:
        # Applied here, it would erase this node's keys before it could pass it on.
        raise RequestError(
            f"revoke: the notice revokes this node ({runtime.name_of(me)}) itself: hand it "
            "to another node, which floods it"
        )
    try:
        applied = runtime.apply_revocation(notice)
    except RevocationError as exc:
        raise RequestError(f"revoke: {exc}") from None
    revoked = [runtime.name_of(a) for a in notice.revoked]
    return {"applied": applied, "version": notice.version, "revoked": revoked}


def op_status(runtime: Runtime, request: Request) -> Json:
    request.done()
    return {"status": runtime.status()}


def _listing(request: Request) -> tuple[int, int, bool]:
    after = request.integer("after", 0, 2**63 - 1, 0)
    limit = request.integer("limit", 1, MAX_LIMIT, 100)
    follow = request.flag("follow")
    request.done()
    return after, limit, follow


def inbox_page(runtime: Runtime, after: int, limit: int) -> list[Json]:
    runtime.durable()  # never show the application a message a crash could still lose
    return [message_json(runtime, e) for e in runtime.store.inbox(after, limit)]


def receipts_page(runtime: Runtime, after: int, limit: int) -> list[Json]:
    return [receipt_json(runtime, r) for r in runtime.store.receipts(after, limit)]


HANDLERS: Final[dict[str, Callable[[Runtime, Request], Json] | None]] = {
    "send": op_send,
    "recv": None,  # listings are served by `Connection`, since they may follow
    "ack": op_ack,
    "receipts": None,
    "ack_receipts": op_ack_receipts,
    "status": op_status,
    "revoke": op_revoke,
}
LISTINGS: Final = {
    "recv": ("messages", inbox_page),
    "receipts": ("receipts", receipts_page),
}


WRITES: Final = frozenset({"send", "ack", "ack_receipts", "revoke"})
"""Ops whose success rests on the commit made before the batch is answered."""


def _undo_writes(answers: list[tuple[str, Json]], problem: str) -> None:
    """The batch's commit failed and rolled back: every write in it is undone, and says so."""
    for i, (op, response) in enumerate(answers):
        if op in WRITES and response.get("ok") is True:
            undone: Json = {"ok": False, "error": f"{op}: not done: {problem}"}
            if "id" in response:
                undone["id"] = response["id"]
            answers[i] = (op, undone)


# ---- connections ----------------------------------------------------------------------------


class Connection:
    """Serve one client: read request lines, answer each; follow listings when asked."""

    def __init__(self, runtime: Runtime, stream: trio.abc.Stream) -> None:
        self.runtime = runtime
        self.stream = stream
        self.buffer = bytearray()
        # The store's rollbacks when the answers now gathered began: a rollback since then
        # (a later write of the batch failed) undid every write among them.
        self.since = runtime.store.rollbacks

    async def serve(self) -> None:
        try:
            while (line := await self._read_line()) is not None:
                # Every request already received is answered together: one commit makes
                # all of their submissions durable before any of them is acknowledged.
                batch = [line, *self._buffered_lines()]
                answers: list[tuple[str, Json]] = []
                self.since = self.runtime.store.rollbacks
                for request in batch:
                    if request.strip():
                        await self._answer(request, answers)
                await self._flush_answers(answers)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; nothing to clean up beyond the stream
        finally:
            await trio.aclose_forcefully(self.stream)

    async def _read_line(self) -> bytes | None:
        while (end := self.buffer.find(b"\n")) < 0:
            if len(self.buffer) > MAX_REQUEST_BYTES:
                await self._send({"ok": False, "error": f"request: longer than "
                                  f"{MAX_REQUEST_BYTES} bytes"})  # fmt: skip
                return None
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return line

    def _buffered_lines(self) -> list[bytes]:
        lines = []
        while (end := self.buffer.find(b"\n")) >= 0:
            lines.append(bytes(self.buffer[:end]))
            del self.buffer[: end + 1]
        return lines

    async def _send(self, response: Json) -> None:
        await self.stream.send_all(encode(response))

    async def _flush_answers(self, answers: list[tuple[str, Json]]) -> None:
        if answers:
            if not self.runtime.durable(since=self.since):
                _undo_writes(answers, self.runtime.store_problem() or "store cannot write")
            self.since = self.runtime.store.rollbacks
            await self.stream.send_all(b"".join(encode(answer) for _, answer in answers))
            answers.clear()

    async def _answer(self, line: bytes, answers: list[tuple[str, Json]]) -> None:
        request_id: object = None
        op = ""
        try:
            request = parse_line(line)
            request_id = request.data.get("id")
            op = request.op
            handler = HANDLERS[request.op]
            if handler is None:
                await self._flush_answers(answers)  # keep responses in request order
                await self._listing(request, request_id)
                return
            response: Json = {"ok": True, **handler(self.runtime, request)}
        except RequestError as exc:
            response = {"ok": False, "error": str(exc)}
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise  # the client left in the middle of a listing: `serve` ends quietly
        except Exception as exc:  # a bug must cost one request, not the daemon
            log.exception(kv(event="api_error", op=line[:40].decode(errors="replace")))
            response = {"ok": False, "error": f"internal error: {exc!r}"}
        if request_id is not None:
            response["id"] = request_id
        answers.append((op, response))

    async def _listing(self, request: Request, request_id: object) -> None:
        key, page = LISTINGS[request.op]
        after, limit, follow = _listing(request)
        pulse = self.runtime.inbox_changed if key == "messages" else self.runtime.receipts_changed
        extra: Json = {} if request_id is None else {"id": request_id}
        items = page(self.runtime, after, limit)
        await self._send({"ok": True, key: items, **extra})
        if follow:
            last = items[-1]["id"] if items else after
            await self._follow(
                key=key, page=page, pulse=pulse, after=int(str(last)), limit=limit, extra=extra
            )
            await self.stream.aclose()  # a followed connection serves nothing else

    async def _follow(
        self,
        *,
        key: str,
        page: Callable[[Runtime, int, int], list[Json]],
        pulse: Pulse,
        after: int,
        limit: int,
        extra: Json,
    ) -> None:
        """Stream new entries until the client closes its side (or sends anything)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._until_client_speaks, nursery.cancel_scope)
            while True:
                items = page(self.runtime, after, limit)
                if not items:
                    await pulse.wait()
                    continue
                await self._send({"ok": True, key: items, **extra})
                after = int(str(items[-1]["id"]))

    async def _until_client_speaks(self, scope: trio.CancelScope) -> None:
        try:
            await self.stream.receive_some(1)
        finally:
            scope.cancel()


# ---- listening ------------------------------------------------------------------------------


async def open_listeners(address: str) -> list[trio.SocketListener]:
    """Listen on "host:port" or "unix:/path" (a stale socket file there is replaced)."""
    if address.startswith(UNIX_PREFIX):
        return [await _unix_listener(Path(address[len(UNIX_PREFIX) :]))]
    host, port = parse_endpoint(address, "api.address")
    return await trio.open_tcp_listeners(port, host=host)


async def _unix_listener(path: Path) -> trio.SocketListener:
    try:
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)  # the socket file is created 0600: owner only
        try:
            sock.bind(str(path))
        finally:
            os.umask(old_umask)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(trio.socket.from_stdlib_socket(sock))


def listener_address(listener: trio.SocketListener) -> str:
    """The address clients use to reach `listener` (the real port when asked for port 0)."""
    name = listener.socket.getsockname()
    if isinstance(name, str):
        return UNIX_PREFIX + name
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_api(
    runtime: Runtime,
    listeners: list[trio.SocketListener],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve every listener until cancelled."""

    async def handler(stream: trio.SocketStream) -> None:
        await Connection(runtime, stream).serve()

    serve: Callable[..., Awaitable[None]] = trio.serve_listeners
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, handler, listeners)
        for listener in listeners:
            log.info(kv(event="api_listening", address=listener_address(listener)))
        task_status.started()
