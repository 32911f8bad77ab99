"""Clients of a node's local API (see tawan.node.api and docs/operators.md).

`Client` is synchronous (plain sockets) for scripts and the CLI; `AsyncClient` is the same
over trio streams. Both raise `ClientError` when the node cannot be reached or refuses a
request, with the node's own explanation.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncGenerator, Iterator
from types import TracebackType
from typing import Final, TypeVar

import trio

from transports.link import parse_endpoint

DEFAULT_API_ADDRESS: Final = "127.0.0.1:7470"
UNIX_PREFIX: Final = "unix:"
MAX_SHOWN: Final = 100  # characters of a bad value quoted back in an error
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024  # a page of 1000 messages of up to 1 MiB

Json = dict[str, object]
T = TypeVar("T")


class ClientError(Exception):
    """The node is unreachable, closed the connection, answered with an error, or sent a
    response that is not what the API answers (the message names what is wrong)."""


def build_request(op: str, fields: dict[str, object]) -> bytes:
    request = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def check_response(line: bytes, address: str) -> Json:
    """The response on `line` if it is a success; else ClientError with the node's error, or
    saying what is wrong with the line."""
    if not line.endswith(b"\n"):
        raise ClientError(f"node at {address} closed the connection")
    try:
        response = json.loads(line)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long
        raise ClientError(f"node at {address} sent invalid JSON: {exc}") from None
    except RecursionError:
        raise ClientError(f"node at {address} sent JSON nested too deeply") from None
    if not isinstance(response, dict):
        raise ClientError(f"node at {address} sent {type(response).__name__}, not an object")
    where = f"node at {address} answered"
    if field(response, "ok", bool, "true or false", where):
        return response
    raise ClientError(field(response, "error", str, "a string saying why it refused", where))


def field(data: Json, key: str, kind: type[T], expected: str, where: str) -> T:
    """`data[key]` if it is a `kind` (an int is not a bool), else ClientError saying
    `where`, the key, what was `expected` and what was found."""
    value = data.get(key)
    if isinstance(value, kind) and not (isinstance(value, bool) and kind is int):
        return value
    found = shown(data[key]) if key in data else "nothing"
    raise ClientError(f"{where}: {key!r}: expected {expected}, found {found}")


def shown(value: object) -> str:
    """`value` quoted back in an error (the API's to a client, a client's of an answer): its
    repr, cut to MAX_SHOWN characters."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[: MAX_SHOWN - 3]}..."


def send_fields(
    to: str, payload: bytes, *, precedence: str, ttl: int | None, receipt: bool, sign: bool,
    ref: str | None = None,
) -> dict[str, object]:  # fmt: skip
    return {
        "ref": ref,
        "to": to,
        "precedence": precedence,
        "ttl": ttl,
        "receipt": receipt,
        "sign": sign,
        "payload_b64": base64.b64encode(payload).decode(),
    }


def payload_of(message: Json) -> bytes:
    """The payload bytes of a message returned by `recv` (ClientError if it has none)."""
    where = f"message {shown(message.get('id'))}"
    text = field(message, "payload_b64", str, "base64 text", where)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        raise ClientError(f"{where}: 'payload_b64': expected base64 text, found "
                          f"{shown(text)}") from None  # fmt: skip


def _items(response: Json, key: str, where: str) -> list[Json]:
    """The entries of a listing under `key`: objects, each with an integer "id"."""
    items = field(response, key, list, "a list of objects", where)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ClientError(f"{where}: {key!r}[{i}]: expected an object, found {shown(item)}")
        field(item, "id", int, "an integer", f"{where}: {key!r}[{i}]")
    return items


def _answered(address: str, op: str) -> str:
    return f"node at {address} answered {op}"


def _connect(address: str, timeout: float | None) -> socket.socket:
    if not address.startswith(UNIX_PREFIX):
        host, port = parse_endpoint(address, "api address")
        return socket.create_connection((host, port), timeout=timeout)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address[len(UNIX_PREFIX) :])
    except OSError:
        sock.close()
        raise
    return sock


