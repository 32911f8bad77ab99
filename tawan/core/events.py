"""What the engine tells its driver: actions to perform and events for the application.

Small frozen dataclasses, built complete. `Transmit` is an action (the driver must put these
bytes on that link); everything else is an event the driver may log, count or hand to the
application.
"""

from __future__ import annotations

from dataclasses import dataclass

from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send `data` to transport endpoint `peer` on link `link`.

    `precedence` tells the radio how urgent the frame is, for a transport that arbitrates
    its channel or queue by priority (a STANAG 5066 server's U_PDU priority, a net's access
    by precedence); the others ignore it. A `Precedence` value: a DATA or FRAG frame its
    message's, a BATCH the highest of its messages'; control frames what
    docs/engine.md ("Precedence on the air") gives them; ROUTINE, the lowest, by default.

    `also`: further endpoints on the same link the same bytes are for (a NET frame, one copy
    of a message for several members of a radio net, docs/protocol.md 4.9). A shared channel
    carries it once, heard by all of them; a transport that cannot send one frame to several
    peers sends it to each."""

    link: str
    peer: str
    data: bytes
    precedence: int = 0
    also: tuple[str, ...] = ()

    @property
    def peers(self) -> tuple[str, ...]:
        """Every endpoint the frame is for: `peer` first, then `also`."""
        return (self.peer, *self.also)


@dataclass(frozen=True, slots=True)
class Delivered:
    """A message for this node (or one of its groups), opened and stored in the inbox."""

    mid: MessageId
    src: int
    dst: int
    precedence: Precedence
    created: float  # mission seconds at the origin (0.1 s resolution)
    latency: float  # seconds from creation to delivery
    payload: bytes
    signed: bool  # True when an Ed25519 signature of the source was present and valid
    inbox_id: int


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    """The destination reports a message we sent delivered, or a node that held it reports
    it expired or evicted (this node itself, when its own store evicted it)."""

    mid: MessageId
    reporter: int
    kind: str  # "delivered", "expired" or "evicted"
    at: int  # mission seconds at the reporter


@dataclass(frozen=True, slots=True)
class MessageExpired:
    mid: MessageId
    precedence: Precedence
    where: str  # "store" (held too long here) or "arrival" (already expired when received)


@dataclass(frozen=True, slots=True)
class MessageEvicted:
    """A message in custody here was dropped to make room for one of higher precedence;
    its origin (`src`) is told with a notice of eviction unless it is this node."""

    mid: MessageId
    precedence: Precedence
    size: int
    src: int
    for_precedence: Precedence  # the precedence of the message it made room for


@dataclass(frozen=True, slots=True)
class MessageRefused:
    """Custody refused, not acknowledged: the previous hop keeps the message and is told
    when there is room again. `reason` is "store_full" or "fair_share"; `detail` says what
    fills the store and what the message could have evicted."""

    mid: MessageId
    precedence: Precedence
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame dropped at the link: malformed, unauthenticated, replayed, revoked sender..."""

    link: str
    peer: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class NeighbourChanged:
    """A neighbour became reachable or unreachable over one link."""

    link: str
    neighbour: int
    up: bool


@dataclass(frozen=True, slots=True)
class RevocationApplied:
    """A revocation notice of the mission authority took effect here."""

    version: int  # the roster version that revokes them
    revoked: tuple[int, ...]  # node addresses
    came_from: int | None  # the neighbour that sent it; None: the local API


@dataclass(frozen=True, slots=True)
class ClockJumped:
    """The clock leapt forward by more than an epoch: key erasure waits an epoch to be sure."""

    from_epoch: int
    to_epoch: int


@dataclass(frozen=True, slots=True)
class AdvertTooLarge:
    """An advert (`origin`'s) was not sent on `link`: at up to `size` bytes it exceeds the
    link's `mtu`, and the link would drop it; nor to that link's neighbour by any other up
    link, none being wide enough (docs/engine.md, "Limits known today")."""

    link: str
    origin: int
    size: int
    mtu: int


@dataclass(frozen=True, slots=True)
class StoreDegraded:
    """The store could not write (`reason`: "full", "read-only", ...): the node takes no
    new custody, and keeps forwarding and delivering what it holds, until writing works."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class StoreRecovered:
    """The store writes again, after `seconds` degraded: the node takes custody again."""

    seconds: float


Event = (
    Delivered
    | ReceiptReceived
    | MessageExpired
    | MessageEvicted
    | MessageRefused
    | FrameRejected
    | NeighbourChanged
    | RevocationApplied
    | ClockJumped
    | AdvertTooLarge
    | StoreDegraded
    | StoreRecovered
)
