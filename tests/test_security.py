"""Insider attacks against the engine, each a regression test (docs/security.md).

An insider is a roster member (a captured node) that sends crafted frames with valid link
tags (tests/insider.py). Each test states the attack and what must hold.
"""

from __future__ import annotations

import random

import pytest
from harness import FakeLink, Net, chain, profile
from insider import Insider
from test_nonce import FailingCommitStore, PowerCutStore

from crypto.revocation import make_revocation
from crypto.schedule import LINK_TAG_BYTES
from tawan.core.engine import Engine, EngineConfig, SubmitError
from tawan.core.events import FrameRejected, RevocationApplied, Transmit
from tawan.core.frames import (
    U32,
    BatchFrame,
    DataFrame,
    FragFrame,
    HelloFlags,
    RouteFrame,
    advert_signed_bytes,
    decode_frame,
)
from tawan.core.precedence import Precedence
from tawan.core.queues import Outgoing
from tawan.core.receipts import DELIVERED, EXPIRED, ReceiptBody, encode_receipt
from tawan.core.routing import seq_newer
from tawan.core.sealing import seal_message
from tawan.core.specs import Submission
from tawan.core.store import Store, StoreError, custody_slot


def rejected(net: Net, node: str, reason: str) -> list[FrameRejected]:
    return [e for e in net.events[node] if isinstance(e, FrameRejected) and e.reason == reason]


def abcm(*, m_to: str = "b", store_max_bytes: int = 64 << 20) -> Net:
    """a - b - c, and the insider m beside `m_to`."""
    links = [*chain("a", "b", "c"), FakeLink("m", m_to, profile())]
    net = Net({"a": [], "b": [], "c": [], "m": []}, links, store_max_bytes=store_max_bytes)
    net.run(3)
    return net


def c_via_b(net: Net, *names: str) -> None:
    """`names` hand messages for c to b whatever b advertises (a static route): b holds
    them when it cannot go on to c."""
    net.config = EngineConfig(static_routes={net.address("c"): net.address("b")})
    for name in names:
        net.restart(name)


def next_seq(engine: Engine) -> int:
    """What an attacker guesses: ids are (src, epoch, seq) and seq counts up from 0."""
    return engine.numbering._next


# ------------------------------------------------------------------ message-id pre-emption
def test_a_forged_copy_does_not_make_the_real_message_a_duplicate_at_its_destination() -> None:
    # m sends c a message claiming a's next id, garbage inside; then a sends the real one.
    net = abcm(m_to="c")
    m = Insider(net, "m")
    forged = m.forged_message("a", "c", next_seq(net.engines["a"]))
    m.send("c", DataFrame(m.address, 0, forged))
    assert rejected(net, "c", "e2e-auth")
    net.submit("a", "c", b"the real order", precedence=Precedence.PRIORITY, ttl=600)
    net.run(5)
    assert [e.payload for e in net.delivered("c")] == [b"the real order"]


def test_a_forged_copy_held_by_a_relay_does_not_shadow_the_real_message() -> None:
    # The relay b holds m's forgery of a's next id (c is out of reach); the real message
    # then reaches b. b must not acknowledge it as a duplicate of the forgery.
    net = abcm(m_to="b")
    c_via_b(net, "a")  # so the real message reaches b while b cannot go on to c
    net.links["b-c"].up = False
    net.run(10)  # b sees c down
    m = Insider(net, "m")
    m.send("b", DataFrame(m.address, 0, m.forged_message("a", "c", next_seq(net.engines["a"]))))
    assert net.stores["b"].message_count() == 1
    net.submit("a", "c", b"the real order", precedence=Precedence.PRIORITY, ttl=600)
    net.run(5)
    assert rejected(net, "b", "id-clash")
    net.links["b-c"].up = True
    net.run(240)  # b hands on the forgery, c drops it, a's next retry gets through
    assert [e.payload for e in net.delivered("c")] == [b"the real order"]
    assert net.stores["a"].message_count() == 0