class Client:
    """A synchronous connection to a node's API; use as a context manager."""

    def __init__(self, address: str = DEFAULT_API_ADDRESS, *, timeout: float | None = 30.0):
        self.address = address
        try:
            self._sock = _connect(address, timeout)
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot reach the node API at {address}: {exc}") from None
        self._file = self._sock.makefile("rwb")

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def request(self, op: str, **fields: object) -> Json:
        """Send one request and return the (successful) response."""
        try:
            self._file.write(build_request(op, fields))
            self._file.flush()
        except OSError as exc:
            raise ClientError(f"node at {self.address}: {exc}") from None
        return self._response()

    def _response(self) -> Json:
        try:
            line = self._file.readline(MAX_RESPONSE_BYTES)
        except OSError as exc:
            raise ClientError(f"node at {self.address}: {exc}") from None
        return check_response(line, self.address)

    def send(
        self,
        to: str,
        payload: bytes,
        *,
        precedence: str = "routine",
        ttl: int | None = None,
        receipt: bool = False,
        sign: bool = False,
        ref: str | None = None,
    ) -> str:
        """Submit a message; returns its message id.

        `ref`: the client's own reference of this submission (up to 64 bytes of text). If
        the answer is lost (the node died mid-request, the connection broke), sending again
        with the same ref and the same message returns the first one's id and sends nothing
        twice; the same ref with a different message is refused (ClientError)."""
        fields = send_fields(
            to, payload, precedence=precedence, ttl=ttl, receipt=receipt, sign=sign, ref=ref
        )
        return self._field("send", fields, "mid", str, "a message id")

    def _field(self, op: str, fields: Json, key: str, kind: type[T], expected: str) -> T:
        """Request `op` with `fields`; the answer's `key`, which must be a `kind`."""
        response = self.request(op, **fields)
        return field(response, key, kind, expected, _answered(self.address, op))

    def recv(self, after: int = 0, limit: int = 100) -> list[Json]:
        response = self.request("recv", after=after, limit=limit)
        return _items(response, "messages", _answered(self.address, "recv"))

    def follow(self, after: int = 0, limit: int = 100) -> Iterator[Json]:
        """Messages after `after`, then new ones as they arrive; this connection serves
        nothing else afterwards."""
        self._sock.settimeout(None)
        response = self.request("recv", after=after, limit=limit, follow=True)
        while True:
            yield from _items(response, "messages", _answered(self.address, "recv"))
            response = self._response()

    def ack(self, up_to: int) -> int:
        return self._field("ack", {"up_to": up_to}, "freed", int, "an integer")

    def receipts(self, after: int = 0, limit: int = 100) -> list[Json]:
        response = self.request("receipts", after=after, limit=limit)
        return _items(response, "receipts", _answered(self.address, "receipts"))

    def ack_receipts(self, up_to: int) -> int:
        return self._field("ack_receipts", {"up_to": up_to}, "freed", int, "an integer")

    def revoke(self, notice: bytes) -> Json:
        """Hand the node a revocation notice (`tawan mission revoke` writes them)."""
        return self.request("revoke", notice_b64=base64.b64encode(notice).decode())

    def status(self) -> Json:
        status: Json = self._field("status", {}, "status", dict, "an object")
        return status


class AsyncClient:
    """The same API over trio: ``async with await AsyncClient.connect(address) as client``."""

    def __init__(self, stream: trio.abc.Stream, address: str) -> None:
        self._stream = stream
        self.address = address
        self._buffer = bytearray()

    @classmethod
    async def connect(cls, address: str = DEFAULT_API_ADDRESS) -> AsyncClient:
        try:
            if address.startswith(UNIX_PREFIX):
                stream: trio.abc.Stream = await trio.open_unix_socket(address[len(UNIX_PREFIX) :])
            else:
                host, port = parse_endpoint(address, "api address")
                stream = await trio.open_tcp_stream(host, port)
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot reach the node API at {address}: {exc}") from None
        return cls(stream, address)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stream.aclose()

    async def request(self, op: str, **fields: object) -> Json:
        try:
            await self._stream.send_all(build_request(op, fields))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientError(f"node at {self.address}: {exc}") from None
        return await self._response()

    async def _response(self) -> Json:
        while (end := self._buffer.find(b"\n")) < 0 and len(self._buffer) < MAX_RESPONSE_BYTES:
            try:
                data = await self._stream.receive_some(65536)
            except trio.BrokenResourceError as exc:
                raise ClientError(f"node at {self.address}: {exc}") from None
            if not data:
                break
            self._buffer += data
        line = bytes(self._buffer[: end + 1]) if end >= 0 else bytes(self._buffer)
        del self._buffer[: len(line)]
        return check_response(line, self.address)

    async def send(
        self,
        to: str,
        payload: bytes,
        *,
        precedence: str = "routine",
        ttl: int | None = None,
        receipt: bool = False,
        sign: bool = False,
        ref: str | None = None,
    ) -> str:
        fields = send_fields(
            to, payload, precedence=precedence, ttl=ttl, receipt=receipt, sign=sign, ref=ref
        )
        return await self._field("send", fields, "mid", str, "a message id")

    async def _field(self, op: str, fields: Json, key: str, kind: type[T], expected: str) -> T:
        response = await self.request(op, **fields)
        return field(response, key, kind, expected, _answered(self.address, op))

    async def recv(self, after: int = 0, limit: int = 100) -> list[Json]:
        response = await self.request("recv", after=after, limit=limit)
        return _items(response, "messages", _answered(self.address, "recv"))

    async def follow(self, after: int = 0, limit: int = 100) -> AsyncGenerator[Json, None]:
        """Like `Client.follow`; wrap it in `contextlib.aclosing` to stop early."""
        response = await self.request("recv", after=after, limit=limit, follow=True)
        while True:
            for message in _items(response, "messages", _answered(self.address, "recv")):
                yield message
            response = await self._response()

    async def ack(self, up_to: int) -> int:
        return await self._field("ack", {"up_to": up_to}, "freed", int, "an integer")

    async def status(self) -> Json:
        status: Json = await self._field("status", {}, "status", dict, "an object")
        return status
