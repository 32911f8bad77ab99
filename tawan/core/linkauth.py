"""Hop-by-hop protection: every frame carries a counter and a tag under a pairwise link key.

The link key of a neighbour pair changes every epoch (it is derived from the ratcheted pair
root), and the counter restarts with it, so counters stay short on the wire. A receiver keeps
a sliding replay window per neighbour and epoch: an outsider can neither inject a frame (no
key), alter one (tag), nor replay one (window).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from crypto.schedule import LINK_TAG_BYTES, LinkMac
from tawan.core.frames import (
    NET_FRAG_KIND_BYTE,
    NET_KIND_BYTE,
    NET_TAG_BYTES,
    Frame,
    FrameDecodeError,
    decode_frame,
    decode_net_frame,
)

REPLAY_WINDOW: Final = 256
COUNTER_RESERVE: Final = 4096  # counters persisted in blocks: a restart skips ahead
RECEIVE_MARK_BLOCK: Final = 4096
"""Receive windows are persisted as marks in blocks of this many counters, forced to disk
before a frame above the last saved mark is taken: a restarted node, after a crash or a
power cut, accepts from each sender only counters above its saved mark."""


class LinkReject(Exception):
    """A frame refused at the link layer; `reason` is a short, bounded label for metrics."""

    def __init__(self, reason: str, detail: str, *, unaware: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        # An authenticated sender refused only because this node restarted above saved
        # marks: it does not know yet, and must be told (a HELLO with RESTARTED).
        self.unaware = unaware


@dataclass(slots=True)
class ReplayWindow:
    """RFC 4303-style sliding window over counters: highest seen plus a bitmap below it."""

    highest: int = -1
    bitmap: int = 0

    @classmethod
    def above(cls, mark: int) -> ReplayWindow:
        """A window that refuses every counter up to `mark` (after a restart)."""
        return cls(mark, (1 << REPLAY_WINDOW) - 1)

    def check_and_mark(self, counter: int) -> bool:
        if counter > self.highest:
            shift = counter - self.highest
            if shift >= REPLAY_WINDOW:  # a jump: nothing below stays in the window
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & ((1 << REPLAY_WINDOW) - 1)
            self.highest = counter
            return True
        offset = self.highest - counter
        if offset >= REPLAY_WINDOW or self.bitmap >> offset & 1:
            return False
        self.bitmap |= 1 << offset
        return True


KeyLookup = Callable[[int, int, int], bytes | None]
"""(sender, receiver, epoch) -> link key, or None when there is none (unknown, revoked)."""


@dataclass(slots=True)
class LinkGuard:
    """Counters for frames we send, windows for frames we receive, for one node."""

    address: int
    link_key: KeyLookup
    counters: dict[tuple[int, int], int] = field(default_factory=dict)  # (peer, epoch) -> next
    reserved: dict[int, int] = field(default_factory=dict)  # peer -> persisted high-water
    windows: dict[tuple[int, int], ReplayWindow] = field(default_factory=dict)
    last_epoch: dict[int, int] = field(default_factory=dict)  # sender -> epoch last verified
    # (sender, epoch) -> receive mark: every counter accepted is at or below it
    marks: dict[tuple[int, int], int] = field(default_factory=dict)
    reservation_dirty: bool = False  # send reservations not yet committed
    marks_dirty: bool = False  # receive marks not yet committed
    restored: set[tuple[int, int]] = field(default_factory=set)  # windows from saved marks,
    # no frame accepted in them since the restart
    advanced: bool = False  # the last frame unprotected raised its sender's highest counter
    # (sender, receiver, epoch) -> (link key, its prepared MAC): only for keys the keyring
    # still gives, and only of the epochs frames are accepted in (`_mac`)
    _macs: dict[tuple[int, int, int], tuple[bytes, LinkMac]] = field(default_factory=dict)

    def next_counter(self, peer: int, epoch: int) -> int:
        key = (peer, epoch)
        reserved = self._reserved_counter(peer, epoch)
        counter = self.counters.get(key)
        if counter is None:
            # After a restart: continue above everything that may already have been sent.
            counter = reserved
        self.counters[key] = counter + 1
        if counter >= reserved:
            self.reserved[peer] = _pack_reservation(epoch, counter + COUNTER_RESERVE)
            self.reservation_dirty = True
        return counter

    def _reserved_counter(self, peer: int, epoch: int) -> int:
        packed = self.reserved.get(peer, 0)  # epoch above, counter in the low 32 bits
        return packed & 0xFFFF_FFFF if packed >> 32 == epoch else 0

    def protect(self, encoded: bytes, receiver: int, epoch: int) -> bytes:
        mac = self._mac(self.address, receiver, epoch)
        if mac is None:
            raise LinkReject("no-key", f"no link key for neighbour {receiver} in epoch {epoch}")
        return encoded + mac.tag(encoded)

    def protect_net(self, encoded: bytes, receivers: list[int], epoch: int) -> bytes:
        """A NET frame (`encoded`, numbered for `receivers` in this order) with one tag per
        receiver after it, each under that receiver's link key."""
        tags = []
        for receiver in receivers:
            mac = self._mac(self.address, receiver, epoch)
            if mac is None:
                raise LinkReject(
                    "no-key", f"no link key for neighbour {receiver} in epoch {epoch}"
                )
            tags.append(mac.tag(encoded))
        return encoded + b"".join(tags)

    def can_protect(self, receiver: int, epoch: int) -> bool:
        """Whether frames to `receiver` can be tagged in `epoch` (a key is held)."""
        return self._mac(self.address, receiver, epoch) is not None

    def _mac(self, sender: int, receiver: int, epoch: int) -> LinkMac | None:
        """The prepared MAC of the link key sender -> receiver in `epoch`, None without a
        key. The key is asked of the keyring every time, so a MAC outlives neither its
        key's erasure nor a revocation; a new one drops those of epochs more than two older
        (no frame of those is accepted or sent any more)."""
        index = (sender, receiver, epoch)
        key = self.link_key(sender, receiver, epoch)
        entry = self._macs.get(index)
        if key is None:
            if entry is not None:
                del self._macs[index]
            return None
        if entry is not None and entry[0] == key:
            return entry[1]
        for old in [k for k in self._macs if k[2] < epoch - 2]:
            del self._macs[old]
        mac = LinkMac(key)
        self._macs[index] = (key, mac)
        return mac

    def unprotect(self, data: bytes, epoch_now: int) -> Frame:
        """Decode, authenticate and replay-check one frame; LinkReject says why not."""
        if len(data) <= LINK_TAG_BYTES:
            raise LinkReject("malformed", f"frame of {len(data)} bytes is shorter than a tag")
        if data[0] in (NET_KIND_BYTE, NET_FRAG_KIND_BYTE):
            return self._unprotect_net(data, epoch_now)
        body, tag = data[:-LINK_TAG_BYTES], data[-LINK_TAG_BYTES:]
        try:
            frame = decode_frame(body)
        except FrameDecodeError as exc:
            raise LinkReject("malformed", str(exc)) from None
        epoch = self._authentic_epoch(frame.sender, body, tag, epoch_now)
        self._accept(frame.sender, epoch, frame.counter, epoch_now)
        return frame

    def _unprotect_net(self, data: bytes, epoch_now: int) -> Frame:
        """A NET or NET_FRAG frame: this node's entry among its receivers, its own tag and
        counter; taken as the DATA or FRAG frame it is for this node. One that names other
        nodes only is `not-addressed` (a broadcast radio hears the frames of the whole net)."""
        try:
            net, end = decode_net_frame(data)
        except FrameDecodeError as exc:
            raise LinkReject("malformed", str(exc)) from None
        index = net.index_of(self.address)
        if index is None:
            raise LinkReject("not-addressed", f"net frame from {net.sender} for others only")
        at = end + index * NET_TAG_BYTES
        epoch = self._authentic_epoch(net.sender, data[:end], data[at : at + NET_TAG_BYTES],
                                      epoch_now)  # fmt: skip
        frame = net.for_receiver(index)
        self._accept(net.sender, epoch, frame.counter, epoch_now)
        return frame

    def _accept(self, sender: int, epoch: int, counter: int, epoch_now: int) -> None:
        """The replay window and receive mark of an authentic frame: LinkReject("replay")
        for a counter seen before."""
        key = (sender, epoch)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = ReplayWindow()
            self._forget_old_windows(sender, epoch_now)
        highest = window.highest
        if not window.check_and_mark(counter):
            unaware = sender if key in self.restored else None
            raise LinkReject(
                "replay", f"counter {counter} from {sender} already seen", unaware=unaware
            )
        self.restored.discard(key)
        self.advanced = counter > highest
        mark = self.marks.get(key, -1)
        if counter > mark:
            self.marks[key] = min(counter + RECEIVE_MARK_BLOCK, 0xFFFF_FFFF)
            self.marks_dirty = True
        self.last_epoch[sender] = epoch

    def _authentic_epoch(self, sender: int, body: bytes, tag: bytes, epoch_now: int) -> int:
        if sender == self.address:
            raise LinkReject("unauthenticated", "frame claims to come from this node")
        # The epoch the sender's last frame was in first, then the others in reach.
        last = self.last_epoch.get(sender)
        if last == epoch_now + 1:
            candidates: tuple[int, ...] = (last, epoch_now, epoch_now - 1)
        elif last == epoch_now - 1:
            candidates = (last, epoch_now, epoch_now + 1)
        else:
            candidates = (epoch_now, epoch_now - 1, epoch_now + 1)
        any_key = False
        for epoch in candidates:
            mac = self._mac(sender, self.address, epoch) if epoch >= 0 else None
            if mac is None:
                continue
            any_key = True
            if mac.valid(body, tag):
                return epoch
        if not any_key:
            raise LinkReject("unknown-sender", f"no link key for sender {sender}")
        raise LinkReject("unauthenticated", f"bad link tag on a frame from {sender}")

    def _forget_old_windows(self, sender: int, epoch_now: int) -> None:
        """Windows of epochs this node no longer accepts frames from (by its own clock: a
        sender's clock running ahead must not make an acceptable epoch's window vanish)."""
        for table in (self.windows, self.marks):
            for key in [k for k in table if k[0] == sender and k[1] < epoch_now - 1]:
                del table[key]

    def forget_peer(self, peer: int) -> None:
        """Drop all state of a revoked node."""
        for table in (self.counters, self.windows, self.marks):
            for key in [k for k in table if k[0] == peer]:
                del table[key]
        for index in [k for k in self._macs if peer in (k[0], k[1])]:
            del self._macs[index]
        self.last_epoch.pop(peer, None)

    def skip(self, peer: int, epoch: int, count: int) -> None:
        """Jump our counters towards `peer` ahead by `count` (it restarted, and refuses
        counters up to a mark that may lie that far above the last one it accepted)."""
        key = (peer, epoch)
        self.counters[key] = self.counters.get(key, self._reserved_counter(peer, epoch)) + count

    # persistence of send counters, so a restarted node never reuses one
    def reservation_state(self) -> bytes:
        """The send reservations to store; still dirty until `committed` says it is done."""
        return b"".join(struct.pack(">HQ", peer, packed) for peer, packed in self.reserved.items())

    def committed(self, reservations: bytes | None, marks: bytes | None) -> None:
        """The given states (from `reservation_state` and `mark_state`) are on disk."""
        if reservations is not None and reservations == self.reservation_state():
            self.reservation_dirty = False
        if marks is not None and marks == self.mark_state():
            self.marks_dirty = False

    # persistence of receive marks, so a restarted node accepts no frame it accepted before
    def mark_state(self) -> bytes:
        return b"".join(
            struct.pack(">HII", sender, epoch, mark)
            for (sender, epoch), mark in sorted(self.marks.items())
        )

    def load_marks(self, state: bytes, epoch_now: int) -> None:
        for offset in range(0, len(state) - len(state) % 10, 10):
            sender, epoch, mark = struct.unpack_from(">HII", state, offset)
            if epoch >= epoch_now - 1:
                self.marks[(sender, epoch)] = mark
                self.windows[(sender, epoch)] = ReplayWindow.above(mark)
                self.restored.add((sender, epoch))

    def load_reservations(self, state: bytes) -> None:
        for offset in range(0, len(state) - len(state) % 10, 10):
            peer, packed = struct.unpack_from(">HQ", state, offset)
            self.reserved[peer] = packed


def _pack_reservation(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter
