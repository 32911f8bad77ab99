"""Message numbering: (creation time, epoch, sequence) that never repeats for one source.

The end-to-end nonce is built from the source address and the sequence number, under a key
of the message's epoch, so a sequence number used twice in one epoch would reuse a nonce.
Numbers are reserved on disk in blocks: after a crash the node resumes above the last block,
never below what it may have used. Creation times never go backwards either, even when the
clock does.
"""

from __future__ import annotations

from typing import Final

import msgpack

from tawan.frames import U32, epoch_of_ticks
from tawan.store import Store

SEQ_RESERVE: Final = 1024  # sequence numbers reserved on disk at a time
_STATE_KEY: Final = "seq"


class NumberingExhausted(ValueError):
    """More messages in one epoch than sequence numbers."""


class Numbering:
    def __init__(self, store: Store, epoch_seconds: int) -> None:
        self.store = store
        self.epoch_seconds = epoch_seconds
        state = store.get_state(_STATE_KEY)
        values = [int(v) for v in msgpack.unpackb(state)] if state else [0, 0, 0]
        self._floor, self._epoch, self._next = values
        self._reserved = self._next
        self.reserved_new_block = False  # the store must be committed before use

    def allocate(self, mission_ticks: int) -> tuple[int, int]:
        """(created, seq) for a new message at `mission_ticks` (tenths of a second)."""
        created = max(mission_ticks, self._floor)
        epoch = epoch_of_ticks(created, self.epoch_seconds)
        if epoch != self._epoch:
            self._epoch, self._next, self._reserved = epoch, 0, 0
        seq = self._next
        if seq > U32:
            raise NumberingExhausted(f"more than {U32} messages in one epoch")
        self._next += 1
        if seq >= self._reserved:
            self._reserved = seq + SEQ_RESERVE
            self._floor = created
            self.store.set_state(_STATE_KEY, msgpack.packb([created, epoch, self._reserved]))
            self.reserved_new_block = True
        return created, seq
