"""Frames per second through the STANAG 5066 SIS client, against the fake server.

Two S5066Links bound on two nodes of tests/sis_server.py's fake subnetwork on 127.0.0.1;
one sends MTU-sized frames (ARQ, node confirmation asked) as fast as the link takes them,
the other drains them, for `seconds`. The figure is the client's own cost (codec, stream
decoding, answer matching, trio socket I/O) plus the fake server's: what a real HF
subnetwork carries is three orders of magnitude less (a 2048-byte U_PDU takes 1.7 s on air
at 9600 bit/s), so this only shows the client is never the bottleneck.

Usable from another bench module (`sys.path.insert(0, <bench dir>)` then
`from sis_bench import sis_frames_per_s`, as the other bench modules import each other).
The last line printed is one JSON object: {"sis_frames_per_s": ..., "mtu": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sis_server import FakeSisServer

from transports.link import FrameReceived, PeerUp
from transports.profile import BearerProfile
from transports.s5066 import S5066Link


def _profile(mtu: int) -> BearerProfile:
    return BearerProfile("hf", rate_bps=9600, delay_s=2.0, mtu=mtu, cost=50.0)


def sis_frames_per_s(mtu: int = 2048, seconds: float = 2.0, seed: int = 0) -> float:
    """Frames a second from one SIS client to another through the fake server, measured
    over `seconds` (bounded: the run stops then, plus at most a few seconds to bind)."""
    if not 0 < seconds <= 60:
        raise ValueError(f"sis_frames_per_s: expected 0 < seconds <= 60, found {seconds}")
    return trio.run(_measure, mtu, seconds, seed)


async def _measure(mtu: int, seconds: float, seed: int) -> float:
    server = FakeSisServer([1, 2], mtu=mtu)
    rng = random.Random(seed)
    received = 0
    with trio.fail_after(seconds + 10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            a = S5066Link("a", _profile(mtu), server.endpoint(1), {"b": 2}, rng=rng)
            b = S5066Link("b", _profile(mtu), server.endpoint(2), {"a": 1}, rng=rng)
            await nursery.start(a.run)
            await nursery.start(b.run)
            for link in (a, b):
                assert isinstance(await link.events.receive(), PeerUp)
            frame = rng.randbytes(a.profile.mtu)

            async def pump() -> None:
                while True:
                    await a.send("b", frame)

            async def drain() -> None:
                nonlocal received
                async for event in b.events:
                    if isinstance(event, FrameReceived):
                        received += 1

            async def discard(link: S5066Link) -> None:
                async for _ in link.events:
                    pass

            nursery.start_soon(discard, a)
            began = trio.current_time()
            with trio.move_on_after(seconds):
                async with trio.open_nursery() as traffic:
                    traffic.start_soon(drain)
                    traffic.start_soon(pump)
            elapsed = trio.current_time() - began
            nursery.cancel_scope.cancel()
    return received / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mtu", type=int, default=2048)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rate = sis_frames_per_s(args.mtu, args.seconds)
    print(f"SIS client, MTU {args.mtu}: {rate:.0f} frames/s ({rate * args.mtu / 1e6:.1f} MB/s)")
    result = {"sis_frames_per_s": round(rate, 1), "mtu": args.mtu, "seconds": args.seconds}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
