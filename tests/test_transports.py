"""transports/: the conformance kit on every link type, then what is particular to each.

Socket tests run on 127.0.0.1, port 0, in real time, each bounded by trio.fail_after;
memory-link and emulated-link tests need no sockets and use the autojump clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
from transport_kit import check_link_pair, receive_frame, wait_connected

from transports.emulated import EmulatedLink, emulated_link_pair
from transports.link import (
    FrameReceived,
    Link,
    LinkError,
    PeerDown,
    PeerUnavailable,
    PeerUp,
    format_endpoint,
    parse_endpoint,
)
from transports.memory import MemoryLink, memory_link_pair
from transports.model import BearerModel
from transports.profile import BearerProfile
from transports.tcp import Backoff, FrameDecoder, FramingError, TcpLink, encode_frame
from transports.udp import UdpLink

PROFILE = BearerProfile("ip", rate_bps=10_000_000, delay_s=0.001, mtu=1200, cost=1.0)
SATCOM = BearerProfile("satcom", rate_bps=64_000, delay_s=0.3, mtu=1200, cost=10.0)
TIMEOUT = 5.0


@asynccontextmanager
async def running(*links: Link) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for link in links:
            await nursery.start(link.run)
        yield
        nursery.cancel_scope.cancel()


class Runner:
    """Runs one link in its own cancel scope, so a test can stop it and wait until it has."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.scope = trio.CancelScope()
        self.finished = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self.scope:
                await self.link.run(task_status=task_status)
        finally:
            self.finished.set()

    async def stop(self) -> None:
        self.scope.cancel()
        await self.finished.wait()


def tcp(name: str, listen: str | None = None, connect: tuple[str, ...] = ()) -> TcpLink:
    return TcpLink(
        name,
        PROFILE,
        listen,
        connect,
        rng=random.Random(0),
        backoff_initial=0.01,
        backoff_max=0.1,
    )


@asynccontextmanager
async def udp_pair() -> AsyncIterator[tuple[Link, Link]]:
    a = UdpLink("udp-a", PROFILE, "127.0.0.1:0", [])
    async with running(a):
        b = UdpLink("udp-b", PROFILE, "127.0.0.1:0", [a.local_address])
        async with running(b):
            await a.add_peer(b.local_address)
            yield a, b


@asynccontextmanager
async def tcp_pair() -> AsyncIterator[tuple[Link, Link]]:
    listener = tcp("tcp-listen", listen="127.0.0.1:0")
    async with running(listener):
        dialer = tcp("tcp-dial", connect=(listener.local_address,))
        async with running(dialer):
            yield dialer, listener


@asynccontextmanager
async def memory_pair() -> AsyncIterator[tuple[Link, Link]]:
    a, b = memory_link_pair(PROFILE)
    async with running(a, b):
        yield a, b


@asynccontextmanager
async def emulated_pair(profile: BearerProfile = PROFILE) -> AsyncIterator[tuple[Link, Link]]:
    a, b = emulated_link_pair(BearerModel(profile, random.Random(1)))
    async with running(a, b):
        yield a, b


# The conformance kit -----------------------------------------------------------------------


async def test_udp_link_conforms() -> None:
    await check_link_pair(udp_pair)


async def test_tcp_link_conforms() -> None:
    await check_link_pair(tcp_pair)


async def test_memory_link_conforms() -> None:
    await check_link_pair(memory_pair)


async def test_emulated_link_conforms(autojump_clock: trio.testing.MockClock) -> None:
    await check_link_pair(emulated_pair)


async def test_emulated_satcom_link_conforms(autojump_clock: trio.testing.MockClock) -> None:
    # 2,000 frames of about 100 bytes each way at 64 kbit/s: some 25 s of virtual time
    await check_link_pair(lambda: emulated_pair(SATCOM), timeout=60)


# Bearer profiles -----------------------------------------------------------------------------

GOOD = {"name": "vhf", "rate_bps": 9600, "delay_s": 0.05, "mtu": 256, "cost": 2.0}