# ------------------------------------------------------------------ forged receipts
def test_a_delivered_receipt_counts_only_from_the_destination() -> None:
    net = abcm(m_to="a")
    mid = net.submit("a", "c", b"report", precedence=Precedence.ROUTINE, ttl=600, receipt=True)
    m = Insider(net, "m")
    body = encode_receipt(ReceiptBody(DELIVERED, mid, 1))
    created = int((net.now - m.engine.keys.t0) * 10)
    fake = seal_message(
        m.engine.keys, Submission(net.address("a"), body, Precedence.ROUTINE, 600), seq=5,
        created=created, control=True,
    )  # fmt: skip
    m.send("a", DataFrame(m.address, 0, fake))
    assert rejected(net, "a", "forged-receipt")
    assert net.stores["a"].receipts() == []
    net.run(5)
    receipts = net.stores["a"].receipts()
    assert [(r.mid, r.kind, r.reporter) for r in receipts] == [(mid, DELIVERED, net.address("c"))]


# ------------------------------------------------------------------ forged routes
def test_an_insider_cannot_forge_or_outbid_another_nodes_advert() -> None:
    # m claims c's view: seq 2**32 - 1 and c adjacent only to m. Without origin
    # signatures every node believed it and c was cut off for good.
    net = abcm(m_to="b")
    m = Insider(net, "m")
    c = net.address("c")
    adjacency = ((m.address, 1),)
    newer = net.engines["b"].router.adverts[c].seq + 1
    for seq in (U32, newer):
        signature = m.engine.keys.sign(advert_signed_bytes(c, seq, adjacency))  # m's, not c's
        m.send("b", RouteFrame(m.address, 0, c, seq, adjacency, signature))
    assert rejected(net, "b", "bad-advert")
    assert net.engines["b"].router.adverts[c].adjacency == {net.address("b"): 1}
    net.run(3)
    net.submit("a", "c", b"still reachable", precedence=Precedence.ROUTINE, ttl=600)
    net.run(5)
    assert [e.payload for e in net.delivered("c")] == [b"still reachable"]


def test_an_insider_cannot_add_links_to_another_nodes_advert() -> None:
    """The links an advert lists (routes per class, core/routing.py) are signed with it:
    m hands on c's real advert with a SATCOM link added, and with the signature c made
    over the advert without links; b keeps c's view as c signed it."""
    net = abcm(m_to="b")
    m = Insider(net, "m")
    c = net.address("c")
    held = net.engines["b"].router.adverts[c]
    adjacency = tuple(sorted(held.adjacency.items()))
    seq = held.seq + 1
    real = net.engines["c"].keys.sign(advert_signed_bytes(c, seq, adjacency))  # c's own
    neighbour, cost = adjacency[0]
    added = ((neighbour, "satcom-geo", cost),)
    m.send("b", RouteFrame(m.address, 0, c, seq, adjacency, real, added))
    assert rejected(net, "b", "bad-advert")
    assert net.engines["b"].router.adverts[c].seq == held.seq
    # Nor may links disagree with the adjacency they come with, even signed by c.
    cheaper = ((neighbour, "satcom-geo", cost + 1),)
    signed = net.engines["c"].keys.sign(advert_signed_bytes(c, seq, adjacency, cheaper))
    m.send("b", RouteFrame(m.address, 0, c, seq, adjacency, signed, cheaper))
    found = rejected(net, "b", "bad-advert")
    assert any("disagree with its adjacency" in e.detail for e in found)
    assert net.engines["b"].router.links_of(c) == {}


def test_adverts_of_non_roster_origins_are_not_kept() -> None:
    net = abcm(m_to="b")
    m = Insider(net, "m")
    for origin in (60000, 60001):
        signature = m.engine.keys.sign(advert_signed_bytes(origin, 1, ()))
        m.send("b", RouteFrame(m.address, 0, origin, 1, (), signature))
    assert 60000 not in net.engines["b"].router.adverts
    found = rejected(net, "b", "bad-advert")
    assert len(found) == 2
    assert all("not an active node" in e.detail for e in found)  # before its signature


