"""NET frames: one copy of a message for several members of a radio net (docs/protocol.md
4.9). Each receiver checks its own tag and counter and takes the message as a DATA frame of
its own; a group message on a net goes on the air once, not once per member."""

from __future__ import annotations

import random

import pytest
from harness import FakeLink, FakeNet, Net, profile
from hypothesis import given, settings
from hypothesis import strategies as st
from test_linkauth import EPOCH, reason
from test_linkauth import link_key as pair_key

from tawan.core.events import Transmit
from tawan.core.frames import (
    MAX_NET_RECEIVERS,
    AckFrame,
    DataFrame,
    Flags,
    FragFrame,
    FrameDecodeError,
    FrameType,
    Message,
    decode_frame,
    decode_net_frame,
    encode_net_frag,
    encode_net_frame,
)
from tawan.core.linkauth import LinkGuard, LinkReject
from tawan.core.precedence import Precedence
from tawan.node.runtime import _one_per_peer

A, B, C = 1, 2, 3
D = 4  # a node of the net the frame is not for


def link_key(sender: int, receiver: int, epoch: int) -> bytes | None:
    """test_linkauth's keys of nodes 1..3, and a key of node 4's own."""
    if D in (sender, receiver):
        return None if sender == receiver else bytes([sender, receiver]) * 16
    return pair_key(sender, receiver, epoch)


MESSAGE = Message(1, 9, 7, Precedence.FLASH, Flags.SIGNED, 100, 60, 0, bytes(range(40)))


def net_frame(guard: LinkGuard, receivers: list[int], epoch: int = EPOCH) -> bytes:
    """As the transmitter does: number for each receiver, encode once, one tag each."""
    numbered = [(r, guard.next_counter(r, epoch)) for r in receivers]
    encoded = encode_net_frame(guard.address, numbered, MESSAGE.encode())
    return guard.protect_net(encoded, receivers, epoch)


# ---------------------------------------------------------------------------- the frame
def test_each_receiver_takes_its_own_data_frame() -> None:
    a = LinkGuard(A, link_key)
    a.next_counter(C, EPOCH)  # C's counter is ahead of B's: each has its own
    data = net_frame(a, [B, C])
    assert data[0] == 0x18
    b, c = LinkGuard(B, link_key), LinkGuard(C, link_key)
    assert b.unprotect(data, EPOCH) == DataFrame(A, 0, MESSAGE)
    assert c.unprotect(data, EPOCH) == DataFrame(A, 1, MESSAGE)


def test_a_node_not_named_drops_it_as_not_addressed() -> None:
    data = net_frame(LinkGuard(A, link_key), [B, C])
    assert reason(LinkGuard(D, link_key), data) == "not-addressed"


def test_a_forged_tag_fails_only_its_receiver() -> None:
    data = bytearray(net_frame(LinkGuard(A, link_key), [B, C]))
    data[-1] ^= 1  # the last tag is C's
    assert LinkGuard(B, link_key).unprotect(bytes(data), EPOCH).sender == A
    assert reason(LinkGuard(C, link_key), bytes(data)) == "unauthenticated"


def test_another_receivers_tag_does_not_pass_for_mine() -> None:
    """C cannot be given B's tag: its own slot is what it checks."""
    a = LinkGuard(A, link_key)
    data = net_frame(a, [B, C])
    tags = data[-16:]
    swapped = data[:-16] + tags[8:] + tags[:8]
    assert reason(LinkGuard(B, link_key), swapped) == "unauthenticated"
    assert reason(LinkGuard(C, link_key), swapped) == "unauthenticated"


def test_a_replayed_net_frame_is_refused_by_every_receiver() -> None:
    data = net_frame(LinkGuard(A, link_key), [B, C])
    for me in (B, C):
        guard = LinkGuard(me, link_key)
        guard.unprotect(data, EPOCH)
        assert reason(guard, data) == "replay"


def test_an_outsider_cannot_add_itself_or_rewrite_the_list() -> None:
    """The receiver list is under every tag: renumbering a receiver breaks its tag."""
    a = LinkGuard(A, link_key)
    numbered = [(B, a.next_counter(B, EPOCH)), (C, a.next_counter(C, EPOCH))]
    encoded = encode_net_frame(A, numbered, MESSAGE.encode())
    data = a.protect_net(encoded, [B, C], EPOCH)
    renumbered = encode_net_frame(A, [(B, 5), (C, 1)], MESSAGE.encode())
    forged = renumbered + data[len(encoded) :]
    assert reason(LinkGuard(B, link_key), forged) == "unauthenticated"


