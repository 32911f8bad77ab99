"""What the store hands out and raises: message ids, stored rows, errors. No SQL, no state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from tawan.core.precedence import Precedence

__all__ = [
    "HELD",
    "Durability",
    "InboxEntry",
    "MessageId",
    "PartialKey",
    "Receipt",
    "StoreError",
    "StoreFull",
    "StoreShareExceeded",
    "StoreUnwritable",
    "StoredMessage",
    "custody_slot",
    "wire_id",
]

MessageId = tuple[int, int, int]
"""(source address, epoch, sequence number): unique across the mission."""

PartialKey = tuple[int, MessageId]
"""(neighbour, message id): one transfer of fragments."""

Durability = Literal["process", "power"]

HELD: Final = 0
"""Next hop meaning "held, no route yet"; address 0 is never a node."""

PRECEDENCES: Final = tuple(int(p) for p in Precedence)

_SLOT_SHIFT: Final = 32
_SEQ_MASK: Final = (1 << _SLOT_SHIFT) - 1


def custody_slot(mid: MessageId, dst: int) -> MessageId:
    """The id a second copy of `mid`, for destination `dst`, is kept under: sequence
    numbers are 32 bits on the wire, so the bits above them name the slot."""
    src, epoch, seq = mid
    return (src, epoch, (seq & _SEQ_MASK) | ((dst + 1) << _SLOT_SHIFT))


def wire_id(mid: MessageId) -> MessageId:
    """The message id as on the wire, whatever slot it is kept under."""
    src, epoch, seq = mid
    return (src, epoch, seq & _SEQ_MASK)


class StoreError(Exception):
    """The store cannot do what was asked: misuse, or a file that is not a usable store."""


class StoreUnwritable(Exception):
    """The store could not write: the disk (or the store's file cap) is full, the file is
    read-only, or the device failed. Everything written since the last commit was rolled
    back. Not a StoreError on purpose: code that takes "already stored" StoreErrors in its
    stride must never take this one for a duplicate and acknowledge what is not on disk.

    `reason` is one of "full", "read-only", "i/o error", "corrupt"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class StoreFull(StoreError):
    """No room for a message even after eviction; nothing was stored, so refuse custody."""


class StoreShareExceeded(StoreFull):
    """The store is contended and the message's previous hop or source already holds its fair
    share; nothing was stored, so refuse custody."""


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message in custody; `body` is the encoded message, opaque to the store.

    `prev_hop` is the neighbour it came from, 0 when it was submitted here."""

    mid: MessageId
    dst: int
    precedence: int
    created: int
    expires: int
    body: bytes
    local_origin: bool
    received_at: float
    prev_hop: int = 0

    def __post_init__(self) -> None:
        if self.precedence not in PRECEDENCES:
            raise ValueError(
                f"message {self.mid}: precedence must be one of {PRECEDENCES}, "
                f"found {self.precedence!r}"
            )

    @property
    def size(self) -> int:
        """Bytes the message counts against the store's max_bytes."""
        return len(self.body)


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message in custody without its body: what placing it on a next hop and queueing
    it needs (the queue reads the body from the store when its turn comes)."""

    mid: MessageId
    dst: int
    precedence: int
    created: int
    size: int
    received_at: float


def message_ref(row: tuple[Any, ...]) -> MessageRef:
    """Build a MessageRef from (src, epoch, seq, dst, precedence, created, size, received)."""
    src, epoch, seq, dst, prec, created, size, received = row
    return MessageRef((src, epoch, seq), dst, prec, created, size, received)


def stored_message(row: tuple[Any, ...]) -> StoredMessage:
    """Build a StoredMessage from the eleven message columns, in schema order."""
    src, epoch, seq, dst, prec, created, expires, body, local, received, prev_hop = row
    return StoredMessage(
        (src, epoch, seq), dst, prec, created, expires, body, bool(local), received, prev_hop
    )


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """A message delivered to the local application, kept until the application acks it."""

    rowid: int
    mid: MessageId
    src: int
    dst: int
    precedence: int
    created: int
    received_at: float
    payload: bytes
    signed: bool


@dataclass(frozen=True, slots=True)
class Receipt:
    """An end-to-end receipt for a message this node sent, waiting for the application.

    `reporter` is the node that reported it (0 in receipts kept from schema version 1)."""

    rowid: int
    mid: MessageId
    kind: int
    at: int
    reporter: int = 0
