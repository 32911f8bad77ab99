"""The engine driven by hand-made events in virtual time: no sockets, no sleeps."""

from __future__ import annotations

import os
import random

import pytest
from harness import FakeLink, Net, chain, profile

from crypto.errors import RosterError
from crypto.keyring import Keyring
from tawan.core.engine import Engine, EngineConfig, SubmitError
from tawan.core.events import (
    Delivered,
    FrameRejected,
    MessageEvicted,
    MessageExpired,
    NeighbourChanged,
    ReceiptReceived,
)
from tawan.core.precedence import Precedence
from transports.profile import BearerProfile


def abc() -> Net:
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"))
    net.run(3)  # hellos and adverts: everyone knows the routes
    return net


def test_every_precedence_crosses_a_relay_exactly_once() -> None:
    net = abc()
    sent = {
        p: net.submit("a", "c", f"order {p.name}".encode(), precedence=p, ttl=600)
        for p in Precedence
    }
    net.run(5)
    got = net.delivered("c")
    assert sorted(e.mid for e in got) == sorted(sent.values())
    assert {e.payload for e in got} == {f"order {p.name}".encode() for p in Precedence}
    assert all(isinstance(e, Delivered) and e.latency < 1 for e in got)
    assert net.engines["b"].stats.forwarded["flash"] == 1
    assert net.delivered("b") == []
    # custody released everywhere once acknowledged
    assert net.stores["a"].message_count() == 0
    assert net.stores["b"].message_count() == 0


def test_relay_never_sees_the_payload() -> None:
    net = abc()
    secret = b"grid 31U DQ 48251 11932"
    net.submit("a", "c", secret, precedence=Precedence.PRIORITY, ttl=600)
    seen: list[bytes] = []
    net.tap(lambda sender, link, data: seen.append(data))
    net.run(2)
    assert seen and not any(secret in frame for frame in seen)
    assert [e.payload for e in net.delivered("c")] == [secret]


def test_lossy_links_still_deliver_each_message_once() -> None:
    links = chain("a", "b", "c")
    for link in links:
        link.loss = 0.3
    net = Net({"a": [], "b": [], "c": []}, links, seed=5)
    net.run(10)
    mids = [
        net.submit("a", "c", os.urandom(50), precedence=Precedence.ROUTINE, ttl=3600)
        for _ in range(40)
    ]
    net.run(120)
    got = [e.mid for e in net.delivered("c")]
    assert sorted(got) == sorted(mids)
    assert sum(s.retransmissions for s in net.engines["a"].stats.links.values()) > 0


def run_once(seed: int) -> tuple[list[tuple[object, ...]], list[str], list[object]]:
    links = chain("a", "b", "c")
    links[0].loss = 0.2
    net = Net({"a": [], "b": [], "c": []}, links, seed=seed)
    frames: list[str] = []
    # Sizes and timing of every frame on every link (the bytes differ between runs only
    # because ML-KEM encapsulation in the mission draws its own randomness).
    net.tap(lambda sender, link, data: frames.append(f"{net.now:.6f} {sender} {link} {len(data)}"))
    net.run(5)
    for i in range(20):
        net.submit("a", "c", b"x" * (i * 37), precedence=Precedence(i % 5), ttl=600)
        net.run(0.3)
    net.run(60)
    events = [(name, repr(e)) for name in net.events for e in net.events[name]]
    stats = [repr(engine.stats) for engine in net.engines.values()]
    delivered: list[tuple[object, ...]] = [
        (e.mid, e.latency, e.payload) for e in net.delivered("c")
    ]
    return delivered, frames, [events, stats]


def test_same_seed_same_run() -> None:
    first, second = run_once(11), run_once(11)
    assert first == second  # deliveries, every frame's time and size, every event, counters
    assert len(first[0]) == 20
    assert run_once(12)[1] != first[1]  # and the seed does matter


