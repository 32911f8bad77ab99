"""The engine's configuration and the interfaces it is given: plain typed data, validated once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from crypto.revocation import Revocation
from crypto.roster import Roster
from tawan.core.precedence import Precedence
from transports.profile import BearerProfile


class Keys(Protocol):
    """What the engine needs of `crypto.keyring.Keyring`."""

    address: int
    t0: float
    epoch_seconds: int
    roster: Roster

    def epoch_of(self, mission_seconds: float) -> int: ...
    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None: ...
    def link_key(self, sender: int, receiver: int, epoch: int) -> bytes | None: ...
    def sign(self, data: bytes) -> bytes: ...
    def verify(self, address: int, data: bytes, signature: bytes) -> bool: ...
    def advance(self, current_epoch: int, *, erase: bool = True) -> bool: ...
    def update_roster(self, roster: Roster) -> None: ...
    def apply_revocation(self, notice: Revocation) -> bool: ...


MAX_REF_BYTES = 64


class SubmitError(ValueError):
    """The application asked for something the engine cannot send (its fault, not the net's)."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A message the application hands its node: one type from the API to the engine.

    Checked when built, so a submission that exists is well formed; whether its
    destination and ttl suit the mission is the engine's to say (`Engine.submit`).

    `ref`, the client's own reference (1..MAX_REF_BYTES bytes): a submission carrying the
    ref of an earlier one that has not expired is that one again, answered with its
    message id and not sent twice (`tawan.core.store_refs`)."""

    dst: int
    payload: bytes
    precedence: Precedence = Precedence.ROUTINE
    ttl: int = 3600
    receipt: bool = False
    sign: bool = False
    ref: bytes | None = None

    def __post_init__(self) -> None:
        ref = self.ref
        ref_ok = ref is None or (isinstance(ref, bytes) and 1 <= len(ref) <= MAX_REF_BYTES)
        checks = (
            (type(self.dst) is int and 1 <= self.dst <= 0xFFFF, "dst", "an address 1..65535"),
            (isinstance(self.payload, bytes), "payload", "bytes"),
            (isinstance(self.precedence, Precedence), "precedence", "a Precedence"),
            (type(self.ttl) is int and self.ttl >= 1, "ttl", "an integer >= 1 (seconds)"),
            (type(self.receipt) is bool, "receipt", "a bool"),
            (type(self.sign) is bool, "sign", "a bool"),
            (ref_ok, "ref", f"None or 1..{MAX_REF_BYTES} bytes"),
        )
        for ok, field_name, expected in checks:
            if not ok:
                found = getattr(self, field_name)
                shown = f"{type(found).__name__} {found!r}"[:60]
                raise SubmitError(f"submission {field_name}: expected {expected}, found {shown}")


@dataclass(frozen=True, slots=True)
class PeerSpec:
    """A neighbour configured on a link; `endpoint` None: learnt when it first speaks."""

    node: int
    endpoint: str | None


@dataclass(frozen=True, slots=True)
class LinkSpec:
    name: str
    profile: BearerProfile
    peers: tuple[PeerSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class EngineConfig:
    hello_interval: float = 2.0
    dead_interval: float = 7.0
    ack_delay: float = 0.005
    commit_interval: float = 0.01  # longest a write waits for a group commit
    retransmit_floor: float = 0.2
    retransmit_ceiling: float = 60.0
    max_hops: int = 16
    advert_interval: float = 30.0
    advert_min_interval: float = 0.2
    housekeeping_interval: float = 1.0
    max_reassembly_bytes: int = 16 << 20
    reassembly_timeout: float = 600.0  # a partial message not added to for this long is dropped
    max_clock_skew: float = 300.0  # a message created further ahead of our clock is refused
    # Follow every (message, next hop) and raise StateError on a transition the table of
    # tawan.core.states does not allow (the test harness sets it; off, it costs nothing).
    strict_states: bool = False
    # Messages sent to one neighbour and not yet acknowledged: a window, so a fast sender
    # is clocked by its neighbour's acknowledgements instead of overrunning it.
    window: int = 256
    static_routes: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in (
            "hello_interval",
            "dead_interval",
            "retransmit_floor",
            "housekeeping_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"engine {name}: expected > 0, found {getattr(self, name)}")
        if self.dead_interval <= self.hello_interval:
            raise ValueError("engine dead_interval must be longer than hello_interval")
        if self.window < 1:
            raise ValueError(f"engine window: expected >= 1, found {self.window}")
        if not 1 <= self.max_hops <= 255:
            raise ValueError(f"engine max_hops: expected 1..255, found {self.max_hops}")
