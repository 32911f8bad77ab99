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
from typing import Final

import trio

from transports.link import parse_endpoint

DEFAULT_API_ADDRESS: Final = "127.0.0.1:7470"
UNIX_PREFIX: Final = "unix:"
MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024  # a page of 1000 messages of up to 1 MiB

Json = dict[str, object]


class ClientError(Exception):
    """The node is unreachable, closed the connection, or answered with an error."""


def build_request(op: str, fields: dict[str, object]) -> bytes:
    request = {"op": op, **{k: v for k, v in fields.items() if v is not None}}
    return json.dumps(request, separators=(",", ":")).encode() + b"\n"


def check_response(line: bytes, address: str) -> Json:
    if not line.endswith(b"\n"):
        raise ClientError(f"node at {address} closed the connection")
    try:
        response = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ClientError(f"node at {address} sent invalid JSON: {exc}") from None
    if not isinstance(response, dict):
        raise ClientError(f"node at {address} sent {type(response).__name__}, not an object")
    if response.get("ok") is not True:
        raise ClientError(str(response.get("error", "request failed")))
    return response


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
    """The payload bytes of a message returned by `recv`."""
    return base64.b64decode(str(message["payload_b64"]))


def _items(response: Json, key: str) -> list[Json]:
    items = response.get(key)
    if not isinstance(items, list):
        raise ClientError(f"response without {key!r}")
    return items


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
        return str(self.request("send", **fields)["mid"])

    def recv(self, after: int = 0, limit: int = 100) -> list[Json]:
        return _items(self.request("recv", after=after, limit=limit), "messages")

    def follow(self, after: int = 0, limit: int = 100) -> Iterator[Json]:
        """Messages after `after`, then new ones as they arrive; this connection serves
        nothing else afterwards."""
        self._sock.settimeout(None)
        response = self.request("recv", after=after, limit=limit, follow=True)
        while True:
            yield from _items(response, "messages")
            response = self._response()

    def ack(self, up_to: int) -> int:
        return int(str(self.request("ack", up_to=up_to)["freed"]))

    def receipts(self, after: int = 0, limit: int = 100) -> list[Json]:
        return _items(self.request("receipts", after=after, limit=limit), "receipts")

    def ack_receipts(self, up_to: int) -> int:
        return int(str(self.request("ack_receipts", up_to=up_to)["freed"]))

    def revoke(self, notice: bytes) -> Json:
        """Hand the node a revocation notice (`tawan mission revoke` writes them)."""
        return self.request("revoke", notice_b64=base64.b64encode(notice).decode())

    def status(self) -> Json:
        status = self.request("status")["status"]
        if not isinstance(status, dict):
            raise ClientError("status response without a status object")
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
        return str((await self.request("send", **fields))["mid"])

    async def recv(self, after: int = 0, limit: int = 100) -> list[Json]:
        return _items(await self.request("recv", after=after, limit=limit), "messages")

    async def follow(self, after: int = 0, limit: int = 100) -> AsyncGenerator[Json, None]:
        """Like `Client.follow`; wrap it in `contextlib.aclosing` to stop early."""
        response = await self.request("recv", after=after, limit=limit, follow=True)
        while True:
            for message in _items(response, "messages"):
                yield message
            response = await self._response()

    async def ack(self, up_to: int) -> int:
        return int(str((await self.request("ack", up_to=up_to))["freed"]))

    async def status(self) -> Json:
        status = (await self.request("status"))["status"]
        if not isinstance(status, dict):
            raise ClientError("status response without a status object")
        return status
