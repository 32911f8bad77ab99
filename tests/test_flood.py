"""Floods: junk is dropped before crypto and counted by reason, a peer's frames get through.

The screen is checked on genuine frames captured from a real engine and on seeded junk; then
two runtimes over real UDP links on 127.0.0.1 exchange messages while junk arrives at the
receiver from 127.0.0.2 (real sockets, real time, bounded by trio.fail_after).
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator

import msgpack
import pytest
import trio
from prometheus_client.registry import CollectorRegistry

from crypto.keyring import Keyring
from crypto.mission import build_mission
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec
from tawan.core.precedence import Precedence
from tawan.core.screen import (
    BAD_SHAPE,
    BAD_TYPE,
    BAD_VERSION,
    SCREEN_REASONS,
    TOO_SHORT,
    UNKNOWN_SENDER,
    WRONG_SENDER,
    FrameScreen,
)
from tawan.core.specs import Submission
from tawan.core.store import Store
from tawan.node.metrics import NodeMetrics
from tawan.node.runtime import Runtime
from transports.link import format_endpoint
from transports.profile import BearerProfile
from transports.sockfilter import attach_prefix_filter, prefix_program
from transports.udp import UdpLink, _kernel_drops

ROSTER, KEYS = build_mission({"alpha": [], "bravo": []}, random.Random(11), t0=0)
PROFILE = BearerProfile("ip", rate_bps=10_000_000, delay_s=0.001, mtu=1400, cost=1.0)
TIMEOUT = 20.0
JUNK = 300


def address(name: str) -> int:
    entry = ROSTER.by_name(name)
    assert entry is not None
    return entry.address


def make_runtime(me: str, peer: str, bind: str, peer_endpoint: str) -> Runtime:
    link = UdpLink("ip0", PROFILE, bind, [peer_endpoint])
    spec = LinkSpec("ip0", PROFILE, (PeerSpec(address(peer), peer_endpoint),))
    store = Store.memory()
    engine = Engine(Keyring(KEYS[me], ROSTER), store, EngineConfig(), [spec],
                    random.Random(2), trio.current_time())  # fmt: skip
    return Runtime(engine, store, {"ip0": link}, clock=trio.current_time)


def free_udp_endpoints(count: int) -> list[str]:
    """Ports free now on 127.0.0.1 (the links bind them next)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [format_endpoint(*sock.getsockname()) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def junk(seed: int, count: int) -> Iterator[bytes]:
    draw = random.Random(seed)
    for _ in range(count):
        yield draw.randbytes(draw.randrange(1, 1400))


# ================================================================== the screen
def screen_of(runtime: Runtime) -> FrameScreen:
    link = runtime.links["ip0"]
    assert isinstance(link, UdpLink)
    screen = link._screen
    assert isinstance(screen, FrameScreen)
    return screen


def check(screen: FrameScreen, peer: str | None, data: bytes) -> str | None:
    return screen(peer, bytearray(data), len(data))


async def test_the_screen_passes_genuine_frames_and_names_what_it_drops() -> None:
    a_end, b_end = free_udp_endpoints(2)
    alpha = make_runtime("alpha", "bravo", a_end, b_end)
    bravo = make_runtime("bravo", "alpha", b_end, a_end)
    bravo.engine.peer_up("ip0", a_end, trio.current_time())
    alpha.engine.peer_up("ip0", b_end, trio.current_time())
    alpha.engine.submit(Submission(address("bravo"), b"hello", Precedence.FLASH),
                        trio.current_time())  # fmt: skip
    frames = [t.data for t in alpha.engine.transmit(trio.current_time() + 1)]
    assert frames, "the engine sent nothing to screen"
    screen = screen_of(bravo)
    for frame in frames:  # hellos, adverts, the message: every kind alpha sends passes
        assert check(screen, a_end, frame) is None
        assert check(screen, None, frame) is None  # from an unknown address too: it may roam
        # The kernel filter's prefixes take every one of them, from alpha's address or any.
        assert any(frame.startswith(p) for p in screen.prefixes(a_end))
        assert any(frame.startswith(p) for p in screen.prefixes(None))
        # At alpha, from bravo's address, a frame naming alpha: spoofed.
        assert check(screen_of(alpha), b_end, frame) == WRONG_SENDER
    frame = frames[0]
    assert check(screen, a_end, bytes([0x23]) + frame[1:]) == BAD_VERSION
    assert check(screen, a_end, bytes([0x1F]) + frame[1:]) == BAD_TYPE
    assert check(screen, a_end, frame[:5]) == TOO_SHORT
    assert check(screen, a_end, frame[:1] + b"\x80" + frame[2:]) == BAD_SHAPE  # a map
    nobody = frame[:2] + b"\xcd\xff\xf0" + frame[3:]  # sender 65520: in no roster
    assert check(screen, None, nobody) == UNKNOWN_SENDER
    reasons = {check(screen, a_end, data) for data in junk(3, 2000)}
    assert reasons <= set(SCREEN_REASONS) and None not in reasons


# ================================================================== under a flood
async def test_junk_from_a_stranger_is_dropped_before_crypto_while_a_peer_gets_through() -> None:
    a_end, b_end = free_udp_endpoints(2)
    alpha = make_runtime("alpha", "bravo", a_end, b_end)
    bravo = make_runtime("bravo", "alpha", b_end, a_end)
    seen_by_engine: list[str] = []
    receive = bravo.engine.receive

    def counting_receive(link: str, peer: str, data: bytes, now: float) -> None:
        seen_by_engine.append(peer)
        receive(link, peer, data, now)

    bravo.engine.receive = counting_receive  # type: ignore[method-assign]
    registry = CollectorRegistry()
    metrics = NodeMetrics(bravo.engine, registry, link_io=bravo.link_io)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(alpha.run)
            await nursery.start(bravo.run)
            host, port = b_end.rsplit(":", 1)
            with trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM) as attacker:
                await attacker.bind(("127.0.0.2", 0))
                stranger = format_endpoint(*attacker.getsockname())
                for index, data in enumerate(junk(5, JUNK)):
                    await attacker.sendto(data, (host, int(port)))
                    if index % 30 == 0:  # messages interleaved with the junk
                        alpha.submit(Submission(address("bravo"), b"report %d" % index,
                                                Precedence.ROUTINE))  # fmt: skip
                while bravo.store.inbox_count() < JUNK // 30:
                    await trio.sleep(0.01)
            link = bravo.links["ip0"]
            screened = sum(link.drops[r] for r in SCREEN_REASONS)
            while screened + link.drops["stranger-limit"] < JUNK:
                await trio.sleep(0.01)  # the junk still in the socket
                screened = sum(link.drops[r] for r in SCREEN_REASONS)
            nursery.cancel_scope.cancel()
    assert stranger not in seen_by_engine  # no junk datagram reached decoding or crypto
    assert a_end in seen_by_engine
    assert screened == JUNK  # all within the strangers' burst: each screened and named
    assert bravo.engine.stats.rejected.total() == 0
    drops = bravo.status()["drops"]
    assert isinstance(drops, dict) and sum(drops["ip0"].values()) == JUNK
    for reason in SCREEN_REASONS:
        shown = registry.get_sample_value(
            "tawan_link_drops_total", {"link": "ip0", "reason": reason}
        )
        assert shown == link.drops[reason]
    assert registry.get_sample_value("tawan_link_drops_total",
                                     {"link": "ip0", "reason": BAD_VERSION})  # fmt: skip
    assert registry.get_sample_value("tawan_link_receive_buffer_bytes", {"link": "ip0"})
    metrics.close()


