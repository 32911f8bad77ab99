"""KISS links: a VHF/UHF radio net reached through a KISS TNC, over TCP or a serial line.

A radio net is a shared channel: every frame a station keys up is heard by every station in
range. So one KissLink serves every peer on the net. A unicast frame is an AX.25 UI frame to
the peer's callsign; each receiver keeps what is addressed to its own callsign or to the
net's broadcast alias, and from a configured peer. KISS has no handshake, so every
configured peer is PeerUp while the TNC connection is up and PeerDown while it is not; a TNC
that goes away is reconnected with bounded exponential backoff. Liveness of the stations
themselves is the node's business (its hellos), as on UDP.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection, Sequence

import trio

from transports import ax25
from transports.ax25 import Ax25Drop, Callsign, UiFrame, decode_ui, encode_ui
from transports.kiss import (
    DROP_BAD_ESCAPE,
    DROP_OVERSIZE,
    PORT_MAX,
    Command,
    KissDecoder,
    KissFrame,
    TncParameters,
    kiss_encode,
)
from transports.link import (
    DEFAULT_EVENT_BUFFER,
    DROP_CLOSED,
    FrameReceived,
    Link,
    PeerDown,
    PeerUnavailable,
    PeerUp,
    parse_endpoint,
)
from transports.profile import BearerProfile
from transports.serial_tty import check_speed, open_tty_stream
from transports.tcp import Backoff

_log = logging.getLogger("tawan.transports.kiss")

KISS_MTU_MAX = 1000
"""Direwolf holds a KISS frame of 2048 bytes *with* escapes: 1000 info bytes plus the AX.25
header still fit when every byte needs escaping."""

DEFAULT_KISS_PORT = 8001  # Direwolf's KISSPORT

VHF_1200 = BearerProfile("vhf-kiss", rate_bps=1200, delay_s=0.5, mtu=256, cost=20.0)
"""AFSK 1200 through a TNC: 256 info bytes (classic paclen), about 0.5 s of key-up delay."""

DROP_NOT_DATA = "not-data"
DROP_OTHER_PORT = "other-port"
DROP_NOT_FOR_US = "not-for-us"
DROP_UNKNOWN_SOURCE = "unknown-source"

_READ_SIZE = 4096


class KissLink(Link):
    """One TNC, reached at `tnc` ("host:port") or on serial `device` at `speed` baud.

    Peers are named by their callsign text ("N0CALL-3"). `broadcast` is an alias every
    station of the net listens to; sending to it reaches all of them. Frames travel on TNC
    port `port` (0-15); frames from other ports are dropped unless in `accept_ports`.
    `parameters` are sent each time the TNC connection comes up.
    """

    DROP_REASONS = (
        DROP_CLOSED, DROP_BAD_ESCAPE, DROP_OVERSIZE, DROP_NOT_DATA, DROP_OTHER_PORT,
        ax25.DROP_SHORT, ax25.DROP_BAD_ADDRESS, ax25.DROP_NOT_UI, ax25.DROP_FOREIGN_PID,
        DROP_NOT_FOR_US, DROP_UNKNOWN_SOURCE,
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        *,
        callsign: str,
        peers: Sequence[str],
        tnc: str | None = None,
        device: str | None = None,
        speed: int = 9600,
        parameters: TncParameters | None = None,
        broadcast: str | None = None,
        port: int = 0,
        accept_ports: Collection[int] = (),
        rng: random.Random | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        connect_timeout: float = 10.0,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        where = f"link {name}"
        if (tnc is None) == (device is None):
            raise ValueError(
                f"{where}: expected exactly one of tnc or device, found {tnc=} {device=}"
            )
        self._tnc = None if tnc is None else parse_endpoint(tnc, f"{where}: tnc")
        self._device = device
        self._last_open_failure: str | None = None
        check_speed(speed, f"{where}: speed")
        self._speed = speed
        if profile.mtu > KISS_MTU_MAX:
            raise ValueError(
                f"{where}: profile.mtu: expected at most {KISS_MTU_MAX} for KISS, "
                f"found {profile.mtu}"
            )
        self._callsign = Callsign.parse(callsign, f"{where}: callsign")
        # dict, not set: PeerUp goes out in configured order
        self._peers = dict.fromkeys(str(Callsign.parse(peer, f"{where}: peers")) for peer in peers)
        if str(self._callsign) in self._peers:
            raise ValueError(f"{where}: peers: expected other stations, found own {callsign!r}")
        self._broadcast = (
            None if broadcast is None else Callsign.parse(broadcast, f"{where}: broadcast")
        )
        for number in (port, *accept_ports):
            if not 0 <= number <= PORT_MAX:
                raise ValueError(f"{where}: KISS port: expected 0..{PORT_MAX}, found {number!r}")
        self._port = port
        self._accept_ports = frozenset((port, *accept_ports))
        self._parameters = parameters if parameters is not None else TncParameters()
        self._rng = rng if rng is not None else random.Random()
        Backoff(self._rng, backoff_initial, backoff_max)  # validate now, not at first failure
        self._backoff = (backoff_initial, backoff_max)
        self._connect_timeout = connect_timeout
        self._stream: trio.abc.Stream | None = None
        self._send_lock = trio.Lock()
        self._reader = trio.CancelScope()
        self.connects = 0
        """TNC connections made so far (reconnections included)."""

    @property
    def callsign(self) -> str:
        return str(self._callsign)

    @property
    def tnc_connected(self) -> bool:
        return self._stream is not None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        try:
            self._local_address = str(self._callsign)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._connect_forever)
                task_status.started()
        finally:
            self._local_address = None
            self._stream = None
            self._event_send.close()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        self._check_frame(frame)
        if peer in self._peers:
            destination = Callsign.parse(peer)
        elif self._broadcast is not None and peer == str(self._broadcast):
            destination = self._broadcast
        else:
            raise PeerUnavailable(self.name, peer, "not a configured callsign")
        stream = self._stream
        if stream is None:
            raise PeerUnavailable(self.name, peer, "TNC not connected")
        wire = kiss_encode(encode_ui(UiFrame(destination, self._callsign, frame)), port=self._port)
        try:
            async with self._send_lock:
                await stream.send_all(wire)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._reader.cancel()  # the reader may not notice a half-dead TNC soon
            raise PeerUnavailable(self.name, peer, f"TNC connection lost: {exc}") from exc
        self._count_sent(frame)

    async def _connect_forever(self) -> None:
        backoff = Backoff(self._rng, *self._backoff)
        while True:
            stream = await self._open()
            if stream is not None:
                connected_at = trio.current_time()
                self._last_open_failure = None
                await self._serve(stream)
                if trio.current_time() - connected_at >= self._backoff[1]:
                    backoff.reset()  # a connection that held was no flapping TNC
            await trio.sleep(backoff.next_delay())

    async def _open(self) -> trio.abc.Stream | None:
        where = self._describe_tnc()
        with trio.move_on_after(self._connect_timeout):
            try:
                if self._device is not None:
                    return open_tty_stream(self._device, self._speed)
                if self._tnc is not None:
                    return await trio.open_tcp_stream(*self._tnc)
            except OSError as exc:
                self._open_failed(where, str(exc))
        return None

    def _open_failed(self, where: str, reason: str) -> None:
        """Say a TNC cannot be opened at warning level once per reason (a missing device,
        one that is no serial line), then at debug level while the link retries."""
        level = logging.DEBUG if reason == self._last_open_failure else logging.WARNING
        self._last_open_failure = reason
        _log.log(level, "link %s: opening TNC %s failed (retrying): %s", self.name, where, reason)

    def _describe_tnc(self) -> str:
        if self._tnc is not None:
            return f"{self._tnc[0]}:{self._tnc[1]}"
        return f"{self._device} at {self._speed} baud"

    async def _serve(self, stream: trio.abc.Stream) -> None:
        """Configure the TNC, announce every peer, read until the TNC goes, announce loss."""
        self._reader = trio.CancelScope()
        reason = "send failed"
        try:
            with self._reader:
                for frame in self._parameters.frames(self._port):
                    await stream.send_all(frame)
                self._stream = stream
                self.connects += 1
                _log.info("link %s: TNC %s connected", self.name, self._describe_tnc())
                for peer in self._peers:
                    await self._emit(PeerUp(peer))
                reason = await self._read_frames(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            reason = f"configuring the TNC failed: {exc}"
        finally:
            was_up = self._stream is not None
            self._stream = None
            await trio.aclose_forcefully(stream)
        _log.info("link %s: TNC %s down: %s", self.name, self._describe_tnc(), reason)
        if was_up:
            for peer in self._peers:
                await self._emit(PeerDown(peer))

    async def _read_frames(self, stream: trio.abc.Stream) -> str:
        """Deliver frames until the stream ends; return why it ended."""
        decoder = KissDecoder(ax25.MAX_HEADER_BYTES + self.profile.mtu, on_drop=self._drop)
        while True:
            try:
                data = await stream.receive_some(_READ_SIZE)
            except (trio.BrokenResourceError, OSError) as exc:
                return f"connection broken: {exc.__cause__ or exc}"
            if not data:
                return "closed by the TNC"
            for kiss_frame in decoder.feed(data):
                accepted = self._accept(kiss_frame)
                if isinstance(accepted, FrameReceived):
                    # Counted first, so that it is counted by the time a consumer reads it.
                    self._count_received(accepted.data)
                    if not await self._emit(accepted):
                        self.frames_received -= 1  # nobody listening: a drop, not a receipt
                        self.bytes_received -= len(accepted.data)
                else:
                    self._drop(*accepted)

    def _accept(self, frame: KissFrame) -> FrameReceived | tuple[str, str]:
        """The tawan frame in a KISS frame, or (drop reason, detail) if it is not one for us."""
        if frame.command != Command.DATA:
            return DROP_NOT_DATA, f"command {frame.command}"
        if frame.port not in self._accept_ports:
            return DROP_OTHER_PORT, f"port {frame.port}"
        ui = decode_ui(frame.payload)
        if isinstance(ui, Ax25Drop):
            return ui.reason, ui.detail
        if ui.destination not in (self._callsign, self._broadcast):
            return DROP_NOT_FOR_US, f"to {ui.destination}"
        source = str(ui.source)
        if source not in self._peers:
            return DROP_UNKNOWN_SOURCE, f"from {source}"
        return FrameReceived(source, ui.info)

    def _drop(self, reason: str, detail: str = "") -> None:
        self._count_drop(reason)
        # DEBUG only: a busy net or a noisy line must not become a flood of log lines.
        _log.debug("link %s: dropped a frame (%s) %s", self.name, reason, detail)