def test_an_origin_answers_an_old_advert_of_itself_that_outbids_it() -> None:
    # An advert c made in an earlier life (its clock ahead, or its store since lost) numbers
    # above what c uses now, and says c is adjacent only to m. Flooded back, it must be
    # answered by c with a newer one, or everyone would keep that view of c.
    net = abcm(m_to="b")
    c = net.engines["c"]
    old_seq = c._advert_seq + 100_000
    stale = ((net.address("m"), 1),)
    signature = c.keys.sign(advert_signed_bytes(net.address("c"), old_seq, stale))
    Insider(net, "m").send("b", RouteFrame(net.address("m"), 0, net.address("c"), old_seq,
                                           stale, signature))  # fmt: skip
    net.run(3)
    view = net.engines["a"].router.adverts[net.address("c")]
    assert seq_newer(view.seq, old_seq)
    assert view.adjacency == {net.address("b"): 1}


def test_advert_sequence_comparison_survives_the_wrap() -> None:
    assert seq_newer(0, U32)
    assert seq_newer(5, U32 - 5)
    assert not seq_newer(U32, 0)
    assert not seq_newer(7, 7)


# ------------------------------------------------------------------ store pinning
def test_an_insider_cannot_pin_a_relay_store_with_override_messages() -> None:
    # m fills b with OVERRIDE messages for c (out of reach), which are never evicted.
    # b must still take a FLASH message from a.
    net = abcm(m_to="b", store_max_bytes=40_000)
    net.stores["m"] = Store.memory(max_bytes=400_000)  # the insider holds more than b can
    c_via_b(net, "a", "m")
    net.links["b-c"].up = False
    net.run(10)
    for i in range(200):
        payload = random.Random(i).randbytes(400)  # does not compress
        try:
            net.submit("m", "c", payload, precedence=Precedence.OVERRIDE, ttl=3600)
        except SubmitError:
            break  # m's own store is full: it has sent all it could
        net.run(0.05)
    net.run(5)
    assert net.engines["b"].stats.refused["override"] > 0  # m got its share, no more
    order = random.Random(-1).randbytes(1000)  # more than any gap the flood leaves
    mid = net.submit("a", "c", order, precedence=Precedence.FLASH, ttl=600)
    net.run(3)
    assert net.stores["b"].get_message(mid) is not None


def test_messages_to_unknown_nodes_or_living_too_long_are_refused_at_arrival() -> None:
    net = abcm(m_to="b")
    m = Insider(net, "m")
    longest = m.engine.keys.roster.grace_epochs * m.engine.keys.roster.epoch_seconds
    ahead = int((net.now - m.engine.keys.t0 + 3600) * 10)
    for i, forged in enumerate(
        [
            m.forged_message("m", 60000, 1),
            m.forged_message("m", "c", 2, ttl=U32),
            m.forged_message("m", "c", 3, ttl=longest + 1),
            m.forged_message("m", "c", 4, created_ticks=ahead),
        ]
    ):
        m.send("b", DataFrame(m.address, 0, forged))
        assert net.stores["b"].message_count() == 0, i
    for reason in ("unknown-destination", "ttl-too-long", "from-the-future"):
        assert rejected(net, "b", reason), reason


# ------------------------------------------------------------------ replays after a restart
def test_a_restarted_node_accepts_no_frame_recorded_before() -> None:
    # Recorded hellos of a, replayed to b after b restarted, made b report a up again.
    net = abcm(m_to="b")
    recorded: list[bytes] = []
    net.tap(lambda sender, link, data: recorded.append(data) if sender == "a" else None)
    net.run(5)
    net.links["a-b"].up = False
    net.run(10)
    net.restart("b")
    b = net.engines["b"]
    for frame in recorded:
        b.receive("a-b", "a", frame, net.now)
    assert b.stats.rejected["replay"] == len(recorded)
    assert not [e for e in b.neighbours.of(net.address("a")) if e.up]


def test_a_restarted_node_loses_no_traffic_to_its_saved_receive_marks() -> None:
    net = abcm(m_to="b")
    net.submit("a", "c", b"before", precedence=Precedence.ROUTINE, ttl=600)
    net.run(2)
    net.restart("b")
    net.run(3)  # b's hellos say it restarted: a skips its counters past b's marks
    net.submit("a", "c", b"after", precedence=Precedence.ROUTINE, ttl=600)
    net.run(1)
    assert [e.payload for e in net.delivered("c")] == [b"before", b"after"]
    assert net.engines["b"].stats.rejected["replay"] == 0


