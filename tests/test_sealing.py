"""End-to-end protection: compression, signatures, the AEAD over the header, and receipts."""

from __future__ import annotations

import dataclasses
import random
import zlib

import msgpack
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import schedule
from crypto import sealing as aead
from crypto.keyring import Keyring
from crypto.mission import build_mission
from tawan.core.frames import (
    SIGNATURE_BYTES,
    TICKS_PER_SECOND,
    Flags,
    FrameDecodeError,
    Message,
    epoch_of_ticks,
)
from tawan.core.precedence import Precedence
from tawan.core.receipts import DELIVERED, EXPIRED, ReceiptBody, decode_receipt, encode_receipt
from tawan.core.sealing import (
    MAX_PAYLOAD_BYTES,
    MessageKeys,
    OpenError,
    SealError,
    open_message,
    seal_message,
)
from tawan.core.specs import Submission

A, B, C = 1, 2, 3
EPOCH_SECONDS = 60
CREATED = 1300  # ticks: 130 s, epoch 2
ORDER = b"PLATOON 2 MOVE TO GRID 451903 BY 0600, HOLD UNTIL RELIEVED. ACKNOWLEDGE. " * 4
SIGNERS = {n: Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32) for n in (A, B, C)}


class NoGroups:
    """The roster of the fake keys: A, B and C are nodes, there are no groups."""

    def is_group(self, address: int) -> bool:
        return False


class FakeKeys:
    """The MessageKeys of node `address`: pair roots derived from a seed, ratcheted per epoch."""

    epoch_seconds = EPOCH_SECONDS
    roster = NoGroups()

    def __init__(self, address: int, seed: int = 0, signer: int | None = None) -> None:
        self.address = address
        self.seed = seed
        self.signer = SIGNERS[address if signer is None else signer]

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        if self.address not in (src, dst) or src == dst or not 0 <= epoch <= 10:
            return None
        low, high = sorted((src, dst))
        root = bytes([self.seed, low, high]) * 10 + b"\0\0"
        for n in range(1, epoch + 1):
            root = schedule.ratchet(root, n)
        return schedule.message_key(root, src, dst)

    def sign(self, data: bytes) -> bytes:
        return self.signer.sign(data)

    def verify(self, address: int, data: bytes, signature: bytes) -> bool:
        if address not in SIGNERS:
            return False
        try:
            SIGNERS[address].public_key().verify(signature, data)
        except InvalidSignature:
            return False
        return True


def seal(
    keys: MessageKeys | None = None,
    payload: bytes = ORDER,
    control: bool = False,
    *,
    receipt: bool = False,
    sign: bool = False,
) -> Message:
    return seal_message(
        keys or FakeKeys(A),
        Submission(B, payload, Precedence.IMMEDIATE, 600, receipt=receipt, sign=sign),
        seq=42, created=CREATED, control=control,
    )  # fmt: skip


def open_at_b(msg: Message) -> bytes:
    return open_message(FakeKeys(B), msg).payload


def refused(msg: Message, keys: MessageKeys | None = None) -> str:
    with pytest.raises(OpenError) as info:
        open_message(keys or FakeKeys(B), msg)
    return info.value.reason


def raw_deflate(data: bytes, wbits: int = -12) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return deflater.compress(data) + deflater.flush()


def sealed_by_hand(plaintext: bytes, flags: Flags) -> Message:
    """A message whose plaintext the test chooses, sealed with A's real key for B."""
    header = Message(A, B, 7, Precedence.ROUTINE, flags, CREATED, 600, 0, bytes(16))
    key = FakeKeys(A).message_key(A, B, epoch_of_ticks(CREATED, EPOCH_SECONDS))
    assert key is not None
    ciphertext = schedule.seal(
        key, schedule.message_nonce(A, CREATED, 7), plaintext, header.associated_data()
    )
    return dataclasses.replace(header, ciphertext=ciphertext)


# ---------------------------------------------------------------------------- round trips


def test_text_is_compressed() -> None:
    msg = seal()
    assert msg.flags & Flags.COMPRESSED
    assert len(msg.ciphertext) < len(ORDER)
    assert ORDER[:16] not in msg.ciphertext
    opened = open_message(FakeKeys(B), msg)
    assert opened.payload == ORDER
    assert not opened.signed and not opened.control


