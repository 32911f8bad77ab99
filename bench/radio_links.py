"""Radio links measured: KISS over Direwolf's AFSK 1200, and the STANAG 5066 SIS client.

Two Direwolf soft TNCs are joined by a real-time audio path (tests/direwolf_pair.py); a
KissLink on each. One sends 100-byte link frames to the other for a bounded run, keeping a
few frames queued at its TNC so the channel never idles, and the other counts what arrives.
These are raw link frames, not tawan messages through full nodes: the figure is what the
bearer carries, before the node's own headers, acknowledgements and hellos. The SIS figure
comes from bench/sis_bench.py: MTU-sized frames between two S5066Links through the fake
5066 server, the client's own cost (no HF modem is emulated there).

The last line printed is one JSON object:
kiss_msgs_per_min (100-byte frames delivered per minute), kiss_goodput_1200 (payload bits
delivered per second over the 1200 bit/s air rate), sis_frames_per_s (2048-byte frames a
second through the SIS client and the fake server), and the runs' particulars.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from direwolf_pair import direwolf_pair, direwolf_path
from sis_bench import sis_frames_per_s

from transports.kisslink import VHF_1200, KissLink
from transports.link import FrameReceived

PAYLOAD_BYTES = 100
AIR_RATE_BPS = 1200
IN_FLIGHT = 8
"""Frames sent but not yet delivered: enough that the TNC always has the next one queued,
few enough that the run ends with little still on its way."""
LOST_AFTER_S = 10.0
TXDELAY_MS = 100  # Direwolf's key-up delay; a real radio needs 100-300 ms


async def measure_kiss(seconds: float, workdir: Path) -> dict[str, object]:
    """Frames of PAYLOAD_BYTES one way over Direwolf AFSK 1200 for `seconds`."""
    rng = random.Random(1)
    async with direwolf_pair(workdir, txdelay_ms=TXDELAY_MS) as (station_a, station_b):
        sender = KissLink("bench-a", VHF_1200, callsign="N0CALL-1", peers=["N0CALL-2"],
                          tnc=station_a.kiss_address, rng=random.Random(1))  # fmt: skip
        receiver = KissLink("bench-b", VHF_1200, callsign="N0CALL-2", peers=["N0CALL-1"],
                            tnc=station_b.kiss_address, rng=random.Random(2))  # fmt: skip
        pending: set[bytes] = set()
        delivered: list[float] = []
        first_heard = trio.Event()
        window = trio.Semaphore(IN_FLIGHT)
        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run)
            await nursery.start(receiver.run)
            await sender.events.receive()  # PeerUp: the TNC connection is up
            await receiver.events.receive()

            async def receive() -> None:
                while True:
                    with trio.move_on_after(LOST_AFTER_S) as waiting:
                        event = await receiver.events.receive()
                    if waiting.cancelled_caught:
                        window.release()  # a frame lost on air must not stall the sender
                    elif isinstance(event, FrameReceived) and event.data in pending:
                        pending.discard(event.data)
                        delivered.append(trio.current_time())
                        first_heard.set()
                        window.release()

            async def send() -> None:
                for number in range(1_000_000):
                    await window.acquire()
                    frame = number.to_bytes(4, "big") + rng.randbytes(PAYLOAD_BYTES - 4)
                    pending.add(frame)
                    await sender.send("N0CALL-2", frame)

            started = trio.current_time()
            nursery.start_soon(receive)
            nursery.start_soon(send)
            await first_heard.wait()
            # Count from the first delivery: the key-up and modem start-up of the very first
            # transmission are latency, not rate.
            await trio.sleep(seconds)
            nursery.cancel_scope.cancel()
    counted = [t for t in delivered if t <= delivered[0] + seconds]
    span = counted[-1] - counted[0]
    frames_per_s = (len(counted) - 1) / span if span > 0 else 0.0
    return {
        "kiss_msgs_per_min": round(frames_per_s * 60, 1),
        "kiss_goodput_1200": round(frames_per_s * PAYLOAD_BYTES * 8 / AIR_RATE_BPS, 3),
        "kiss_first_frame_s": round(delivered[0] - started, 2),  # modem start-up included
        "kiss_in_flight": IN_FLIGHT,
        "kiss_txdelay_ms": TXDELAY_MS,
        "kiss_frames_delivered": len(counted),
        "kiss_frames_sent": sender.frames_sent,
        "kiss_frames_received": receiver.frames_received,
        "kiss_run_s": round(span, 1),
    }


SIS_MTU = 2048  # a general-purpose 5066 node's MTU
SIS_SECONDS = 3.0


def sis_figures(mtu: int = SIS_MTU, seconds: float = SIS_SECONDS) -> dict[str, object]:
    """Frames a second through the STANAG 5066 SIS client (bench/sis_bench.py)."""
    return {
        "sis_frames_per_s": round(sis_frames_per_s(mtu, seconds), 1),
        "sis_mtu": mtu,
        "sis_run_s": seconds,
        "sis_server": "tests/sis_server.py on 127.0.0.1 (no HF modem emulated)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the KISS run")
    args = parser.parse_args()
    if direwolf_path() is None:
        sys.exit("radio_links: expected direwolf on PATH (apt-get install direwolf), found none")
    wall = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="radio-links-") as workdir:
        kiss = trio.run(measure_kiss, args.seconds, Path(workdir))
    results: dict[str, object] = {
        "payload": f"link frames of {PAYLOAD_BYTES} bytes",
        "bearer": "Direwolf 1.6 AFSK 1200 (Bell 202), audio between two instances in real time",
        **kiss,
        **sis_figures(),
    }
    for key, value in results.items():
        print(f"  {key:24} {value}")
    print(f"  {'wall_s':24} {time.monotonic() - wall:.1f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