def test_profile_accepts_good_values_and_times_transmission() -> None:
    profile = BearerProfile.from_mapping(GOOD, "links.vhf0.profile")
    assert profile == BearerProfile("vhf", 9600, 0.05, 256, 2.0)
    assert profile.transmit_time_s(120) == pytest.approx(0.05 + 0.1)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("name", "", "1 to 32 of a-z, 0-9 and -, beginning with a letter or digit"),
        ("name", "satcom_geo", "1 to 32 of a-z, 0-9 and -, beginning with a letter or digit"),
        ("name", "HF", "1 to 32 of a-z, 0-9 and -, beginning with a letter or digit"),
        ("name", "x" * 33, "1 to 32 of a-z, 0-9 and -, beginning with a letter or digit"),
        ("rate_bps", 0, "an integer in 1..1000000000000"),
        ("rate_bps", 9600.0, "an integer in 1..1000000000000"),
        ("rate_bps", True, "an integer in 1..1000000000000"),
        ("rate_bps", 10**12 + 1, "an integer in 1..1000000000000"),
        ("delay_s", -0.1, "a finite number >= 0"),
        ("delay_s", float("nan"), "a finite number >= 0"),
        ("delay_s", "0.1", "a finite number >= 0"),
        ("mtu", 127, "an integer in 128..65507"),
        ("mtu", 65508, "an integer in 128..65507"),
        ("cost", 0, "a finite number > 0 and <= 13107"),
        ("cost", float("inf"), "a finite number > 0 and <= 13107"),
        ("cost", 13108, "a finite number > 0 and <= 13107"),  # 5x with loss: over 65535
    ],
)
def test_profile_names_field_expected_and_found(field: str, value: object, expected: str) -> None:
    with pytest.raises(ValueError, match=r"^links\.x: ") as caught:
        BearerProfile.from_mapping({**GOOD, field: value}, "links.x")
    message = str(caught.value)
    assert f"BearerProfile.{field}: expected {expected}, found {value!r}" in message


def test_profile_refuses_unknown_and_missing_keys() -> None:
    with pytest.raises(ValueError, match=r"links.y: unknown keys \['delay'\]"):
        BearerProfile.from_mapping({**GOOD, "delay": 1}, "links.y")
    with pytest.raises(ValueError, match=r"links.y: missing keys \['cost'\]"):
        BearerProfile.from_mapping({k: v for k, v in GOOD.items() if k != "cost"}, "links.y")


def test_events_are_frozen_and_slotted() -> None:
    event = FrameReceived("10.0.0.1:4000", b"x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.peer = "other"  # type: ignore[misc]
    assert not hasattr(event, "__dict__")
    assert len({PeerUp("p"), PeerUp("p"), PeerDown("p")}) == 2


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("127.0.0.1:4000", "127.0.0.1", 4000),
        ("[::1]:0", "::1", 0),
        ("relay-2:65535", "relay-2", 65535),
    ],
)
def test_endpoints_round_trip(text: str, host: str, port: int) -> None:
    assert parse_endpoint(text, "peer") == (host, port)
    assert format_endpoint(host, port) == text


@pytest.mark.parametrize("text", ["4000", ":4000", "::1:4000", "host:65536", "host:x", "host:"])
def test_bad_endpoints_are_refused_with_the_setting_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"^links.udp0.bind: expected"):
        parse_endpoint(text, "links.udp0.bind")


# UDP -----------------------------------------------------------------------------------------


@asynccontextmanager
async def raw_udp_socket() -> AsyncIterator[tuple[trio.socket.SocketType, str]]:
    with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as sock:
        await sock.bind(("127.0.0.1", 0))
        yield sock, format_endpoint(*sock.getsockname())


async def link_events_until_peer_up(link: Link) -> None:
    event = await link.events.receive()
    assert isinstance(event, PeerUp), event


async def test_udp_drops_oversize_datagram_and_answers_unconfigured_sender() -> None:
    link = UdpLink("udp0", PROFILE, "127.0.0.1:0", [])
    with trio.fail_after(TIMEOUT):
        async with running(link), raw_udp_socket() as (raw, raw_address):
            target = parse_endpoint(link.local_address, "test")
            await raw.sendto(bytes(PROFILE.mtu + 1), target)
            await raw.sendto(b"fits", target)
            assert await receive_frame(link) == FrameReceived(raw_address, b"fits")
            assert (link.dropped_frames, link.frames_received) == (1, 1)
            assert link.drop_counts()["oversize"] == 1
            await link.send(raw_address, b"reply")
            assert await raw.recv(100) == b"reply"


async def test_udp_drops_and_counts_when_the_consumer_is_slow() -> None:
    with trio.fail_after(TIMEOUT):
        async with raw_udp_socket() as (raw, raw_address):
            link = UdpLink("udp0", PROFILE, "127.0.0.1:0", [raw_address], event_buffer=4)
            async with running(link):
                await link_events_until_peer_up(link)
                target = parse_endpoint(link.local_address, "test")
                for index in range(10):
                    await raw.sendto(bytes([index]), target)
                while link.frames_received + link.dropped_frames < 10:
                    await trio.sleep(0.001)  # real sockets: poll the counters, bounded above
                assert (link.frames_received, link.dropped_frames) == (4, 6)
                assert link.drops == {"event-buffer-full": 6}
                for index in range(4):
                    assert await receive_frame(link) == FrameReceived(raw_address, bytes([index]))


async def test_udp_names_frames_by_configured_peer_and_can_remove_it() -> None:
    with trio.fail_after(TIMEOUT):
        async with raw_udp_socket() as (raw, raw_address):
            by_name = "localhost:" + raw_address.rpartition(":")[2]
            link = UdpLink("udp0", PROFILE, "127.0.0.1:0", [by_name])
            async with running(link):
                assert await link.events.receive() == PeerUp(by_name)
                await raw.sendto(b"hello", parse_endpoint(link.local_address, "test"))
                assert await receive_frame(link) == FrameReceived(by_name, b"hello")
                await link.remove_peer(by_name)
                assert await link.events.receive() == PeerDown(by_name)
                with pytest.raises(PeerUnavailable):
                    await link.send(by_name, b"x")


async def test_udp_send_before_run_is_peer_unavailable() -> None:
    link = UdpLink("udp0", PROFILE, "127.0.0.1:0", ["127.0.0.1:9"])
    with pytest.raises(PeerUnavailable, match="not running"):
        await link.send("127.0.0.1:9", b"x")


# TCP -----------------------------------------------------------------------------------------


def test_frame_decoder_whole_and_byte_by_byte() -> None:
    frames = [b"", b"a", bytes(range(256)) * 4]
    stream = b"".join(encode_frame(frame) for frame in frames)
    for chunk_size in (len(stream), 1, 3):
        decoder = FrameDecoder(mtu=1200)
        got = []
        for start in range(0, len(stream), chunk_size):
            decoder.feed(stream[start : start + chunk_size])
            while (frame := decoder.next_frame()) is not None:
                got.append(frame)
        assert got == frames
        assert decoder.buffered == 0


