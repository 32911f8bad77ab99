"""Two trio links joined by a BearerModel: frames arrive when, and if, the model says.

The trio face of `transports.model`, for runtime and daemon tests that want a real bearer's
rate, delay and loss under trio's clock (MockClock: virtual time) without sockets. Like the
memory link, each end reports PeerUp when both run and PeerDown when the other stops; unlike
it, a frame travels: it is put on the air by `send` at once (the model queues it behind the
sender's earlier frames) and handed to the far end's `events` at its arrival time. A lost
frame, or one sent while the model is down, vanishes without a word, as on a radio.
"""

from __future__ import annotations

import heapq
import itertools
import math

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    DROP_CLOSED,
    FrameReceived,
)
from transports.model import BearerModel
from transports.paired import PairedLink


class EmulatedLink(PairedLink["EmulatedLink"]):
    """One end of an emulated bearer; its peer is the other end's `address`, "emu:<name>".

    Both ends share one model: its conditions hold for both directions, and each end's
    frames serialise on their own (full duplex), keyed by the link's name.
    """

    pairing = "emulated_link_pair()"

    def __init__(
        self, name: str, model: BearerModel, *, event_buffer: int = DEFAULT_EVENT_BUFFER
    ) -> None:
        super().__init__(name, model.profile, f"emu:{name}", event_buffer=event_buffer)
        self.model = model
        self._in_air: list[tuple[float, int, bytes]] = []  # frames on their way to this end
        self._order = itertools.count()  # equal arrival times land in the order sent
        self._wake = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        other = self._require_other()
        self._claim_run()
        self._running = True
        self._local_address = self.address
        other._changed.set()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._follow, other)
                nursery.start_soon(self._land, other)
                task_status.started()
        finally:
            self._running = False
            self._peer_up = False
            self._local_address = None
            self._in_air.clear()
            self._event_send.close()
            other._changed.set()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        self.send_nowait(peer, frame)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def send_nowait(self, peer: str, frame: bytes) -> bool:
        """Put the frame on the air now; it never waits (the model queues it)."""
        self._check_frame(frame)
        other = self._require_other()
        self._check_peer(peer, other)
        data = bytes(frame)  # the receiver must not see later changes to a caller's buffer
        for arrival in self.model.send(self.name, len(data), trio.current_time()):
            heapq.heappush(other._in_air, (arrival, next(other._order), data))
            other._wake.set()
        self._count_sent(data)
        return True

    async def _land(self, other: EmulatedLink) -> None:
        """Hand each frame to `events` at its arrival time; frames from a peer that went
        down meanwhile are dropped with its connection."""
        while True:
            self._wake = trio.Event()
            if self._in_air and self._in_air[0][0] <= trio.current_time():
                _, _, data = heapq.heappop(self._in_air)
                if self._peer_up:
                    await self._hand_over(FrameReceived(other.address, data))
                continue
            with trio.move_on_at(self._in_air[0][0] if self._in_air else math.inf):
                await self._wake.wait()

    async def _hand_over(self, event: FrameReceived) -> None:
        """Queue a frame that arrived, counted as it is queued (a consumer reading it at once
        sees the counters include it); a full buffer holds it back, as a busy host would."""
        try:
            self._event_send.send_nowait(event)
        except trio.WouldBlock:
            if await self._emit(event):
                self._count_received(event.data)
        except trio.BrokenResourceError:
            self._count_drop(DROP_CLOSED)  # the consumer closed `events`: nobody is listening
        else:
            self._count_received(event.data)


def emulated_link_pair(
    model: BearerModel,
    *,
    names: tuple[str, str] = ("a", "b"),
    event_buffer: int = DEFAULT_EVENT_BUFFER,
) -> tuple[EmulatedLink, EmulatedLink]:
    """Two links joined by `model`; run both, then each sends to the other's `address`."""
    if names[0] == names[1]:
        raise ValueError(f"emulated_link_pair: expected two different names, found {names}")
    first = EmulatedLink(names[0], model, event_buffer=event_buffer)
    second = EmulatedLink(names[1], model, event_buffer=event_buffer)
    first._other, second._other = second, first
    return first, second
