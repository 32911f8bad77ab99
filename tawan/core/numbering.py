"""Message numbering: (creation time, epoch, sequence) that never repeats for one source.

The end-to-end nonce is built from the source address, the creation time and the sequence
number, under a key of the message's epoch (docs/keys.md, "Nonces"). Two things keep it unique:

- Sequence numbers are reserved on disk in blocks, and a block is used only once its
  reservation is committed with a forced sync (`Engine.commit`), whatever the store's
  durability: after a crash or a power cut the node resumes above the last block.
- Creation times never go backwards while the node runs, even when the clock does, and the
  nonce carries them: a store that rolled back (restored from a backup, a re-imaged disk)
  brings the sequence back, but not the clock, so the (created, seq) pairs differ.
"""

from __future__ import annotations

from typing import Final

import msgpack

from tawan.core.frames import U32, epoch_of_ticks
from tawan.core.store import Store

SEQ_RESERVE: Final = 1024  # sequence numbers reserved on disk at a time
STATE_KEY: Final = "seq"


class NumberingExhausted(ValueError):
    """More messages in one epoch than sequence numbers."""


class Numbering:
    def __init__(self, store: Store, epoch_seconds: int) -> None:
        self.epoch_seconds = epoch_seconds
        state = store.get_state(STATE_KEY)
        values = [int(v) for v in msgpack.unpackb(state)] if state else [0, 0, 0]
        self._created, self._epoch, self._next = values
        self._reserved = self._next
        self._durable = (self._epoch, self._reserved)

    @property
    def reservation_pending(self) -> bool:
        """A block is in use whose reservation is not yet committed: commit (with sync)
        before any message numbered from it leaves the node."""
        return (self._epoch, self._reserved) != self._durable

    def state(self) -> bytes:
        """The reservation to store: the latest creation time, the epoch, the block's end."""
        return msgpack.packb([self._created, self._epoch, self._reserved])

    def committed(self, state: bytes) -> None:
        """`state` (from `state()`) is on disk now."""
        _, epoch, reserved = msgpack.unpackb(state)
        self._durable = (int(epoch), int(reserved))

    def allocate(self, mission_ticks: int) -> tuple[int, int]:
        """(created, seq) for a new message at `mission_ticks` (tenths of a second)."""
        created = max(mission_ticks, self._created)
        epoch = epoch_of_ticks(created, self.epoch_seconds)
        if epoch != self._epoch:
            self._epoch, self._next, self._reserved = epoch, 0, 0
        seq = self._next
        if seq > U32:
            raise NumberingExhausted(f"more than {U32} messages in one epoch")
        self._next += 1
        self._created = created
        if seq >= self._reserved:
            self._reserved = seq + SEQ_RESERVE
        return created, seq