def test_frame_decoder_refuses_long_length_before_its_body() -> None:
    decoder = FrameDecoder(mtu=100)
    decoder.feed(encode_frame(b"ok") + (101).to_bytes(2, "big"))
    assert decoder.next_frame() == b"ok"
    with pytest.raises(FramingError, match="length prefix 101, expected at most mtu=100"):
        decoder.next_frame()


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(random.Random(7), initial=0.1, maximum=5.0)
    nominal = [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    delays = [backoff.next_delay() for _ in nominal]
    assert all(n / 2 <= d <= n for d, n in zip(delays, nominal, strict=True))
    again = Backoff(random.Random(7), initial=0.1, maximum=5.0)
    assert [again.next_delay() for _ in nominal] == delays  # the seed decides the jitter
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_tcp_link_needs_somewhere_to_listen_or_dial() -> None:
    with pytest.raises(ValueError, match="expected a listen address or peers"):
        TcpLink("tcp0", PROFILE, None, [])
    with pytest.raises(ValueError, match="tcp0: connect: expected 'host:port'"):
        TcpLink("tcp0", PROFILE, None, ["relay-2"])


async def test_tcp_redials_a_peer_that_dies_and_comes_back() -> None:
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            first = Runner(tcp("tcp-b", listen="127.0.0.1:0"))
            await nursery.start(first.run)
            address = first.link.local_address
            dialer = tcp("tcp-a", connect=(address,))
            await nursery.start(dialer.run)
            await wait_connected(dialer, first.link)

            await first.stop()
            assert await dialer.events.receive() == PeerDown(address)
            with pytest.raises(PeerUnavailable, match="not connected"):
                await dialer.send(address, b"lost")

            second = tcp("tcp-b", listen=address)  # same port: the peer restarted
            await nursery.start(second.run)
            pair = await wait_connected(dialer, second)
            assert (pair.a_to_b, pair.b_to_a) == (address, "tcp-in:1")
            await dialer.send(address, b"again")
            assert await receive_frame(second) == FrameReceived("tcp-in:1", b"again")
            await second.send("tcp-in:1", b"back")
            assert await receive_frame(dialer) == FrameReceived(address, b"back")
            nursery.cancel_scope.cancel()


async def test_tcp_disconnects_a_bad_length_prefix_and_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="tawan.transports.tcp")
    listener = tcp("tcp-b", listen="127.0.0.1:0")
    with trio.fail_after(TIMEOUT):
        async with running(listener):
            host, port = parse_endpoint(listener.local_address, "test")
            async with await trio.open_tcp_stream(host, port) as raw:
                assert await listener.events.receive() == PeerUp("tcp-in:1")
                bad_length = (PROFILE.mtu + 1).to_bytes(2, "big")
                await raw.send_all(encode_frame(b"good") + bad_length + b"junk")
                assert await receive_frame(listener) == FrameReceived("tcp-in:1", b"good")
                assert await listener.events.receive() == PeerDown("tcp-in:1")
                # Closed with our junk unread, so the kernel may send a reset, not a FIN.
                with contextlib.suppress(trio.BrokenResourceError):
                    assert await raw.receive_some(100) == b""
            assert listener.malformed_streams == 1
            assert "closing tcp-in:1, malformed stream: length prefix 1201" in caplog.text

            dialer = tcp("tcp-a", connect=(listener.local_address,))
            async with running(dialer):
                pair = await wait_connected(dialer, listener)
                assert pair.b_to_a == "tcp-in:2"
                await dialer.send(pair.a_to_b, b"still serving")
                assert await receive_frame(listener) == FrameReceived("tcp-in:2", b"still serving")


# Memory --------------------------------------------------------------------------------------


async def test_memory_link_pushes_back_on_a_slow_consumer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = memory_link_pair(PROFILE, event_buffer=2)
    async with running(a, b):
        pair = await wait_connected(a, b)
        await a.send(pair.a_to_b, b"1")
        await a.send(pair.a_to_b, b"2")
        with trio.move_on_after(1) as waited:
            await a.send(pair.a_to_b, b"3")
        assert waited.cancelled_caught
        assert await receive_frame(b) == FrameReceived("mem:a", b"1")
        await a.send(pair.a_to_b, b"3")
        assert b.dropped_frames == 0


async def test_memory_link_reports_the_far_end_stopping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = memory_link_pair(PROFILE, names=("left", "right"))
    async with trio.open_nursery() as nursery:
        runner = Runner(a)
        await nursery.start(runner.run)
        await nursery.start(b.run)
        pair = await wait_connected(a, b)
        assert (pair.a_to_b, pair.b_to_a) == ("mem:right", "mem:left")
        await runner.stop()
        assert await b.events.receive() == PeerDown("mem:left")
        with pytest.raises(PeerUnavailable, match="not connected"):
            await b.send("mem:left", b"x")
        nursery.cancel_scope.cancel()


async def test_an_unpaired_memory_link_refuses_to_run() -> None:
    with pytest.raises(LinkError, match="not paired"):
        await MemoryLink("lonely", PROFILE).run()


