"""Two KissLinks on two real Direwolf TNCs, frames both ways over an AFSK 1200 audio path.

An independent implementation checks our bytes: Direwolf parses every KISS frame as AX.25,
modulates it, the other instance demodulates and checks the FCS, and prints the addresses it
decoded in its monitor line. Skipped when direwolf is not installed (Debian package
direwolf). Real time: some 15 s, bounded by trio.fail_after.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import trio
from direwolf_pair import direwolf_pair, direwolf_path
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
