"""Two KissLinks on two real Direwolf TNCs, frames both ways over an AFSK 1200 audio path;
then two tawan daemons, each on its own Direwolf, exchanging messages over the same path.

An independent implementation checks our bytes: Direwolf parses every KISS frame as AX.25,
modulates it, the other instance demodulates and checks the FCS, and prints the addresses it
decoded in its monitor line. Skipped when direwolf is not installed (Debian package
direwolf; `make test` installs it when it can). Real time: some 15 s for the link frames,
bounded by trio.fail_after, and under a minute for the daemons, bounded by each wait.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from direwolf_pair import DirewolfStation, direwolf_pair, direwolf_path
from radio_nodes import NAMES, RadioNodes, exchange_every_precedence, make_mission, trio_in_thread
from transport_kit import receive_frame

from transports.kisslink import VHF_1200, KissLink
from transports.link import FrameReceived, PeerUp

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        direwolf_path() is None, reason="direwolf not on PATH (apt-get install direwolf)"
    ),
]

TIMEOUT = 60.0


async def test_frames_both_ways_over_afsk_1200(tmp_path: Path) -> None:
    rng = random.Random(7)
    a_to_b = [
        rng.randbytes(100),
        bytes([0xC0, 0xDB, 0xDC, 0xDD]) * 25,  # every byte a KISS escape
        b"",
        rng.randbytes(VHF_1200.mtu),
    ]
    b_to_a = [rng.randbytes(100), b"\xc0" * 40]
    with trio.fail_after(TIMEOUT):
        async with direwolf_pair(tmp_path) as (station_a, station_b):
            a = KissLink("dw-a", VHF_1200, callsign="N0CALL-1", peers=["N0CALL-2"],
                         tnc=station_a.kiss_address, rng=random.Random(1))  # fmt: skip
            b = KissLink("dw-b", VHF_1200, callsign="N0CALL-2", peers=["N0CALL-1"],
                         tnc=station_b.kiss_address, rng=random.Random(2))  # fmt: skip
            async with trio.open_nursery() as nursery:
                await nursery.start(a.run)
                await nursery.start(b.run)
                assert await a.events.receive() == PeerUp("N0CALL-2")
                assert await b.events.receive() == PeerUp("N0CALL-1")
                for frame in a_to_b:
                    await a.send("N0CALL-2", frame)
                for frame in b_to_a:
                    await b.send("N0CALL-1", frame)
                for frame in a_to_b:
                    assert await receive_frame(b) == FrameReceived("N0CALL-1", frame)
                for frame in b_to_a:
                    assert await receive_frame(a) == FrameReceived("N0CALL-2", frame)
                nursery.cancel_scope.cancel()
    assert a.dropped_frames == b.dropped_frames == 0
    # Direwolf's own decoder read our AX.25 addresses as we meant them.
    assert "N0CALL-1>N0CALL-2:" in station_b.log_text()
    assert "N0CALL-2>N0CALL-1:" in station_a.log_text()


DAEMON_TIMEOUT = 60.0
CALLSIGNS = {"alpha": "N0CALL-1", "bravo": "N0CALL-2"}
# PeerUp from the TNC greets the neighbour at once, but under the default hello_share
# (0.006) a 1200 bit/s link says hello only every 2 min or so: one greeting lost on the air
# would outlast the test. Half the channel for hellos here, one every 1.7 s.
ENGINE = "hello_interval = 1.0\ndead_interval = 10.0\nhello_share = 0.5\n"

AFSK_LINK = """
[[links]]
name = "vhf"
transport = "kiss"
tnc = "{tnc}"
callsign = "{callsign}"
txdelay_ms = 100
[links.profile]
name = "vhf-afsk-1200"
rate_bps = 1200
delay_s = 0.5
mtu = 256
cost = 20
[[links.peers]]
node = "{peer}"
callsign = "{peer_callsign}"
"""


Pair = tuple[DirewolfStation, DirewolfStation]


async def _serve_pair(
    workdir: Path,
    *,
    task_status: trio.TaskStatus[
        tuple[DirewolfStation, DirewolfStation]
    ] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with direwolf_pair(workdir) as stations:
        task_status.started(stations)
        await trio.sleep_forever()


@pytest.fixture
def stations(tmp_path: Path) -> Iterator[dict[str, DirewolfStation]]:
    workdir = tmp_path / "direwolf"
    workdir.mkdir()
    with trio_in_thread(functools.partial(_serve_pair, workdir)) as pair:
        yield dict(zip(NAMES, pair, strict=True))


def test_daemons_exchange_every_precedence_over_afsk_1200(
    tmp_path: Path, stations: dict[str, DirewolfStation], capsys: pytest.CaptureFixture[str]
) -> None:
    make_mission(tmp_path)
    capsys.readouterr()
    links = {
        name: AFSK_LINK.format(tnc=stations[name].kiss_address, callsign=CALLSIGNS[name],
                               peer=peer, peer_callsign=CALLSIGNS[peer])
        for name, peer in (NAMES, NAMES[::-1])
    }  # fmt: skip
    nodes = RadioNodes(tmp_path, links, ENGINE)
    try:
        nodes.start()
        for name, peer in (NAMES, NAMES[::-1]):
            nodes.neighbour_up(name, peer, DAEMON_TIMEOUT)
        exchange_every_precedence(nodes, DAEMON_TIMEOUT, payload_bytes=60)
    finally:
        nodes.stop()
    # The messages crossed the audio path: each Direwolf decoded the other's transmissions.
    assert "N0CALL-1>N0CALL-2:" in stations["bravo"].log_text()
    assert "N0CALL-2>N0CALL-1:" in stations["alpha"].log_text()