def test_restarted_hellos_carry_the_flag() -> None:
    net = abcm(m_to="b")
    flags: list[int] = []

    def spy(sender: str, link: str, data: bytes) -> None:
        frame = decode_frame(data[:-LINK_TAG_BYTES])
        if sender == "b" and hasattr(frame, "rx_loss"):
            flags.append(int(frame.flags))  # type: ignore[union-attr]

    net.tap(spy)
    net.run(20)
    assert not any(f & HelloFlags.RESTARTED for f in flags)
    net.restart("b")
    net.run(3)
    assert any(f & HelloFlags.RESTARTED for f in flags)


# ------------------------------------------------------------------ endpoint steering
def test_an_old_frame_from_elsewhere_does_not_move_the_reply_endpoint() -> None:
    net = abcm(m_to="b")
    recorded: list[bytes] = []
    net.tap(lambda sender, link, data: recorded.append(data) if sender == "a" else None)
    net.submit("a", "c", b"one", precedence=Precedence.ROUTINE, ttl=600)
    net.submit("a", "c", b"two", precedence=Precedence.ROUTINE, ttl=600)
    b = net.engines["b"]
    # Deliver a's newest frame, then an older one that was "delayed", from another address.
    net._heap.clear()
    newest, older = recorded[-1], recorded[-2]
    b.receive("a-b", "a", newest, net.now)
    b.receive("a-b", "evil:9", older, net.now)
    (adj,) = b.neighbours.of(net.address("a"))
    assert adj.peer == "a"


# ------------------------------------------------------------------ revocation over the air
def test_a_revocation_injected_at_one_end_takes_effect_at_the_other() -> None:
    names: dict[str, list[str]] = {n: [] for n in "abcdem"}
    links = [*chain("a", "b", "c", "d", "e"), FakeLink("m", "e", profile())]
    net = Net(names, links)
    net.run(3)
    mid = net.submit("e", "m", b"for m", precedence=Precedence.ROUTINE, ttl=600)
    net.links["m-e"].up = False
    net.run(10)  # e holds a message for m
    assert net.stores["e"].get_message(mid) is not None
    plan_roster = net.roster
    notice = make_revocation(
        net.authority_key(), plan_roster.mission_id, plan_roster.version + 1,
        (net.address("m"),),
    )  # fmt: skip
    assert net.engines["a"].apply_revocation(notice)
    net.run(2)
    e = net.engines["e"]
    assert e.keys.roster.is_revoked(net.address("m"))
    assert [ev for ev in net.events["e"] if isinstance(ev, RevocationApplied)]
    assert net.stores["e"].get_message(mid) is None  # its traffic is dropped
    net.links["m-e"].up = True
    net.run(10)
    assert not [a for a in e.neighbours.of(net.address("m")) if a.up]
    assert e.stats.rejected["unknown-sender"] > 0
    net.restart("e")  # installed durably
    assert net.engines["e"].keys.roster.is_revoked(net.address("m"))
    assert not net.engines["e"].apply_revocation(notice)


def test_a_power_cut_does_not_reopen_recorded_frames_to_a_replay() -> None:
    # Receive marks once went to disk unsynced: after a power cut the relay had only the
    # marks of its start, and took again every frame recorded since.
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"))
    store = PowerCutStore()
    net.stores["b"] = store
    net.restart("b")
    net.run(3)
    recorded: list[bytes] = []
    net.tap(lambda s, link, d: recorded.append(d) if s == "a" and link == "a-b" else None)
    for i in range(30):
        net.submit("a", "c", b"x%d" % i, precedence=Precedence.ROUTINE, ttl=600)
        net.run(2)
    net.links["a-b"].up = False
    net.run(10)
    store.power_cut()
    net.restart("b")
    b = net.engines["b"]
    for frame in recorded:
        b.receive("a-b", "a", frame, net.now)
    assert b.stats.rejected["replay"] == len(recorded)
    assert not [e for e in b.neighbours.of(net.address("a")) if e.up]


