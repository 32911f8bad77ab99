"""Hop-by-hop protection: tags, counters, epochs and the replay window."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import schedule
from tawan.core.frames import (
    AckFrame,
    DataFrame,
    Flags,
    FragFrame,
    FragState,
    Frame,
    HelloFlags,
    HelloFrame,
    Message,
    RouteFrame,
    encode_frame,
)
from tawan.core.linkauth import (
    COUNTER_RESERVE,
    RECEIVE_MARK_BLOCK,
    REPLAY_WINDOW,
    LinkGuard,
    LinkReject,
    ReplayWindow,
)
from tawan.core.precedence import Precedence

KNOWN = {1, 2, 3}
EPOCH = 5
A, B, C, STRANGER = 1, 2, 3, 9


def pair_root(x: int, y: int) -> bytes:
    low, high = sorted((x, y))
    return bytes([low, high]) * 16


def link_key(sender: int, receiver: int, epoch: int) -> bytes | None:
    """A fake keyring: every pair of known nodes has keys for epochs 0..100."""
    if sender not in KNOWN or receiver not in KNOWN or sender == receiver:
        return None
    if not 0 <= epoch <= 100:
        return None
    root = pair_root(sender, receiver)
    for n in range(1, epoch + 1):
        root = schedule.ratchet(root, n)
    return schedule.link_key(root, sender, receiver)


def stranger_key(sender: int, receiver: int, epoch: int) -> bytes | None:
    """The stranger's own idea of a key: not one the receiver holds."""
    return bytes(32)


def hello(sender: int = A) -> HelloFrame:
    return HelloFrame(sender, 0, 1234, 0, 0, 0, HelloFlags.REPLY_REQUESTED)


def sample_frames(sender: int = A) -> list[Frame]:
    msg = Message(1, 3, 9, Precedence.IMMEDIATE, Flags.SIGNED, 100, 60, 0, bytes(range(40)))
    return [
        hello(sender),
        DataFrame(sender, 0, msg),
        AckFrame(sender, 0, ((1, 0, 9), (3, 2, 1)), (FragState((1, 0, 4), b"\x0b"),)),
        FragFrame(sender, 0, (1, 0, 4), 1, 3, b"chunk"),
        RouteFrame(sender, 0, 1, 17, ((2, 1), (3, 4)), bytes(64)),
    ]


def send(guard: LinkGuard, frame: Frame, receiver: int, epoch: int = EPOCH) -> bytes:
    """As the engine does: number, encode, tag."""
    counter = guard.next_counter(receiver, epoch)
    return guard.protect(encode_frame(frame, counter), receiver, epoch)


def numbered(guard: LinkGuard, frame: Frame, counter: int, receiver: int = B) -> bytes:
    """A frame with a chosen counter, tagged by `guard` for `receiver`."""
    return guard.protect(encode_frame(frame, counter), receiver, EPOCH)


def reason(guard: LinkGuard, data: bytes, epoch_now: int = EPOCH) -> str:
    with pytest.raises(LinkReject) as info:
        guard.unprotect(data, epoch_now)
    return info.value.reason


# ---------------------------------------------------------------------------- round trip


def test_protect_unprotect_round_trip() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    for i, frame in enumerate(sample_frames()):
        data = send(a, frame, B)
        assert len(data) == len(encode_frame(frame)) + schedule.LINK_TAG_BYTES
        received = b.unprotect(data, EPOCH)
        assert type(received) is type(frame)
        assert received.counter == i
        assert encode_frame(received) == encode_frame(frame, i)
    assert b.last_epoch[A] == EPOCH


def test_counters_are_per_neighbour_and_restart_each_epoch() -> None:
    a = LinkGuard(A, link_key)
    assert [a.next_counter(B, EPOCH) for _ in range(3)] == [0, 1, 2]
    assert a.next_counter(C, EPOCH) == 0
    assert a.next_counter(B, EPOCH + 1) == 0
    assert a.next_counter(B, EPOCH + 1) == 1


def test_tag_is_truncated_hmac_over_the_frame() -> None:
    a = LinkGuard(A, link_key)
    encoded = encode_frame(hello(), 0)
    key = link_key(A, B, EPOCH)
    assert key is not None
    assert a.protect(encoded, B, EPOCH) == encoded + schedule.link_tag(key, encoded)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=1, max_size=100), frame=st.binary(max_size=300))
