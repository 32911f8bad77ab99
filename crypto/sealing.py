"""End-to-end sealing of message bodies, and detached signatures.

The AEAD is ChaCha20-Poly1305 with the nonce of `schedule.message_nonce(src, created, seq)`;
the same as `schedule.seal`/`schedule.open_sealed`, with the cipher object of each key cached
so a seal costs the AEAD and not its key setup. A cached cipher holds its key: whoever erases
a key (`Keyring.advance`, a revocation) calls `forget` so that the cache does not keep it.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from crypto import schedule

SEAL_OVERHEAD_BYTES = schedule.AEAD_TAG_BYTES
_CIPHER_LIMIT = 4096
_ciphers: dict[bytes, ChaCha20Poly1305] = {}


def _cipher(key: bytes) -> ChaCha20Poly1305:
    cipher = _ciphers.get(key)
    if cipher is None:
        if len(_ciphers) >= _CIPHER_LIMIT:
            _ciphers.clear()
        cipher = ChaCha20Poly1305(key)
        _ciphers[key] = cipher
    return cipher


def forget(keys: Iterable[bytes]) -> None:
    """Drop the cached ciphers of `keys` (erased keys); keys not cached are ignored."""
    for key in keys:
        _ciphers.pop(key, None)


def forget_all() -> None:
    """Drop every cached cipher."""
    _ciphers.clear()


def seal_message(
    key: bytes, src: int, created: int, seq: int, aad: bytes, plaintext: bytes
) -> bytes:
    """Encrypt and authenticate `plaintext`, binding `aad` (the message header).

    (src, created, seq) must never repeat under one key: `created` is the message's creation
    time in mission ticks, `seq` the source's message counter.
    """
    nonce = schedule.message_nonce(src, created, seq)
    return _cipher(key).encrypt(nonce, plaintext, aad)


def open_message(
    key: bytes, src: int, created: int, seq: int, aad: bytes, ciphertext: bytes
) -> bytes | None:
    """The plaintext, or None when the ciphertext or `aad` was altered or the key is wrong."""
    nonce = schedule.message_nonce(src, created, seq)
    try:
        return _cipher(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None


def sign_detached(private: Ed25519PrivateKey, data: bytes) -> bytes:
    """A 64-byte Ed25519 signature over `data`."""
    return private.sign(data)


def verify_detached(public: bytes | Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """True when `signature` over `data` verifies with `public` (raw 32 bytes or a key)."""
    try:
        if isinstance(public, bytes):
            public = Ed25519PublicKey.from_public_bytes(public)
        public.verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True