def test_compression_is_raw_deflate_with_a_small_window() -> None:
    """docs/protocol.md 5.4: no zlib header, back-references within 4 KiB."""
    msg = seal()
    key = FakeKeys(B).message_key(A, B, epoch_of_ticks(CREATED, EPOCH_SECONDS))
    assert key is not None
    inner = schedule.open_sealed(
        key, schedule.message_nonce(A, CREATED, 42), msg.ciphertext, msg.associated_data()
    )
    assert zlib.decompressobj(-12).decompress(inner) == ORDER


def test_the_nonce_binds_the_creation_time() -> None:
    """Issue 7: a store rolled back brings `seq` back but not the clock; the same seq at
    another creation time in the same epoch must not reuse the keystream."""
    payload = random.Random(5).randbytes(100)  # not compressed: the keystream shows

    def sealed_at(created: int) -> bytes:
        msg = seal_message(
            FakeKeys(A), Submission(B, payload, Precedence.ROUTINE, 600), seq=42,
            created=created,
        )  # fmt: skip
        return msg.ciphertext[: -schedule.AEAD_TAG_BYTES]

    assert epoch_of_ticks(CREATED + 1, EPOCH_SECONDS) == epoch_of_ticks(CREATED, EPOCH_SECONDS)
    assert sealed_at(CREATED) != sealed_at(CREATED + 1)
    nonce = schedule.message_nonce(A, CREATED, 42)
    assert nonce.hex() == "00010000000005140000002a"  # src, 0, created 1300, seq 42
    for bad in ((A, -1, 0), (A, 0, 1 << 32), (1 << 16, 0, 0), (A, 1 << 32, 0)):
        with pytest.raises(ValueError, match="message nonce"):
            schedule.message_nonce(*bad)


def test_random_payload_is_not_compressed() -> None:
    payload = random.Random(1).randbytes(500)
    msg = seal(payload=payload)
    assert not msg.flags & Flags.COMPRESSED
    assert len(msg.ciphertext) == len(payload) + schedule.AEAD_TAG_BYTES
    assert open_at_b(msg) == payload


def test_short_payloads_are_never_compressed() -> None:
    assert not seal(payload=b"A" * 32).flags & Flags.COMPRESSED
    assert seal(payload=b"A" * 33).flags & Flags.COMPRESSED
    assert open_at_b(seal(payload=b"")) == b""


def test_largest_payload() -> None:
    payload = bytes(MAX_PAYLOAD_BYTES)
    assert open_at_b(seal(payload=payload)) == payload
    with pytest.raises(SealError, match="exceeds"):
        seal(payload=payload + b"\0")


def test_no_key_for_the_destination() -> None:
    with pytest.raises(SealError, match="no end-to-end key"):
        seal_message(
            FakeKeys(A), Submission(A, b"x", Precedence.ROUTINE, 1), seq=0, created=0
        )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    payload=st.one_of(
        st.binary(max_size=600),
        st.text(alphabet="ABCDEFG 0123.", max_size=600).map(str.encode),
    ),
    receipt=st.booleans(),
    sign=st.booleans(),
    control=st.booleans(),
)
def test_round_trip(payload: bytes, receipt: bool, sign: bool, control: bool) -> None:
    msg = seal(payload=payload, receipt=receipt, sign=sign, control=control)
    assert bool(msg.flags & Flags.RECEIPT_REQUESTED) == receipt
    assert bool(msg.flags & Flags.SIGNED) == sign
    assert bool(msg.flags & Flags.CONTROL) == control
    assert msg.hops == 0 and msg.src == A
    opened = open_message(FakeKeys(B), msg)
    assert (opened.payload, opened.signed, opened.control) == (payload, sign, control)


# ---------------------------------------------------------------------------- signatures


def test_signature_covers_header_and_payload() -> None:
    msg = seal(sign=True)
    assert msg.flags & Flags.SIGNED
    assert len(msg.ciphertext) == len(seal().ciphertext) + SIGNATURE_BYTES
    key = FakeKeys(B).message_key(A, B, epoch_of_ticks(CREATED, EPOCH_SECONDS))
    assert key is not None
    inner = schedule.open_sealed(
        key, schedule.message_nonce(A, CREATED, 42), msg.ciphertext, msg.associated_data()
    )
    signature = inner[:SIGNATURE_BYTES]
    SIGNERS[A].public_key().verify(signature, msg.associated_data() + ORDER)
    opened = open_message(FakeKeys(B), msg)
    assert opened.signed and opened.payload == ORDER


