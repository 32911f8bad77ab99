"""Two in-process link ends joined to each other: what the memory and emulated links share.

Each end reports PeerUp once both run and PeerDown when the other stops, from its own task,
and sends only to the other end's `address`.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    Link,
    LinkError,
    PeerDown,
    PeerUnavailable,
    PeerUp,
)
from transports.profile import BearerProfile

_Other = TypeVar("_Other")


class PairedLink(Link, Generic[_Other]):
    """One end of a pair; `_other` is set by the pairing function (`*_link_pair`)."""

    pairing = "a *_link_pair() function"

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        address: str,
        *,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        self.address = address
        self._other: _Other | None = None
        self._running = False
        self._peer_up = False
        self._changed = trio.Event()

    def _require_other(self) -> _Other:
        if self._other is None:
            raise LinkError(f"link {self.name}: not paired; use {self.pairing}")
        return self._other

    def _check_peer(self, peer: str, other: PairedLink[_Other]) -> None:
        if peer != other.address:
            raise PeerUnavailable(self.name, peer, f"unknown, the only peer is {other.address}")
        if not (self._peer_up and other._peer_up):
            raise PeerUnavailable(self.name, peer, "not connected")

    async def _follow(self, other: PairedLink[_Other]) -> None:
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