def test_flash_preempts_a_long_routine_transfer() -> None:
    links = [FakeLink("a", "b", profile(rate_bps=64_000, delay_s=0.05, mtu=1400))]
    net = Net({"a": [], "b": []}, links)
    net.run(3)
    big = net.submit("a", "b", os.urandom(1 << 20), precedence=Precedence.ROUTINE, ttl=3600)
    net.run(5)
    flash = net.submit("a", "b", b"FLASH: contact front", precedence=Precedence.FLASH, ttl=600)
    net.run(300)
    when = {e.mid: e for e in net.delivered("b")}
    assert set(when) == {big, flash}
    assert when[flash].latency < 1.0
    assert when[big].latency > 100  # 1 MiB at 64 kbit/s takes over two minutes
    assert when[flash].created < when[big].created + 10


def test_fragmentation_over_a_200_byte_link() -> None:
    links = [
        FakeLink("a", "b", profile(mtu=1400)),
        FakeLink("b", "c", profile(rate_bps=9600, mtu=200)),
    ]
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(3)
    payload = os.urandom(5000)
    net.submit("a", "c", payload, precedence=Precedence.PRIORITY, ttl=600)
    net.run(30)
    assert [e.payload for e in net.delivered("c")] == [payload]
    assert 150 < net.largest_frame["b-c"] <= 200
    assert net.engines["b"].stats.links["b-c"].frames_sent > 5000 // 200


def test_fragment_loss_is_repaired() -> None:
    links = [FakeLink("a", "b", profile(rate_bps=100_000, mtu=200), loss=0.2)]
    net = Net({"a": [], "b": []}, links, seed=3)
    net.run(5)
    payload = os.urandom(20_000)
    net.submit("a", "b", payload, precedence=Precedence.ROUTINE, ttl=3600)
    net.run(200)
    assert [e.payload for e in net.delivered("b")] == [payload]


def test_expired_message_is_dropped_and_origin_told() -> None:
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(3)
    links[1].up = False  # b cannot reach c
    mid = net.submit("a", "c", b"stale soon", precedence=Precedence.ROUTINE, ttl=20, receipt=True)
    net.run(60)
    assert net.delivered("c") == []
    expired = [e for e in net.events["b"] if isinstance(e, MessageExpired)]
    assert [e.mid for e in expired] == [mid]
    receipts = [e for e in net.events["a"] if isinstance(e, ReceiptReceived)]
    assert [(r.mid, r.kind) for r in receipts] == [(mid, "expired")]
    assert net.engines["b"].stats.expired["routine"] == 1


def test_delivery_receipt() -> None:
    net = abc()
    mid = net.submit("a", "c", b"ack me", precedence=Precedence.IMMEDIATE, ttl=600, receipt=True)
    net.run(5)
    receipts = [e for e in net.events["a"] if isinstance(e, ReceiptReceived)]
    assert [(r.mid, r.kind, r.reporter) for r in receipts] == [
        (mid, "delivered", net.address("c"))
    ]


def test_signed_message() -> None:
    net = abc()
    net.submit("a", "c", b"signed order", precedence=Precedence.FLASH, ttl=600, sign=True)
    net.run(3)
    assert [(e.payload, e.signed) for e in net.delivered("c")] == [(b"signed order", True)]


def test_group_message_once_per_branch() -> None:
    names = {"hq": ["coy"], "r": [], "x": ["coy"], "y": ["coy"], "z": ["coy"]}
    links = [
        FakeLink("hq", "r", profile()),
        FakeLink("r", "x", profile()),
        FakeLink("r", "y", profile()),
        FakeLink("y", "z", profile()),
    ]
    net = Net(names, links)
    net.run(5)
    net.submit("hq", "coy", b"to all of coy", precedence=Precedence.PRIORITY, ttl=600)
    net.run(5)
    for member in ("x", "y", "z"):
        assert [e.payload for e in net.delivered(member)] == [b"to all of coy"]
    assert net.engines["hq"].stats.links["hq-r"].frames_sent < 20
    assert net.engines["r"].stats.forwarded["priority"] == 1


def test_failover_to_a_second_bearer() -> None:
    vhf = FakeLink("a", "b", profile(rate_bps=16_000))
    vhf_name = vhf.name
    sat = FakeLink("b", "a", SATCOM)
    net = Net({"a": [], "b": []}, [vhf, sat])
    net.run(5)
    vhf.up = False
    net.run(10)
    assert any(
        isinstance(e, NeighbourChanged) and e.link == vhf_name and not e.up
        for e in net.events["a"]
    )
    net.submit("a", "b", b"after the jamming", precedence=Precedence.FLASH, ttl=600)
    net.run(5)
    assert [e.payload for e in net.delivered("b")] == [b"after the jamming"]


