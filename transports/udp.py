"""UDP links: one socket, many peers, one frame per datagram.

UDP suits IP bearers whose modems already packetise (SATCOM terminals, the tactical WAN): no
head-of-line blocking and no connection state to lose when the bearer flaps. There is no
connection, so a configured peer is "up" as soon as the socket is bound; whether anyone
answers is the node's business (its hellos and acknowledgements).
"""

from __future__ import annotations

import logging
import socket
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

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

_log = logging.getLogger("tawan.transports.udp")

LEARNED_PEERS_MAX = 1024
"""Unconfigured senders remembered so the node can answer them; bounded against floods."""

_SockAddr = tuple[Any, ...]


SOCKET_BUFFER_BYTES = 4 << 20
RECEIVE_BATCH = 64


class UdpLink(Link):
    """A UDP socket bound to `bind` ("host:port", port 0 for any) sending to `peers`.

    Frames from a configured peer carry its configured name; frames from anyone else carry
    "ip:port", and that sender may be answered while it stays among the recent ones. Datagrams
    over the MTU, and frames that find the event buffer full, are dropped and counted in
    `dropped_frames`: UDP cannot push back on the sender, and blocking here would only move
    the loss into the kernel's socket buffer.
    """

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        bind: str,
        peers: Sequence[str],
        *,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        self._bind = parse_endpoint(bind, f"link {name}: bind")
        for peer in peers:
            parse_endpoint(peer, f"link {name}: peer")
        self._configured: list[str] = list(dict.fromkeys(peers))
        self._peer_addr: dict[str, _SockAddr] = {}
        self._addr_peer: dict[tuple[Any, Any], str] = {}
        self._learned: OrderedDict[str, _SockAddr] = OrderedDict()
        self._sock: trio.socket.SocketType | None = None
        self._raw: socket.socket | None = None  # the same socket, for non-blocking calls
        self._family = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        try:
            with await self._open_socket() as sock:
                resolved = [(peer, await self._resolve(peer)) for peer in self._configured]
                self._sock = sock
                task_status.started()
                for peer, addr in resolved:
                    if addr is not None:
                        await self._peer_is_up(peer, addr)
                await self._receive_loop(sock)
        finally:
            self._sock = None
            self._raw = None
            self._local_address = None
            self._event_send.close()

    async def send(self, peer: str, frame: bytes) -> None:
        self._check_frame(frame)
        sock = self._sock
        if sock is None:
            raise PeerUnavailable(self.name, peer, "link not running")
        addr = self._peer_addr.get(peer) or self._learned.get(peer)
        if addr is None:
            raise PeerUnavailable(self.name, peer, "neither configured nor a recent sender")
        try:
            await sock.sendto(frame, addr)
        except (OSError, trio.ClosedResourceError) as exc:
            raise PeerUnavailable(self.name, peer, f"send failed: {exc}") from exc
        self._count_sent(frame)

    def send_nowait(self, peer: str, frame: bytes) -> bool:
        raw = self._raw
        if raw is None:
            return False
        self._check_frame(frame)
        addr = self._peer_addr.get(peer) or self._learned.get(peer)
        if addr is None:
            raise PeerUnavailable(self.name, peer, "neither configured nor a recent sender")
        try:
            raw.sendto(frame, addr)
        except BlockingIOError:
            return False  # the socket buffer is full: the caller queues it for `send`
        except OSError as exc:
            raise PeerUnavailable(self.name, peer, f"send failed: {exc}") from exc
        self._count_sent(frame)
        return True

    async def add_peer(self, peer: str) -> None:
        """Configure another peer at run time (PeerUp once resolved), e.g. a new neighbour."""
        parse_endpoint(peer, f"link {self.name}: peer")
        if peer not in self._configured:
            self._configured.append(peer)
        if self._sock is not None and peer not in self._peer_addr:
            addr = await self._resolve(peer)
            if addr is not None:
                await self._peer_is_up(peer, addr)

    async def remove_peer(self, peer: str) -> None:
        """Stop sending to a configured peer (PeerDown), e.g. a node revoked by the mission."""
        if peer in self._configured:
            self._configured.remove(peer)
        addr = self._peer_addr.pop(peer, None)
        if addr is not None:
            self._addr_peer.pop((addr[0], addr[1]), None)
            await self._emit(PeerDown(peer))

    async def _open_socket(self) -> trio.socket.SocketType:
        host, port = self._bind
        where = format_endpoint(host, port)
        try:
            infos = await trio.socket.getaddrinfo(
                host, port, type=trio.socket.SOCK_DGRAM, flags=trio.socket.AI_PASSIVE
            )
        except OSError as exc:
            raise OSError(exc.errno, f"UDP bind {where}: {exc.strerror or exc}") from exc
        family, _, _, _, sockaddr = infos[0]
        raw = socket.socket(family, socket.SOCK_DGRAM)
        raw.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # Room for a burst between two turns of the event loop; the kernel caps it.
            raw.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            await sock.bind(sockaddr)
        except OSError as exc:  # say where: "address in use" alone leaves the operator guessing
            sock.close()
            raise OSError(exc.errno, f"UDP bind {where}: {exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        self._raw = raw
        self._family = family
        bound = sock.getsockname()
        self._local_address = format_endpoint(bound[0], bound[1])
        _log.info("link %s: bound UDP %s", self.name, self._local_address)
        return sock

    async def _resolve(self, peer: str) -> _SockAddr | None:
        """Resolve once, at start: a field network has no DNS to consult per datagram."""
        host, port = parse_endpoint(peer, f"link {self.name}: peer")
        try:
            infos = await trio.socket.getaddrinfo(
                host, port, family=self._family, type=trio.socket.SOCK_DGRAM
            )
        except OSError as exc:
            _log.warning("link %s: peer %s not resolved, left down: %s", self.name, peer, exc)
            return None
        return tuple(infos[0][4])

    async def _peer_is_up(self, peer: str, addr: _SockAddr) -> None:
        self._peer_addr[peer] = addr
        self._addr_peer.setdefault((addr[0], addr[1]), peer)
        await self._emit(PeerUp(peer))

    async def _receive_loop(self, sock: trio.socket.SocketType) -> None:
        # One byte over the MTU tells an oversize datagram from a full-size one; the kernel
        # truncates the rest, so a hostile sender cannot make us allocate more.
        buffer = bytearray(self.profile.mtu + 1)
        while True:
            try:
                size, addr = await sock.recvfrom_into(buffer)
            except (ConnectionResetError, ConnectionRefusedError) as exc:
                # Some platforms report an earlier ICMP port-unreachable on the next receive.
                _log.debug("link %s: ignoring %s", self.name, exc)
                continue
            self._on_datagram(buffer, size, addr)
            self._drain_ready(buffer)

    def _drain_ready(self, buffer: bytearray) -> None:
        """Take what else the kernel already holds, without a scheduler round per datagram,
        so the node sees a burst as one batch (one commit, one acknowledgement frame)."""
        raw = self._raw
        for _ in range(RECEIVE_BATCH):
            if raw is None:
                return
            try:
                size, addr = raw.recvfrom_into(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except (ConnectionResetError, ConnectionRefusedError):
                continue
            self._on_datagram(buffer, size, addr)

    def _on_datagram(self, buffer: bytearray, size: int, addr: _SockAddr) -> None:
        if size > self.profile.mtu:
            self._drop(addr, f"datagram over mtu={self.profile.mtu}")
            return
        peer = self._addr_peer.get((addr[0], addr[1])) or self._learn(addr)
        data = bytes(buffer[:size])
        try:
            self._event_send.send_nowait(FrameReceived(peer, data))
        except trio.WouldBlock:
            self._drop(addr, "event buffer full (slow consumer)")
            return
        except trio.BrokenResourceError:
            self.dropped_frames += 1  # the consumer closed `events`: nobody is listening
            return
        self._count_received(data)

    def _learn(self, addr: _SockAddr) -> str:
        peer = format_endpoint(addr[0], addr[1])
        self._learned[peer] = addr
        self._learned.move_to_end(peer)
        if len(self._learned) > LEARNED_PEERS_MAX:
            self._learned.popitem(last=False)
        return peer

    def _drop(self, addr: _SockAddr, reason: str) -> None:
        # Debug level: a flood of junk must not become a flood of log lines; the counter is
        # what monitoring watches.
        self.dropped_frames += 1
        _log.debug("link %s: dropped datagram from %s: %s", self.name, addr[:2], reason)
