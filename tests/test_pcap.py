"""Frames of a real run written to pcap and dissected back by the scapy layers.

The dissector is checked against the reference decoder (`tawan.core.frames.decode_frame`) on
every frame of a short run through a relay (hellos, adverts, data, fragments, acks), against
the annotated test vector of docs/protocol.md, and against damaged bytes, which must never
raise out of `dissect`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from harness import Net, chain
from scapy.packet import Packet, Raw

from crypto.schedule import LINK_TAG_BYTES
from emulator.pcap import (
    DLT_USER0,
    PcapRecorder,
    Tawan,
    TawanAck,
    TawanAdjacency,
    TawanData,
    TawanFrag,
    TawanHello,
    TawanLink,
    TawanRoute,
    TawanRouteLink,
    dissect,
    pseudo_header,
)
from tawan.core.frames import (
    AckFrame,
    DataFrame,
    FragFrame,
    Frame,
    FrameType,
    HelloFrame,
    RouteFrame,
    decode_frame,
    encode_frame,
    pf_field,
)
from tawan.core.precedence import Precedence

VECTOR_DATA = bytes.fromhex(
    "109a02cd03e80102050bcd0708cd0e1001c41e37aecc7d5045084f4c953882b3fb2147f2b4c6540ede4c"
    "b556c04b15e472d2901e70946f4436"
)  # docs/protocol.md 14.4


@dataclass(frozen=True)
class Captured:
    time: float
    link: str
    sender: str
    receiver: str
    data: bytes


def run_abc() -> tuple[Net, list[Captured]]:
    """a - b - c: routes learnt, then a short, a long (fragmented) and a FLASH message."""
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c", mtu=600))
    seen: list[Captured] = []

    def spy(sender: str, link: str, data: bytes) -> None:
        a, b = net.links[link].members
        receiver = b if sender == a else a
        seen.append(Captured(net.now, link, sender, receiver, data))

    net.tap(spy)
    net.run(3)
    net.submit("a", "c", b"short report", precedence=Precedence.ROUTINE, ttl=600)
    long = random.Random(0).randbytes(1500)  # incompressible: fragments on a 600-byte MTU
    net.submit("a", "c", long, precedence=Precedence.PRIORITY, ttl=600, receipt=True)
    net.submit("c", "a", b"contact", precedence=Precedence.FLASH, ttl=60)
    net.run(3)
    assert len(net.delivered("c")) == 2 and len(net.delivered("a")) == 1
    return net, seen


def record(out_dir: Path, frames: list[Captured], links: list[str]) -> None:
    with PcapRecorder(out_dir, links) as recorder:
        for f in frames:
            recorder.frame(f.time, f.link, f.sender, f.receiver, f.data)


def check_layer_equals_decoded(packet: Packet, data: bytes) -> FrameType:
    """The dissected fields of one frame are those the reference decoder reads."""
    frame: Frame = decode_frame(data[:-LINK_TAG_BYTES])
    header = packet[Tawan]
    assert (header.version, header.type) == (1, frame.TYPE)
    assert (header.sender, header.counter) == (frame.sender, frame.counter)
    assert header.tag == data[-LINK_TAG_BYTES:]
    assert bytes(header) == data  # rebuilt byte for byte, tag last
    if isinstance(frame, DataFrame):
        m, body = frame.message, packet[TawanData]
        assert (body.src, body.dst, body.seq) == (m.src, m.dst, m.seq)
        assert body.pf == pf_field(m.precedence, m.flags)
        assert (body.precedence, body.flags) == (m.precedence, m.flags)
        assert (body.created, body.ttl, body.hops) == (m.created, m.ttl, m.hops)
        assert body.ciphertext == m.ciphertext
    elif isinstance(frame, FragFrame):
        body = packet[TawanFrag]
        assert (body.mid_src, body.mid_epoch, body.mid_seq) == frame.mid
        assert (body.index, body.count, body.chunk) == (frame.index, frame.count, frame.chunk)
    elif isinstance(frame, AckFrame):
        body = packet[TawanAck]
        ids = ((i.src, i.epoch, i.seq + k) for i in body.acks for k in range(i.count))
        assert tuple(ids) == frame.acks
        states = tuple(((s.src, s.epoch, s.seq), s.bitmap) for s in body.states)
        assert states == tuple((s.mid, s.bitmap) for s in frame.partial)
    elif isinstance(frame, HelloFrame):
        body = packet[TawanHello]
        fields = (body.time_ms, body.echo_ms, body.held_ms, body.rx_loss, body.flags, body.sent)
        assert fields == (
            frame.time_ms, frame.echo_ms, frame.held_ms, frame.rx_loss, frame.flags, frame.sent
        )  # fmt: skip
    elif isinstance(frame, RouteFrame):
        body = packet[TawanRoute]
        assert (body.origin, body.lsa_seq, body.signature) == (
            frame.origin, frame.lsa_seq, frame.signature,
        )  # fmt: skip
        assert tuple((n.neighbour, n.cost) for n in body.adjacency) == frame.adjacency
        links = tuple((x.neighbour, x.bearer.decode(), x.cost) for x in body.links or ())
        assert links == frame.links
    else:  # pragma: no cover - the run sends no others
        pytest.fail(f"unexpected frame {frame!r}")
    assert Raw not in packet  # nothing left over
    return frame.TYPE


# ================================================================== a real run
def test_every_frame_of_a_run_dissects_to_what_the_decoder_reads(tmp_path: Path) -> None:
    _, frames = run_abc()
    record(tmp_path, frames, ["a-b", "b-c"])
    types: set[FrameType] = set()
    for link in ("a-b", "b-c"):
        sent = [f for f in frames if f.link == link]
        packets = dissect(tmp_path / f"{link}.pcap")
        assert len(packets) == len(sent) > 0
        for packet, f in zip(packets, sent, strict=True):
            assert isinstance(packet, TawanLink)
            names = (packet.link, packet.sender, packet.receiver)
            assert names == (link.encode(), f.sender.encode(), f.receiver.encode())
            assert float(packet.time) == pytest.approx(f.time, abs=1e-6)
            types.add(check_layer_equals_decoded(packet, f.data))
    want = {FrameType.HELLO, FrameType.ROUTE, FrameType.DATA, FrameType.FRAG, FrameType.ACK}
    assert types == want
    # both directions of a link are in its file, told apart by the pseudo header
    senders = {p.sender for p in dissect(tmp_path / "a-b.pcap")}
    assert senders == {b"a", b"b"}


def test_the_capture_file_is_a_plain_pcap_of_link_type_147(tmp_path: Path) -> None:
    record(tmp_path, [Captured(1.5, "a-b", "a", "b", VECTOR_DATA)], ["a-b"])
    raw = (tmp_path / "a-b.pcap").read_bytes()
    assert raw[:4] == bytes.fromhex("d4c3b2a1")  # little-endian microsecond pcap
    assert int.from_bytes(raw[20:24], "little") == DLT_USER0
    seconds, micros, caplen, wirelen = (
        int.from_bytes(raw[i : i + 4], "little") for i in range(24, 40, 4)
    )
    record_bytes = pseudo_header("a-b", "a", "b") + VECTOR_DATA
    assert (seconds, micros, caplen, wirelen) == (1, 500_000, len(record_bytes), len(record_bytes))
    assert raw[40:] == record_bytes


def test_the_annotated_data_frame_of_the_protocol_document() -> None:
    packet = TawanLink(pseudo_header("b-c", "b", "c") + VECTOR_DATA)
    header, body = packet[Tawan], packet[TawanData]
    assert (header.type, header.items, header.sender, header.counter) == (0, 10, 2, 1000)
    assert header.tag == bytes.fromhex("d2901e70946f4436")
    assert (body.src, body.dst, body.seq, body.pf) == (1, 2, 5, 0x0B)
    assert (body.precedence, body.flags) == (Precedence.FLASH, 1)
    assert (body.created, body.ttl, body.hops) == (1800, 3600, 1)
    assert body.ciphertext == VECTOR_DATA[19:49]
    assert "FLASH|RECEIPT_REQUESTED" in str(packet.show(dump=True))


def test_integers_in_any_width_are_read_as_the_decoder_reads_them() -> None:
    """The link tag covers the bytes as sent, so a receiver accepts a non-shortest integer;
    so does the dissector (signed widths included, when not negative)."""
    fields = b"\x02" + b"\xce\x00\x00\x00\x05"  # sender 2, counter 5 as uint 32
    fields += b"\xd1\x01\x00" + b"\xd0\x07" + b"\xcc\x08" + b"\x00" + b"\x01"  # time..flags
    fields += b"\xcd\x00\x09"  # sent 9 as uint 16
    data = b"\x13\x98" + fields + bytes(range(8))
    decoded = decode_frame(data[:-LINK_TAG_BYTES])
    assert isinstance(decoded, HelloFrame) and (decoded.time_ms, decoded.sent) == (256, 9)
    check_layer_equals_decoded(Tawan(data), data[:2] + fields + bytes(range(8)))


# ================================================================== damaged bytes
def damaged(seed: int = 0) -> list[bytes]:
    """Real frames cut at every length, with bytes flipped, of other versions and types."""
    rng = random.Random(seed)
    frames = [VECTOR_DATA, bytes.fromhex("129402cd03ed9094010006c4010538e1266a1e9e842f")]
    out = [b"", b"\x10", b"\xff" * 40, msgpack.packb({"a": "map"}), b"\x13" + b"\xc1" * 20]
    for frame in frames:
        out += [frame[:cut] for cut in range(len(frame))]
        for _ in range(200):
            flipped = bytearray(frame)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            out.append(bytes(flipped))
        out.append(bytes([0x20 | frame[0] & 0xF]) + frame[1:])  # version 2
        out.append(bytes([0x1F]) + frame[1:])  # type 15
        out.append(frame[:-LINK_TAG_BYTES] + b"\x00\x01" + frame[-LINK_TAG_BYTES:])  # trailing
    out += [rng.randbytes(rng.randint(0, 100)) for _ in range(300)]
    return out


def test_damaged_bytes_never_raise_and_show_as_raw(tmp_path: Path) -> None:
    bad = damaged()
    record(tmp_path, [Captured(0.0, "x", "a", "b", data) for data in bad], ["x"])
    packets = dissect(tmp_path / "x.pcap")
    assert len(packets) == len(bad)
    raw_bodies = 0
    for packet, data in zip(packets, bad, strict=True):
        assert isinstance(packet, TawanLink) and packet.sender == b"a"
        assert bytes(packet) == pseudo_header("x", "a", "b") + data  # nothing lost
        if Raw in packet:
            raw_bodies += 1
    assert raw_bodies > len(bad) // 2


def test_another_version_or_type_keeps_its_header_and_shows_its_body_as_raw() -> None:
    other_version = bytes([0x20]) + VECTOR_DATA[1:]
    unknown_type = bytes([0x1F]) + VECTOR_DATA[1:]
    trailing = VECTOR_DATA[:-LINK_TAG_BYTES] + b"\x07" + VECTOR_DATA[-LINK_TAG_BYTES:]
    for data in (other_version, unknown_type):
        packet = TawanLink(pseudo_header("l", "a", "b") + data)
        assert Tawan in packet and TawanData not in packet and Raw in packet
        assert packet[Tawan].sender == 2
    packet = TawanLink(pseudo_header("l", "a", "b") + trailing)
    assert packet[TawanData].hops == 1 and packet[Raw].load == b"\x07"
    # acks of 3 items, not a multiple of 4, then fragment states
    bad_ack = bytes.fromhex("129402cd03e99301000590") + bytes(8)
    packet = TawanLink(pseudo_header("l", "a", "b") + bad_ack)
    assert packet[Tawan].type == FrameType.ACK and TawanAck not in packet and Raw in packet
    truncated = TawanLink(pseudo_header("l", "a", "b") + VECTOR_DATA[:3])
    assert Tawan not in truncated and truncated[Raw].load == VECTOR_DATA[:3]


def test_an_advert_with_links_dissects_them_and_rebuilds_to_its_bytes() -> None:
    frame = RouteFrame(2, 9, 2, 7, ((3, 10),), bytes(64), ((3, "hf", 12), (3, "satcom-geo", 10)))
    data = encode_frame(frame) + bytes(LINK_TAG_BYTES)
    packet = TawanLink(pseudo_header("l", "a", "b") + data)
    check_layer_equals_decoded(packet, data)
    assert bytes(packet[Tawan]) == data


def test_an_advert_built_from_fields_carries_its_links() -> None:
    """A ROUTE made in scapy from its fields (to craft a test frame) is the frame the
    reference encoder makes: the seventh field counted and written when links are given,
    neither when they are not."""
    route = RouteFrame(2, 9, 2, 7, ((3, 10),), bytes(64), ((3, "hf", 12), (3, "satcom-geo", 10)))
    for frame in (route, dataclasses.replace(route, links=())):
        built = Tawan(sender=2, counter=9, tag=bytes(LINK_TAG_BYTES)) / TawanRoute(
            origin=2, lsa_seq=7, adjacency=[TawanAdjacency(neighbour=3, cost=10)],
            signature=bytes(64),
            links=[
                TawanRouteLink(neighbour=n, bearer=b.encode(), cost=c) for n, b, c in frame.links
            ],
        )  # fmt: skip
        assert bytes(built) == encode_frame(frame) + bytes(LINK_TAG_BYTES)


# ================================================================== the recorder
def test_other_links_are_ignored_and_a_quiet_link_gives_an_empty_capture(
    tmp_path: Path,
) -> None:
    frames = [Captured(t, link, "a", "b", VECTOR_DATA) for t, link in ((1, "a-b"), (2, "b-c"))]
    record(tmp_path, frames, ["a-b", "quiet"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-b.pcap", "quiet.pcap"]
    assert len(dissect(tmp_path / "a-b.pcap")) == 1
    assert dissect(tmp_path / "quiet.pcap") == []


def test_virtual_times_keep_their_microseconds(tmp_path: Path) -> None:
    times = [0.0, 0.000001, 12.25, 3599.9999996, 86_400.123456]
    expected = [0.0, 0.000001, 12.25, 3600.0, 86_400.123456]
    record(tmp_path, [Captured(t, "t", "a", "b", VECTOR_DATA) for t in times], ["t"])
    got = [float(p.time) for p in dissect(tmp_path / "t.pcap")]
    assert got == pytest.approx(expected, abs=5e-7)


def test_the_recorder_refuses_bad_names_times_and_use_after_close(tmp_path: Path) -> None:
    for name in ("", "../up", "a/b", ".."):
        with pytest.raises(ValueError, match="link name"):
            PcapRecorder(tmp_path, [name])
    recorder = PcapRecorder(tmp_path, ["a-b"])
    with pytest.raises(ValueError, match="sender name"):
        recorder.frame(0.0, "a-b", "x" * 300, "b", VECTOR_DATA)
    with pytest.raises(ValueError, match="frame time"):
        recorder.frame(-1.0, "a-b", "a", "b", VECTOR_DATA)
    recorder.close()
    recorder.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        recorder.frame(0.0, "a-b", "a", "b", VECTOR_DATA)
