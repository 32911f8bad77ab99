"""Wireshark's s5066sis dissector, an independent decoder, reads the client's SIS sessions.

Two S5066Links talk through the fake server (bind, unicast both ways including a U_PDU
longer than a TCP segment, a rejection, a broadcast, a keep-alive, flow off and on, and an
unbind on shutdown). The bytes of both sessions are rebuilt into a pcap on port 5066
(tests/sis_pcap.py) and handed to tshark, which must mark nothing malformed and show the
primitives the client meant, field by field. Skipped when tshark is not installed
(Debian: apt-get install tshark).
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
from sis_pcap import SIS_PORT, write_sis_pcap
from sis_server import FakeSisServer
from transport_kit import receive_frame, wait_connected

from transports.link import FrameReceived, PeerDown
from transports.profile import BearerProfile
from transports.s5066 import S5066Link

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (Debian package tshark)"
)

HF = BearerProfile("hf", rate_bps=2400, delay_s=2.0, mtu=2048, cost=50.0)
FRAMES = [b"hello", bytes(range(256)) * 8, b"\x90\xeb\x00 inside a frame"]


async def run_sessions() -> FakeSisServer:
    server = FakeSisServer([1, 2, 3], mtu=2048, confirm_prefix=16)

    def link(name: str, node: int, peers: dict[str, str | int], **kw: object) -> S5066Link:
        return S5066Link(
            name, HF, server.endpoint(node), peers, rng=random.Random(0),
            backoff_initial=0.01, backoff_max=0.1, **kw,  # type: ignore[arg-type]
        )  # fmt: skip

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            async with trio.open_nursery() as clients:
                await talk(clients, server, link)
            await server.wait_unbound(1, 13)  # each link sent UNBIND_REQUEST as it stopped
            await server.wait_unbound(2, 13)
            nursery.cancel_scope.cancel()
    return server


async def talk(
    nursery: trio.Nursery, server: FakeSisServer, link: Callable[..., S5066Link]
) -> None:
    """What the two clients say; stops them (each sends UNBIND_REQUEST as it goes)."""
    a = link("a", 1, {"b": 2, "c": 3}, groups={"all": "group:0.0.0.100"})
    b = link("b", 2, {"a": 1})
    await nursery.start(a.run)
    await nursery.start(b.run)
    await wait_connected(a, b)
    for frame in FRAMES:
        await a.send("b", frame)
        assert await receive_frame(b) == FrameReceived("a", frame)
    await b.send("a", b"reply")
    while not isinstance(event := await a.events.receive(), FrameReceived):
        pass
    assert event == FrameReceived("b", b"reply")
    await a.send("c", b"nobody on node 3")  # SAP not bound there: REJECTED 2
    while await a.events.receive() != PeerDown("c"):
        pass
    await a.send("all", b"to the group")
    assert await receive_frame(b) == FrameReceived("a", b"to the group")
    assert await server.keep_alive(1, 13, within=2)
    await server.data_flow(1, 13, on=False)
    await server.data_flow(1, 13, on=True)
    await a.send("b", b"after flow on")
    assert await receive_frame(b) == FrameReceived("a", b"after flow on")
    while a.book.confirmed < len(FRAMES) + 1:
        await trio.sleep(0.01)
    nursery.cancel_scope.cancel()


def tshark(pcap: Path, *args: str) -> str:
    assert TSHARK is not None
    result = subprocess.run(
        [TSHARK, "-n", "-r", str(pcap), "-o", "tcp.desegment_tcp_streams:TRUE", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def fields(pcap: Path, *names: str) -> list[list[str]]:
    """One row per s5066sis element: tshark's values for `names`, in order."""
    args = ["-Y", "s5066sis", "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    out = tshark(pcap, *args, "-e", "tcp.srcport", *(a for n in names for a in ("-e", n)))
    rows: list[list[str]] = []
    for line in out.splitlines():
        src, *values = line.split("\t")
        per_element = [v.split("|") for v in values]
        count = len(per_element[0])
        rows.extend(
            [src, *(v[i] if i < len(v) else "" for v in per_element)] for i in range(count)
        )
    return rows


async def test_tshark_decodes_the_client_sessions_without_complaint(tmp_path: Path) -> None:
    server = await run_sessions()
    pcap = tmp_path / "sis.pcap"
    sessions = [t for t in server.transcripts if t.chunks]
    assert len(sessions) == 2
    assert write_sis_pcap(pcap, sorted(sessions, key=lambda t: t.node)) > 20

    verbose = tshark(pcap, "-V")
    assert "STANAG 5066 (SIS layer)" in verbose
    assert "Malformed" not in verbose and "[Expert Info (Error" not in verbose
    assert tshark(pcap, "-Y", "_ws.malformed || _ws.expert.severity == error") == ""

    rows = fields(pcap, "s5066sis.type")
    client = [int(t) for src, t in rows if src != str(SIS_PORT)]
    served = [int(t) for src, t in rows if src == str(SIS_PORT)]
    # Node 1's client, then node 2's: bind, its data, the keep-alive answer, unbind.
    a_sent = [1, 20, 20, 20, 20, 20, 17, 20, 2]
    b_sent = [1, 20, 2]
    assert client == a_sent + b_sent, client
    assert served.count(3) == 2 and served.count(22) == len(FRAMES) + 2
    assert served.count(23) == 1 and served.count(21) == len(FRAMES) + 3
    assert {16, 15, 17} <= set(served)

    binds = fields(pcap, "s5066sis.01.sapid", "s5066sis.01.rank", "s5066sis.st.txmode",
                   "s5066sis.st.confirm")  # fmt: skip
    assert [r[1:] for r in binds if r[1]] == [["13", "5", "0x01", "0x01"]] * 2
    accepted = fields(pcap, "s5066sis.03.mtu")
    assert [r[1] for r in accepted if r[1]] == ["2048", "2048"]

    requests = fields(pcap, "s5066sis.20.sapid", "s5066sis.20.ttl", "s5066sis.20.size")
    sizes = [int(r[3]) for r in requests if r[1]]
    assert sizes == [len(f) for f in FRAMES] + [16, 12, 13, 5]
    assert {(r[1], r[2]) for r in requests if r[1]} == {("13", "300")}

    rejected = fields(pcap, "s5066sis.23.reason")
    assert [r[1] for r in rejected if r[1]] == ["2"]
