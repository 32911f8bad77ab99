"""Revocation notices: the mission authority's signed word that some nodes are revoked.

A notice is small enough to travel over any link (80 bytes for one address, at most 93 for
two, 137 for the most it may name), so a revocation reaches the nodes long before a new
roster file of over a kilobyte per node does. Encoding (msgpack, canonical):

    [mission_id (bin 8), version (uint), [address, ...] (1..16 uints), signature (bin 64)]

`signature` is the authority's Ed25519 signature over
``b"tawan/revocation/v1" || msgpack([mission_id, version, [address, ...]])``.
`version` is the roster version that revokes the addresses. docs/keys.md gives the layout
byte by byte and what a node does with a notice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.codec import Fields, pack, unpack
from crypto.errors import RevocationError
from crypto.roster import MAX_ADDRESS, MAX_VERSION, MISSION_ID_BYTES, SIGNATURE_BYTES
from crypto.sealing import verify_detached

REVOCATION_LABEL = b"tawan/revocation/v1"
MAX_REVOKED = 16
MAX_REVOCATION_BYTES = 137
"""The longest encoding: 16 three-byte addresses and a nine-byte version."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """A notice that the nodes at `revoked` are revoked as of roster `version`."""

    mission_id: bytes
    version: int
    revoked: tuple[int, ...]
    signature: bytes

    def __post_init__(self) -> None:
        _check_body(self.mission_id, self.version, self.revoked)
        if type(self.signature) is not bytes or len(self.signature) != SIGNATURE_BYTES:
            raise RevocationError(
                f"revocation: signature: expected {SIGNATURE_BYTES} bytes, "
                f"found {_shown(self.signature)}"
            )

    def signed_bytes(self) -> bytes:
        """What the authority signs: the label, then the notice without its signature."""
        return _signed_bytes(self.mission_id, self.version, self.revoked)

    def to_bytes(self) -> bytes:
        return pack([self.mission_id, self.version, list(self.revoked), self.signature])

    def verify(self, authority_public: bytes, mission_id: bytes) -> bool:
        """True when the notice is of `mission_id` and signed by `authority_public`."""
        return self.mission_id == mission_id and verify_detached(
            authority_public, self.signed_bytes(), self.signature
        )


def make_revocation(
    authority: Ed25519PrivateKey, mission_id: bytes, version: int, revoked: Iterable[int]
) -> Revocation:
    """The notice, signed by `authority`, that roster `version` revokes `revoked`.

    `revoked` must be 1 to MAX_REVOKED distinct node addresses in ascending order.
    """
    addresses = tuple(revoked)
    _check_body(mission_id, version, addresses)
    signature = authority.sign(_signed_bytes(mission_id, version, addresses))
    return Revocation(mission_id, version, addresses, signature)


def decode_revocation(data: bytes, source: str = "revocation") -> Revocation:
    """Decode a notice from untrusted bytes; anything malformed raises RevocationError.

    Only the canonical encoding is accepted, so one notice has one encoding. The signature
    is not checked here: see `Revocation.verify`.
    """
    if type(data) is not bytes:
        raise RevocationError(f"{source}: expected bytes, found {type(data).__name__}")
    if not 0 < len(data) <= MAX_REVOCATION_BYTES:
        raise RevocationError(
            f"{source}: expected 1..{MAX_REVOCATION_BYTES} bytes, found {len(data)}"
        )
    fields = Fields(RevocationError, source)
    items = fields.array(unpack(data, RevocationError, source), "revocation", 4)
    mission_id = fields.binary(items[0], "mission_id", MISSION_ID_BYTES)
    version = fields.integer(items[1], "version", 1, MAX_VERSION)
    listed = fields.array(items[2], "revoked addresses")
    if not 1 <= len(listed) <= MAX_REVOKED:
        fields.fail("revoked addresses", f"1..{MAX_REVOKED} addresses", f"{len(listed)}")
    revoked = tuple(fields.integer(a, "revoked address", 1, MAX_ADDRESS) for a in listed)
    if list(revoked) != sorted(set(revoked)):
        fields.fail("revoked addresses", "ascending distinct addresses", revoked)
    signature = fields.binary(items[3], "signature", SIGNATURE_BYTES)
    notice = Revocation(mission_id, version, revoked, signature)
    if notice.to_bytes() != data:
        raise RevocationError(f"{source}: revocation is not in canonical form")
    return notice


def _signed_bytes(mission_id: bytes, version: int, revoked: tuple[int, ...]) -> bytes:
    return REVOCATION_LABEL + pack([mission_id, version, list(revoked)])


def _check_body(mission_id: object, version: object, revoked: object) -> None:
    if type(mission_id) is not bytes or len(mission_id) != MISSION_ID_BYTES:
        raise RevocationError(
            f"revocation: mission_id: expected {MISSION_ID_BYTES} bytes, "
            f"found {_shown(mission_id)}"
        )
    if type(version) is not int or not 1 <= version <= MAX_VERSION:
        raise RevocationError(
            f"revocation: version: expected an integer in 1..{MAX_VERSION}, found {version!r}"
        )
    valid = (
        type(revoked) is tuple
        and 1 <= len(revoked) <= MAX_REVOKED
        and all(type(a) is int and 1 <= a <= MAX_ADDRESS for a in revoked)
        and list(revoked) == sorted(set(revoked))
    )
    if not valid:
        raise RevocationError(
            f"revocation: revoked: expected a tuple of 1..{MAX_REVOKED} ascending distinct "
            f"node addresses 1..{MAX_ADDRESS}, found {_shown(revoked)}"
        )


def _shown(value: object) -> str:
    if isinstance(value, bytes):
        return f"{len(value)} bytes"
    if isinstance(value, tuple):
        shown = repr(value)
        return shown if len(shown) <= 40 else shown[:37] + "..."
    return type(value).__name__
