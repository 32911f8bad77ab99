"""STANAG 5066 SIS: the codec against the reference vectors, the stream decoder at every
split, the peer rule, and S5066Link against the fake subnetwork in tests/sis_server.py.

Socket tests run on 127.0.0.1 in real time, each bounded by trio.fail_after.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest
import trio
from sis_server import FakeSisServer
from transport_kit import check_link_pair, receive_frame, wait_connected

from transports.link import FrameReceived, Link, LinkEvent, PeerDown, PeerUnavailable, PeerUp
from transports.profile import BearerProfile
from transports.s5066 import S5066Link
from transports.s5066_codec import (
    Address,
    BindAccepted,
    BindRejected,
    BindRejectReason,
    BindRequest,
    Confirm,
    DataFlowOff,
    DataFlowOn,
    KeepAlive,
    OtherPrimitive,
    Primitive,
    PrimitiveType,
    RejectReason,
    ServiceType,
    SisDecodeError,
    SubnetAvailability,
    TxMode,
    UnbindIndication,
    UnbindReason,
    UnbindRequest,
    UnidataConfirm,
    UnidataIndication,
    UnidataRejected,
    UnidataRequest,
    decode_body,
    element,
    encode,
    parse_address,
)
from transports.s5066_peers import PeerBook
from transports.s5066_stream import SisDecoder

HF = BearerProfile("hf", rate_bps=2400, delay_s=2.0, mtu=2048, cost=50.0)
TIMEOUT = 5.0
ARQ_NODE = ServiceType(TxMode.ARQ, Confirm.NODE)
HELLO = b"hello"

# Radio-transports notes §2.8, computed from the Ed.3 figures.
GOLDEN: list[tuple[Primitive, str]] = [
    (BindRequest(13, 5, ARQ_NODE), "90 EB 00 00 04 01 D5 14 00"),
    (BindAccepted(13, 2048), "90 EB 00 00 04 03 D0 08 00"),
    (KeepAlive(), "90 EB 00 00 01 11"),
    (UnbindRequest(), "90 EB 00 00 01 02"),
    (
        UnidataRequest(7, 13, Address(2), ARQ_NODE, 60, HELLO),
        "90 EB 00 00 11 14 7D E0 00 00 02 14 00 00 3C 00 05 68 65 6C 6C 6F",
    ),
    (
        UnidataIndication(7, 13, Address(2), TxMode.ARQ, 13, Address(1), HELLO),
        "90 EB 00 00 12 15 7D E0 00 00 02 1D E0 00 00 01 00 05 68 65 6C 6C 6F",
    ),
    (
        UnidataConfirm(13, Address(2), HELLO),
        "90 EB 00 00 0D 16 0D E0 00 00 02 00 05 68 65 6C 6C 6F",
    ),
    (
        UnidataRejected(RejectReason.UPDU_LARGER_THAN_MTU, 13, Address(2), HELLO),
        "90 EB 00 00 0D 17 4D E0 00 00 02 00 05 68 65 6C 6C 6F",
    ),
]


def decode_one(data: bytes) -> Primitive:
    decoder = SisDecoder()
    decoder.feed(data)
    primitive = decoder.next_primitive()
    assert primitive is not None
    assert decoder.next_primitive() is None and decoder.buffered == 0
    return primitive


# -- codec ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("primitive", "wire"), GOLDEN)
def test_golden_bytes_both_ways(primitive: Primitive, wire: str) -> None:
    assert encode(primitive).hex(" ").upper() == wire
    assert decode_one(bytes.fromhex(wire)) == primitive


def test_every_client_primitive_round_trips() -> None:
    others: list[Primitive] = [
        BindRejected(BindRejectReason.SAP_ALREADY_ALLOCATED),
        UnbindIndication(UnbindReason.KEEP_ALIVE_TIMEOUT),
        DataFlowOn(),
        DataFlowOff(),
        SubnetAvailability(1, 0),
        UnidataRequest(
            0, 13, Address(0x0ABCDEF, group=True), ServiceType(TxMode.NON_ARQ, min_retx=3),
            ttl_long := 0x9ABCD, bytes(300),
        ),
        OtherPrimitive(PrimitiveType.MANAGEMENT_MSG_INDICATION, b"\x01\x02"),
        OtherPrimitive(99, b""),
    ]  # fmt: skip
    for primitive in others:
        assert decode_one(encode(primitive)) == primitive
    request = decode_one(encode(others[5]))
    assert isinstance(request, UnidataRequest) and request.ttl_units == ttl_long


def test_the_rockwell_pad_is_recognised_and_dropped() -> None:
    indication = UnidataIndication(0, 13, Address(2), TxMode.ARQ, 13, Address(1), HELLO)
    padded = UnidataIndication(0, 13, Address(2), TxMode.ARQ, 13, Address(1), HELLO, padded=True)
    wire = encode(padded)
    assert wire == encode(indication)[:4] + b"\x16" + encode(indication)[5:18] + bytes(4) + HELLO
    assert decode_one(wire) == padded


def test_an_indication_with_error_blocks_skips_them() -> None:
    body = bytes.fromhex("0D E0000002 3D E0000001 0005 0001 0000 0002 0000") + HELLO
    decoded = decode_body(PrimitiveType.UNIDATA_INDICATION, body)
    assert isinstance(decoded, UnidataIndication)
    assert (decoded.errors, decoded.data) == (True, HELLO)


@pytest.mark.parametrize(
    ("type_code", "body", "says"),
    [
        (PrimitiveType.BIND_ACCEPTED, b"\xd0\x08", "expected a 3-byte body, found 2"),
        (PrimitiveType.BIND_REJECTED, b"\x09", "BIND_REJECTED reason: expected one of"),
        (PrimitiveType.UNIDATA_REQUEST_CONFIRM, bytes.fromhex("0D E0000002 0009") + HELLO,
         "size field says 9 bytes, found 5"),
        (PrimitiveType.UNIDATA_INDICATION, b"\x00" * 5, "expected 12 bytes up to its header"),
        (PrimitiveType.UNIDATA_REQUEST_REJECTED, bytes.fromhex("9D E0000002 0000"),
         "reason: expected one of"),
        (PrimitiveType.BIND_REQUEST, bytes.fromhex("D5 F4 00"), "txmode: expected one of"),
    ],
)  # fmt: skip
def test_decode_errors_say_what_was_found(type_code: int, body: bytes, says: str) -> None:
    with pytest.raises(SisDecodeError, match=says):
        decode_body(type_code, body)


def test_addresses_from_config() -> None:
    assert parse_address("0.0.0.2") == parse_address(2) == Address(2)
    assert parse_address("15.255.255.255").value == 0x0FFFFFFF
    assert parse_address("group:0.0.1.0") == Address(256, group=True)
    assert str(Address(0x0102_0304)) == "1.2.3.4"
    assert Address(5, group=True).encode() == bytes.fromhex("F0 00 00 05")
    assert Address.decode(bytes.fromhex("F0 00 00 05")) == Address(5, group=True)
    for bad in ("16.0.0.0", "1.2.3", "a.b.c.d", "1.2.3.256"):
        with pytest.raises(ValueError, match="5066 address: expected"):
            parse_address(bad)


# -- stream decoder -------------------------------------------------------------------------

STREAM = b"".join(bytes.fromhex(wire) for _, wire in GOLDEN)
EXPECTED = [primitive for primitive, _ in GOLDEN]


def decode_pieces(pieces: list[bytes]) -> tuple[list[Primitive], SisDecoder]:
    decoder = SisDecoder()
    out = []
    for piece in pieces:
        decoder.feed(piece)
        while (primitive := decoder.next_primitive()) is not None:
            out.append(primitive)
    return out, decoder


def test_stream_split_at_every_offset() -> None:
    for cut in range(len(STREAM) + 1):
        out, decoder = decode_pieces([STREAM[:cut], STREAM[cut:]])
        assert out == EXPECTED, cut
        assert decoder.skipped_bytes == decoder.buffered == 0


def test_stream_byte_by_byte_and_all_at_once() -> None:
    assert decode_pieces([bytes([b]) for b in STREAM])[0] == EXPECTED
    assert decode_pieces([STREAM])[0] == EXPECTED


def test_stream_resyncs_on_the_header_after_garbage() -> None:
    rng = random.Random(5066)
    junk = [rng.randbytes(rng.randrange(1, 40)).replace(b"\x90", b"\x91") for _ in GOLDEN]
    noisy = b"".join(j + bytes.fromhex(w) for j, (_, w) in zip(junk, GOLDEN, strict=True))
    for cut in range(0, len(noisy), 7):
        out, decoder = decode_pieces([noisy[:cut], noisy[cut:]])
        assert out == EXPECTED
        assert decoder.skipped_bytes == sum(len(j) for j in junk)


def test_stream_skips_a_false_header_and_a_malformed_element() -> None:
    false_header = b"\x90\xeb\x00\xff\xff"  # 65535 > max_size: garbage, not a wait
    bad_body = element(PrimitiveType.BIND_ACCEPTED, b"\x00")  # too short: skipped whole
    out, decoder = decode_pieces([false_header + bad_body + STREAM])
    assert out == EXPECTED
    assert decoder.malformed == 1 and decoder.skipped_bytes == len(false_header)
    assert decoder.last_error is not None and "BIND_ACCEPTED" in decoder.last_error


def test_stream_keeps_a_header_prefix_split_across_reads() -> None:
    wire = bytes.fromhex(GOLDEN[2][1])
    out, decoder = decode_pieces([b"junk\x90", b"\xeb", wire[2:]])
    assert out == [KeepAlive()] and decoder.skipped_bytes == 4


# -- the peer rule --------------------------------------------------------------------------


def book(retry_after: float = 100.0) -> PeerBook:
    peers = {"b": Address(2), "c": Address(3)}
    return PeerBook(peers, {"all": Address(9, True)}, retry_after=retry_after, answer_within=50)


def test_a_rejection_puts_the_peer_down_and_a_confirm_brings_it_back() -> None:
    pb = book()
    assert pb.bound() == [PeerUp("b"), PeerUp("c"), PeerUp("all")]
    pb.sent("b", b"frame-1", 0)
    pb.sent("b", b"frame-2", 0)
    reason = RejectReason.DESTINATION_NODE_NOT_RESPONDING
    assert pb.rejected_to(Address(2), reason, b"frame-1", 1) == [PeerDown("b")]
    assert not pb.is_up("b") and pb.is_up("c")
    assert pb.confirmed_to(Address(2), b"frame-2", 2) == [PeerUp("b")]
    assert (pb.confirmed, dict(pb.rejected)) == (1, {reason.name: 1})


def test_a_rejection_older_than_a_confirm_is_old_news() -> None:
    pb = book()
    pb.bound()
    for frame in (b"one", b"two"):
        pb.sent("b", frame, 0)
    assert pb.confirmed_to(Address(2), b"two", 1) == []
    assert pb.rejected_to(Address(2), RejectReason.TTL_EXPIRED, b"one", 2) == []
    assert pb.is_up("b")


def test_client_faults_do_not_put_a_peer_down() -> None:
    pb = book()
    pb.bound()
    pb.sent("b", b"x" * 10, 0)
    assert pb.rejected_to(Address(2), RejectReason.UPDU_LARGER_THAN_MTU, b"x", 1) == []
    assert pb.is_up("b")


def test_answers_match_by_prefix_oldest_first_and_unmatched_are_counted() -> None:
    pb = book()
    pb.bound()
    pb.sent("b", b"same-head-1", 0)
    pb.sent("b", b"other", 0)
    pb.sent("b", b"same-head-2", 0)
    pb.rejected_to(Address(2), RejectReason.TTL_EXPIRED, b"same", 1)  # the oldest "same"
    assert not pb.is_up("b")
    assert pb.confirmed_to(Address(2), b"other", 2) == [PeerUp("b")]  # matched by its bytes
    assert pb.confirmed_to(Address(2), b"same-head-2", 3) == []
    assert pb.confirmed_to(Address(2), b"nothing", 4) == []
    assert pb.confirmed_to(Address(7), b"", 4) == []
    assert pb.unmatched_answers == 2


def test_a_down_peer_is_retried_or_heard_from() -> None:
    pb = book(retry_after=30)
    pb.bound()
    pb.sent("b", b"1", 0)
    pb.sent("c", b"1", 0)
    pb.rejected_to(Address(2), RejectReason.DESTINATION_SAP_NOT_BOUND, b"1", 10)
    pb.rejected_to(Address(3), RejectReason.DESTINATION_SAP_NOT_BOUND, b"1", 20)
    assert pb.next_retry() == 40
    assert pb.retry_due(39) == []
    assert pb.retry_due(40) == [PeerUp("b")]
    assert pb.heard_from("c") == [PeerUp("c")] and pb.next_retry() is None


def test_unanswered_frames_expire_and_the_map_is_bounded() -> None:
    pb = PeerBook({"b": Address(2)}, {}, retry_after=1, answer_within=10, max_outstanding=3)
    pb.bound()
    for index in range(5):
        pb.sent("b", bytes([index]), 0)
    assert pb.unanswered == 2
    pb.expire(10)
    assert pb.unanswered == 5
    assert pb.unbound() == [PeerDown("b")]


# -- the link against the fake subnetwork ---------------------------------------------------


def sis_link(
    name: str, server: str, peers: Mapping[str, str | int], **options: object
) -> S5066Link:
    return S5066Link(
        name, HF, server, peers, rng=random.Random(0), backoff_initial=0.01,
        backoff_max=0.1, **options,  # type: ignore[arg-type]
    )  # fmt: skip


@asynccontextmanager
async def subnet(
    server: FakeSisServer, *links: tuple[str, int, Mapping[str, str | int], dict[str, object]]
) -> AsyncIterator[list[S5066Link]]:
    """The server and one link per (name, node, peers, options), all running."""
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        running = []
        for name, node, peers, options in links:
            link = sis_link(name, server.endpoint(node), peers, **options)
            await nursery.start(link.run)
            running.append(link)
        yield running
        nursery.cancel_scope.cancel()


def two_nodes(
    server: FakeSisServer, **options: object
) -> AbstractAsyncContextManager[list[S5066Link]]:
    return subnet(server, ("a", 1, {"b": 2}, options), ("b", 2, {"a": "0.0.0.1"}, options))


@asynccontextmanager
async def pair_on(mtu: int) -> AsyncIterator[tuple[Link, Link]]:
    async with two_nodes(FakeSisServer([1, 2], mtu=mtu)) as (a, b):
        yield a, b


async def test_s5066_link_conforms_mtu_2048() -> None:
    await check_link_pair(lambda: pair_on(2048), timeout=15)


async def test_s5066_link_conforms_mtu_200() -> None:
    await check_link_pair(lambda: pair_on(200), timeout=15)


async def next_event(link: Link) -> LinkEvent:
    return await link.events.receive()


async def test_bind_asks_for_sap_rank_and_arq_with_node_confirmation() -> None:
    server = FakeSisServer([1, 2], mtu=300)
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            assert sorted(n for n, _ in server.bind_requests) == [1, 2]
            assert {r for _, r in server.bind_requests} == {BindRequest(13, 5, ARQ_NODE)}
            assert (a.server_mtu, a.profile.mtu, a.binds) == (300, 300, 1)
            await a.send("b", HELLO)
            assert await receive_frame(b) == FrameReceived("a", HELLO)
            request = next(p for p in _received(server, 1) if isinstance(p, UnidataRequest))
            assert request == UnidataRequest(7, 13, Address(2), ARQ_NODE, 300, HELLO)
            await _until(lambda: a.book.confirmed == 1)


async def test_each_frame_goes_with_the_u_pdu_priority_of_its_precedence() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            for precedence in (0, 3, 2):  # ROUTINE, FLASH, IMMEDIATE
                await a.send("b", bytes([precedence]) * 40, precedence=precedence)
                assert await receive_frame(b) == FrameReceived("a", bytes([precedence]) * 40)
            requests = [p for p in _received(server, 1) if isinstance(p, UnidataRequest)]
            assert [r.priority for r in requests] == [7, 10, 9]  # the configured 7 is ROUTINE's
    top = sis_link("top", "127.0.0.1:1", {"b": 2}, priority=14)
    assert [top.priority_for(p) for p in range(5)] == [14, 15, 15, 15, 15]


async def test_a_second_client_on_the_same_sap_is_refused_until_the_first_leaves() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            first = sis_link("first", server.endpoint(1), {"b": 2})
            scope = trio.CancelScope()

            async def run_first() -> None:
                with scope:
                    await first.run()

            nursery.start_soon(run_first)
            await server.wait_bound(1, 13)
            second = sis_link("second", server.endpoint(1), {"b": 2})
            await nursery.start(second.run)
            await _until(lambda: second.bind_rejections["SAP_ALREADY_ALLOCATED"] >= 3)
            assert second.binds == 0 and not second.peers_up
            scope.cancel()  # the first sends UNBIND_REQUEST as it goes: the SAP is free
            assert await next_event(second) == PeerUp("b")
            assert second.binds == 1
            nursery.cancel_scope.cancel()


async def test_sends_wait_while_data_flow_is_off() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            await server.data_flow(1, 13, on=False)
            await _until(lambda: not a.flow_on)
            sent = trio.Event()
            async with trio.open_nursery() as nursery:

                async def send_one() -> None:
                    await a.send("b", b"held back")
                    sent.set()

                nursery.start_soon(send_one)
                await trio.sleep(0.2)
                assert not sent.is_set() and a.frames_sent == 0
                assert server.dropped_while_off == 0 and server.delivered == 0
                await server.data_flow(1, 13, on=True)
            assert sent.is_set() and a.flow_offs == 1
            assert await receive_frame(b) == FrameReceived("a", b"held back")


async def test_keep_alive_from_the_server_is_answered() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            assert await server.keep_alive(1, 13, within=2.0)
            assert a.keepalives_answered == 1
            await a.send("b", b"still fine")
            assert await receive_frame(b) == FrameReceived("a", b"still fine")


async def test_a_rejected_frame_puts_the_peer_down_until_it_is_heard_from() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            server.unreachable.add(2)
            await a.send("b", b"into the void")
            assert await next_event(a) == PeerDown("b")
            assert a.book.rejected == {"DESTINATION_NODE_NOT_RESPONDING": 1}
            with pytest.raises(PeerUnavailable, match="rejected"):
                await a.send("b", b"again")
            server.unreachable.clear()
            await b.send("a", b"back again")
            assert await next_event(a) == PeerUp("b")
            assert await receive_frame(a) == FrameReceived("b", b"back again")
            await a.send("b", b"through")
            assert await receive_frame(b) == FrameReceived("a", b"through")


async def test_a_down_peer_is_tried_again_after_peer_retry_s() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server, peer_retry_s=0.3) as (a, b):
            await wait_connected(a, b)
            server.ttl_expires.add(2)
            await a.send("b", b"too late")
            assert await next_event(a) == PeerDown("b")
            began = trio.current_time()
            assert await next_event(a) == PeerUp("b")
            assert trio.current_time() - began >= 0.25
            assert a.book.rejected == {"TTL_EXPIRED": 1}


async def test_an_unbound_destination_sap_is_a_rejection_too() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with subnet(server, ("a", 1, {"b": 2}, {})) as (a,):
            assert await next_event(a) == PeerUp("b")
            await a.send("b", b"nobody home")
            assert await next_event(a) == PeerDown("b")
            assert a.book.rejected == {"DESTINATION_SAP_NOT_BOUND": 1}


async def test_unbind_indication_puts_peers_down_then_the_link_binds_again() -> None:
    server = FakeSisServer([1, 2])
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            await server.unbind(1, 13, UnbindReason.KEEP_ALIVE_TIMEOUT)
            assert await next_event(a) == PeerDown("b")
            assert await next_event(a) == PeerUp("b")
            assert (a.binds, dict(a.unbinds)) == (2, {"KEEP_ALIVE_TIMEOUT": 1})
            await a.send("b", b"after rebind")
            assert await receive_frame(b) == FrameReceived("a", b"after rebind")


async def test_a_cut_connection_rebinds_through_sap_in_use_rejections() -> None:
    server = FakeSisServer([1, 2], sap_release_delay=0.3)
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            await server.cut(1, 13)
            assert await next_event(a) == PeerDown("b")
            assert await next_event(a) == PeerUp("b")
            assert a.bind_rejections["SAP_ALREADY_ALLOCATED"] >= 1 and a.binds == 2
            await a.send("b", b"after the cut")
            assert await receive_frame(b) == FrameReceived("a", b"after the cut")


async def test_rockwell_padded_indications_deliver_the_frame() -> None:
    server = FakeSisServer([1, 2], rockwell=True)
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            frames = [b"", b"\x00" * 4, HELLO, bytes(range(256)) * 4]
            for frame in frames:
                await a.send("b", frame)
            for frame in frames:
                assert await receive_frame(b) == FrameReceived("a", frame)
            assert b.padded_indications == len(frames)


async def test_unknown_and_management_primitives_and_split_writes_are_tolerated() -> None:
    server = FakeSisServer([1, 2])
    indication = UnidataIndication(0, 13, Address(13), TxMode.ARQ, 13, Address(2), b"wanted")
    stray = UnidataIndication(0, 13, Address(13), TxMode.ARQ, 13, Address(9), b"stranger")
    noise = b"".join(
        [
            encode(OtherPrimitive(99, b"\x01\x02\x03")),
            encode(OtherPrimitive(PrimitiveType.MANAGEMENT_MSG_INDICATION, b"\x00\x10")),
            encode(SubnetAvailability(2, 1)),
            encode(OtherPrimitive(PrimitiveType.HARD_LINK_INDICATION, bytes(6))),
            b"\x00\x01garbage",
            encode(stray),
        ]
    )
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            wire = noise + encode(indication)
            await server.inject(1, 13, wire, split_at=[1, 5, 6, 30, len(wire) - 3])
            assert await receive_frame(a) == FrameReceived("b", b"wanted")
            assert a.ignored_primitives == {
                "TYPE_99": 1,
                "MANAGEMENT_MSG_INDICATION": 1,
                "SUBNET_AVAILABILITY": 1,
                "HARD_LINK_INDICATION": 1,
            }
            assert a.drop_counts()["unknown_source"] == 1
            await a.send("b", b"and on")
            assert await receive_frame(b) == FrameReceived("a", b"and on")


async def test_chunked_server_writes_still_deliver() -> None:
    server = FakeSisServer([1, 2], chunk=3)
    with trio.fail_after(TIMEOUT):
        async with two_nodes(server) as (a, b):
            await wait_connected(a, b)
            for size in (0, 1, 64, 500):
                await a.send("b", bytes([size % 256]) * size)
                assert await receive_frame(b) == FrameReceived("a", bytes([size % 256]) * size)


async def test_broadcast_goes_non_arq_to_the_group() -> None:
    server = FakeSisServer([1, 2, 3])
    everyone = {"all": "group:0.0.0.100"}
    peers_of = {1: {"b": 2, "c": 3}, 2: {"a": 1}, 3: {"a": 1}}
    with trio.fail_after(TIMEOUT):
        async with subnet(
            server,
            ("a", 1, peers_of[1], {"groups": everyone, "broadcast_retx": 2}),
            ("b", 2, peers_of[2], {}),
            ("c", 3, peers_of[3], {}),
        ) as (a, b, c):
            assert {await next_event(a) for _ in range(3)} == {
                PeerUp("b"), PeerUp("c"), PeerUp("all"),
            }  # fmt: skip
            for link in (b, c):
                assert await next_event(link) == PeerUp("a")
            await a.send("all", b"to everyone")
            for link in (b, c):
                assert await receive_frame(link) == FrameReceived("a", b"to everyone")
            request = next(p for p in _received(server, 1) if isinstance(p, UnidataRequest))
            assert request.dest == Address(100, group=True)
            assert request.mode == ServiceType(TxMode.NON_ARQ, Confirm.NONE, min_retx=2)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"rank": 15}, r"rank: expected an integer in 0..14, found 15"),
        ({"sap": 16}, r"sap: expected an integer in 0..15, found 16"),
        ({"ttl_s": 1e9}, r"ttl_s: expected 0 \(server default\) or 2..1296000 s"),
        ({"peers": {"b": "16.0.0.1"}}, r"peers\['b'\]: 5066 address: expected at most 28 bits"),
        ({"peers": {"b": 2, "c": "0.0.0.2"}}, r"expected distinct 5066 addresses"),
        ({"peers": {"b": "group:0.0.0.2"}}, r"expected a node address"),
        ({"groups": {"b": 5}}, r"expected peer and group names to differ"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(
    options: dict[str, object], says: str
) -> None:
    peers = options.pop("peers", {"b": 2})
    with pytest.raises(ValueError, match=says):
        sis_link("hf1", "127.0.0.1:5066", peers, **options)  # type: ignore[arg-type]


def _received(server: FakeSisServer, node: int) -> list[Primitive]:
    client = server.client(node, 13)
    assert client is not None
    return client.received


async def _until(condition: object, limit: float = 3.0) -> None:
    assert callable(condition)
    with trio.fail_after(limit):
        while not condition():
            await trio.sleep(0.005)
