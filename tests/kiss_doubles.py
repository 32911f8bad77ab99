"""Test doubles for KISS links: a shared "air" and the TNCs that put stations on it.

`Air` is a radio channel without radio: every data frame one station transmits is decoded
and re-encoded (so framing faults on one side cannot leak through as bytes) and delivered to
every other station, as a net hears a transmission. Parameter commands are recorded, not
transmitted. A station is any trio Stream: `FakeTnc` serves the air on a TCP KISS port of
127.0.0.1, like Direwolf's KISSPORT; `PtyTnc` serves it on the master side of a pty, like
`direwolf -p`, and the link opens the slave path as a serial device.
"""

from __future__ import annotations

import os
import tty
from dataclasses import dataclass, field

import trio

from transports.kiss import Command, KissDecoder, KissFrame, kiss_encode


@dataclass(eq=False)
class _Station:
    stream: trio.abc.Stream
    lock: trio.Lock = field(default_factory=trio.Lock)


class Air:
    def __init__(self) -> None:
        self._stations: list[_Station] = []
        self._changed = trio.Event()
        self.commands: list[KissFrame] = []
        """Non-data frames the stations sent (TXDELAY, P, SlotTime, ...), in order."""
        self.transmitted: list[KissFrame] = []
        """Data frames put on the air, in order."""

    @property
    def station_count(self) -> int:
        return len(self._stations)

    async def wait_stations(self, count: int) -> None:
        while len(self._stations) != count:
            await self._changed.wait()

    async def serve(self, stream: trio.abc.Stream) -> None:
        """Put `stream` on the air until it ends (or this task is cancelled), then close it."""
        station = _Station(stream)
        self._join(station)
        decoder = KissDecoder()
        try:
            while data := await stream.receive_some(4096):
                for frame in decoder.feed(data):
                    if frame.command == Command.DATA:
                        await self._transmit(station, frame)
                    else:
                        self.commands.append(frame)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the station went away: a pty reports EIO, not EOF
        finally:
            self._leave(station)
            await trio.aclose_forcefully(stream)

    async def inject(self, wire: bytes) -> None:
        """Raw bytes from the TNC to every station (noise, non-data frames, foreign frames)."""
        for station in list(self._stations):
            await self._send(station, wire)

    async def _transmit(self, sender: _Station, frame: KissFrame) -> None:
        self.transmitted.append(frame)
        wire = kiss_encode(frame.payload, port=frame.port)
        for station in list(self._stations):
            if station is not sender:
                await self._send(station, wire)

    async def _send(self, station: _Station, wire: bytes) -> None:
        try:
            async with station.lock:
                await station.stream.send_all(wire)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # out of range now; its own reader will notice

    def _join(self, station: _Station) -> None:
        self._stations.append(station)
        self._changed.set()
        self._changed = trio.Event()

    def _leave(self, station: _Station) -> None:
        self._stations.remove(station)
        self._changed.set()
        self._changed = trio.Event()


class FakeTnc:
    """The air behind a KISS TCP port on 127.0.0.1 (port 0: any free one, kept on restart)."""

    def __init__(self, air: Air, port: int = 0) -> None:
        self.air = air
        self.port = port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self.air.serve, listeners)
            task_status.started()


class PtyTnc:
    """The air on the master side of a pty; a link opens `path` (the slave) as its device.

    Both ends go to raw mode: a pty starts cooked and would swallow binary bytes. The double
    keeps its own slave descriptor open until `release_slave()`, because a master whose
    slave was never opened reads EIO at once.
    """

    def __init__(self, air: Air) -> None:
        self.air = air
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._master = master
        self._slave: int | None = slave

    def release_slave(self) -> None:
        """Close the double's slave descriptor: from now on the link's is the only one."""
        if self._slave is not None:
            os.close(self._slave)
            self._slave = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve the air until cancelled or the slave side is closed; closes the master."""
        try:
            stream = trio.lowlevel.FdStream(self._master)
            task_status.started()
            await self.air.serve(stream)
        finally:
            self.release_slave()