def test_a_receipt_arriving_after_the_message_expired_still_counts() -> None:
    # The origin once forgot what it had sent when the message expired, which is exactly
    # when an "expired" receipt is made: every such receipt was refused.
    net = abcm(m_to="b")
    net.links["b-c"].up = False
    net.run(10)
    c_via_b(net, "a")
    net.run(2)
    mid = net.submit("a", "c", b"order", precedence=Precedence.ROUTINE, ttl=30, receipt=True)
    net.run(5)
    net.links["a-b"].up = False  # a out of reach while the message expires at b
    net.run(40)
    net.links["a-b"].up = True
    net.run(60)
    assert [(r.mid, r.kind, r.reporter) for r in net.stores["a"].receipts()] == [
        (mid, EXPIRED, net.address("b"))
    ]


def test_an_insider_cannot_make_the_network_flood_adverts_at_its_pace() -> None:
    # 200 valid adverts of its own, each newer than the last, once made every node flood
    # each one on and recompute routes: 2,600 frames and 200 route changes at every node.
    names: dict[str, list[str]] = {n: [] for n in "abcdefm"}
    extra = [("a", "c"), ("b", "d"), ("c", "e"), ("d", "f"), ("m", "a")]
    net = Net(names, [*chain(*"abcdef"), *(FakeLink(x, y, profile()) for x, y in extra)])
    net.run(5)
    flooded = {"frames": 0}

    def spy(sender: str, link: str, data: bytes) -> None:
        if sender != "m" and isinstance(decode_frame(data[:-LINK_TAG_BYTES]), RouteFrame):
            flooded["frames"] += 1

    net.tap(spy)
    m = Insider(net, "m")
    adjacency = tuple(sorted(m.engine.router.my_adjacency.items()))
    last = m.engine._advert_seq + 200
    for seq in range(m.engine._advert_seq + 1, last + 1):
        signature = m.engine.keys.sign(advert_signed_bytes(m.address, seq, adjacency))
        m.send("a", RouteFrame(m.address, 0, m.address, seq, adjacency, signature))
    versions = net.engines["f"].router.version
    net.run(3)
    assert flooded["frames"] < 60
    assert net.engines["f"].router.version - versions <= 3
    assert net.engines["f"].router.adverts[m.address].seq == last  # the latest still got through


def test_a_notice_whose_commit_failed_is_saved_by_its_next_copy() -> None:
    net = Net({"a": [], "b": [], "m": []}, chain("a", "b", "m"))
    store = FailingCommitStore()
    net.stores["b"] = store
    net.restart("b")
    net.run(3)
    notice = make_revocation(
        net.authority_key(), net.roster.mission_id, net.roster.version + 1, (net.address("m"),)
    )
    b = net.engines["b"]
    store.fail_next = True
    with pytest.raises(StoreError):
        b.apply_revocation(notice)  # in force in memory, not on disk
    assert b.apply_revocation(notice)  # so the next copy is news: saved, applied, flooded
    net.restart("b")
    assert net.engines["b"].keys.roster.is_revoked(net.address("m"))


def test_forgeries_held_for_another_destination_do_not_hold_up_the_real_messages() -> None:
    # m pre-empts a's next 20 ids with forgeries addressed to itself, which it never
    # acknowledges, so relay b keeps them for a day; a's real messages to c then clashed at
    # b and were refused until they expired. Custody by id and destination lets them by.
    net = abcm(m_to="b")
    m = Insider(net, "m")
    swallow = m.engine.receive

    def never_acknowledge(link: str, peer: str, data: bytes, now: float) -> None:
        if not isinstance(decode_frame(data[:-LINK_TAG_BYTES]), DataFrame | FragFrame):
            swallow(link, peer, data, now)

    m.engine.receive = never_acknowledge  # type: ignore[method-assign]
    longest = m.engine.keys.roster.grace_epochs * m.engine.keys.roster.epoch_seconds
    first = next_seq(net.engines["a"])
    for k in range(20):
        forged = m.forged_message("a", "m", first + k, ttl=longest)
        m.send("b", DataFrame(m.address, 0, forged))
    assert net.stores["b"].message_count() == 20
    orders = [f"real order {i}".encode() for i in range(5)]
    for order in orders:
        net.submit("a", "c", order, precedence=Precedence.FLASH, ttl=600)
    net.run(10)
    assert sorted(e.payload for e in net.delivered("c")) == orders
    assert net.stores["a"].message_count() == 0


