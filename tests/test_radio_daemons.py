"""Two real daemons whose only link is a radio link: KISS through a fake TNC, and STANAG
5066 through a fake SIS subnetwork, both on 127.0.0.1.

Each daemon builds its link from its config file (transport "kiss" or "s5066"), so these
check the whole path: config keys, the daemon's mapping of callsigns and 5066 addresses to
roster nodes, PeerUp on the link to neighbour up in the engine, and messages of every
precedence both ways, each delivered once. Direwolf and real audio: tests/test_direwolf.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kiss_doubles import Air, FakeTnc
from radio_nodes import RadioNodes, exchange_every_precedence, make_mission, trio_in_thread
from sis_server import FakeSisServer

from tawan.demo import DemoError, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 30.0
ENGINE = "hello_interval = 0.5\ndead_interval = 2.0\n"
CALLSIGNS = {"alpha": "N0CALL-1", "bravo": "N0CALL-2"}
HF_ADDRESSES = {"alpha": 1, "bravo": 2}

KISS_LINK = """
[[links]]
name = "vhf"
transport = "kiss"
tnc = "{tnc}"
callsign = "{callsign}"
txdelay_ms = 100
persistence = 63
slot_ms = 100
broadcast = "TAWAN"
[links.profile]
name = "uhf-kiss-9600"
rate_bps = 9600
delay_s = 0.1
mtu = 256
cost = 20
[[links.peers]]
node = "{peer}"
callsign = "{peer_callsign}"
"""

S5066_LINK = """
[[links]]
name = "hf"
transport = "s5066"
server = "{server}"
sap = 13
rank = 5
ttl_s = 600
peer_retry_s = 10
groups = {{ net = "group:0.0.0.100" }}
[links.profile]
name = "hf-4539"
rate_bps = 9600
delay_s = 1.0
mtu = 2048
cost = 50
[[links.peers]]
node = "{peer}"
address = "{peer_address}"
"""


def other(name: str) -> str:
    return "bravo" if name == "alpha" else "alpha"


@pytest.fixture
def mission(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    make_mission(tmp_path)
    capsys.readouterr()
    return tmp_path


@pytest.fixture
def tnc() -> Iterator[FakeTnc]:
    fake = FakeTnc(Air())
    with trio_in_thread(fake.run):
        yield fake


@pytest.fixture
def sis() -> Iterator[FakeSisServer]:
    server = FakeSisServer(list(HF_ADDRESSES.values()))
    with trio_in_thread(server.run):
        yield server


def kiss_links(tnc: str, peer_callsigns: dict[str, str] = CALLSIGNS) -> dict[str, str]:
    return {
        name: KISS_LINK.format(tnc=tnc, callsign=CALLSIGNS[name], peer=other(name),
                               peer_callsign=peer_callsigns[other(name)])
        for name in CALLSIGNS
    }  # fmt: skip


def s5066_links(sis: FakeSisServer) -> dict[str, str]:
    return {
        name: S5066_LINK.format(server=sis.endpoint(HF_ADDRESSES[name]), peer=other(name),
                                peer_address=f"0.0.0.{HF_ADDRESSES[other(name)]}")
        for name in HF_ADDRESSES
    }  # fmt: skip


@contextmanager
def running(nodes: RadioNodes) -> Iterator[RadioNodes]:
    """The two daemons started, each seeing the other up; killed on the way out."""
    try:
        nodes.start()
        for name in ("alpha", "bravo"):
            nodes.neighbour_up(name, other(name), TIMEOUT)
        yield nodes
    finally:
        nodes.stop()


def test_every_precedence_both_ways_over_kiss(mission: Path, tnc: FakeTnc) -> None:
    with running(RadioNodes(mission, kiss_links(tnc.address), ENGINE)) as nodes:
        exchange_every_precedence(nodes, TIMEOUT)
        neighbours = nodes.status("alpha")["neighbours"]
        assert isinstance(neighbours, list)
        assert [(n["name"], n["link"]) for n in neighbours] == [("bravo", "vhf")]
    # Both daemons set up their TNC, and everything went over the air as AX.25 UI frames.
    assert len(tnc.air.commands) == 2 * 3
    assert len(tnc.air.transmitted) >= 2 * 4


def test_every_precedence_both_ways_over_stanag_5066(mission: Path, sis: FakeSisServer) -> None:
    with running(RadioNodes(mission, s5066_links(sis), ENGINE)) as nodes:
        exchange_every_precedence(nodes, TIMEOUT)
    assert [request.sap for _, request in sis.bind_requests][:2] == [13, 13]
    assert sis.delivered >= 2 * 4


def test_a_wrongly_mapped_callsign_never_comes_up(mission: Path, tnc: FakeTnc) -> None:
    # bravo takes alpha to be N0CALL-9: alpha's frames come from a callsign bravo does not
    # know, so the KISS link drops them, and neither node sees the other. Hellos every
    # 0.5 s (the whole channel may carry them), so alpha keeps calling while bravo listens.
    wrong = dict(CALLSIGNS, alpha="N0CALL-9")
    links = kiss_links(tnc.address)
    links["bravo"] = kiss_links(tnc.address, wrong)["bravo"]
    nodes = RadioNodes(mission, links, ENGINE + "hello_share = 1\n")
    try:
        nodes.start()

        def dropped_from_alpha() -> int:
            drops = nodes.status("bravo")["drops"]
            assert isinstance(drops, dict)
            return int(drops.get("vhf", {}).get("unknown-source", 0))

        wait_for("bravo to drop alpha's frames as unknown-source", dropped_from_alpha, TIMEOUT)
        with pytest.raises(DemoError, match="gave up after 3 s waiting for bravo to see alpha"):
            nodes.neighbour_up("bravo", "alpha", 3.0)
    finally:
        nodes.stop()