def test_signature_by_another_node_is_refused() -> None:
    forged = seal(FakeKeys(A, signer=C), sign=True)
    assert refused(forged) == "bad-signature"


def test_signature_over_other_data_is_refused() -> None:
    signature = SIGNERS[A].sign(b"something else")
    msg = sealed_by_hand(signature + b"payload", Flags.SIGNED)
    assert refused(msg) == "bad-signature"


def test_signed_flag_on_a_short_plaintext() -> None:
    assert refused(sealed_by_hand(bytes(SIGNATURE_BYTES - 1), Flags.SIGNED)) == "bad-signature"


# ---------------------------------------------------------------------------- tampering

HEADER_CHANGES: list[tuple[dict[str, object], str]] = [
    ({"seq": 43}, "e2e-auth"),
    ({"precedence": Precedence.FLASH}, "e2e-auth"),
    ({"flags": Flags.COMPRESSED | Flags.RECEIPT_REQUESTED}, "e2e-auth"),
    ({"flags": Flags.COMPRESSED | Flags.CONTROL}, "e2e-auth"),
    ({"flags": Flags.NONE}, "e2e-auth"),
    ({"created": CREATED + 1}, "e2e-auth"),
    ({"created": CREATED + EPOCH_SECONDS * TICKS_PER_SECOND}, "e2e-auth"),  # another epoch
    ({"ttl": 601}, "e2e-auth"),
    ({"src": C}, "e2e-auth"),  # B holds the key of C -> B, which does not open it
    ({"dst": C}, "no-key"),  # B holds no key of A -> C
]


@pytest.mark.parametrize(("changes", "expected"), HEADER_CHANGES)
def test_any_header_field_change_is_detected(changes: dict[str, object], expected: str) -> None:
    msg = dataclasses.replace(seal(), **changes)  # type: ignore[arg-type]
    assert refused(msg) == expected


def test_hop_count_is_not_authenticated_end_to_end() -> None:
    """Relays increase it; the link tag protects it on each hop."""
    assert open_at_b(seal().with_hops(9)) == ORDER


def test_any_ciphertext_change_is_detected() -> None:
    msg = seal(payload=b"CONTACT REAR 0415 SIX VEHICLES", sign=True)
    for position in range(len(msg.ciphertext)):
        for delta in (0x01, 0x80):
            changed = bytearray(msg.ciphertext)
            changed[position] ^= delta
            assert refused(dataclasses.replace(msg, ciphertext=bytes(changed))) == "e2e-auth"
    assert refused(dataclasses.replace(msg, ciphertext=msg.ciphertext[:-1])) == "e2e-auth"
    assert refused(dataclasses.replace(msg, ciphertext=msg.ciphertext + b"\0")) == "e2e-auth"


def test_wrong_key() -> None:
    assert refused(seal(), FakeKeys(B, seed=1)) == "e2e-auth"


def test_no_key_at_a_third_node() -> None:
    assert refused(seal(), FakeKeys(C)) == "no-key"


# ---------------------------------------------------------------------------- compression


def test_compression_bomb_is_refused() -> None:
    bomb = raw_deflate(bytes(10 << 20))
    assert len(bomb) < 20_000
    assert refused(sealed_by_hand(bomb, Flags.COMPRESSED)) == "bad-compression"


def test_zlib_wrapped_bomb_is_refused() -> None:
    bomb = zlib.compress(bytes(10 << 20), 9)
    assert refused(sealed_by_hand(bomb, Flags.COMPRESSED)) == "bad-compression"


def test_inflation_limit_is_exact() -> None:
    just_fits = sealed_by_hand(raw_deflate(bytes(MAX_PAYLOAD_BYTES)), Flags.COMPRESSED)
    assert open_at_b(just_fits) == bytes(MAX_PAYLOAD_BYTES)
    one_more = sealed_by_hand(raw_deflate(bytes(MAX_PAYLOAD_BYTES + 1)), Flags.COMPRESSED)
    assert refused(one_more) == "bad-compression"


def test_signed_bomb_is_refused_before_verifying() -> None:
    signature = SIGNERS[A].sign(b"whatever")
    bomb = sealed_by_hand(signature + raw_deflate(bytes(4 << 20)), Flags.SIGNED | Flags.COMPRESSED)
    assert refused(bomb) == "bad-compression"


