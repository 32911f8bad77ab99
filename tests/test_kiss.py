"""KISS framing, AX.25 UI frames and the KISS link over fake TNCs (TCP and pty).

The framer is checked against the vectors of the KISS spec worked by hand, fed whole, split
at every byte offset and byte by byte; the link passes the conformance kit over a fake TNC
that joins stations like a radio channel. Socket and pty tests run in real time on
127.0.0.1, each bounded by trio.fail_after.
"""

from __future__ import annotations

import logging
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from kiss_doubles import Air, FakeTnc, PtyTnc
from transport_kit import check_link_pair, receive_frame, wait_connected

from transports.ax25 import (
    MAX_HEADER_BYTES,
    Ax25Drop,
    Callsign,
    UiFrame,
    decode_ui,
    encode_ui,
)
from transports.kiss import (
    Command,
    KissDecoder,
    KissFrame,
    TncParameters,
    kiss_encode,
    kiss_full_duplex,
    kiss_persistence,
    kiss_return,
    kiss_slot_time,
    kiss_tx_tail,
    kiss_txdelay,
)
from transports.kisslink import KissLink
from transports.link import FrameReceived, Link, LinkEvent, PeerDown, PeerUnavailable, PeerUp
from transports.profile import BearerProfile
from transports.serial_tty import open_tty_stream

PROFILE = BearerProfile("vhf-kiss", rate_bps=1200, delay_s=0.5, mtu=256, cost=20.0)
TIMEOUT = 5.0

# Framing ------------------------------------------------------------------------------------


def test_spec_vectors_encode() -> None:
    assert kiss_encode(b"\xc0\xdb\x01") == bytes.fromhex("c000dbdcdbdd01c0")
    assert kiss_txdelay(500, port=1) == bytes.fromhex("c01132c0")
    assert kiss_return() == bytes.fromhex("c0ffc0")


def test_spec_vectors_decode() -> None:
    decoder = KissDecoder()
    wire = bytes.fromhex("c000dbdcdbdd01c0c01132c0c0ffc0")
    assert decoder.feed(wire) == [
        KissFrame(0, Command.DATA, b"\xc0\xdb\x01"),
        KissFrame(1, Command.TXDELAY, b"\x32"),
        KissFrame(15, Command.RETURN, b""),
    ]
    assert not decoder.drops
    assert decoder.noise_bytes == decoder.buffered == 0


def test_escaped_bytes_that_look_like_escapes_survive() -> None:
    # DB DC as data must not come out as C0, nor DB DD as DB.
    payload = b"\xdb\xdc\xdb\xdd\xdc\xdd"
    assert kiss_encode(payload) == bytes.fromhex("c000dbdddcdbdddddcddc0")
    assert KissDecoder().feed(kiss_encode(payload)) == [KissFrame(0, 0, payload)]


def test_type_byte_is_escaped_too() -> None:
    # Port 12 data is the type byte 0xC0, port 13 cmd 11 is 0xDB: both must be escaped.
    for port, command in ((12, 0), (13, 11)):
        wire = kiss_encode(b"x", port=port, command=command)
        assert wire.count(0xC0) == 2
        assert KissDecoder().feed(wire) == [KissFrame(port, command, b"x")]


FRAMES = [
    KissFrame(0, 0, b"hello"),
    KissFrame(0, 0, bytes([0xC0, 0xDB] * 20)),
    KissFrame(0, 0, b""),
    KissFrame(3, 0, b"\xdb"),
    KissFrame(0, Command.SET_HARDWARE, b"TXDONE"),
]
STREAM = b"".join(kiss_encode(f.payload, port=f.port, command=f.command) for f in FRAMES)


def test_several_frames_in_one_write() -> None:
    assert KissDecoder().feed(STREAM) == FRAMES


def test_split_at_every_byte_offset() -> None:
    for cut in range(len(STREAM) + 1):
        decoder = KissDecoder()
        got = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:])
        assert got == FRAMES, cut
        assert decoder.buffered == 0


def test_byte_by_byte() -> None:
    decoder = KissDecoder()
    got = [frame for i in range(len(STREAM)) for frame in decoder.feed(STREAM[i : i + 1])]
    assert got == FRAMES