def test_prepared_mac_is_the_link_tag(key: bytes, frame: bytes) -> None:
    mac = schedule.LinkMac(key)
    tag = schedule.link_tag(key, frame)
    assert mac.tag(frame) == tag
    assert mac.valid(frame, tag)
    assert not mac.valid(frame, bytes(x ^ 1 for x in tag))


def test_a_key_the_keyring_erased_is_not_used_any_more() -> None:
    """The guard keeps prepared MACs, but asks for the key every time: once the keyring
    no longer gives it (erased, revoked), frames under it are neither sent nor taken."""
    erased: set[int] = set()

    def keys(sender: int, receiver: int, epoch: int) -> bytes | None:
        return None if epoch in erased else link_key(sender, receiver, epoch)

    a, b = LinkGuard(A, keys), LinkGuard(B, keys)
    frame = a.protect(encode_frame(hello(), a.next_counter(B, EPOCH)), B, EPOCH)
    assert b.unprotect(frame, EPOCH).sender == A
    erased.add(EPOCH)
    with pytest.raises(LinkReject):
        a.protect(encode_frame(hello(), a.next_counter(B, EPOCH)), B, EPOCH)
    again = LinkGuard(A, link_key)
    late = again.protect(encode_frame(hello(), 7), B, EPOCH)
    with pytest.raises(LinkReject) as info:
        b.unprotect(late, EPOCH)
    assert info.value.reason == "unauthenticated"  # epochs around it still have keys
    assert all(index[2] != EPOCH for index in a._macs)
    assert all(index[2] != EPOCH for index in b._macs)


def test_protect_without_a_key() -> None:
    a = LinkGuard(A, link_key)
    with pytest.raises(LinkReject) as info:
        a.protect(encode_frame(hello()), STRANGER, EPOCH)
    assert info.value.reason == "no-key"


# ---------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("index", range(5), ids=["hello", "data", "ack", "frag", "route"])
def test_any_changed_byte_is_rejected(index: int) -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    data = send(a, sample_frames()[index], B)
    for position in range(len(data)):
        for delta in (0x01, 0x80, 0xFF):
            changed = bytearray(data)
            changed[position] ^= delta
            with pytest.raises(LinkReject):
                b.unprotect(bytes(changed), EPOCH)
    # None of the rejected variants used up the counter: the genuine frame still passes.
    assert b.unprotect(data, EPOCH).counter == 0


def test_truncated_or_extended_frames_are_rejected() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    data = send(a, sample_frames()[1], B)
    for end in range(len(data)):
        with pytest.raises(LinkReject):
            b.unprotect(data[:end], EPOCH)
    with pytest.raises(LinkReject):
        b.unprotect(data + b"\x00", EPOCH)
    assert reason(b, data[: schedule.LINK_TAG_BYTES]) == "malformed"
    assert reason(b, b"") == "malformed"
    assert b.unprotect(data, EPOCH).counter == 0


def test_garbage_is_malformed() -> None:
    b = LinkGuard(B, link_key)
    assert reason(b, b"\x13" + bytes(20)) == "malformed"
    assert reason(b, bytes(range(40))) == "malformed"


def test_wrong_key_is_unauthenticated() -> None:
    forger = LinkGuard(A, stranger_key)  # claims to be A, does not hold A's key
    b = LinkGuard(B, link_key)
    assert reason(b, send(forger, hello(), B)) == "unauthenticated"


def test_frame_for_another_receiver_is_unauthenticated() -> None:
    a, c = LinkGuard(A, link_key), LinkGuard(C, link_key)
    assert reason(c, send(a, hello(), B)) == "unauthenticated"


def test_frame_claiming_to_be_from_the_receiver() -> None:
    b = LinkGuard(B, link_key)
    assert reason(b, send(LinkGuard(B, stranger_key), hello(B), B)) == "unauthenticated"


def test_unknown_sender() -> None:
    b = LinkGuard(B, link_key)
    stranger = LinkGuard(STRANGER, stranger_key)
    rejected = reason(b, send(stranger, hello(STRANGER), B))
    assert rejected == "unknown-sender"


# ---------------------------------------------------------------------------- replay window


def test_replay_is_rejected() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    data = send(a, hello(), B)
    b.unprotect(data, EPOCH)
    assert reason(b, data) == "replay"
    assert reason(b, data) == "replay"


