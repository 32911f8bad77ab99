"""A conformance kit for Link implementations, after trio's testing/_check_streams.py.

The node treats every link alike, so every link type must pass the same checks: PeerUp on
both ends, frames both ways intact and in order, FrameTooLarge for oversize frames,
PeerUnavailable for unknown peers, thousands of frames delivered, and a clean shutdown that
closes `events`. `make_pair` is called once per check and must return an async context
manager that runs two links which can reach each other, and stops them on exit.

tests/test_transports.py runs it on the UDP, TCP, memory and emulated links (the emulated
one without loss, over a fast and a slow bearer, in virtual time).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import pytest
import trio

from transports.link import (
    FrameReceived,
    FrameTooLarge,
    Link,
    LinkError,
    LinkEvent,
    PeerUnavailable,
    PeerUp,
)

MakePair = Callable[[], AbstractAsyncContextManager[tuple[Link, Link]]]

MANY_FRAMES = 2000


@dataclass(frozen=True)
class Connected:
    """Two running links and the peer name each uses for the other (from its PeerUp)."""

    a: Link
    b: Link
    a_to_b: str
    b_to_a: str


async def check_link_pair(make_pair: MakePair, *, timeout: float = 5.0) -> None:
    """Run every check of the kit, each on a fresh pair and bounded by `timeout`."""
    for check in (_check_exchange, _check_oversize, _check_unknown_peer, _check_many):
        with trio.fail_after(timeout):
            async with make_pair() as (a, b):
                await check(await wait_connected(a, b))
    with trio.fail_after(timeout):
        await _check_shutdown(make_pair)


async def wait_connected(a: Link, b: Link) -> Connected:
    """The first event on each end must be PeerUp; its peer is how to address the other."""
    first_a, first_b = await a.events.receive(), await b.events.receive()
    assert isinstance(first_a, PeerUp), first_a
    assert isinstance(first_b, PeerUp), first_b
    return Connected(a, b, first_a.peer, first_b.peer)


async def receive_frame(link: Link) -> FrameReceived:
    """The next event, which must be a frame."""
    event = await link.events.receive()
    assert isinstance(event, FrameReceived), event
    return event


async def _check_exchange(pair: Connected) -> None:
    rng = random.Random(1)
    mtu = pair.a.profile.mtu
    frames = [rng.randbytes(size) for size in (0, 1, 2, 100, mtu - 1, mtu)]
    for sender, receiver, to, back in (
        (pair.a, pair.b, pair.a_to_b, pair.b_to_a),
        (pair.b, pair.a, pair.b_to_a, pair.a_to_b),
    ):
        for frame in frames:
            await sender.send(to, frame)
        for frame in frames:
            assert await receive_frame(receiver) == FrameReceived(back, frame)
    total = sum(len(frame) for frame in frames)
    expected = (len(frames), total, len(frames), total, 0)
    for link in (pair.a, pair.b):
        # A frame is counted by the time it can be read. (This module is not rewritten by
        # pytest's assert, hence the message.)
        counters = (link.frames_sent, link.bytes_sent, link.frames_received,
                    link.bytes_received, link.dropped_frames)  # fmt: skip
        assert counters == expected, f"{link}: sent, received, dropped {counters}"


async def _check_oversize(pair: Connected) -> None:
    mtu = pair.a.profile.mtu
    for sender, to in ((pair.a, pair.a_to_b), (pair.b, pair.b_to_a)):
        with pytest.raises(FrameTooLarge) as caught:
            await sender.send(to, bytes(mtu + 1))
        assert (caught.value.size, caught.value.mtu) == (mtu + 1, mtu)
        assert sender.frames_sent == 0
    await pair.a.send(pair.a_to_b, b"still working")
    assert await receive_frame(pair.b) == FrameReceived(pair.b_to_a, b"still working")


async def _check_unknown_peer(pair: Connected) -> None:
    for link in (pair.a, pair.b):
        with pytest.raises(PeerUnavailable) as caught:
            await link.send("unknown.invalid:9", b"x")
        assert caught.value.peer == "unknown.invalid:9"


async def _check_many(pair: Connected) -> None:
    """Both directions at once, receivers draining concurrently as a node would."""

    def frame(index: int) -> bytes:
        return index.to_bytes(4, "big") * (1 + index % 50)

    async def pump(sender: Link, to: str) -> None:
        for index in range(MANY_FRAMES):
            await sender.send(to, frame(index))

    async def drain(receiver: Link, source: str) -> None:
        for index in range(MANY_FRAMES):
            assert await receive_frame(receiver) == FrameReceived(source, frame(index))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain, pair.b, pair.b_to_a)
        nursery.start_soon(drain, pair.a, pair.a_to_b)
        nursery.start_soon(pump, pair.a, pair.a_to_b)
        nursery.start_soon(pump, pair.b, pair.b_to_a)
    assert pair.a.frames_received == pair.b.frames_received == MANY_FRAMES


async def _check_shutdown(make_pair: MakePair) -> None:
    """Cancelling the runs ends them, closes `events`, and makes both links refuse sends."""
    async with make_pair() as (a, b):
        pair = await wait_connected(a, b)
        await a.send(pair.a_to_b, b"last")
        assert await receive_frame(b) == FrameReceived(pair.b_to_a, b"last")
    for link, to in ((a, pair.a_to_b), (b, pair.b_to_a)):
        await _drain_to_end(link)
        with pytest.raises(PeerUnavailable):
            await link.send(to, b"after shutdown")
        with pytest.raises(LinkError):
            _ = link.local_address
        with pytest.raises(LinkError):
            await link.run()


async def _drain_to_end(link: Link) -> list[LinkEvent]:
    """Whatever the link said while stopping, the channel must then report its end."""
    leftovers = [event async for event in link.events]
    assert not any(isinstance(event, FrameReceived) for event in leftovers), leftovers
    return leftovers
