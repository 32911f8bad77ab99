"""The Link interface every bearer implements, its events, errors and endpoint strings.

A node drives every link the same way: `run()` it in a nursery, `send()` frames to peers,
read `events`. It cannot tell UDP from TCP from an emulated radio, which is what lets the
emulator run the real node and lets a new bearer be added without touching the node.
"""

from __future__ import annotations

import abc
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeAlias, runtime_checkable

import trio

from transports.profile import BearerProfile

DEFAULT_EVENT_BUFFER = 1024
"""Events a link holds for a slow consumer before it drops (UDP) or pushes back (TCP)."""


@dataclass(frozen=True, slots=True)
class FrameReceived:
    """A whole frame arrived from transport endpoint `peer`."""

    peer: str
    data: bytes


@dataclass(frozen=True, slots=True)
class PeerUp:
    """`peer` can now be sent to (a connection is up, or a UDP peer is configured)."""

    peer: str


@dataclass(frozen=True, slots=True)
class PeerDown:
    """`peer` can no longer be sent to until the next PeerUp."""

    peer: str


LinkEvent: TypeAlias = FrameReceived | PeerUp | PeerDown

Screen: TypeAlias = Callable[[str | None, bytearray, int], str | None]
"""A cheap look at a datagram before it is copied or queued: (configured peer or None for
any other sender, buffer, size) -> None to take it, or a short drop reason (a metric label).
The node supplies it, since only it knows what a frame looks like; it must not keep the
buffer, which is reused for the next datagram."""


@runtime_checkable
class PrefixScreen(Protocol):
    """A screen that can also say how every datagram it might take begins, so that a link
    able to filter in the kernel (Linux UDP) drops the rest before it takes buffer room."""

    def __call__(self, peer: str | None, buffer: bytearray, size: int, /) -> str | None: ...

    def prefixes(self, peer: str | None, /) -> Collection[bytes]:
        """The prefixes for datagrams from configured peer `peer` (None: anyone else)."""
        ...


DROP_CLOSED = "closed"
"""Frames that arrived after the consumer closed `events`: nobody is listening."""


class LinkError(Exception):
    """Base of every error a link raises to its caller."""


class FrameTooLarge(LinkError):
    """The caller tried to send more than the bearer's MTU; fragmenting is the node's job."""

    def __init__(self, link: str, size: int, mtu: int) -> None:
        super().__init__(f"link {link}: frame of {size} bytes, expected at most mtu={mtu}")
        self.size = size
        self.mtu = mtu


class PeerUnavailable(LinkError):
    """The peer is unknown, down, or the send failed; the node should try another route."""

    def __init__(self, link: str, peer: str, reason: str) -> None:
        super().__init__(f"link {link}: peer {peer!r} unavailable: {reason}")
        self.peer = peer
        self.reason = reason


class Link(abc.ABC):
    """One bearer attachment: sends frames to peers, reports frames and peer changes.

    A link is run once: `run()` serves until cancelled, then closes `events`, so a consumer
    iterating over them ends cleanly. Counters count payload bytes, not framing overhead.
    Every frame or datagram dropped before the consumer saw it is counted by reason in
    `drops` (and in total in `dropped_frames`); `drop_counts()` adds what the operating
    system dropped, where the transport can read it.
    """

    DROP_REASONS: ClassVar[tuple[str, ...]] = (DROP_CLOSED,)
    """The reasons this link type may give, reported at 0 before the first drop."""

    def __init__(
        self, name: str, profile: BearerProfile, *, event_buffer: int = DEFAULT_EVENT_BUFFER
    ) -> None:
        if not name:
            raise ValueError(f"Link.name: expected a non-empty string, found {name!r}")
        if event_buffer < 1:
            raise ValueError(f"Link.event_buffer: expected an integer >= 1, found {event_buffer}")
        self.name = name
        self.profile = profile
        self._event_send, self.events = trio.open_memory_channel[LinkEvent](event_buffer)
        self._local_address: str | None = None
        self._has_run = False
        self.frames_sent = 0
        self.frames_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.dropped_frames = 0
        self.drops: Counter[str] = Counter()
        self.receive_buffer_bytes: int | None = None  # granted by the OS, where it applies

    @property
    def local_address(self) -> str:
        """The bound endpoint, e.g. "127.0.0.1:40123" when configured with port 0."""
        if self._local_address is None:
            raise LinkError(f"link {self.name}: not bound (not running, or dial-only)")
        return self._local_address

    @abc.abstractmethod
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Open sockets, call `task_status.started()` once bound, serve until cancelled."""

    @abc.abstractmethod
    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        """Send one frame to `peer` (a name from a PeerUp or FrameReceived).

        Raises FrameTooLarge over the MTU and PeerUnavailable when the peer is unknown or
        down, so the node can pick another route instead of losing the frame unseen.
        `precedence` is the frame's (`tawan.core.events.Transmit.precedence`, 0 ROUTINE to
        4 OVERRIDE): a transport whose radio serves frames by priority passes it on (STANAG
        5066's U_PDU priority), the others ignore it.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.profile.name}>"

    def _claim_run(self) -> None:
        """Refuse a second run(): the first one closed `events` when it ended."""
        if self._has_run:
            raise LinkError(f"link {self.name}: run() may be called only once")
        self._has_run = True

    def send_nowait(self, peer: str, frame: bytes) -> bool:
        """Send at once without yielding to the scheduler, if this link can; False means
        "use `send`" (not supported, or it would block). Raises like `send` otherwise.

        Datagram links implement it: a sendto on a non-blocking socket costs microseconds,
        a hop through a sender task costs a scheduler round.
        """
        del peer, frame
        return False

    def set_screen(self, screen: Screen | None) -> None:
        """Look at each datagram with `screen` before taking it; links that cannot (a byte
        stream, an emulated bearer) ignore it."""
        del screen

    def drop_counts(self) -> dict[str, int]:
        """Drops by reason, every known reason present (0 before its first drop)."""
        counts = dict.fromkeys(self.DROP_REASONS, 0)
        counts.update(self.drops)
        return counts

    def _count_drop(self, reason: str) -> None:
        self.dropped_frames += 1
        self.drops[reason] += 1

    def _check_frame(self, frame: bytes) -> None:
        if len(frame) > self.profile.mtu:
            raise FrameTooLarge(self.name, len(frame), self.profile.mtu)

    def _count_sent(self, frame: bytes) -> None:
        self.frames_sent += 1
        self.bytes_sent += len(frame)

    def _count_received(self, frame: bytes) -> None:
        self.frames_received += 1
        self.bytes_received += len(frame)

    async def _emit(self, event: LinkEvent) -> bool:
        """Queue an event, waiting while the buffer is full (backpressure); True if queued.

        A consumer that closed `events` has stopped listening; that is not the link's
        failure, so the event is discarded (frames counted as dropped).
        """
        try:
            await self._event_send.send(event)
        except trio.BrokenResourceError:
            if isinstance(event, FrameReceived):
                self._count_drop(DROP_CLOSED)
            return False
        return True


def parse_endpoint(text: str, where: str) -> tuple[str, int]:
    """Split "host:port" or "[v6addr]:port" into host and port; `where` names the setting."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{where}: expected 'host:port', found {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{where}: expected an IPv6 address in brackets, found {text!r}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{where}: expected a port in 0..65535, found {port_text!r}")
    return host, int(port_text)


def format_endpoint(host: str, port: int) -> str:
    """The inverse of parse_endpoint: brackets around IPv6 addresses (host names have no ':')."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