def test_fend_runs_are_not_empty_frames() -> None:
    decoder = KissDecoder()
    wire = b"\xc0\xc0\xc0" + kiss_encode(b"a") + b"\xc0\xc0" + kiss_encode(b"b") + b"\xc0"
    assert decoder.feed(wire) == [KissFrame(0, 0, b"a"), KissFrame(0, 0, b"b")]
    assert not decoder.drops


def test_noise_before_first_fend_is_skipped_and_counted() -> None:
    decoder = KissDecoder()
    # A text banner with bytes that would be escapes inside a frame.
    noise = b"cmd:\xdb\xdc restart\r\n"
    assert decoder.feed(noise[:5]) == []
    assert decoder.feed(noise[5:] + kiss_encode(b"data")) == [KissFrame(0, 0, b"data")]
    assert decoder.noise_bytes == len(noise)
    assert not decoder.drops


def test_bad_escape_drops_the_frame_only() -> None:
    seen: list[str] = []
    decoder = KissDecoder(on_drop=seen.append)
    bad = [b"\xc0\x00\xdb\x41\xc0", b"\xc0\x00ab\xdb\xc0", b"\xc0\x00\xdb\xdb\xdc\xc0"]
    for wire in bad:
        assert decoder.feed(wire + kiss_encode(b"next")) == [KissFrame(0, 0, b"next")]
    assert decoder.drops == {"bad-escape": 3}
    assert seen == ["bad-escape"] * 3


def test_oversize_frames_are_dropped_with_bounded_memory() -> None:
    decoder = KissDecoder(max_payload=10)
    assert decoder.feed(kiss_encode(bytes(10))) == [KissFrame(0, 0, bytes(10))]
    assert decoder.feed(kiss_encode(bytes(11))) == []
    assert decoder.feed(kiss_encode(b"\xc0" * 10)) == [KissFrame(0, 0, b"\xc0" * 10)]
    assert decoder.feed(kiss_encode(b"\xc0" * 11)) == []
    # A TNC babbling without FEND: the buffer must not grow with it.
    decoder.feed(b"\xc0\x00")
    for _ in range(100):
        assert decoder.feed(b"z" * 1000) == []
        assert decoder.buffered <= 2 * 11
    assert decoder.feed(b"\xc0" + kiss_encode(b"ok")) == [KissFrame(0, 0, b"ok")]
    assert decoder.drops == {"oversize": 3}


ESCAPE_HEAVY = st.lists(st.sampled_from([0xC0, 0xDB, 0xDC, 0xDD, 0x00]), max_size=40).map(bytes)


@given(
    payloads=st.lists(st.one_of(st.binary(max_size=40), ESCAPE_HEAVY), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=5),
    fill=st.sampled_from([b"", b"\xc0", b"\xc0\xc0\xc0"]),
)
def test_any_payloads_any_chunking_round_trip(
    payloads: list[bytes], cuts: list[int], fill: bytes
) -> None:
    wire = fill + fill.join(kiss_encode(p) for p in payloads)
    decoder = KissDecoder()
    got = []
    start = 0
    for cut in [*sorted(c % (len(wire) + 1) for c in cuts), len(wire)]:
        got += decoder.feed(wire[start:cut])
        start = cut
    assert [frame.payload for frame in got] == payloads
    assert not decoder.drops


def test_escape_heavy_payloads_round_trip() -> None:
    rng = random.Random(5)
    payloads = [bytes(rng.choice(b"\xc0\xdb\xdc\xdd\x00") for _ in range(300)) for _ in range(20)]
    decoder = KissDecoder()
    assert [f.payload for f in decoder.feed(b"".join(map(kiss_encode, payloads)))] == payloads


