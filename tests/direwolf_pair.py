"""Two Direwolf soft TNCs joined by an AFSK 1200 audio path, with no sound card.

Each instance reads its receive audio from standard input (`ADEVICE stdin ...`) and writes
its transmit audio through an ALSA `file` PCM (slave "null", raw S16_LE, 44100 Hz mono) into
a FIFO; the other instance's standard input is that FIFO. So a frame written to one
instance's KISS TCP port is modulated, carried as audio, demodulated by the other and handed
to its KISS client: a real modem path, not a byte pipe. Each instance gets its own config,
its own HOME (for its own ~/.asoundrc) and its own KISS port on 127.0.0.1, chosen free by
binding port 0 first.

Used by tests/test_direwolf.py and bench/radio_links.py. Direwolf is GPL: it is run as a
program, nothing of it is copied.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

SAMPLE_RATE = 44100
_SAMPLE_BYTES = 2  # S16_LE mono
STARTUP_TIMEOUT_S = 10.0
_READY = "Ready to accept KISS TCP client"


def direwolf_path() -> str | None:
    """The direwolf program, or None when it is not installed (Debian package direwolf)."""
    return shutil.which("direwolf")


@dataclass(frozen=True)
class DirewolfStation:
    """One running instance: where its KISS port is and where it logs."""

    name: str
    kiss_address: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


DIREWOLF_PORT_MAX = 49151
"""Direwolf 1.6 refuses a KISSPORT above the registered range (and falls back to 8001)."""


def free_port(maximum: int = DIREWOLF_PORT_MAX, attempts: int = 100) -> int:
    """A TCP port on 127.0.0.1, at most `maximum`, that was free a moment ago.

    Binds port 0 until the kernel hands out one in range; the sockets are held open during
    the search so that each bind gets a different port.
    """
    probes: list[socket.socket] = []
    try:
        for _ in range(attempts):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probes.append(probe)
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
            if port <= maximum:
                return port
    finally:
        for probe in probes:
            probe.close()
    raise RuntimeError(f"free_port: expected a free port <= {maximum}, found none in {attempts}")


def _config(kiss_port: int, txdelay_ms: int, txtail_ms: int) -> str:
    # AGW off: only KISS is wanted, and a second fixed port would clash between instances.
    return "\n".join(
        [
            "ADEVICE stdin tawantx",
            f"ARATE {SAMPLE_RATE}",
            "ACHANNELS 1",
            "CHANNEL 0",
            "MYCALL N0CALL",
            "MODEM 1200",
            f"TXDELAY {txdelay_ms // 10}",
            f"TXTAIL {txtail_ms // 10}",
            f"KISSPORT {kiss_port}",
            "AGWPORT 0",
            "",
        ]
    )


def _asoundrc(fifo: Path) -> str:
    return f'pcm.tawantx {{ type file slave.pcm "null" file "{fifo}" format "raw" }}\n'


async def _wait_ready(process: trio.Process, station: DirewolfStation) -> None:
    port = station.kiss_address.rpartition(":")[2]
    while f"{_READY} application 0 on port {port} " not in station.log_text():
        if process.poll() is not None:
            raise RuntimeError(
                f"direwolf {station.name}: expected it to open its KISS port, found it exited "
                f"with {process.returncode}:\n{station.log_text()}"
            )
        await trio.sleep(0.05)


class AudioChannel:
    """Carries one instance's transmit audio to the other's receive input, in real time.

    A sound card delivers samples at its rate whether anyone transmits or not; a FIFO
    delivers only what was written, as fast as it was written. Fed straight from a FIFO, the
    receiver's demodulator would stop with the last sample of a transmission, and if its
    carrier detect was still on then, its channel would stay busy forever. So the channel
    plays silence between transmissions and paces everything at SAMPLE_RATE.
    """

    TICK_S = 0.01

    def __init__(self, transmit_fifo: Path, receiver: trio.abc.SendStream) -> None:
        # O_RDWR: opening a FIFO this way does not wait for a writer, and reading never
        # sees end-of-file while the transmitter is between transmissions.
        self._source = trio.lowlevel.FdStream(os.open(transmit_fifo, os.O_RDWR | os.O_NONBLOCK))
        self._receiver = receiver
        self._pending = bytearray()
        self.transmitted_bytes = 0

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._collect)
            await self._play()

    async def _collect(self) -> None:
        while data := await self._source.receive_some(65536):
            self._pending += data
            self.transmitted_bytes += len(data)

    async def _play(self) -> None:
        start = trio.current_time()
        played = 0
        while True:
            due = int((trio.current_time() - start) * SAMPLE_RATE) * _SAMPLE_BYTES - played
            audio = min(due, len(self._pending)) & ~1  # whole samples only
            chunk = bytes(self._pending[:audio]) + bytes(due - audio)  # then silence
            del self._pending[:audio]
            if chunk:
                await self._receiver.send_all(chunk)
                played += len(chunk)
            await trio.sleep(self.TICK_S)

    async def aclose(self) -> None:
        await self._source.aclose()


@asynccontextmanager
async def direwolf_pair(
    workdir: Path,
    *,
    txdelay_ms: int = 100,
    txtail_ms: int = 20,
    startup_timeout: float = STARTUP_TIMEOUT_S,
) -> AsyncIterator[tuple[DirewolfStation, DirewolfStation]]:
    """Start two instances "a" and "b" in `workdir`, yield them once both listen, stop them.

    RuntimeError if direwolf is missing or an instance does not come up in time.
    """
    program = direwolf_path()
    if program is None:
        raise RuntimeError("direwolf: expected it on PATH (apt-get install direwolf), found none")
    names = ("a", "b")
    fifos = {name: workdir / f"audio-from-{name}.raw" for name in names}
    for fifo in fifos.values():
        os.mkfifo(fifo)
    processes: dict[str, trio.Process] = {}
    stations: list[DirewolfStation] = []
    try:
        async with trio.open_nursery() as nursery:
            for name in names:
                station, processes[name] = await _start(
                    program, workdir, name, fifos[name], txdelay_ms, txtail_ms
                )
                stations.append(station)
            for name, hears in (("a", "b"), ("b", "a")):
                receiver = processes[name].stdin
                if receiver is None:
                    raise RuntimeError(f"direwolf {name}: expected a stdin pipe, found none")
                nursery.start_soon(AudioChannel(fifos[hears], receiver).run)
            with trio.fail_after(startup_timeout):
                for station in stations:
                    await _wait_ready(processes[station.name], station)
            yield stations[0], stations[1]
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for process in processes.values():
                await _stop(process)


async def _start(
    program: str,
    workdir: Path,
    name: str,
    transmit_fifo: Path,
    txdelay_ms: int,
    txtail_ms: int,
) -> tuple[DirewolfStation, trio.Process]:
    home = workdir / f"home-{name}"
    home.mkdir()
    (home / ".asoundrc").write_text(_asoundrc(transmit_fifo))
    kiss_port = free_port()
    config = workdir / f"direwolf-{name}.conf"
    config.write_text(_config(kiss_port, txdelay_ms, txtail_ms))
    station = DirewolfStation(name, f"127.0.0.1:{kiss_port}", workdir / f"direwolf-{name}.log")
    with station.log.open("wb") as log:
        process = await trio.lowlevel.open_process(
            [program, "-t", "0", "-q", "d", "-c", str(config), "-r", str(SAMPLE_RATE), "-"],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env={**os.environ, "HOME": str(home)},
        )
    return station, process


async def _stop(process: trio.Process) -> None:
    if process.poll() is None:
        process.terminate()
        with trio.move_on_after(3):
            await process.wait()
    if process.poll() is None:
        process.kill()
        await process.wait()