SATCOM = BearerProfile(name="satcom", rate_bps=64_000, delay_s=0.3, mtu=1200, cost=10.0)


def test_restart_keeps_custody_and_dedup() -> None:
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(3)
    links[1].up = False
    mids = [
        net.submit("a", "c", b"m%d" % i, precedence=Precedence.ROUTINE, ttl=3600)
        for i in range(10)
    ]
    net.run(3)
    assert net.stores["b"].message_count() == 10
    net.restart("b")
    links[1].up = True
    net.run(30)
    assert sorted(e.mid for e in net.delivered("c")) == sorted(mids)


def test_store_eviction_prefers_routine() -> None:
    links = chain("a", "b", "c")
    net = Net({"a": [], "b": [], "c": []}, links, store_max_bytes=4000)
    net.run(3)
    links[1].up = False
    net.run(10)
    # c is unreachable: a holds everything itself, in a store of 4000 bytes
    for _ in range(6):
        net.submit("a", "c", os.urandom(600), precedence=Precedence.ROUTINE, ttl=3600)
    net.run(2)
    assert net.stores["a"].message_count() == 6
    net.submit("a", "c", os.urandom(600), precedence=Precedence.FLASH, ttl=3600)
    evicted = [e for e in net.events["a"] if isinstance(e, MessageEvicted)]
    assert len(evicted) == 1 and evicted[0].precedence == Precedence.ROUTINE
    assert net.stores["a"].counts_by_precedence().get(int(Precedence.FLASH)) == 1
    assert net.engines["a"].stats.evicted["routine"] == 1


def test_frames_from_outsiders_and_replays_are_rejected() -> None:
    net = abc()
    captured: list[bytes] = []
    net.tap(lambda sender, link, data: captured.append(data) if sender == "a" else None)
    net.submit("a", "c", b"once", precedence=Precedence.ROUTINE, ttl=600)
    net.run(2)
    b = net.engines["b"]
    before = b.stats.rejected["replay"]
    for frame in captured:
        b.receive("a-b", "a", frame, net.now)
    assert b.stats.rejected["replay"] == before + len(captured)
    forged = bytearray(captured[0])
    forged[-1] ^= 1
    b.receive("a-b", "a", bytes(forged), net.now)
    b.receive("a-b", "a", b"\x10\x91\x01junk", net.now)
    assert b.stats.rejected["unauthenticated"] >= 1
    assert b.stats.rejected["malformed"] >= 1
    net.run(2)
    assert len(net.delivered("c")) == 1
    assert any(isinstance(e, FrameRejected) for e in net.events["b"])


def test_submit_errors_name_the_problem() -> None:
    net = abc()
    a = net.engines["a"]
    with pytest.raises(SubmitError, match="destination 999"):
        a.submit(999, b"x", precedence=Precedence.ROUTINE, ttl=60, now=net.now)
    with pytest.raises(SubmitError, match="ttl"):
        a.submit(net.address("c"), b"x", precedence=Precedence.ROUTINE, ttl=0, now=net.now)
    # 24 hourly epochs of grace: a message living longer could not be opened at the end
    with pytest.raises(SubmitError, match=r"ttl: expected 1\.\.86400 seconds .*grace"):
        a.submit(net.address("c"), b"x", precedence=Precedence.ROUTINE, ttl=86401, now=net.now)
    assert a.stats.submitted.total() == 0


def test_engine_config_is_validated() -> None:
    with pytest.raises(ValueError, match="dead_interval"):
        EngineConfig(hello_interval=5, dead_interval=2)


