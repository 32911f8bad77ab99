"""Each frame leaves the engine with the precedence a radio arbitrates by
(`Transmit.precedence`, docs/engine.md "Precedence on the air"): a DATA or FRAG frame its
message's, a BATCH the highest of its messages', an acknowledgement FLASH when it answers a
FLASH message and IMMEDIATE otherwise, hellos IMMEDIATE."""

from __future__ import annotations

import random

from harness import FakeLink, Net, profile

from crypto.schedule import LINK_TAG_BYTES
from tawan.core.engine import Submission
from tawan.core.events import Transmit
from tawan.core.frames import (
    AckFrame,
    BatchFrame,
    DataFrame,
    FragFrame,
    Frame,
    HelloFrame,
    MessageId,
    decode_frame,
)
from tawan.core.precedence import Precedence

SLOW = profile(rate_bps=9_600, delay_s=0.05, mtu=1024)  # a VHF-like link: batches form


class OnTheAir:
    """Every frame each engine hands to a link, decoded, with its precedence."""

    def __init__(self, net: Net) -> None:
        self.sent: list[tuple[str, Frame, int]] = []
        net.tap_transmits(self._spy)

    def _spy(self, sender: str, tx: Transmit) -> None:
        self.sent.append((sender, decode_frame(tx.data[:-LINK_TAG_BYTES]), tx.precedence))

    def of(self, sender: str, kind: type[Frame]) -> list[tuple[Frame, int]]:
        return [(f, p) for who, f, p in self.sent if who == sender and isinstance(f, kind)]

    def acks_of(self, mid: MessageId) -> list[int]:
        """The precedence of every acknowledgement frame that carries `mid`."""
        acks = self.of("b", AckFrame)
        return [p for f, p in acks if isinstance(f, AckFrame) and mid in f.acks]


def pair() -> tuple[Net, OnTheAir]:
    net = Net({"a": [], "b": []}, [FakeLink("a", "b", SLOW)], seed=3)
    air = OnTheAir(net)
    net.run(3)  # hellos: each knows the other
    return net, air


def noise(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def test_a_flash_message_and_its_acknowledgement_go_at_flash() -> None:
    net, air = pair()
    mid = net.submit("a", "b", noise(100, 1), precedence=Precedence.FLASH, ttl=600)
    net.run(5)
    data = [p for f, p in air.of("a", DataFrame) if isinstance(f, DataFrame)]
    assert data == [Precedence.FLASH]
    assert air.acks_of(mid) == [Precedence.FLASH]


def test_a_routine_message_goes_at_routine_and_is_acknowledged_at_immediate() -> None:
    net, air = pair()
    mid = net.submit("a", "b", noise(100, 2), precedence=Precedence.ROUTINE, ttl=600)
    net.run(5)
    assert [p for _, p in air.of("a", DataFrame)] == [Precedence.ROUTINE]
    assert air.acks_of(mid) == [Precedence.IMMEDIATE]


def test_fragments_go_at_their_message_precedence() -> None:
    net, air = pair()
    net.submit("a", "b", noise(3000, 3), precedence=Precedence.PRIORITY, ttl=600)
    net.run(10)
    pieces = air.of("a", FragFrame)
    assert len(pieces) >= 3
    assert {p for _, p in pieces} == {Precedence.PRIORITY}
    assert len(net.delivered("b")) == 1


def test_a_batch_goes_at_the_highest_precedence_it_carries() -> None:
    net, air = pair()
    engine, dst = net.engines["a"], net.address("b")
    for i, precedence in enumerate([Precedence.ROUTINE] * 4 + [Precedence.PRIORITY] * 2):
        engine.submit(Submission(dst, noise(60, 10 + i), precedence, 600), net.now)
    net.run(10)
    batches = [(f, p) for f, p in air.of("a", BatchFrame) if isinstance(f, BatchFrame)]
    mixed = [
        (f, p) for f, p in batches if len({m.precedence for m in f.messages}) > 1
    ]  # PRIORITY at the head, ROUTINE behind it
    assert mixed
    for frame, on_air in batches:
        assert on_air == max(m.precedence for m in frame.messages)
    assert len(net.delivered("b")) == 6


def test_hellos_go_at_immediate() -> None:
    _, air = pair()
    hellos = air.of("a", HelloFrame) + air.of("b", HelloFrame)
    assert hellos
    assert {p for _, p in hellos} == {Precedence.IMMEDIATE}