@pytest.mark.parametrize("kind", ["udp", "tcp"])
async def test_an_address_in_use_is_a_plain_os_error(kind: str) -> None:
    def make(name: str, address: str) -> Link:
        if kind == "udp":
            return UdpLink(name, PROFILE, address, [])
        return tcp(name, listen=address)

    first = make("first", "127.0.0.1:0")
    with trio.fail_after(TIMEOUT):
        async with running(first), trio.open_nursery() as nursery:
            with pytest.raises(OSError, match="in use"):
                await nursery.start(make("second", first.local_address).run)


# Emulated ------------------------------------------------------------------------------------


@asynccontextmanager
async def connected(bearer: BearerModel) -> AsyncIterator[tuple[EmulatedLink, EmulatedLink]]:
    a, b = emulated_link_pair(bearer)
    async with running(a, b):
        await wait_connected(a, b)
        yield a, b


async def receive_all(link: Link, quiet: float = 10.0, limit: int = 1000) -> list[bytes]:
    """Every frame that arrives until `quiet` seconds pass without one."""
    frames = []
    for _ in range(limit):
        with trio.move_on_after(quiet):
            frames.append((await receive_frame(link)).data)
            continue
        return frames
    raise AssertionError(f"{link}: more than {limit} frames")


async def test_emulated_frames_arrive_after_air_time_and_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with connected(BearerModel(SATCOM, random.Random(1))) as (a, b):
        start = trio.current_time()
        a.send_nowait("emu:b", bytes(800))  # 0.1 s on the air
        await a.send("emu:b", bytes(800))  # behind it: 0.2 s
        assert await receive_frame(b) == FrameReceived("emu:a", bytes(800))
        assert trio.current_time() - start == pytest.approx(0.4)
        await receive_frame(b)
        assert trio.current_time() - start == pytest.approx(0.5)


@pytest.mark.parametrize("condition", ["loss", "down"])
async def test_emulated_link_loses_frames_silently(
    autojump_clock: trio.testing.MockClock, condition: str
) -> None:
    bearer = BearerModel(SATCOM, random.Random(1))
    async with connected(bearer) as (a, b):
        if condition == "loss":
            bearer.loss = 1.0
        else:
            bearer.up = False
        for index in range(10):
            await a.send("emu:b", bytes([index]))
        bearer.loss, bearer.up = 0.0, True
        await a.send("emu:b", b"through")
        assert await receive_all(b) == [b"through"]
        assert (a.frames_sent, b.frames_received, b.dropped_frames) == (11, 1, 0)


async def test_emulated_link_duplicates_and_reorders_as_the_model_says(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def bearer() -> BearerModel:
        return BearerModel(SATCOM, random.Random(4), loss=0.2, duplicate=0.3, jitter_s=0.5)

    twin = bearer()
    async with connected(bearer()) as (a, b):
        start = trio.current_time()
        expected = []
        for index in range(100):
            frame = index.to_bytes(2, "big")
            expected += [(when, frame) for when in twin.send("a", 2, start)]
            await a.send("emu:b", frame)
        got = await receive_all(b)
    assert got == [frame for _, frame in sorted(expected)]
    assert len(set(got)) < 100 < len(got)  # some lost, some twice
    assert got != sorted(got)  # and out of order


async def test_emulated_link_drops_frames_in_the_air_when_the_far_end_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    a, b = emulated_link_pair(BearerModel(SATCOM, random.Random(1)), names=("left", "right"))
    async with trio.open_nursery() as nursery:
        runner = Runner(a)
        await nursery.start(runner.run)
        await nursery.start(b.run)
        pair = await wait_connected(a, b)
        assert (pair.a_to_b, pair.b_to_a) == ("emu:right", "emu:left")
        await a.send("emu:right", b"still in the air")
        await runner.stop()
        assert await b.events.receive() == PeerDown("emu:left")
        assert await receive_all(b) == []
        with pytest.raises(PeerUnavailable, match="not connected"):
            await b.send("emu:left", b"x")
        nursery.cancel_scope.cancel()


async def test_an_unpaired_emulated_link_refuses_to_run() -> None:
    with pytest.raises(LinkError, match="not paired"):
        await EmulatedLink("lonely", BearerModel(PROFILE, random.Random(1))).run()
