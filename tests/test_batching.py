"""Messages ready together for one neighbour share a BATCH frame; each is still received,
acknowledged and retransmitted on its own, exactly once (docs/protocol.md, 4.8 and 11)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgpack
from harness import FakeLink, Net, profile

from crypto.schedule import LINK_TAG_BYTES
from tawan.core.engine import EngineConfig
from tawan.core.events import FrameRejected
from tawan.core.frames import (
    VERSION,
    AckFrame,
    BatchFrame,
    DataFrame,
    Frame,
    FrameType,
    Message,
    MessageId,
    decode_frame,
)
from tawan.core.precedence import Precedence

# Slow enough that messages submitted together queue behind the first, with an MTU that
# holds a dozen of them: a 9.6 kbit/s radio link.
SLOW = profile(rate_bps=9_600, delay_s=0.05, mtu=2048)

F = TypeVar("F", DataFrame, BatchFrame, AckFrame)


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


class Frames:
    """Every frame `sender` puts on a link, decoded (its tag is not checked here)."""

    def __init__(self, net: Net, sender: str) -> None:
        self.sent: list[tuple[bytes, Frame]] = []
        net.tap(self._tap(sender))

    def _tap(self, sender: str) -> Callable[[str, str, bytes], None]:
        def spy(who: str, link: str, data: bytes) -> None:
            if who == sender:
                self.sent.append((data, decode_frame(data[:-LINK_TAG_BYTES])))

        return spy

    def of(self, kind: type[F]) -> list[F]:
        return [frame for _, frame in self.sent if isinstance(frame, kind)]

    def acknowledged(self) -> list[MessageId]:
        return [mid for frame in self.of(AckFrame) for mid in frame.acks]


def pair(loss: float = 0.0, seed: int = 1, config: EngineConfig | None = None) -> Net:
    net = Net({"a": [], "b": []}, [FakeLink("a", "b", SLOW, loss=loss)], seed=seed, config=config)
    net.run(3)  # hellos: each knows the other
    return net


def submit_many(
    net: Net, count: int, size: int = 60, precedence: Precedence = Precedence.ROUTINE
) -> list[MessageId]:
    return [
        net.submit("a", "b", noise(size, i), precedence=precedence, ttl=3600) for i in range(count)
    ]


def test_small_messages_share_frames_and_each_is_delivered_once_and_acknowledged() -> None:
    net = pair()
    from_a, from_b = Frames(net, "a"), Frames(net, "b")
    mids = submit_many(net, 30)
    net.run(20)
    batches = from_a.of(BatchFrame)
    carried = [*from_a.of(DataFrame), *batches]
    assert batches and len(carried) < 10  # 30 messages in a handful of frames
    assert sum(len(f.messages) for f in batches) + len(from_a.of(DataFrame)) == 30
    got = [event.mid for event in net.delivered("b")]
    assert sorted(got) == sorted(mids)  # every one, once
    assert net.engines["b"].stats.duplicates == 0
    # each acknowledged by its own id, and custody released at the sender
    assert sorted(from_b.acknowledged()) == sorted(mids)
    assert net.stores["a"].message_count() == 0
    assert all(not q.in_flight for q in net.engines["a"].tx.queues.values())
    assert net.engines["a"].stats.link("a-b").batched == sum(len(f.messages) for f in batches)


def test_a_lone_message_goes_at_once_in_a_data_frame() -> None:
    """Nothing waits for a batch to fill: one message on an idle link leaves at once."""
    net = pair()
    from_a = Frames(net, "a")
    mid = net.submit("a", "b", noise(60, 0), precedence=Precedence.ROUTINE, ttl=3600)
    assert [f.message.seq for f in from_a.of(DataFrame)] == [mid[2]]
    net.run(2)
    assert from_a.of(BatchFrame) == []
    assert [event.mid for event in net.delivered("b")] == [mid]


def test_flash_leads_and_routine_never_goes_ahead_of_it() -> None:
    net = pair()
    from_a = Frames(net, "a")
    routine = submit_many(net, 20)
    flash = net.submit("a", "b", b"contact front", precedence=Precedence.FLASH, ttl=600)
    net.run(20)
    order: list[tuple[int, int, Precedence]] = []
    for frame in [f for _, f in from_a.sent if isinstance(f, (DataFrame, BatchFrame))]:
        messages = frame.messages if isinstance(frame, BatchFrame) else (frame.message,)
        order.extend((m.src, m.seq, m.precedence) for m in messages)
    # the first message went before the FLASH existed; the FLASH is the very next one
    assert order[1][2] is Precedence.FLASH and order[1][1] == flash[2]
    assert len(order) == 21 and {seq for _, seq, _ in order} >= {m[2] for m in routine}


def test_the_window_bounds_what_a_batch_takes() -> None:
    window = 4
    net = pair(config=EngineConfig(strict_states=True, window=window))
    from_a = Frames(net, "a")
    most = [0]

    def in_flight(who: str, link: str, data: bytes) -> None:
        if who == "a":
            queues = net.engines["a"].tx.queues.values()
            most[0] = max(most[0], *(len(q.in_flight) for q in queues))

    net.tap(in_flight)
    mids = submit_many(net, 25)
    net.run(30)
    assert most[0] == window
    assert all(len(f.messages) <= window for f in from_a.of(BatchFrame))
    assert from_a.of(BatchFrame)
    assert sorted(e.mid for e in net.delivered("b")) == sorted(mids)


def test_batched_messages_lost_on_a_lossy_link_are_sent_again_and_delivered_once() -> None:
    net = pair(loss=0.3, seed=2)
    from_a = Frames(net, "a")
    arrived: set[bytes] = set()
    net.watch(lambda receiver, link, sender, data: arrived.add(data))
    mids = submit_many(net, 40)
    net.run(300)
    carried = [(data, f) for data, f in from_a.sent if isinstance(f, (BatchFrame, DataFrame))]
    lost = [
        i
        for i, (data, f) in enumerate(carried)
        if isinstance(f, BatchFrame) and data not in arrived
    ]
    assert len(lost) >= 2, "the seed loses some batches"
    for i in lost:  # every message of a lost batch went again, in a later frame
        later = [m for _, f in carried[i + 1 :] for m in _messages(f)]
        assert all(message in later for message in _messages(carried[i][1]))
    got = [event.mid for event in net.delivered("b")]
    assert sorted(got) == sorted(mids)  # lost ones too, each once
    assert net.engines["a"].stats.link("a-b").retransmissions > 0
    assert net.stores["a"].message_count() == 0


def _messages(frame: Frame) -> tuple[Message, ...]:
    if isinstance(frame, BatchFrame):
        return frame.messages
    return (frame.message,) if isinstance(frame, DataFrame) else ()


def test_a_malformed_batch_is_rejected_whole() -> None:
    """Authentic frames from a whose batch is malformed (one bad item, one item, none):
    no message of them is taken, though the first item alone is valid."""
    net = pair()
    net.links["a-b"].up = False  # what a sends now never reaches b but through this test
    seen: list[Frame] = []
    net.tap(lambda who, link, data: seen.append(decode_frame(data[:-LINK_TAG_BYTES])))
    submit_many(net, 3)
    net.run(1)
    sealed = [m for f in seen if isinstance(f, BatchFrame) for m in f.messages]
    sealed += [f.message for f in seen if isinstance(f, DataFrame)]
    good = [m.fields() for m in sealed[:2]]
    bad = [*good[1][:3], good[1][3] | 7, *good[1][4:]]  # type: ignore[operator]
    for items in ([good[0], bad], [good[0]], []):
        _send_authentic_batch(net, items)
    net.run(2)
    assert net.delivered("b") == []
    assert net.stores["b"].message_count() == 0
    rejected = [e for e in net.events["b"] if isinstance(e, FrameRejected)]
    assert [e.reason for e in rejected] == ["malformed"] * 3
    assert "batch message 1: message precedence: expected 0..4, found 7" in rejected[0].detail
    assert "expected 2..64 messages, found 1" in rejected[1].detail
    _send_authentic_batch(net, good)  # the same two items well formed are taken, both
    net.run(1)
    assert len(net.delivered("b")) == 2


def _send_authentic_batch(net: Net, items: Sequence[object]) -> None:
    """A BATCH frame of `items` from a, numbered and tagged as a would, handed to b."""
    a = net.engines["a"]
    epoch, b = a._epoch_at(net.now), net.address("b")
    counter = a.guard.next_counter(b, epoch)
    body = bytes([VERSION << 4 | FrameType.BATCH]) + msgpack.packb([a.me, counter, items])
    net.engines["b"].receive("a-b", "a", a.guard.protect(body, b, epoch), net.now)