@pytest.mark.parametrize(
    ("receivers", "tags", "expected"),
    [
        ([(B, 0), (C, 0)], 8, "bytes of tags"),  # one tag short
        ([(B, 0), (C, 0)], 24, "bytes of tags"),  # one too many
        ([(B, 0), (B, 1)], 16, "distinct"),
        ([(A, 0), (B, 0)], 16, "distinct"),  # the sender among its receivers
    ],
)
def test_malformed_net_frames_name_the_problem(
    receivers: list[tuple[int, int]], tags: int, expected: str
) -> None:
    data = encode_net_frame(A, receivers, MESSAGE.encode()) + bytes(tags)
    with pytest.raises(FrameDecodeError, match=expected):
        decode_net_frame(data)
    with pytest.raises(LinkReject) as info:
        LinkGuard(B, link_key).unprotect(data, EPOCH)
    assert info.value.reason == "malformed"


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(2, 0xFFFF), min_size=2, max_size=MAX_NET_RECEIVERS, unique=True),
    st.lists(st.integers(0, 0xFFFF_FFFF), min_size=MAX_NET_RECEIVERS, max_size=MAX_NET_RECEIVERS),
)
def test_round_trip(addresses: list[int], counters: list[int]) -> None:
    receivers = list(zip(addresses, counters, strict=False))
    encoded = encode_net_frame(A, receivers, MESSAGE.encode())
    frame, end = decode_net_frame(encoded + bytes(8 * len(receivers)))
    assert end == len(encoded)
    assert frame.receivers == tuple(receivers)
    assert frame.inner == DataFrame(A, 0, MESSAGE)
    assert [frame.for_receiver(i) for i in range(len(receivers))] == [
        DataFrame(A, c, MESSAGE) for _, c in receivers
    ]


def test_a_fragment_for_several_receivers() -> None:
    """NET_FRAG: a FRAG frame's fields for several receivers, each taking a FRAG frame."""
    a = LinkGuard(A, link_key)
    piece = FragFrame(A, 0, (1, 0, 7), 2, 5, b"chunk of a sitrep")
    numbered = [(C, a.next_counter(C, EPOCH)), (B, a.next_counter(B, EPOCH))]
    data = a.protect_net(encode_net_frag(A, numbered, piece), [C, B], EPOCH)
    assert data[0] == 0x19
    assert LinkGuard(B, link_key).unprotect(data, EPOCH) == piece
    assert LinkGuard(C, link_key).unprotect(data, EPOCH) == piece
    assert reason(LinkGuard(D, link_key), data) == "not-addressed"
    with pytest.raises(FrameDecodeError, match="NET_FRAG"):
        decode_frame(data[:-16])


def test_receiver_counts_are_bounded() -> None:
    with pytest.raises(ValueError, match="receivers"):
        encode_net_frame(A, [(B, 0)], MESSAGE.encode())
    many = [(i + 2, 0) for i in range(MAX_NET_RECEIVERS + 1)]
    with pytest.raises(ValueError, match="receivers"):
        encode_net_frame(A, many, MESSAGE.encode())


def test_decode_frame_refuses_a_net_frame_it_cannot_split() -> None:
    data = net_frame(LinkGuard(A, link_key), [B, C])
    with pytest.raises(FrameDecodeError, match="NET"):
        decode_frame(data[:-8])


# ---------------------------------------------------------------------------- the engine
COMPANY = ("hq", "p1", "p2", "p3", "p4")
MESSAGE_TYPES = (
    FrameType.DATA, FrameType.FRAG, FrameType.BATCH, FrameType.NET, FrameType.NET_FRAG
)  # fmt: skip


def company_net(loss: float = 0.0, seed: int = 3) -> Net:
    names = {n: ["coy"] for n in COMPANY}
    net = FakeNet("vhf", COMPANY, profile(rate_bps=9_600, delay_s=0.02, mtu=1400), loss=loss)
    return Net(names, [net], seed=seed)


def message_frames(net: Net) -> list[tuple[str, Transmit]]:
    sent: list[tuple[str, Transmit]] = []

    def spy(sender: str, tx: Transmit) -> None:
        if tx.data[0] & 0xF in MESSAGE_TYPES:
            sent.append((sender, tx))

    net.tap_transmits(spy)
    return sent


def test_a_group_message_on_a_net_goes_on_the_air_once() -> None:
    net = company_net()
    net.run(30)  # the net comes up
    sent = message_frames(net)
    net.submit("hq", "coy", b"contact north", precedence=Precedence.FLASH, ttl=600)
    net.run(10)
    from_hq = [tx for sender, tx in sent if sender == "hq"]
    assert len(from_hq) == 1
    assert from_hq[0].data[0] & 0xF == FrameType.NET
    assert sorted(from_hq[0].peers) == ["p1", "p2", "p3", "p4"]
    for member in COMPANY[1:]:
        assert [d.payload for d in net.delivered(member)] == [b"contact north"]
    hq = net.engines["hq"]
    assert all(not q.in_flight for q in hq.tx.queues.values())  # every member acknowledged
    assert hq.stats.link("vhf").net_copies == 4