def test_two_copies_under_one_id_take_turns_on_a_link_and_both_arrive() -> None:
    # A forgery for d and the real message for c share an id and the link b-c: they must
    # not fly at once (c's acknowledgement names the id only), and each must get through.
    links = [*chain("a", "b", "c", "d"), FakeLink("m", "b", profile())]
    net = Net({n: [] for n in "abcdm"}, links)
    net.run(3)
    net.links["c-d"].up = False
    net.run(10)
    c_via_b(net, "m")
    net.config = EngineConfig(static_routes={net.address("d"): net.address("c")})
    net.restart("b")
    net.run(3)
    m = Insider(net, "m")
    m.send("b", DataFrame(m.address, 0, m.forged_message("a", "d", next_seq(net.engines["a"]))))
    assert net.stores["b"].message_count() == 1
    mid = net.submit("a", "c", b"real", precedence=Precedence.ROUTINE, ttl=600)
    net.run(10)
    assert [e.payload for e in net.delivered("c")] == [b"real"]
    assert net.stores["b"].message_count() == 0  # both handed on to c
    held = [m for m, _ in net.stores["c"].pending()] + net.stores["c"].messages_without_next_hop()
    assert [(h.mid[:2], h.dst) for h in held] == [(mid[:2], net.address("d"))]  # waits for d


def messages_in(frames: list[Transmit]) -> int:
    """Messages the frames carry: one per DATA frame, several per BATCH."""
    count = 0
    for tx in frames:
        frame = decode_frame(tx.data[:-LINK_TAG_BYTES])
        count += len(frame.messages) if isinstance(frame, BatchFrame) else 1
    return count


def test_a_copy_waiting_for_its_twin_lets_everything_else_go() -> None:
    # Once the flying copy timed out and went back to the queue, the copy waiting for it
    # stood at the head of the heap, blocked, and nothing more went to that neighbour.
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b"))
    net.run(3)
    a, b = net.engines["a"], net.address("b")
    wire = (net.address("a"), 0, 999)

    def copy(mid: tuple[int, int, int], created: int) -> Outgoing:
        sealed = a._seal_local(
            Submission(net.address("c"), b"p", Precedence.ROUTINE, 600), net.now
        )
        return Outgoing(mid, Precedence.ROUTINE, created, sealed.encode(), wire=wire)

    first, twin = copy(wire, 1), copy(custody_slot(wire, net.address("c")), 1)
    other = Outgoing((net.address("a"), 0, 1000), Precedence.ROUTINE, 2, twin.encoded)
    a.forwarding.hand(b, first)
    a.forwarding.hand(b, twin)
    assert len(a.tx.transmit(net.now)) == 1  # one of the two copies flies
    a.tx.retransmit_due(net.now + 100)  # its frame was lost: it is queued again
    a.forwarding.hand(b, other)
    frames = a.tx.transmit(net.now + 100)
    queue = a.queues[b]
    assert messages_in(frames) == 2  # the copy sent again, and the other message
    assert sorted(queue.waiting) == [twin.mid]
    queue.remove(first.mid)  # acknowledged: the twin's turn
    assert len(a.tx.transmit(net.now + 101)) == 1


def test_a_held_group_message_goes_once_a_static_route_reaches_its_member() -> None:
    names: dict[str, list[str]] = {"a": ["g"], "r": [], "m": ["g"]}
    link = FakeLink("a", "r", profile(), up=False)
    roster_only = Net(names, [link])
    m, r = roster_only.address("m"), roster_only.address("r")
    net = Net(names, [link], config=EngineConfig(strict_states=True, static_routes={m: r}))
    net.run(3)
    group = net.submit("a", "g", b"group", precedence=Precedence.ROUTINE, ttl=3000)
    link.up = True
    net.run(30)
    assert net.engines["r"].store.get_message(group) is not None
    assert net.stores["a"].get_message(group) is None
