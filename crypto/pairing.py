"""Pairwise epoch-0 roots from the hybrid X25519 + ML-KEM-768 agreement.

The node issued later is the initiator A, the other the responder B:

    dh        = X25519(A_private, B_public)                      (static-static)
    ss, ct    = ML-KEM-768.Encapsulate(B_mlkem_public)
    root0     = schedule.pair_root(mission_id, a, b, ss, dh,
                                   sha256(ct + A_x25519_public + B_x25519_public))

At planning time the authority runs this for every pair and writes root0 into both key
files, so the ciphertext never travels. For a node added after deployment the initiator
sends a `PairSetup` (the ciphertext, signed with its Ed25519 key) and the responder derives
the same root with `accept_pair_setup`.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from crypto import schedule
from crypto.errors import PairSetupError
from crypto.keyfile import NodeKeys
from crypto.roster import NodeEntry, Roster

MLKEM768_CIPHERTEXT_BYTES = 1088
SIGNATURE_BYTES = 64
PAIR_SETUP_FORMAT = 1
PAIR_SETUP_BYTES = 1 + MLKEM768_CIPHERTEXT_BYTES + SIGNATURE_BYTES
_SETUP_CONTEXT = b"tawan/pair-setup/v1"


@dataclass(frozen=True, slots=True)
class PairSetup:
    """What an initiator sends on air: the KEM ciphertext and its signature over it."""

    ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if len(self.ciphertext) != MLKEM768_CIPHERTEXT_BYTES:
            raise PairSetupError(
                f"pair setup: ciphertext: expected {MLKEM768_CIPHERTEXT_BYTES} bytes, "
                f"found {len(self.ciphertext)}"
            )
        if len(self.signature) != SIGNATURE_BYTES:
            raise PairSetupError(
                f"pair setup: signature: expected {SIGNATURE_BYTES} bytes, "
                f"found {len(self.signature)}"
            )

    def to_bytes(self) -> bytes:
        """Fixed layout: format byte, ciphertext, signature (PAIR_SETUP_BYTES in all)."""
        return bytes([PAIR_SETUP_FORMAT]) + self.ciphertext + self.signature

    @classmethod
    def from_bytes(cls, data: bytes) -> PairSetup:
        if len(data) != PAIR_SETUP_BYTES:
            raise PairSetupError(
                f"pair setup: expected {PAIR_SETUP_BYTES} bytes, found {len(data)}"
            )
        if data[0] != PAIR_SETUP_FORMAT:
            raise PairSetupError(
                f"pair setup: format: expected {PAIR_SETUP_FORMAT}, found {data[0]}"
            )
        split = 1 + MLKEM768_CIPHERTEXT_BYTES
        return cls(ciphertext=bytes(data[1:split]), signature=bytes(data[split:]))


def _transcript(ciphertext: bytes, initiator_x25519: bytes, responder_x25519: bytes) -> bytes:
    return hashlib.sha256(ciphertext + initiator_x25519 + responder_x25519).digest()


def _exchange(private: X25519PrivateKey, peer: NodeEntry) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer.x25519_public))
    except ValueError:
        raise PairSetupError(
            f"pair setup: X25519 key of {peer.name!r} is a low-order point"
        ) from None


def _signed_data(mission_id: bytes, initiator: int, responder: int, ciphertext: bytes) -> bytes:
    return _SETUP_CONTEXT + mission_id + struct.pack(">HH", initiator, responder) + ciphertext


def initiate(initiator: NodeKeys, responder: NodeEntry, mission_id: bytes) -> tuple[bytes, bytes]:
    """The initiator's half: (ML-KEM ciphertext, root0) for the pair with `responder`."""
    if responder.address == initiator.address:
        raise PairSetupError(f"pair setup: node {initiator.name!r} cannot pair with itself")
    try:
        kem_public = MLKEM768PublicKey.from_public_bytes(responder.mlkem768_public)
        kem_secret, ciphertext = kem_public.encapsulate()
    except ValueError:
        raise PairSetupError(
            f"pair setup: ML-KEM key of {responder.name!r} is not a valid public key"
        ) from None
    agreement = initiator.agreement_key()
    dh_secret = _exchange(agreement, responder)
    own_x25519 = agreement.public_key().public_bytes_raw()
    transcript = _transcript(ciphertext, own_x25519, responder.x25519_public)
    root = schedule.pair_root(
        mission_id, initiator.address, responder.address, kem_secret, dh_secret, transcript
    )
    return ciphertext, root


def respond(
    responder: NodeKeys, initiator: NodeEntry, mission_id: bytes, ciphertext: bytes
) -> bytes:
    """The responder's half: root0 from the initiator's ciphertext (not authenticated here)."""
    kem_secret = responder.kem_key().decapsulate(ciphertext)
    agreement = responder.agreement_key()
    dh_secret = _exchange(agreement, initiator)
    own_x25519 = agreement.public_key().public_bytes_raw()
    transcript = _transcript(ciphertext, initiator.x25519_public, own_x25519)
    return schedule.pair_root(
        mission_id, initiator.address, responder.address, kem_secret, dh_secret, transcript
    )


def make_pair_setup(initiator: NodeKeys, responder: NodeEntry) -> tuple[PairSetup, bytes]:
    """Start an on-air pairing with `responder`: (the setup to send, root0 to keep)."""
    if responder.revoked:
        raise PairSetupError(f"pair setup: node {responder.name!r} is revoked")
    ciphertext, root = initiate(initiator, responder, initiator.mission_id)
    signed = _signed_data(initiator.mission_id, initiator.address, responder.address, ciphertext)
    signature = initiator.signing_key().sign(signed)
    return PairSetup(ciphertext=ciphertext, signature=signature), root


def accept_pair_setup(
    responder: NodeKeys, roster: Roster, initiator_addr: int, setup: PairSetup | bytes
) -> bytes:
    """Check a setup received from `initiator_addr` and return the pair's root0.

    Raises PairSetupError for a malformed setup, an unknown, revoked or group initiator,
    another mission, or a signature that does not verify (a forged or altered setup).
    """
    if isinstance(setup, bytes | bytearray | memoryview):
        setup = PairSetup.from_bytes(bytes(setup))
    if roster.mission_id != responder.mission_id:
        raise PairSetupError("pair setup: roster and key file are of different missions")
    initiator = roster.node_at(initiator_addr)
    if initiator is None or initiator.revoked or initiator_addr == responder.address:
        raise PairSetupError(
            f"pair setup: address {initiator_addr}: expected another non-revoked node"
        )
    signed = _signed_data(roster.mission_id, initiator_addr, responder.address, setup.ciphertext)
    try:
        Ed25519PublicKey.from_public_bytes(initiator.ed25519_public).verify(
            setup.signature, signed
        )
    except (InvalidSignature, ValueError):
        raise PairSetupError(
            f"pair setup from {initiator.name!r}: signature does not verify"
        ) from None
    return respond(responder, initiator, roster.mission_id, setup.ciphertext)