def test_stream_survives_losing_its_bearer() -> None:
    vhf = FakeLink("a", "b", profile(rate_bps=16_000))
    sat = FakeLink("b", "a", SATCOM)
    net = Net({"a": [], "b": []}, [vhf, sat])
    net.run(5)
    mids = []
    for i in range(20):
        if i == 6:
            vhf.up = False  # jammed: frames vanish, nobody tells the nodes
        mids.append(
            net.submit("a", "b", b"report %d" % i, precedence=Precedence.IMMEDIATE, ttl=600)
        )
        net.run(0.5)
    net.run(30)
    got = {e.mid: e for e in net.delivered("b")}
    assert sorted(got) == sorted(mids)
    worst = max(e.latency for e in got.values())
    assert worst < EngineConfig().dead_interval + 5  # failover within seconds


def test_revoked_node_is_cut_off() -> None:
    net = abc()
    net.submit("a", "c", b"before", precedence=Precedence.ROUTINE, ttl=600)
    net.run(2)
    net.revoke("a")
    net.submit("a", "c", b"after capture", precedence=Precedence.FLASH, ttl=600)
    net.run(5)
    assert [e.payload for e in net.delivered("c")] == [b"before"]
    b = net.engines["b"]
    assert b.stats.rejected["unknown-sender"] > 0  # its link key is gone
    with pytest.raises(SubmitError, match="revoked"):
        b.submit(net.address("a"), b"x", precedence=Precedence.ROUTINE, ttl=60, now=net.now)


def test_an_older_roster_is_refused_after_a_newer_one() -> None:
    net = abc()
    old_roster = net.roster
    net.revoke("a")  # b now uses roster version + 1
    with pytest.raises(RosterError, match="older than version"):
        Engine(
            Keyring(net.keys["b"], old_roster), net.stores["b"], EngineConfig(), [],
            random.Random(1), net.now,
        )  # fmt: skip


def test_group_member_cut_off_gets_the_message_when_it_returns() -> None:
    names = {"hq": ["coy"], "r": [], "x": ["coy"], "y": ["coy"]}
    to_y = FakeLink("r", "y", profile())
    links = [FakeLink("hq", "r", profile()), FakeLink("r", "x", profile()), to_y]
    net = Net(names, links)
    net.run(5)
    to_y.up = False
    net.run(15)  # y is gone from everyone's routes
    net.submit("hq", "coy", b"orders for coy", precedence=Precedence.PRIORITY, ttl=3600)
    net.run(10)
    assert [e.payload for e in net.delivered("x")] == [b"orders for coy"]
    assert net.delivered("y") == []
    to_y.up = True
    net.run(30)
    assert [e.payload for e in net.delivered("y")] == [b"orders for coy"]
    assert [e.payload for e in net.delivered("x")] == [b"orders for coy"]  # still once
    net.run(60)
    assert all(store.message_count() == 0 for store in net.stores.values())


def test_group_branch_lost_in_flight() -> None:
    """b's links die unnoticed; a group message goes towards b and is lost on the way. While
    the nodes' views differ, each thinks another covers b: the node that lost the branch
    holds a copy until the views settle, and b gets the message when it is back."""
    names = {"a": ["g"], "b": ["g"], "c": [], "d": ["g"]}
    pairs = (("a", "b"), ("b", "c"), ("c", "d"), ("a", "c"))
    links = [FakeLink(x, y, profile(rate_bps=100_000)) for x, y in pairs]
    net = Net(names, links, seed=57959)
    net.run(10)
    links[0].up = links[1].up = False  # b is cut off; nobody has noticed yet
    net.run(5)
    net.submit("a", "g", b"sent into the gap", precedence=Precedence.IMMEDIATE, ttl=7200)
    net.run(5)
    links[0].up = links[1].up = True
    net.run(300)
    assert [e.payload for e in net.delivered("b")] == [b"sent into the gap"]


def test_a_late_neighbour_learns_routes_flooded_before_it_came() -> None:
    links = chain("a", "b", "c")
    links[1].up = False  # c is not there while a and b exchange adverts
    net = Net({"a": [], "b": [], "c": []}, links)
    net.run(5)
    links[1].up = True
    net.run(5)  # far less than the advert refresh interval (30 s)
    c = net.engines["c"]
    assert c.router.next_hop(net.address("a")) == net.address("b")
    net.submit("c", "a", b"report", precedence=Precedence.ROUTINE, ttl=600, receipt=True)
    net.run(3)
    assert [e.payload for e in net.delivered("a")] == [b"report"]