@pytest.mark.parametrize(
    "stream",
    [
        b"",
        b"\xff\xff\xff",
        raw_deflate(ORDER)[:-3],
        zlib.compress(ORDER),
        raw_deflate(ORDER) + b"x",
    ],
    ids=["empty", "garbage", "truncated", "zlib-header", "trailing-bytes"],
)
def test_bad_compressed_streams(stream: bytes) -> None:
    assert refused(sealed_by_hand(stream, Flags.COMPRESSED)) == "bad-compression"


# ---------------------------------------------------------------------------- real keyring

ROSTER, NODE_KEYS = build_mission(
    {"alpha": ["ops"], "bravo": ["ops"], "charlie": [], "delta": ["ops"]}, random.Random(3), t0=0
)


def keyring(name: str) -> Keyring:
    return Keyring(NODE_KEYS[name], ROSTER)


def address(name: str) -> int:
    entry = ROSTER.by_name(name)
    assert entry is not None
    return entry.address


class Impersonator:
    """A group member sealing as if it were another node (the group key is shared)."""

    def __init__(self, holder: Keyring, pretends: int) -> None:
        self.holder = holder
        self.address = pretends
        self.epoch_seconds = holder.epoch_seconds
        self.roster = holder.roster

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        return self.holder.message_key(src, dst, epoch)

    def sign(self, data: bytes) -> bytes:
        return self.holder.sign(data)

    def verify(self, address: int, data: bytes, signature: bytes) -> bool:
        return self.holder.verify(address, data, signature)


def seal_to(keys: MessageKeys, dst: int, *, sign: bool = False) -> Message:
    return seal_message(
        keys, Submission(dst, ORDER, Precedence.FLASH, 600, sign=sign), seq=1, created=4000
    )  # fmt: skip


def test_pairwise_with_the_real_keyring() -> None:
    alpha, bravo, charlie = keyring("alpha"), keyring("bravo"), keyring("charlie")
    msg = seal_to(alpha, address("bravo"), sign=True)
    opened = open_message(bravo, msg)
    assert opened.payload == ORDER and opened.signed
    assert refused(msg, charlie) == "no-key"


def test_group_with_the_real_keyring() -> None:
    alpha, bravo, charlie = keyring("alpha"), keyring("bravo"), keyring("charlie")
    ops = address("ops")
    msg = seal_to(alpha, ops, sign=True)
    assert open_message(bravo, msg).payload == ORDER
    assert open_message(alpha, msg).payload == ORDER
    assert refused(msg, charlie) == "no-key"
    with pytest.raises(SealError):
        seal_to(charlie, ops)
    # The group key is the same for every sender; the nonce keeps their messages apart.
    from_bravo = seal_to(bravo, ops, sign=True)
    assert from_bravo.ciphertext != msg.ciphertext
    assert open_message(alpha, from_bravo).payload == ORDER


def test_group_messages_are_always_signed() -> None:
    alpha, bravo = keyring("alpha"), keyring("bravo")
    msg = seal_to(alpha, address("ops"))  # no signature asked for
    assert msg.flags & Flags.SIGNED
    assert len(msg.ciphertext) == len(seal_to(alpha, address("bravo")).ciphertext) + 64
    opened = open_message(bravo, msg)
    assert opened.signed and opened.payload == ORDER
    assert not seal_to(alpha, address("bravo")).flags & Flags.SIGNED  # pairwise: when asked


def group_message_by_hand(holder: Keyring, src: int, flags: Flags, plaintext: bytes) -> Message:
    """A message to ops that `holder` seals under the real group key, claiming source `src`."""
    ops = address("ops")
    header = Message(src, ops, 9, Precedence.FLASH, flags, 4000, 600, 0, bytes(16))
    key = holder.message_key(holder.address, ops, epoch_of_ticks(4000, holder.epoch_seconds))
    assert key is not None  # the same group key whoever sends
    ciphertext = aead.seal_message(
        key, src, header.created, header.seq, header.associated_data(), plaintext
    )
    return dataclasses.replace(header, ciphertext=ciphertext)


def test_a_member_cannot_send_to_the_group_as_another_member() -> None:
    """Issue 7: the group key is shared, so only the signature tells who sent."""
    bravo, delta = keyring("bravo"), keyring("delta")
    alpha_address = address("alpha")
    unsigned = group_message_by_hand(bravo, alpha_address, Flags.NONE, ORDER)
    assert refused(unsigned, delta) == "unsigned-group"
    signed_by_bravo = seal_to(Impersonator(bravo, alpha_address), address("ops"))
    assert signed_by_bravo.flags & Flags.SIGNED
    assert refused(signed_by_bravo, delta) == "bad-signature"
    wrong_signature = bravo.sign(b"another message")
    by_hand = group_message_by_hand(bravo, alpha_address, Flags.SIGNED, wrong_signature + ORDER)
    assert refused(by_hand, delta) == "bad-signature"
    assert open_message(delta, seal_to(bravo, address("ops"))).payload == ORDER


