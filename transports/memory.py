"""In-process links: two MemoryLinks joined like the two ends of one TCP connection.

For tests of the runtime and daemon that want real trio tasks but no sockets (so they can run
under MockClock): reliable, in order, with backpressure, PeerUp when both ends run and
PeerDown when one stops. Lossy, delayed bearers are the emulator's business, not this.
"""

from __future__ import annotations

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    DROP_CLOSED,
    FrameReceived,
    PeerUnavailable,
)
from transports.paired import PairedLink
from transports.profile import BearerProfile


class MemoryLink(PairedLink["MemoryLink"]):
    """One end of an in-process pair; its peer is the other end's `address`, "mem:<name>"."""

    pairing = "memory_link_pair()"

    def __init__(
        self, name: str, profile: BearerProfile, *, event_buffer: int = DEFAULT_EVENT_BUFFER
    ) -> None:
        super().__init__(name, profile, f"mem:{name}", event_buffer=event_buffer)

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

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        self._check_frame(frame)
        other = self._require_other()
        self._check_peer(peer, other)
        data = bytes(frame)  # the receiver must not see later changes to a caller's buffer
        try:
            await other._event_send.send(FrameReceived(self.address, data))
        except trio.ClosedResourceError as exc:
            raise PeerUnavailable(self.name, peer, "peer stopped") from exc
        except trio.BrokenResourceError:
            other._count_drop(DROP_CLOSED)  # the far consumer closed its events, as with TCP
        else:
            other._count_received(data)
        self._count_sent(data)


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
