"""TCP links: length-prefixed frames over connections we dial or accept.

TCP suits wired and radio-relay bearers where a reliable byte stream is cheap, and hosts
behind firewalls that only let connections out. Each frame is a 2-byte big-endian length
then the frame; the length may not exceed the profile's MTU (which is at most 65507, so it
always fits). Dialed peers are redialed forever with jittered exponential backoff, so a cut
cable heals without the node noticing more than a PeerDown and a PeerUp.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    FrameReceived,
    Link,
    PeerDown,
    PeerUnavailable,
    PeerUp,
    format_endpoint,
    parse_endpoint,
)
from transports.profile import BearerProfile

_log = logging.getLogger("tawan.transports.tcp")

LENGTH_PREFIX = 2
_READ_SIZE = 65536


class FramingError(Exception):
    """The peer's byte stream cannot be split into frames; the connection must go."""


def encode_frame(frame: bytes) -> bytes:
    """Prefix `frame` with its length, as the peer's FrameDecoder expects."""
    return len(frame).to_bytes(LENGTH_PREFIX, "big") + frame


class FrameDecoder:
    """Splits a TCP byte stream into frames, whatever the chunking (no I/O here).

    The buffer never holds more than one frame plus one read, because a length over `mtu` is
    refused before its body is awaited.
    """

    def __init__(self, mtu: int) -> None:
        self._mtu = mtu
        self._buffer = bytearray()
        self._start = 0

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_frame(self) -> bytes | None:
        """The next whole frame, None until more bytes arrive; FramingError on a bad length."""
        available = len(self._buffer) - self._start
        if available >= LENGTH_PREFIX:
            head = self._start
            size = int.from_bytes(self._buffer[head : head + LENGTH_PREFIX], "big")
            if size > self._mtu:
                raise FramingError(f"length prefix {size}, expected at most mtu={self._mtu}")
            if available >= LENGTH_PREFIX + size:
                self._start = head + LENGTH_PREFIX + size
                return bytes(self._buffer[head + LENGTH_PREFIX : self._start])
        del self._buffer[: self._start]  # compact once per read, not once per frame
        self._start = 0
        return None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held; non-zero at EOF means a truncated frame."""
        return len(self._buffer) - self._start


class Backoff:
    """Redial delays: `initial` doubling up to `maximum`, each scaled by a random factor in
    [0.5, 1.0] so that links which lost the same peer do not all redial in the same instant.
    """

    def __init__(self, rng: random.Random, initial: float = 0.1, maximum: float = 5.0) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(
                f"Backoff: expected 0 < initial <= maximum, found {initial=} {maximum=}"
            )
        self._rng = rng
        self._initial = initial
        self._maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = self._next * self._rng.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self._maximum)
        return delay

    def reset(self) -> None:
        self._next = self._initial


@dataclass(eq=False)
class _Connection:
    stream: trio.SocketStream
    send_lock: trio.Lock = field(default_factory=trio.Lock)
    reader: trio.CancelScope = field(default_factory=trio.CancelScope)


class TcpLink(Link):
    """Listens on `listen` ("host:port", or None) and dials each of `connect`.

    Dialed peers are named by their configured "host:port"; accepted connections are named
    "tcp-in:N" with N increasing, since a remote port says nothing about who is calling (the
    node learns that from the frames). A slow consumer of `events` stops the reading, and TCP
    flow control then slows the sender: nothing is dropped.
    """

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        listen: str | None,
        connect: Sequence[str],
        *,
        rng: random.Random | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 10.0,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        if listen is None and not connect:
            raise ValueError(f"link {name}: expected a listen address or peers to connect to")
        self._listen = None if listen is None else parse_endpoint(listen, f"link {name}: listen")
        self._dial = {peer: parse_endpoint(peer, f"link {name}: connect") for peer in connect}
        self._rng = rng if rng is not None else random.Random()
        Backoff(self._rng, backoff_initial, backoff_max)  # validate now, not at first failure
        self._backoff = (backoff_initial, backoff_max)
        self._connect_timeout = connect_timeout
        self._connections: dict[str, _Connection] = {}
        self._inbound_numbers = itertools.count(1)
        self.malformed_streams = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        try:
            # Bound outside the nursery, so "address in use" reaches the caller as a plain
            # OSError rather than inside an exception group.
            listeners = await self._open_listeners()
            async with trio.open_nursery() as nursery:
                if listeners:
                    await nursery.start(trio.serve_listeners, self._accepted, listeners)
                for peer in self._dial:
                    nursery.start_soon(self._dial_forever, peer)
                task_status.started()
        finally:
            self._local_address = None
            self._event_send.close()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        self._check_frame(frame)
        conn = self._connections.get(peer)
        if conn is None:
            raise PeerUnavailable(self.name, peer, "not connected")
        try:
            async with conn.send_lock:
                await conn.stream.send_all(encode_frame(frame))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            conn.reader.cancel()  # the reader may not notice a half-dead connection soon
            raise PeerUnavailable(self.name, peer, f"connection lost: {exc}") from exc
        self._count_sent(frame)

    @property
    def connected_peers(self) -> list[str]:
        return list(self._connections)

    async def _open_listeners(self) -> list[trio.SocketListener]:
        if self._listen is None:
            return []
        host, port = self._listen
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:  # say where: "address in use" alone leaves the operator guessing
            where = format_endpoint(host, port)
            raise OSError(exc.errno, f"TCP listen {where}: {exc.strerror or exc}") from exc
        bound = listeners[0].socket.getsockname()
        self._local_address = format_endpoint(bound[0], bound[1])
        _log.info("link %s: listening on TCP %s", self.name, self._local_address)
        return listeners

    async def _accepted(self, stream: trio.SocketStream) -> None:
        peer = f"tcp-in:{next(self._inbound_numbers)}"
        try:
            remote = stream.socket.getpeername()
            _log.info("link %s: accepted %s from %s", self.name, peer, remote[:2])
        except OSError:
            pass  # already reset by the peer; the reader will find out
        await self._serve(peer, stream)

    async def _dial_forever(self, peer: str) -> None:
        host, port = self._dial[peer]
        backoff = Backoff(self._rng, *self._backoff)
        while True:
            stream = None
            with trio.move_on_after(self._connect_timeout):
                try:
                    stream = await trio.open_tcp_stream(host, port)
                except OSError as exc:
                    _log.debug("link %s: dialing %s failed: %s", self.name, peer, exc)
            if stream is not None:
                _log.info("link %s: connected to %s", self.name, peer)
                connected_at = trio.current_time()
                await self._serve(peer, stream)
                if trio.current_time() - connected_at >= self._backoff[1]:
                    backoff.reset()  # a connection that held was no flapping peer
            await trio.sleep(backoff.next_delay())

    async def _serve(self, peer: str, stream: trio.SocketStream) -> None:
        """Announce the connection, read frames until it ends, then announce its loss."""
        conn = _Connection(stream)
        self._connections[peer] = conn
        try:
            # trio sets TCP_NODELAY already; say so here, since small frames must not wait
            # for Nagle. If the connection already died, reading will say so.
            with contextlib.suppress(OSError):
                stream.setsockopt(trio.socket.IPPROTO_TCP, trio.socket.TCP_NODELAY, True)
            await self._emit(PeerUp(peer))
            reason = "send failed"
            with conn.reader:
                reason = await self._read_frames(peer, stream)
        finally:
            del self._connections[peer]
            await trio.aclose_forcefully(stream)
        _log.info("link %s: %s down: %s", self.name, peer, reason)
        await self._emit(PeerDown(peer))

    async def _read_frames(self, peer: str, stream: trio.SocketStream) -> str:
        """Deliver frames until the stream ends; return why it ended."""
        decoder = FrameDecoder(self.profile.mtu)
        while True:
            try:
                data = await stream.receive_some(_READ_SIZE)
            except trio.BrokenResourceError as exc:
                return f"connection broken: {exc.__cause__ or exc}"
            if not data:
                left = decoder.buffered
                return f"closed by peer mid-frame ({left} bytes)" if left else "closed by peer"
            decoder.feed(data)
            try:
                while (frame := decoder.next_frame()) is not None:
                    if await self._emit(FrameReceived(peer, frame)):
                        self._count_received(frame)
            except FramingError as exc:
                self.malformed_streams += 1
                _log.warning("link %s: closing %s, malformed stream: %s", self.name, peer, exc)
                return f"malformed stream: {exc}"