def test_on_a_lossy_net_every_member_delivers_once() -> None:
    """Each member is acknowledged and sent again on its own: one that missed the frame
    gets it again (alone, or with others that missed it), none gets it twice."""
    net = company_net(loss=0.3, seed=5)
    net.run(60)
    for i in range(10):
        net.submit("hq", "coy", b"order %d" % i, precedence=Precedence.IMMEDIATE, ttl=900)
        net.run(5)
    net.run(300)
    for member in COMPANY[1:]:
        got = sorted(d.payload for d in net.delivered(member))
        assert got == sorted(b"order %d" % i for i in range(10)), member
    hq = net.engines["hq"]
    assert all(not q.in_flight and not q.waiting for q in hq.tx.queues.values())


def test_a_fragmented_group_message_goes_once_per_piece() -> None:
    """A sitrep larger than the net's MTU: each piece goes once, to every member, cut short
    enough that the four receivers' entries fit beside it."""
    net = company_net()
    net.run(30)
    sent = message_frames(net)
    report = random.Random(1).randbytes(3000)  # does not compress
    net.submit("hq", "coy", report, precedence=Precedence.PRIORITY, ttl=600)
    net.run(20)
    from_hq = [tx for sender, tx in sent if sender == "hq"]
    assert {tx.data[0] & 0xF for tx in from_hq} == {FrameType.NET_FRAG}
    assert all(sorted(tx.peers) == ["p1", "p2", "p3", "p4"] for tx in from_hq)
    assert len(from_hq) == 3  # 3,000 bytes and a signature in pieces of 1,400 less 128
    assert max(len(tx.data) for tx in from_hq) <= 1400
    for member in COMPANY[1:]:
        assert [d.payload for d in net.delivered(member)] == [report]
    hq = net.engines["hq"]
    assert all(not q.in_flight and not q.waiting for q in hq.tx.queues.values())


def test_on_a_lossy_net_every_member_reassembles_once() -> None:
    net = company_net(loss=0.3, seed=8)
    net.run(60)
    reports = [random.Random(i).randbytes(3000) for i in range(4)]
    for report in reports:
        net.submit("hq", "coy", report, precedence=Precedence.PRIORITY, ttl=900)
        net.run(5)
    net.run(600)
    for member in COMPANY[1:]:
        assert sorted(d.payload for d in net.delivered(member)) == sorted(reports), member
    hq = net.engines["hq"]
    assert all(not q.in_flight and not q.waiting for q in hq.tx.queues.values())


def test_a_member_that_delivered_answers_a_probe_with_an_acknowledgement() -> None:
    """A member's acknowledgements of a fragmented group message are lost until its copy
    has settled and gone: the sender's probe (the last piece again) is answered with an
    acknowledgement, not with a map of a new reassembly that wants every piece again."""
    names = {"hq": ["coy"], "p1": ["coy"]}
    net = Net(names, [FakeLink("hq", "p1", profile(rate_bps=9_600, mtu=512))], seed=2)
    net.run(10)
    carry = net._carry
    mid: list[tuple[int, int, int]] = []
    answers: list[AckFrame] = []
    deaf_until = net.now + 60  # past the member's settling (3 dead intervals of 7 s)

    def lose_acks(sender: str, link: str, peers: tuple[str, ...], data: bytes) -> None:
        if sender == "p1" and data[0] & 0xF == FrameType.ACK:
            frame = decode_frame(data[:-8])
            assert isinstance(frame, AckFrame)
            if mid[0] in frame.acks or any(p.mid == mid[0] for p in frame.partial):
                if net.now < deaf_until:
                    return
                answers.append(frame)
        carry(sender, link, peers, data)

    net._carry = lose_acks  # type: ignore[method-assign,assignment]
    report = random.Random(3).randbytes(1500)
    mid.append(net.submit("hq", "coy", report, precedence=Precedence.PRIORITY, ttl=900))
    net.run(200)
    assert [d.payload for d in net.delivered("p1")] == [report]
    assert answers, "no answer after the deaf spell"
    assert mid[0] in answers[0].acks and not answers[0].partial
    assert not net.engines["hq"].tx.queues[net.address("p1")].in_flight


def test_the_live_node_sends_a_net_frame_to_each_of_its_peers() -> None:
    net = Transmit("vhf", "127.0.0.2:7000", b"\x18frame", 3, ("127.0.0.3:7000", "127.0.0.4:7000"))
    one = Transmit("vhf", "127.0.0.2:7000", b"\x10frame", 1)
    sent = list(_one_per_peer([net, one]))
    assert [(t.peer, t.data, t.precedence, t.also) for t in sent] == [
        ("127.0.0.2:7000", b"\x18frame", 3, ()),
        ("127.0.0.3:7000", b"\x18frame", 3, ()),
        ("127.0.0.4:7000", b"\x18frame", 3, ()),
        ("127.0.0.2:7000", b"\x10frame", 1, ()),
    ]