def test_out_of_order_within_the_window_is_accepted_once() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    sent = [send(a, hello(), B) for _ in range(10)]
    order = [9, 0, 5, 1, 8, 2, 7, 3, 6, 4]
    for i in order:
        assert b.unprotect(sent[i], EPOCH).counter == i
    for i in order:
        assert reason(b, sent[i]) == "replay"


def test_window_edge() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    top = 1000
    b.unprotect(numbered(a, hello(), top), EPOCH)
    oldest = top - (REPLAY_WINDOW - 1)
    assert reason(b, numbered(a, hello(), oldest - 1)) == "replay"  # beyond the window
    assert b.unprotect(numbered(a, hello(), oldest), EPOCH).counter == oldest
    assert reason(b, numbered(a, hello(), oldest)) == "replay"
    # A jump forward moves the window: what was inside falls out.
    b.unprotect(numbered(a, hello(), top + REPLAY_WINDOW), EPOCH)
    assert reason(b, numbered(a, hello(), top)) == "replay"
    assert b.unprotect(numbered(a, hello(), top + 1), EPOCH).counter == top + 1


def test_windows_are_per_sender() -> None:
    a, c, b = LinkGuard(A, link_key), LinkGuard(C, link_key), LinkGuard(B, link_key)
    b.unprotect(numbered(a, hello(A), 500), EPOCH)
    assert b.unprotect(numbered(c, hello(C), 0), EPOCH).counter == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2000), max_size=60))
def test_replay_window_against_a_model(counters: list[int]) -> None:
    window, seen, highest = ReplayWindow(), set[int](), -1
    for counter in counters:
        expected = counter not in seen and counter > highest - REPLAY_WINDOW
        assert window.check_and_mark(counter) == expected, (counter, highest)
        if expected:
            seen.add(counter)
            highest = max(highest, counter)


# ---------------------------------------------------------------------------- epochs


def test_frame_of_the_previous_epoch_is_accepted() -> None:
    """At an epoch boundary the sender's clock may still be in the last epoch."""
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    late = send(a, hello(), B, epoch=EPOCH - 1)
    assert b.unprotect(late, EPOCH).counter == 0
    assert b.last_epoch[A] == EPOCH - 1
    early = send(a, hello(), B, epoch=EPOCH + 1)
    assert b.unprotect(early, EPOCH).counter == 0
    assert b.last_epoch[A] == EPOCH + 1


def test_frames_two_epochs_away_are_rejected() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    assert reason(b, send(a, hello(), B, epoch=EPOCH - 2)) == "unauthenticated"
    assert reason(b, send(a, hello(), B, epoch=EPOCH + 2)) == "unauthenticated"


def test_epoch_zero_has_no_previous_epoch() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    assert b.unprotect(send(a, hello(), B, epoch=0), 0).counter == 0
    assert b.unprotect(send(a, hello(), B, epoch=1), 0).counter == 0


def test_counter_reuse_across_epochs_is_not_a_replay() -> None:
    """Counters restart each epoch; the windows are per epoch too."""
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    old = send(a, hello(), B, epoch=EPOCH - 1)
    new = send(a, hello(), B, epoch=EPOCH)
    assert b.unprotect(old, EPOCH).counter == 0
    assert b.unprotect(new, EPOCH).counter == 0
    assert reason(b, old) == "replay"
    assert reason(b, new) == "replay"


def test_replay_of_the_previous_epoch_after_the_boundary() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    old = send(a, hello(), B, epoch=EPOCH)
    b.unprotect(old, EPOCH)
    b.unprotect(send(a, hello(), B, epoch=EPOCH + 1), EPOCH + 1)
    assert reason(b, old, EPOCH + 1) == "replay"


def test_replay_of_an_accepted_epoch_after_a_frame_from_the_next() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    old = send(a, hello(), B, epoch=EPOCH)
    b.unprotect(old, EPOCH)
    b.unprotect(send(a, hello(), B, epoch=EPOCH + 1), EPOCH)
    # The receiver is now in EPOCH + 1 and the sender, slightly ahead, already in EPOCH + 2.
    b.unprotect(send(a, hello(), B, epoch=EPOCH + 2), EPOCH + 1)
    assert reason(b, old, EPOCH + 1) == "replay"


