"""UDP links: one port, many peers, one frame per datagram.

UDP suits IP bearers whose modems already packetise (SATCOM terminals, the tactical WAN): no
head-of-line blocking and no connection state to lose when the bearer flaps. There is no
connection, so a configured peer is "up" as soon as the socket is bound; whether anyone
answers is the node's business (its hellos and acknowledgements).

A UDP port is open to anyone who can reach it, so receiving is built to survive a flood:

- Each configured peer gets a socket of its own on the same port, connected to the peer's
  address (SO_REUSEPORT), so the kernel sorts datagrams by source into separate receive
  buffers. Junk from elsewhere fills the catch-all socket's buffer, not a peer's, and the
  sockets are read in turn, a batch each, so no source can starve the others.
- Senders that are no configured peer share one token bucket of reads a second; when it is
  empty the catch-all socket is not read at all and the kernel drops for us, at no cost to
  the node. They may also fill at most part of the event buffer.
- The node's screen (`set_screen`) looks at each datagram in the receive buffer, before any
  copy, queueing or crypto, and drops what cannot be a frame of a known sender.
- A screen that knows how frames begin (`transports.link.PrefixScreen`) is also compiled
  into a kernel filter on each configured peer's socket (`transports.sockfilter`, Linux):
  junk that spoofs a peer's address is then dropped before it takes room in that peer's
  buffer, where it would otherwise crowd out the peer's genuine frames faster than the node
  can read and refuse it.
- Every drop is counted by reason (`drops`), and `drop_counts()` adds the datagrams the
  kernel dropped (Linux, SO_MEMINFO): for a full receive buffer, or on a socket with the
  kernel filter, refused by it or for a full buffer (the kernel counts both as one).
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
import sys
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import trio

from transports.budget import TokenBucket
from transports.link import (
    DEFAULT_EVENT_BUFFER,
    DROP_CLOSED,
    FrameReceived,
    Link,
    PeerDown,
    PeerUnavailable,
    PeerUp,
    PrefixScreen,
    Screen,
    format_endpoint,
    parse_endpoint,
)
from transports.profile import BearerProfile
from transports.sockfilter import attach_prefix_filter, detach_filter

_log = logging.getLogger("tawan.transports.udp")

LEARNED_PEERS_MAX = 1024
"""Unconfigured senders remembered so the node can answer them; bounded against floods."""

_SockAddr = tuple[Any, ...]

SOCKET_BUFFER_BYTES = 4 << 20
"""Asked for each socket's receive and send buffer: room for a burst between two turns of the
event loop. The kernel caps it (Linux: net.core.rmem_max); what it grants is reported."""
RECEIVE_BATCH = 64
"""Datagrams read from one socket before the others (and the node) get their turn."""
STRANGER_RATE = 2000.0
"""Datagrams a second, all of them together, taken from senders that are no configured peer
(a peer configured without an address is learnt this way)."""
STRANGER_BURST = 256
STRANGER_EVENT_SHARE = 0.5
"""Part of the event buffer that frames from unconfigured senders may fill."""

DROP_OVERSIZE = "oversize"
DROP_STRANGER_LIMIT = "stranger-limit"
DROP_STRANGER_BACKLOG = "stranger-backlog"
DROP_EVENT_BUFFER_FULL = "event-buffer-full"
DROP_KERNEL = "kernel-buffer-full"
DROP_KERNEL_SCREEN = "kernel-screen"

_SO_MEMINFO = 55  # Linux: per-socket memory figures, the last of them the drops
_MEMINFO = struct.Struct("9I")
_MEMINFO_DROPS = 8


class UdpLink(Link):
    """A UDP socket bound to `bind` ("host:port", port 0 for any) sending to `peers`.

    Frames from a configured peer carry its configured name; frames from anyone else carry
    "ip:port", and that sender may be answered while it stays among the recent ones. What
    cannot be taken (over the MTU, refused by the screen, over the strangers' budget, the
    event buffer full) is dropped and counted by reason: UDP cannot push back on the sender,
    and blocking here would only move the loss into the kernel's socket buffer.
    """

    DROP_REASONS: ClassVar[tuple[str, ...]] = (
        DROP_CLOSED, DROP_OVERSIZE, DROP_STRANGER_LIMIT, DROP_STRANGER_BACKLOG,
        DROP_EVENT_BUFFER_FULL, DROP_KERNEL, DROP_KERNEL_SCREEN,
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        bind: str,
        peers: Sequence[str],
        *,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
        stranger_rate: float = STRANGER_RATE,
        stranger_burst: int = STRANGER_BURST,
        demultiplex: bool = True,
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
        self._bound: _SockAddr = ()
        self._screen: Screen | None = None
        self._strangers = TokenBucket(stranger_rate, stranger_burst)
        self._stranger_events = max(1, int(event_buffer * STRANGER_EVENT_SHARE))
        self._demultiplex = demultiplex and hasattr(socket, "SO_REUSEPORT")
        self._nursery: trio.Nursery | None = None
        self._own_sockets: dict[str, tuple[socket.socket, trio.CancelScope]] = {}
        self._retired_kernel_drops = {DROP_KERNEL: 0, DROP_KERNEL_SCREEN: 0}
        self._kernel_screened: weakref.WeakSet[socket.socket] = weakref.WeakSet()

    def set_screen(self, screen: Screen | None) -> None:
        self._screen = screen
        for own_peer, (own, _) in self._own_sockets.items():
            self._kernel_screen(own, own_peer)

    def drop_counts(self) -> dict[str, int]:
        counts = super().drop_counts()
        sockets = [own for own, _ in self._own_sockets.values()]
        if self._raw is not None:
            sockets.append(self._raw)
        counts.update(self._retired_kernel_drops)
        for sock in sockets:
            counts[self._kernel_reason(sock)] += _kernel_drops(sock)
        return counts

    def _kernel_reason(self, sock: socket.socket) -> str:
        return DROP_KERNEL_SCREEN if sock in self._kernel_screened else DROP_KERNEL

    def _kernel_screen(self, sock: socket.socket, peer: str | None) -> None:
        """Put the screen's prefixes in the kernel for a configured peer's socket (or take
        them off). Not on the strangers' socket: reading it is budgeted already, so its junk
        costs the node little, and the screen there names what the junk is."""
        screen = self._screen
        prefixes = screen.prefixes(peer) if isinstance(screen, PrefixScreen) else ()
        if prefixes and attach_prefix_filter(sock, prefixes):
            self._kernel_screened.add(sock)
        elif sock in self._kernel_screened:
            detach_filter(sock)
            self._kernel_screened.discard(sock)

    @property
    def demultiplexing(self) -> bool:
        """Whether configured peers are read from sockets of their own (see the module)."""
        return self._demultiplex

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        try:
            with await self._open_socket() as sock:
                resolved = [(peer, await self._resolve(peer)) for peer in self._configured]
                self._sock = sock
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    task_status.started()
                    for peer, addr in resolved:
                        if addr is not None:
                            await self._peer_is_up(peer, addr)
                    assert self._raw is not None
                    await self._receive_loop(self._raw, None, paced=self._demultiplex)
        finally:
            self._nursery = None
            self._sock = None
            self._raw = None
            self._local_address = None
            self._event_send.close()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
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
        own = self._own_sockets.pop(peer, None)
        if own is not None:
            own[1].cancel()  # its reader closes the socket on the way out
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
        self.receive_buffer_bytes = _size_buffers(raw)
        sock = trio.socket.from_stdlib_socket(raw)
        try:
            if self._demultiplex:
                sockaddr = self._claim_port(raw, family, sockaddr)
            await sock.bind(sockaddr)
        except OSError as exc:  # say where: "address in use" alone leaves the operator guessing
            sock.close()
            raise OSError(exc.errno, f"UDP bind {where}: {exc.strerror or exc}") from exc
        except BaseException:
            sock.close()
            raise
        self._raw = raw
        self._family = family
        self._bound = tuple(sock.getsockname())
        self._local_address = format_endpoint(self._bound[0], self._bound[1])
        _log.info(
            "link %s: bound UDP %s, receive buffer %d bytes%s", self.name, self._local_address,
            self.receive_buffer_bytes, ", a socket per configured peer" if self._demultiplex
            else "",
        )  # fmt: skip
        if self.receive_buffer_bytes < SOCKET_BUFFER_BYTES:
            _log.warning(
                "link %s: receive buffer %d bytes, asked %d: raise the kernel's cap "
                "(net.core.rmem_max) or a burst will overflow it",
                self.name, self.receive_buffer_bytes, SOCKET_BUFFER_BYTES,
            )  # fmt: skip
        return sock

    def _claim_port(self, raw: socket.socket, family: int, sockaddr: _SockAddr) -> _SockAddr:
        """Bind a plain socket first: a port already in use, even by a socket that shares
        ports, fails here as it would without SO_REUSEPORT; and port 0 becomes a port that
        nobody holds. Only then does the real socket share it with the per-peer sockets."""
        probe = socket.socket(family, socket.SOCK_DGRAM)
        try:
            probe.bind(sockaddr)
            claimed = tuple(probe.getsockname())
        finally:
            probe.close()
        try:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError as exc:  # a platform without it: one socket for everyone
            _log.info("link %s: no SO_REUSEPORT (%s), one socket for all peers", self.name, exc)
            self._demultiplex = False
        return claimed

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
        owner = self._addr_peer.setdefault((addr[0], addr[1]), peer)
        nursery = self._nursery
        wanted = owner == peer and self._demultiplex and peer not in self._own_sockets
        if wanted and nursery is not None and (own := self._connected_socket(peer, addr)):
            scope = await nursery.start(self._serve_own_socket, peer, own)
            self._own_sockets[peer] = (own, scope)
        await self._emit(PeerUp(peer))

    def _connected_socket(self, peer: str, addr: _SockAddr) -> socket.socket | None:
        """A socket on our port that the kernel gives only `addr`'s datagrams."""
        own = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            own.setblocking(False)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            _size_buffers(own)
            self._kernel_screen(own, peer)
            own.bind(self._bound)
            own.connect(addr)
        except OSError as exc:
            own.close()
            _log.warning(
                "link %s: no socket of its own for %s (%s): read with the others",
                self.name, format_endpoint(addr[0], addr[1]), exc,
            )  # fmt: skip
            return None
        return own

    async def _serve_own_socket(
        self, peer: str, own: socket.socket, *, task_status: trio.TaskStatus[trio.CancelScope]
    ) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            try:
                await self._receive_loop(own, peer, paced=False)
            finally:
                self._retired_kernel_drops[self._kernel_reason(own)] += _kernel_drops(own)
                trio.lowlevel.notify_closing(own)
                own.close()

    async def _receive_loop(self, raw: socket.socket, peer: str | None, *, paced: bool) -> None:
        """Read `raw` in batches; `peer` names every sender when the socket is connected.
        `paced`: the socket has only strangers, read no faster than their budget."""
        # One byte over the MTU tells an oversize datagram from a full-size one; the kernel
        # truncates the rest, so a hostile sender cannot make us allocate more.
        buffer = bytearray(self.profile.mtu + 1)
        while True:
            batch = RECEIVE_BATCH
            if paced:
                now = trio.current_time()
                batch = min(batch, self._strangers.available(now))
                if batch == 0:
                    # Not reading costs nothing; the kernel drops when the buffer is full.
                    await trio.sleep(self._strangers.wait(now))
                    continue
            # Always a scheduling point, even when readable: the other sockets get their turn.
            await trio.lowlevel.wait_readable(raw)
            for _ in range(batch):
                try:
                    size, addr = raw.recvfrom_into(buffer)
                except (BlockingIOError, InterruptedError):
                    break
                except (ConnectionResetError, ConnectionRefusedError) as exc:
                    # Some platforms report an earlier ICMP port-unreachable on the next read.
                    _log.debug("link %s: ignoring %s", self.name, exc)
                    continue
                self._on_datagram(buffer, size, addr, peer)

    def _on_datagram(
        self, buffer: bytearray, size: int, addr: _SockAddr, peer: str | None
    ) -> None:
        if size > self.profile.mtu:
            self._drop(addr, DROP_OVERSIZE)
            return
        if peer is None:
            peer = self._addr_peer.get((addr[0], addr[1]))
            if peer is None and not self._strangers.take(trio.current_time()):
                self._drop(addr, DROP_STRANGER_LIMIT)
                return
        screen = self._screen
        if screen is not None and (reason := screen(peer, buffer, size)) is not None:
            self._drop(addr, reason)
            return
        if peer is None:
            if self._event_send.statistics().current_buffer_used >= self._stranger_events:
                self._drop(addr, DROP_STRANGER_BACKLOG)  # room kept for configured peers
                return
            peer = self._learn(addr)
        data = bytes(buffer[:size])
        try:
            self._event_send.send_nowait(FrameReceived(peer, data))
        except trio.WouldBlock:
            self._drop(addr, DROP_EVENT_BUFFER_FULL)
            return
        except trio.BrokenResourceError:
            self._count_drop(DROP_CLOSED)
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
        # Debug level: a flood of junk must not become a flood of log lines; the counters
        # are what monitoring watches.
        self._count_drop(reason)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("link %s: dropped datagram from %s: %s", self.name, addr[:2], reason)


def _size_buffers(sock: socket.socket) -> int:
    """Ask for SOCKET_BUFFER_BYTES each way (beyond the kernel's cap where privileged);
    returns the receive buffer granted, as the kernel reports it."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
    granted = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    if granted < SOCKET_BUFFER_BYTES and force is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER_BYTES)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES):
                raise
        granted = int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    return granted


def _kernel_drops(sock: socket.socket) -> int:
    """Datagrams the kernel dropped on `sock` (full buffer); 0 where it cannot say."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        info = sock.getsockopt(socket.SOL_SOCKET, _SO_MEMINFO, _MEMINFO.size)
    except OSError:
        return 0
    if len(info) < _MEMINFO.size:
        return 0
    return int(_MEMINFO.unpack(info)[_MEMINFO_DROPS])