# ================================================================== in the kernel
def test_the_prefix_filter_keeps_only_datagrams_with_a_listed_prefix() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        assert attach_prefix_filter(receiver, [b"\x10\x9a\x01", b"\x12\x94"])
        sent = [b"\x10\x9a\x01 data", b"\x12\x94ack", b"\x10\x9a\x02 other sender",
                b"\x12", b"\x10\x9a", b"", b"\x13\x94hello", b"\x12\x94"]  # fmt: skip
        for data in sent:
            sender.sendto(data, receiver.getsockname())
        kept = []
        while True:
            try:
                kept.append(receiver.recv(100))
            except BlockingIOError:
                break
        assert kept == [b"\x10\x9a\x01 data", b"\x12\x94ack", b"\x12\x94"]
        assert _kernel_drops(receiver) == len(sent) - len(kept)


@pytest.mark.parametrize("node", [1, 127, 128, 255, 256, 40000, 65535])
def test_a_prefix_names_the_sender_as_msgpack_writes_it(node: int) -> None:
    screen = FrameScreen(lambda _: True, {"10.0.0.1:5000": node})
    head = bytes((0x10 | 2, 0x94))  # an ACK's kind and field array
    assert head + msgpack.packb(node) in screen.prefixes("10.0.0.1:5000")
    assert head in screen.prefixes("10.0.0.9:5000")  # a peer of unknown node: any sender


def test_the_prefix_program_is_bounded() -> None:
    with pytest.raises(ValueError, match="at least one prefix"):
        prefix_program([])
    with pytest.raises(ValueError, match=r"1\.\.127 bytes, found 128"):
        prefix_program([bytes(128)])


async def test_junk_spoofing_a_peer_is_dropped_in_the_kernel_while_its_frames_get_through() -> (
    None
):
    """Junk from the peer's own address and port (a socket sharing alpha's port, as a spoofer
    would without needing root) lands on bravo's socket for alpha: the kernel refuses it."""
    a_end, b_end = free_udp_endpoints(2)
    alpha = make_runtime("alpha", "bravo", a_end, b_end)
    bravo = make_runtime("bravo", "alpha", b_end, a_end)
    prefixes = screen_of(bravo).prefixes(a_end)
    assert prefixes and all(p.endswith(bytes([address("alpha")])) for p in prefixes)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(alpha.run)
            await nursery.start(bravo.run)
            host, port = a_end.rsplit(":", 1)
            b_host, b_port = b_end.rsplit(":", 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as spoofer:
                spoofer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                spoofer.bind((host, int(port)))
                for index, data in enumerate(junk(7, JUNK)):
                    spoofer.sendto(data, (b_host, int(b_port)))
                    if index % 30 == 0:
                        alpha.submit(Submission(address("bravo"), b"report %d" % index,
                                                Precedence.ROUTINE))  # fmt: skip
                while bravo.store.inbox_count() < JUNK // 30:
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    link = bravo.links["ip0"]
    counts = link.drop_counts()
    assert counts["kernel-screen"] == JUNK  # none of it was read by the node
    assert sum(link.drops[r] for r in SCREEN_REASONS) == 0
    assert bravo.engine.stats.rejected.total() == 0