def test_parameter_encoders() -> None:
    assert kiss_txdelay(300) == bytes.fromhex("c0011ec0")
    assert kiss_persistence(63, port=2) == bytes.fromhex("c0223fc0")
    assert kiss_slot_time(100) == bytes.fromhex("c0030ac0")
    assert kiss_tx_tail(30) == bytes.fromhex("c00403c0")
    assert kiss_full_duplex(True) == bytes.fromhex("c00501c0")
    # 0xC0 as a parameter value (1920 ms) is escaped like any data byte.
    assert kiss_txdelay(1920) == bytes.fromhex("c001dbdcc0")
    params = TncParameters(txdelay_ms=300, persistence=63, slot_ms=100)
    assert params.frames(1) == [
        kiss_txdelay(300, port=1),
        kiss_persistence(63, port=1),
        kiss_slot_time(100, port=1),
    ]
    assert TncParameters().frames() == []


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: kiss_txdelay(305), r"txdelay_ms: expected a multiple of 10 ms .*found 305"),
        (lambda: kiss_slot_time(2560), r"slot_ms: expected .* in 0\.\.2550, found 2560"),
        (lambda: kiss_persistence(256), r"persistence: expected 0\.\.255, found 256"),
        (lambda: kiss_encode(b"", port=16), r"port: expected 0\.\.15, found 16"),
        (lambda: kiss_encode(b"", command=-1), r"command: expected 0\.\.15, found -1"),
        (lambda: TncParameters(txdelay_ms=-10), r"txdelay_ms: .*found -10"),
    ],
)
def test_parameter_errors_name_expected_and_found(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


# AX.25 --------------------------------------------------------------------------------------

GOLDEN_UI = (
    bytes.fromhex(
        "a882ae829c40e0"  # "TAWAN ", SSID 0 with C bit (destination of a command)
        "9c608682989867"  # "N0CALL", SSID 3, last address
        "03f0"  # UI, no layer 3
    )
    + b"hi"
)


def test_ui_golden_bytes() -> None:
    frame = UiFrame(Callsign("TAWAN"), Callsign.parse("N0CALL-3"), b"hi")
    assert encode_ui(frame) == GOLDEN_UI
    assert decode_ui(GOLDEN_UI) == frame


def test_ui_round_trip_with_digipeaters_and_poll_bit() -> None:
    frame = UiFrame(
        Callsign("N1", 15), Callsign("AB1CDE", 7), bytes(range(256)), (Callsign("WIDE1", 1),)
    )
    wire = encode_ui(frame)
    assert len(wire) == 3 * 7 + 2 + 256
    assert decode_ui(wire) == frame
    polled = bytearray(wire)
    polled[21] = 0x13  # UI with the P bit
    assert decode_ui(bytes(polled)) == frame


def _drop_reason(data: bytes) -> str:
    result = decode_ui(data)
    assert isinstance(result, Ax25Drop), result
    return result.reason


def test_ui_decode_refuses_what_is_not_a_tawan_ui_frame() -> None:
    good = bytearray(GOLDEN_UI)
    i_frame, net_rom, bad_char, ext_in_call = (bytearray(good) for _ in range(4))
    i_frame[14] = 0x00
    net_rom[15] = 0xCF
    bad_char[0] = ord("a") << 1
    ext_in_call[2] |= 1
    one_address = bytearray(good)
    one_address[6] |= 1
    no_end = Callsign("X").encode(last=False, high_bit=False) * 11 + b"\x03\xf0"
    assert _drop_reason(bytes(i_frame)) == "ax25-not-ui"
    assert _drop_reason(bytes(net_rom)) == "ax25-foreign-pid"
    assert _drop_reason(bytes(bad_char)) == "ax25-bad-address"
    assert _drop_reason(bytes(ext_in_call)) == "ax25-bad-address"
    assert _drop_reason(bytes(one_address)) == "ax25-bad-address"
    assert _drop_reason(no_end) == "ax25-bad-address"
    assert _drop_reason(GOLDEN_UI[:10]) == "ax25-short"
    assert _drop_reason(GOLDEN_UI[:15]) == "ax25-short"
    assert _drop_reason(b"") == "ax25-short"
    blank = b"\x40" * 6 + b"\xe0" + GOLDEN_UI[7:]
    assert _drop_reason(blank) == "ax25-bad-address"


@given(st.binary(max_size=120))
def test_ui_decode_never_raises(data: bytes) -> None:
    result = decode_ui(data)
    if isinstance(result, UiFrame):
        assert decode_ui(encode_ui(result)) == result


@pytest.mark.parametrize(
    ("text", "call", "ssid"),
    [("N0CALL-3", "N0CALL", 3), ("TAWAN", "TAWAN", 0), ("K1-15", "K1", 15)],
)
def test_callsign_parse_and_text(text: str, call: str, ssid: int) -> None:
    assert Callsign.parse(text) == Callsign(call, ssid)
    assert str(Callsign(call, ssid)) == text


@pytest.mark.parametrize("text", ["n0call", "N0CALL-0", "N0CALL-16", "N0CALL-03", "SEVENCH", ""])
def test_callsign_errors_name_input_and_expected(text: str) -> None:
    with pytest.raises(
        ValueError, match=r"^links\.vhf\.callsign: expected CALL or CALL-SSID"
    ) as e:
        Callsign.parse(text, "links.vhf.callsign")
    assert f"found {text!r}" in str(e.value)


def test_callsign_fields_validated() -> None:
    with pytest.raises(ValueError, match=r"Callsign.ssid: expected an integer 0\.\.15, found 16"):
        Callsign("N0CALL", 16)
    with pytest.raises(ValueError, match=r"Callsign.call: expected 1-6 .*found 'N0 CAL'"):
        Callsign("N0 CAL")


# The link over a fake TNC -------------------------------------------------------------------


def kiss_link(
    name: str,
    callsign: str,
    peers: Sequence[str],
    *,
    tnc: str | None = None,
    device: str | None = None,
    **options: object,
) -> KissLink:
    return KissLink(
        name,
        PROFILE,
        callsign=callsign,
        peers=peers,
        tnc=tnc,
        device=device,
        rng=random.Random(0),
        backoff_initial=0.01,
        backoff_max=0.05,
        **options,  # type: ignore[arg-type]
    )


class Runner:
    """Runs one task in its own cancel scope, so a test can stop it and wait until it has."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self.scope = trio.CancelScope()
        self.finished = trio.Event()

    async def start(self, run: object) -> None:
        async def wrapped(*, task_status: trio.TaskStatus[None]) -> None:
            try:
                with self.scope:
                    await run(task_status=task_status)  # type: ignore[operator]
            finally:
                self.finished.set()

        await self._nursery.start(wrapped)

    async def stop(self) -> None:
        self.scope.cancel()
        await self.finished.wait()


@asynccontextmanager
async def fake_tnc(air: Air | None = None, port: int = 0) -> AsyncIterator[FakeTnc]:
    async with trio.open_nursery() as nursery:
        tnc = FakeTnc(air if air is not None else Air(), port)
        await nursery.start(tnc.run)
        yield tnc
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def running(*links: Link) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for link in links:
            await nursery.start(link.run)
        yield
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def on_air(tnc: FakeTnc, *links: KissLink) -> AsyncIterator[Air]:
    """The links running, once every one of them has joined the air."""
    expected = tnc.air.station_count + len(links)  # counted before any of them can join
    async with running(*links):
        await tnc.air.wait_stations(expected)
        yield tnc.air


@asynccontextmanager
async def kiss_pair() -> AsyncIterator[tuple[Link, Link]]:
    async with fake_tnc() as tnc:
        a = kiss_link("kiss-a", "N0CALL-1", ["N0CALL-2"], tnc=tnc.address)
        b = kiss_link("kiss-b", "N0CALL-2", ["N0CALL-1"], tnc=tnc.address)
        async with on_air(tnc, a, b):
            yield a, b


async def test_kiss_link_conforms() -> None:
    await check_link_pair(kiss_pair, timeout=10)


async def next_events(link: Link, count: int) -> list[LinkEvent]:
    return [await link.events.receive() for _ in range(count)]


async def test_a_net_of_three_unicast_and_broadcast() -> None:
    calls = ["ALPHA", "BRAVO-1", "CHARLY-2"]
    with trio.fail_after(TIMEOUT):
        async with fake_tnc() as tnc:
            links = [
                kiss_link(f"kiss-{i}", call, [c for c in calls if c != call],
                          tnc=tnc.address, broadcast="TAWAN")
                for i, call in enumerate(calls)
            ]  # fmt: skip
            a, b, c = links
            async with on_air(tnc, *links) as air:
                for link, call in zip(links, calls, strict=True):
                    assert await next_events(link, 2) == [PeerUp(x) for x in calls if x != call]
                await a.send("BRAVO-1", b"for bravo")
                await a.send("TAWAN", b"for all")
                assert await receive_frame(b) == FrameReceived("ALPHA", b"for bravo")
                assert await receive_frame(b) == FrameReceived("ALPHA", b"for all")
                assert await receive_frame(c) == FrameReceived("ALPHA", b"for all")
                # Everyone heard both transmissions; charly kept only the broadcast.
                assert len(air.transmitted) == 2
                assert c.drop_counts()["not-for-us"] == 1
                assert (c.frames_received, a.frames_sent) == (1, 2)


async def wait_for(condition: Callable[[], bool]) -> None:
    while not condition():
        await trio.sleep(0.005)


async def test_parameters_sent_when_the_tnc_connects() -> None:
    params = TncParameters(txdelay_ms=300, persistence=63, slot_ms=100)
    air = Air()
    with trio.fail_after(TIMEOUT):
        async with fake_tnc(air) as tnc:
            link = kiss_link("kiss-p", "N0CALL-1", ["X"], tnc=tnc.address, parameters=params,
                             port=2)  # fmt: skip
            async with running(link):
                assert await link.events.receive() == PeerUp("X")
                await wait_for(lambda: len(air.commands) == 3)
    assert air.commands == [
        KissFrame(2, Command.TXDELAY, bytes([30])),
        KissFrame(2, Command.PERSISTENCE, bytes([63])),
        KissFrame(2, Command.SLOT_TIME, bytes([10])),
    ]


def ui_wire(dest: str, src: str, info: bytes, *, port: int = 0) -> bytes:
    ui = UiFrame(Callsign.parse(dest), Callsign.parse(src), info)
    return kiss_encode(encode_ui(ui), port=port)


async def test_inbound_filters_count_every_drop_by_reason() -> None:
    good = encode_ui(UiFrame(Callsign("N0CALL", 1), Callsign("N0CALL", 2), b"x"))
    not_ui = bytearray(good)
    not_ui[14] = 0x3F  # SABM
    foreign = bytearray(good)
    foreign[15] = 0xCF
    junk = [
        b"*** DIREWOLF banner\r\n",  # noise before the first FEND: not a frame, not counted
        kiss_encode(b"\x01\x02", command=Command.SET_HARDWARE),  # TxDone-style status
        kiss_encode(good, port=1),
        kiss_encode(bytes(not_ui)),
        kiss_encode(bytes(foreign)),
        kiss_encode(good[:9]),
        ui_wire("N0CALL-9", "N0CALL-2", b"someone else"),
        ui_wire("N0CALL-1", "N0CALL-7", b"stranger"),
        ui_wire("N0CALL-1", "N0CALL-2", bytes(MAX_HEADER_BYTES + PROFILE.mtu + 1)),
        b"\xc0\x00\xdb\x00\xc0",
        ui_wire("N0CALL-1", "N0CALL-2", b"on port 3", port=3),
        ui_wire("TAWAN", "N0CALL-2", b"to all"),
        ui_wire("N0CALL-1", "N0CALL-2", b"ok"),
    ]
    with trio.fail_after(TIMEOUT):
        async with fake_tnc() as tnc:
            link = kiss_link("kiss-f", "N0CALL-1", ["N0CALL-2"], tnc=tnc.address,
                             broadcast="TAWAN", accept_ports=(3,))  # fmt: skip
            async with on_air(tnc, link) as air:
                assert await link.events.receive() == PeerUp("N0CALL-2")
                await air.inject(b"".join(junk))
                for info in (b"on port 3", b"to all", b"ok"):
                    assert await receive_frame(link) == FrameReceived("N0CALL-2", info)
    counts = link.drop_counts()
    assert set(counts) == set(KissLink.DROP_REASONS)
    assert {reason: n for reason, n in counts.items() if n} == {
        "not-data": 1,
        "other-port": 1,
        "ax25-not-ui": 1,
        "ax25-foreign-pid": 1,
        "ax25-short": 1,
        "not-for-us": 1,
        "unknown-source": 1,
        "oversize": 1,
        "bad-escape": 1,
    }
    assert (link.dropped_frames, link.frames_received) == (9, 3)


async def test_tnc_goes_away_and_comes_back() -> None:
    air = Air()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            tnc = Runner(nursery)
            fake = FakeTnc(air)
            await tnc.start(fake.run)
            params = TncParameters(txdelay_ms=100)
            a = kiss_link("kiss-a", "N0CALL-1", ["N0CALL-2"], tnc=fake.address, parameters=params)
            b = kiss_link("kiss-b", "N0CALL-2", ["N0CALL-1"], tnc=fake.address)
            async with on_air(fake, a, b):
                pair = await wait_connected(a, b)

                await tnc.stop()  # the TNC goes away; redials are refused for a while
                for link, peer in ((a, "N0CALL-2"), (b, "N0CALL-1")):
                    assert await link.events.receive() == PeerDown(peer)
                with pytest.raises(PeerUnavailable, match="TNC not connected"):
                    await a.send(pair.a_to_b, b"lost")
                await trio.sleep(0.1)  # a few refused redials, with backoff

                tnc = Runner(nursery)
                await tnc.start(FakeTnc(air, fake.port).run)
                await air.wait_stations(2)
                pair = await wait_connected(a, b)
                await a.send(pair.a_to_b, b"again")
                await b.send(pair.b_to_a, b"back")
                assert await receive_frame(b) == FrameReceived("N0CALL-1", b"again")
                assert await receive_frame(a) == FrameReceived("N0CALL-2", b"back")
                assert a.connects == b.connects == 2
                assert air.commands == [KissFrame(0, Command.TXDELAY, b"\x0a")] * 2  # each time
            nursery.cancel_scope.cancel()


async def test_link_started_before_its_tnc_connects_when_it_appears() -> None:
    async with fake_tnc() as reserve:
        pass  # a port that refuses connections from now on
    link = kiss_link("kiss-late", "N0CALL-1", ["N0CALL-2"], tnc=reserve.address)
    with trio.fail_after(TIMEOUT):
        async with running(link):
            await trio.sleep(0.1)
            assert not link.tnc_connected
            with pytest.raises(PeerUnavailable, match="TNC not connected"):
                await link.send("N0CALL-2", b"x")
            async with fake_tnc(port=reserve.port):
                assert await link.events.receive() == PeerUp("N0CALL-2")


async def test_send_to_unknown_or_unconfigured_callsign() -> None:
    with trio.fail_after(TIMEOUT):
        async with fake_tnc() as tnc:
            link = kiss_link("kiss-u", "N0CALL-1", ["N0CALL-2"], tnc=tnc.address)
            async with on_air(tnc, link):
                for peer in ("N0CALL-3", "TAWAN", "n0call-2"):
                    with pytest.raises(PeerUnavailable, match="not a configured callsign"):
                        await link.send(peer, b"x")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tnc": None}, "expected exactly one of tnc or device"),
        ({"device": "/dev/ttyS0"}, "expected exactly one of tnc or device"),
        ({"callsign": "n0call"}, r"link k: callsign: expected CALL or CALL-SSID"),
        ({"peers": ["N0CALL-1"]}, "expected other stations, found own 'N0CALL-1'"),
        ({"peers": ["N0CALL-02"]}, r"link k: peers: expected CALL or CALL-SSID"),
        ({"broadcast": "all"}, r"link k: broadcast: expected CALL"),
        ({"port": 16}, r"KISS port: expected 0\.\.15, found 16"),
        ({"accept_ports": (-1,)}, r"KISS port: expected 0\.\.15, found -1"),
        ({"speed": 9601}, r"link k: speed: expected one of \[1200, .*found 9601"),
        ({"profile": BearerProfile("x", 1200, 0.5, 1001, 1.0)}, "expected at most 1000"),
        ({"tnc": "localhost"}, r"link k: tnc: expected 'host:port'"),
    ],
)
def test_link_configuration_errors(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "callsign": "N0CALL-1",
        "peers": ["N0CALL-2"],
        "tnc": "127.0.0.1:8001",
        "profile": PROFILE,
    }
    arguments.update(options)
    profile = arguments.pop("profile")
    with pytest.raises(ValueError, match=message):
        KissLink("k", profile, **arguments)  # type: ignore[arg-type]


# The serial path over a pty -----------------------------------------------------------------


async def test_serial_link_through_a_pty() -> None:
    air = Air()
    pty = PtyTnc(air)
    serial = kiss_link("kiss-tty", "N0CALL-1", ["N0CALL-2"], device=pty.path, speed=19200)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery, fake_tnc(air) as tcp_tnc:
            tnc = Runner(nursery)
            await tnc.start(pty.run)
            other = kiss_link("kiss-tcp", "N0CALL-2", ["N0CALL-1"], tnc=tcp_tnc.address)
            async with on_air(tcp_tnc, other):
                await nursery.start(serial.run)
                assert await serial.events.receive() == PeerUp("N0CALL-2")
                assert await other.events.receive() == PeerUp("N0CALL-1")
                pty.release_slave()
                rng = random.Random(3)
                frames = [bytes(rng.choice(b"\xc0\xdb\x0a\x0d\x11\x13\x00") for _ in range(n))
                          for n in (0, 1, 100, 256)]  # fmt: skip  # bytes a cooked tty eats
                for frame in frames:
                    await serial.send("N0CALL-2", frame)
                    await other.send("N0CALL-1", frame)
                for frame in frames:
                    assert await receive_frame(other) == FrameReceived("N0CALL-1", frame)
                    assert await receive_frame(serial) == FrameReceived("N0CALL-2", frame)

                await tnc.stop()  # the TNC side of the pty closes: the serial line is dead
                assert await serial.events.receive() == PeerDown("N0CALL-2")
                with pytest.raises(PeerUnavailable):
                    await serial.send("N0CALL-2", b"x")
                nursery.cancel_scope.cancel()


def test_a_device_that_is_no_serial_line_is_an_oserror_naming_it() -> None:
    # /dev/null opens read-write, but termios refuses it: the link retries an OSError, a
    # termios.error would end the daemon.
    with pytest.raises(OSError, match=r"not a serial device .*'/dev/null'"):
        open_tty_stream("/dev/null")


async def test_a_tnc_that_cannot_be_opened_is_a_warning_once_then_retried(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    link = kiss_link("kiss-tty", "N0CALL-1", ["N0CALL-2"], device="/dev/null")
    caplog.set_level(logging.DEBUG, logger="tawan.transports.kiss")
    with trio.move_on_after(0.3):  # the backoff is 10-50 ms: several tries
        await link.run()
    failures = [r for r in caplog.records if "opening TNC /dev/null" in r.getMessage()]
    assert len(failures) >= 3
    assert [r.levelno for r in failures[:2]] == [logging.WARNING, logging.DEBUG]
    assert "not a serial device" in failures[0].getMessage()
    missing = kiss_link("kiss-tty", "N0CALL-1", ["N0CALL-2"], device=str(tmp_path / "tty"))
    caplog.clear()
    with trio.move_on_after(0.1):
        await missing.run()
    assert caplog.records[0].levelno == logging.WARNING
    assert "No such file or directory" in caplog.records[0].getMessage()


async def test_pty_master_sees_the_link_close_its_slave() -> None:
    # The double's own check: with the link's descriptor the only slave, a link that stops
    # is a station that leaves the air (its master reads EIO, BrokenResourceError).
    air = Air()
    pty = PtyTnc(air)
    link = kiss_link("kiss-tty", "N0CALL-1", ["N0CALL-2"], device=pty.path)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(pty.run)
            runner = Runner(nursery)
            await runner.start(link.run)
            assert await link.events.receive() == PeerUp("N0CALL-2")
            pty.release_slave()
            assert air.station_count == 1
            await runner.stop()
            await air.wait_stations(0)


def test_framer_and_ax25_are_free_of_io() -> None:
    # Sans-I/O like the engine: the emulator or a fuzzer can drive them without trio.
    code = (
        "import sys, transports.kiss, transports.ax25\n"
        "print(sorted(m for m in ('trio', 'socket') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
