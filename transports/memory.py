"""In-process links: two MemoryLinks joined like the two ends of one TCP connection.

For tests of the runtime and daemon that want real trio tasks but no sockets (so they can run
under MockClock): reliable, in order, with backpressure, PeerUp when both ends run and
PeerDown when one stops. Lossy, delayed bearers are the emulator's business, not this.
"""

from __future__ import annotations

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    FrameReceived,
    Link,
    LinkError,
    PeerDown,
    PeerUnavailable,
    PeerUp,
)
from transports.profile import BearerProfile


class MemoryLink(Link):
    """One end of an in-process pair; its peer is the other end's `address`, "mem:<name>"."""

    def __init__(
        self, name: str, profile: BearerProfile, *, event_buffer: int = DEFAULT_EVENT_BUFFER
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        self.address = f"mem:{name}"
        self._other: MemoryLink | None = None
        self._running = False
        self._peer_up = False
        self._changed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        other = self._require_other()
        self._claim_run()
        self._running = True
        self._local_address = self.address
        other._changed.set()
        try:
            task_status.started()
            await self._follow(other)
        finally:
            self._running = False
            self._peer_up = False
            self._local_address = None
            self._event_send.close()
            other._changed.set()

    async def send(self, peer: str, frame: bytes) -> None:
        self._check_frame(frame)
        other = self._require_other()
        if peer != other.address:
            raise PeerUnavailable(self.name, peer, f"unknown, the only peer is {other.address}")
        if not (self._peer_up and other._peer_up):
            raise PeerUnavailable(self.name, peer, "not connected")
        data = bytes(frame)  # the receiver must not see later changes to a caller's buffer
        try:
            await other._event_send.send(FrameReceived(self.address, data))
        except trio.ClosedResourceError as exc:
            raise PeerUnavailable(self.name, peer, "peer stopped") from exc
        except trio.BrokenResourceError:
            other.dropped_frames += 1  # the far consumer closed its events, as with TCP
        else:
            other._count_received(data)
        self._count_sent(data)

    def _require_other(self) -> MemoryLink:
        if self._other is None:
            raise LinkError(f"link {self.name}: not paired; use memory_link_pair()")
        return self._other

    async def _follow(self, other: MemoryLink) -> None:
        """Mirror the other end's state as PeerUp/PeerDown from this link's own task.

        The PeerUp is queued before `_peer_up` is set, and the far end only sends once both
        ends are up, so a frame never overtakes the PeerUp announcing its sender.
        """
        while True:
            self._changed = trio.Event()
            if other._running and not self._peer_up:
                await self._emit(PeerUp(other.address))
                self._peer_up = True
            elif not other._running and self._peer_up:
                self._peer_up = False
                await self._emit(PeerDown(other.address))
            else:
                await self._changed.wait()


def memory_link_pair(
    profile: BearerProfile,
    *,
    names: tuple[str, str] = ("a", "b"),
    event_buffer: int = DEFAULT_EVENT_BUFFER,
) -> tuple[MemoryLink, MemoryLink]:
    """Two links joined to each other; run both, then each sends to the other's `address`."""
    if names[0] == names[1]:
        raise ValueError(f"memory_link_pair: expected two different names, found {names}")
    first = MemoryLink(names[0], profile, event_buffer=event_buffer)
    second = MemoryLink(names[1], profile, event_buffer=event_buffer)
    first._other, second._other = second, first
    return first, second
