"""The key schedule: every key tawan uses, derived from a pair or group root.

Roots ratchet forward once per epoch with a one-way function, so a node that has erased
the roots of old epochs cannot recompute their keys (forward secrecy without a round trip).
docs/protocol.md ("Key schedule") is the normative description; the test vectors there are
checked against this module.
"""

from __future__ import annotations

import hashlib
import hmac as std_hmac
import struct

from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_BYTES = 32
LINK_TAG_BYTES = 8
AEAD_TAG_BYTES = 16

_RATCHET = b"tawan/ratchet/v1"
_MSG = b"tawan/msg/v1"
_LINK = b"tawan/link/v1"
_GROUP = b"tawan/group/v1"
_PAIR = b"tawan/pair/v1"
_NONCE = struct.Struct(">HxxII")


def hkdf(ikm: bytes, info: bytes, salt: bytes | None = None, length: int = KEY_BYTES) -> bytes:
    """HKDF-SHA256 (RFC 5869)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def pair_root(
    mission_id: bytes,
    addr_a: int,
    addr_b: int,
    kem_secret: bytes,
    dh_secret: bytes,
    transcript: bytes,
) -> bytes:
    """Epoch-0 root of a node pair from the hybrid ML-KEM-768 + X25519 agreement.

    Both shared secrets go into one HKDF (the usual hybrid combiner): the root stays secret
    while either primitive holds. `transcript` binds the KEM ciphertext and both X25519
    public keys, so a substituted ciphertext yields an unrelated root.
    """
    low, high = sorted((addr_a, addr_b))
    info = _PAIR + struct.pack(">HH", low, high) + transcript
    return hkdf(kem_secret + dh_secret, info, salt=mission_id)


def ratchet(root: bytes, to_epoch: int) -> bytes:
    """The root of epoch `to_epoch` from the root of epoch `to_epoch - 1`."""
    return hkdf(root, _RATCHET + struct.pack(">I", to_epoch))


def message_key(root: bytes, src: int, dst: int) -> bytes:
    """End-to-end key for messages from `src` to `dst` in the epoch of `root`."""
    return hkdf(root, _MSG + struct.pack(">HH", src, dst))


def link_key(root: bytes, sender: int, receiver: int) -> bytes:
    """Hop-by-hop key for frames from `sender` to neighbour `receiver` in the epoch of `root`."""
    return hkdf(root, _LINK + struct.pack(">HH", sender, receiver))


def group_key(root: bytes, group: int) -> bytes:
    """End-to-end key for messages to `group` in the epoch of the group root `root`."""
    return hkdf(root, _GROUP + struct.pack(">H", group))


def message_nonce(src: int, created: int, seq: int) -> bytes:
    """96-bit AEAD nonce: u16be src || u16be 0 || u32be created || u32be seq.

    Unique under one key: a key is of one epoch, and a source never numbers two messages of
    an epoch alike. `seq` alone is not enough, since a store rolled back to an old state
    brings it back; `created` (mission ticks) never goes backwards, so the pair still differs.
    """
    try:
        return _NONCE.pack(src, created, seq)
    except struct.error:
        raise ValueError(
            f"message nonce: expected src 0..65535, created and seq 0..2^32-1, "
            f"found src {src!r}, created {created!r}, seq {seq!r}"
        ) from None


def seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 encryption; the 16-byte tag is appended."""
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 decryption; raises cryptography's InvalidTag on any tampering."""
    return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)


def link_tag(key: bytes, frame: bytes) -> bytes:
    """Truncated HMAC-SHA256 authenticating one frame on one link."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(frame)
    return mac.finalize()[:LINK_TAG_BYTES]


def link_tag_valid(key: bytes, frame: bytes, tag: bytes) -> bool:
    """Constant-time check of a frame's link tag."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(frame)
    expected = mac.finalize()[:LINK_TAG_BYTES]
    return hmac_compare(expected, tag)


_SHA256_BLOCK = 64
_IPAD = bytes(0x36 for _ in range(_SHA256_BLOCK))
_OPAD = bytes(0x5C for _ in range(_SHA256_BLOCK))


class LinkMac:
    """`link_tag` and `link_tag_valid` under one key, its HMAC key schedule done once.

    Every frame in or out is tagged under the link key of its pair and epoch; HMAC's two
    padded key blocks are hashed here once per key instead of once per frame (RFC 2104:
    the inner and outer SHA-256 states after those blocks are all a tag needs), which
    makes a tag of a short frame several times cheaper. The same bytes as `link_tag`
    (tests/test_linkauth.py checks it). Whoever keeps one keeps its key: it must be
    dropped when the key is erased."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        block = key if len(key) <= _SHA256_BLOCK else hashlib.sha256(key).digest()
        block = block.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(k ^ p for k, p in zip(block, _IPAD, strict=True)))
        self._outer = hashlib.sha256(bytes(k ^ p for k, p in zip(block, _OPAD, strict=True)))

    def tag(self, frame: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(frame)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:LINK_TAG_BYTES]

    def valid(self, frame: bytes, tag: bytes) -> bool:
        """Constant-time check of a frame's link tag."""
        return std_hmac.compare_digest(self.tag(frame), tag)


def hmac_compare(a: bytes, b: bytes) -> bool:
    return constant_time.bytes_eq(a, b)