def test_forget_peer() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    b.unprotect(send(a, hello(), B), EPOCH)
    b.next_counter(A, EPOCH)
    b.forget_peer(A)
    assert A not in b.last_epoch
    assert not [k for k in (*b.windows, *b.counters) if k[0] == A]


# ---------------------------------------------------------------------------- restarts


def test_restarted_sender_never_reuses_a_counter() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    used = [b.unprotect(send(a, hello(), B), EPOCH).counter for _ in range(5)]
    assert a.reservation_dirty
    state = a.reservation_state()
    assert a.reservation_dirty  # until the commit that stores it says it succeeded
    a.committed(state, None)
    assert not a.reservation_dirty

    restarted = LinkGuard(A, link_key)
    restarted.load_reservations(state)
    first = b.unprotect(send(restarted, hello(), B), EPOCH).counter
    assert first > max(used)
    assert first == COUNTER_RESERVE
    assert b.unprotect(send(restarted, hello(), B), EPOCH).counter == first + 1


def test_restart_after_many_reservations() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    for _ in range(COUNTER_RESERVE + 10):
        a.next_counter(B, EPOCH)
    last = b.unprotect(send(a, hello(), B), EPOCH).counter
    state = a.reservation_state()
    restarted = LinkGuard(A, link_key)
    restarted.load_reservations(state)
    assert b.unprotect(send(restarted, hello(), B), EPOCH).counter > last


def test_restart_in_a_new_epoch_starts_from_zero() -> None:
    a = LinkGuard(A, link_key)
    a.next_counter(B, EPOCH)
    restarted = LinkGuard(A, link_key)
    restarted.load_reservations(a.reservation_state())
    assert restarted.next_counter(B, EPOCH + 1) == 0


def test_reservations_are_per_neighbour() -> None:
    a = LinkGuard(A, link_key)
    a.next_counter(B, EPOCH)
    for _ in range(3):
        a.next_counter(C, EPOCH)
    restarted = LinkGuard(A, link_key)
    restarted.load_reservations(a.reservation_state())
    assert restarted.next_counter(B, EPOCH) == COUNTER_RESERVE
    assert restarted.next_counter(C, EPOCH) == COUNTER_RESERVE
    assert len(a.reservation_state()) == 2 * 10


def test_truncated_reservation_state_is_ignored_at_the_tail() -> None:
    a = LinkGuard(A, link_key)
    a.next_counter(B, EPOCH)
    restarted = LinkGuard(A, link_key)
    restarted.load_reservations(a.reservation_state() + b"\x00\x01")
    assert restarted.next_counter(B, EPOCH) == COUNTER_RESERVE


def test_reservations_stay_dirty_when_a_newer_block_came_after_the_state_was_taken() -> None:
    a = LinkGuard(A, link_key)
    a.next_counter(B, EPOCH)
    state = a.reservation_state()
    for _ in range(COUNTER_RESERVE):
        a.next_counter(B, EPOCH)  # a new block while the commit of `state` was running
    a.committed(state, None)
    assert a.reservation_dirty


def test_a_restarted_receiver_refuses_every_counter_up_to_its_saved_mark() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    frames = [send(a, hello(), B) for _ in range(10)]
    for data in frames[:5]:
        b.unprotect(data, EPOCH)
    assert b.marks_dirty
    marks = b.mark_state()
    b.committed(None, marks)
    assert not b.marks_dirty
    restarted = LinkGuard(B, link_key)
    restarted.load_marks(marks, EPOCH)
    for data in frames:  # the five it took, and five it never saw but lie below the mark
        with pytest.raises(LinkReject, match="replay"):
            restarted.unprotect(data, EPOCH)
    a.skip(B, EPOCH, RECEIVE_MARK_BLOCK)  # what a HELLO with RESTARTED makes the sender do
    assert restarted.unprotect(send(a, hello(), B), EPOCH).counter > 0


def test_marks_move_in_blocks_and_old_epochs_are_not_loaded() -> None:
    a, b = LinkGuard(A, link_key), LinkGuard(B, link_key)
    for _ in range(3):
        b.unprotect(send(a, hello(), B), EPOCH)
    assert b.marks == {(A, EPOCH): RECEIVE_MARK_BLOCK}  # counter 0 set it; 1 and 2 lie below
    restarted = LinkGuard(B, link_key)
    restarted.load_marks(b.mark_state(), EPOCH + 2)
    assert restarted.marks == {}