class SignsAs:
    """A member's group key with another node's own signing key (a captured node helping)."""

    def __init__(self, key_holder: Keyring, signer: Keyring) -> None:
        self.key_holder = key_holder
        self.signer = signer
        self.address = signer.address
        self.epoch_seconds = signer.epoch_seconds
        self.roster = signer.roster

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        return self.key_holder.message_key(self.key_holder.address, dst, epoch)

    def sign(self, data: bytes) -> bytes:
        return self.signer.sign(data)

    def verify(self, address: int, data: bytes, signature: bytes) -> bool:
        return self.signer.verify(address, data, signature)


def test_a_non_member_cannot_send_to_the_group() -> None:
    """charlie signs for itself, with the group key bravo gave it: still not a member."""
    charlie, delta = keyring("charlie"), keyring("delta")
    msg = seal_to(SignsAs(keyring("bravo"), charlie), address("ops"))
    assert msg.src == address("charlie") and msg.flags & Flags.SIGNED
    assert delta.message_key(msg.src, msg.dst, 0) is None
    assert refused(msg, delta) == "no-key"


def test_trailing_bytes_after_the_final_deflate_block_are_refused() -> None:
    """Issue 7: a valid stream with bytes after its final block, sealed under a real key."""
    alpha, bravo = keyring("alpha"), keyring("bravo")
    header = Message(
        address("alpha"), address("bravo"), 9, Precedence.ROUTINE, Flags.COMPRESSED, 4000,
        600, 0, bytes(16),
    )  # fmt: skip
    key = alpha.message_key(header.src, header.dst, epoch_of_ticks(4000, alpha.epoch_seconds))
    assert key is not None

    def sealed(stream: bytes) -> Message:
        aad = header.associated_data()
        ct = aead.seal_message(key, header.src, header.created, header.seq, aad, stream)
        return dataclasses.replace(header, ciphertext=ct)

    assert open_message(bravo, sealed(raw_deflate(ORDER))).payload == ORDER
    for trailer in (b"\0", b"garbage", raw_deflate(b"a second stream")):
        assert refused(sealed(raw_deflate(ORDER) + trailer), bravo) == "bad-compression"


# ---------------------------------------------------------------------------- receipts


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from([DELIVERED, EXPIRED]),
    st.tuples(st.integers(1, 0xFFFF), st.integers(0, 0xFFFF_FFFF), st.integers(0, 0xFFFF_FFFF)),
    st.integers(0, 0xFFFF_FFFF),
)
def test_receipt_round_trip(kind: int, mid: tuple[int, int, int], at: int) -> None:
    body = ReceiptBody(kind, mid, at)
    assert decode_receipt(encode_receipt(body)) == body


@pytest.mark.parametrize(
    "fields",
    [
        [3, 1, 0, 5, 9],
        [0, 1, 0, 5, 9, 1, 2],  # more messages: only in a notice of eviction (kind 2)
        [2, 1, 0, 5, 9, 1],
        [2, 1, 0, 5, 9, 1, -2],
        [2, 1, 0, 5, 9, *[0, 1] * 32],  # 33 messages: one more than a notice holds
        [0, 0, 0, 5, 9],
        [0, 0x10000, 0, 5, 9],
        [0, 1, -1, 5, 9],
        [0, 1, 0, 2**32, 9],
        [True, 1, 0, 5, 9],
        [0, 1, 0, 5, 9.0],
        [0, 1, 0, 5],
        [0, 1, 0, 5, 9, 9],
        [0, 1, 0, 5, "9"],
        [0, 1, 0, 5, b"9"],
        {"kind": 0},
        7,
    ],
)
def test_malformed_receipts(fields: object) -> None:
    with pytest.raises(FrameDecodeError, match="receipt"):
        decode_receipt(msgpack.packb(fields))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40))
def test_receipt_from_arbitrary_bytes(data: bytes) -> None:
    try:
        body = decode_receipt(data)
    except FrameDecodeError:
        return
    assert decode_receipt(encode_receipt(body)) == body
