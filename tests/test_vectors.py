"""The test vectors of docs/protocol.md, computed here and compared byte for byte.

Each expected value is written out literally below, and must also appear in the document,
so the code, the tests and the specification cannot drift apart silently.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from pathlib import Path

import msgpack
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crypto import schedule as s
from tawan.core.frames import (
    U16,
    U32,
    AckFrame,
    BatchFrame,
    DataFrame,
    Flags,
    FragFrame,
    FragState,
    Frame,
    HelloFlags,
    HelloFrame,
    Message,
    RouteFrame,
    SetupFrame,
    advert_signed_bytes,
    decode_frame,
    decode_message,
    encode_batch_frame,
    encode_frame,
    encode_net_frame,
)
from tawan.core.linkauth import LinkGuard
from tawan.core.precedence import Precedence
from tawan.core.receipts import DELIVERED, EVICTED, ReceiptBody, decode_receipt, encode_receipt
from tawan.core.sealing import open_message, seal_message
from tawan.core.specs import Submission
from tawan.core.transmitter import BATCH_OVERHEAD, DATA_OVERHEAD, FRAG_OVERHEAD

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

ROOT = bytes(range(32))  # pair root of nodes 1 and 2, epoch 0
ROOT23 = bytes(range(32, 64))  # pair root of nodes 2 and 3, epoch 0
GROUP_ROOT = bytes(range(64, 96))
PAYLOAD = b"ATTACK AT DAWN"

RATCHET_1 = "7edd0fc213a3728427a1fa2e00a5b782b9450e411df50dd48810914fda0c5341"
MSG_KEY_1_2 = "b96db04c78b6e4dab95a842bd7ba2e3d92b43ec6a8b578f4c3480ca8d01bc2b4"
LINK_KEY_2_3 = "620ff0eed6d13c494eda70d684b98da333ba93a5068d7ba18502e3f62233645f"
LINK_KEY_3_2 = "ab6cafb9e789c59453d68707237c71a9e0bbd608cd0dfbeaa0c2d291bb99b844"
GROUP_KEY_9 = "f0c6bb73fb91858394df134d02df7737a5efccad98f28dd52417d4d6f05ad92f"
NONCE_1_1800_5 = "000100000000070800000005"
PAIR_ROOT = "2b3d6f4dd44a1cda27b63b8e2dbcea457f5702915391066e547b3f39e41b249a"
AAD = "01960102050bcd0708cd0e10"
CIPHERTEXT = "37aecc7d5045084f4c953882b3fb2147f2b4c6540ede4cb556c04b15e472"
ENCODED_MESSAGE = (
    "980102050bcd0708cd0e1001c41e37aecc7d5045084f4c953882b3fb2147f2b4c6540ede4cb556c04b15e472"
)
DATA = (
    "109a02cd03e80102050bcd0708cd0e1001c41e37aecc7d5045084f4c953882b3fb2147f2b4c6540ede4cb556"
    "c04b15e472d2901e70946f4436"
)
ACK = "129402cd03e99401000501904304c9573eae9990"
ACK_PARTIAL = "129402cd03ed9094010006c4010538e1266a1e9e842f"
HELLO = "139802cd03eace0001e2400000000100a2b5a6f4bae129c7"
HELLO_ROOM = "139802cd03eece0001e240000000040528a7a7ab89a0c81f"
FRAG = "119802cd03eb0100050002c4030102031e05611f05eec518"
ROUTE = (
    "149602cd03ec0207940101030ac440e2b2fc755173b51df78b0532b42a888cb6f642f29e57c69dd0961349f4bc"
    "6949e49654dd2fa76aea902526ce3917884534097ce53322c75c3567301ad74c440e1782f38cea2a364b"
)
ADVERT_SIGNED = "746177616e2f6164766572742f7631930207940101030a"
ADVERT_SIGNATURE = ROUTE[ROUTE.index("c440") + 4 :][:128]
RECEIPT = "9500010005cd070d"
NOTICE = "9902010005cd070d00060009"

ORDER = (
    b"MOVE TO GRID 4519 0600. HOLD UNTIL RELIEVED. MOVE TO GRID 4519 0600. HOLD UNTIL RELIEVED."
)
SIGNING_SEED = bytes(range(96, 128))
SIGNER_PUBLIC = "174553b456dddfc6908ecab1c101fe6ab21e2baa0617795b7d43a63482993fd5"
DEFLATED = (
    "f3f50f735508f157700ff27451303135b45430303330d053f0f0f7715108f50bf1f4510872f5f1740d7375d1"
    "53f025413100"
)
SIGNED_AAD = "019601020631cd070dcd0258"
SIGNATURE = (
    "232406840ef8be302e4296b9614d08170db5c5977a2a0e212b4c1f8c1982c40b99d9d23a5fd3ebaecef59a36"
    "01ac04929af68bedf0c72615f18410360a521a07"
)
SIGNED_CIPHERTEXT = (
    "0ededdffde9a14aeac457ff9e29d31383b456ef549c0a63db07dd76395909eb3faffc786d85a2999e39818e0"
    "710721c9ee266b6ffce2d43fc4e9dd0872d755abe4ed612e5801aeac6d0a0e1af5fb15abba2b0fb7f172b2b7"
    "6484c05fb5b0cf06e2832df98d244afea3b17ba1d52a2504311123420e4f6fc9eeb79d8287e95c5f0bc9"
)
SIGNED_RELAYED = (
    "9801020631cd070dcd025801c482" + SIGNED_CIPHERTEXT
)  # the message of 14.3 after one hop, as relay 2 stores it
BATCH = "179302cd03ef9298" + ENCODED_MESSAGE[2:] + SIGNED_RELAYED + "0bbbc27a4779b3e9"
NET_ARRAY = "189a029403cd03f00128" + ENCODED_MESSAGE[2:]
NET_TAGS = "8dd25525f4944e70 17722a1af5168535"
NET = NET_ARRAY + NET_TAGS.replace(" ", "")

ALL_VECTORS = (
    RATCHET_1,
    MSG_KEY_1_2,
    LINK_KEY_2_3,
    LINK_KEY_3_2,
    GROUP_KEY_9,
    NONCE_1_1800_5,
    PAIR_ROOT,
    AAD,
    CIPHERTEXT,
    ENCODED_MESSAGE,
    DATA,
    ACK,
    ACK_PARTIAL,
    HELLO,
    HELLO_ROOM,
    FRAG,
    ROUTE,
    ADVERT_SIGNED,
    RECEIPT,
    NOTICE,
    SIGNER_PUBLIC,
    DEFLATED,
    SIGNED_AAD,
    SIGNATURE,
    SIGNED_CIPHERTEXT,
    SIGNED_RELAYED,
    BATCH,
    NET_ARRAY,
    *NET_TAGS.split(),
)


def header() -> Message:
    """The message of the vectors as its source builds it, before sealing."""
    return Message(1, 2, 5, Precedence.FLASH, Flags.RECEIPT_REQUESTED, 1800, 3600, 0, bytes(16))


def relayed() -> Message:
    """The sealed message after one hop."""
    aad = header().associated_data()
    ct = s.seal(s.message_key(ROOT, 1, 2), s.message_nonce(1, 1800, 5), PAYLOAD, aad)
    return Message(1, 2, 5, Precedence.FLASH, Flags.RECEIPT_REQUESTED, 1800, 3600, 1, ct)


def tagged(frame: Frame) -> bytes:
    encoded = encode_frame(frame)
    return encoded + s.link_tag(s.link_key(ROOT23, 2, 3), encoded)


OTHER_FRAMES: list[tuple[Frame, str]] = [
    (AckFrame(2, 1001, ((1, 0, 5),)), ACK),
    (AckFrame(2, 1005, (), (FragState((1, 0, 6), b"\x05"),)), ACK_PARTIAL),
    (HelloFrame(2, 1002, 123456, 0, 0, 0, HelloFlags.REPLY_REQUESTED), HELLO),
    (HelloFrame(2, 1006, 123456, 0, 0, 0, HelloFlags.ROOM, 5), HELLO_ROOM),
    (FragFrame(2, 1003, (1, 0, 5), 0, 2, b"\x01\x02\x03"), FRAG),
    (RouteFrame(2, 1004, 2, 7, ((1, 1), (3, 10)), bytes.fromhex(ADVERT_SIGNATURE)), ROUTE),
]


def test_route_signature_is_the_origins() -> None:
    """The ROUTE vector's signature: node 2's (the signing key of 14.3) over the advert."""
    signed = advert_signed_bytes(2, 7, ((1, 1), (3, 10)))
    assert signed.hex() == ADVERT_SIGNED
    assert ADVERT_SIGNED in doc_text()
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(SIGNER_PUBLIC))
    public.verify(bytes.fromhex(ADVERT_SIGNATURE), signed)  # raises if it does not verify


# ---------------------------------------------------------------------------- key schedule


def test_key_schedule() -> None:
    assert s.ratchet(ROOT, 1).hex() == RATCHET_1
    assert s.message_key(ROOT, 1, 2).hex() == MSG_KEY_1_2
    assert s.link_key(ROOT23, 2, 3).hex() == LINK_KEY_2_3
    assert s.link_key(ROOT23, 3, 2).hex() == LINK_KEY_3_2
    assert s.group_key(GROUP_ROOT, 9).hex() == GROUP_KEY_9
    assert s.message_nonce(1, 1800, 5).hex() == NONCE_1_1800_5


def test_pair_root() -> None:
    transcript = hashlib.sha256(b"").digest()
    root = s.pair_root(bytes(range(8)), 2, 1, b"\x11" * 32, b"\x22" * 32, transcript)
    assert root.hex() == PAIR_ROOT
    # The two addresses are sorted: either end computes the same root.
    assert s.pair_root(bytes(range(8)), 1, 2, b"\x11" * 32, b"\x22" * 32, transcript) == root


def test_labels_are_the_documented_ones() -> None:
    """The HKDF info strings, rebuilt from the document's description."""
    assert s.ratchet(ROOT, 1) == s.hkdf(ROOT, b"tawan/ratchet/v1" + (1).to_bytes(4, "big"))
    assert s.message_key(ROOT, 1, 2) == s.hkdf(ROOT, b"tawan/msg/v1" + bytes([0, 1, 0, 2]))
    assert s.link_key(ROOT23, 2, 3) == s.hkdf(ROOT23, b"tawan/link/v1" + bytes([0, 2, 0, 3]))
    assert s.group_key(GROUP_ROOT, 9) == s.hkdf(GROUP_ROOT, b"tawan/group/v1" + bytes([0, 9]))
    assert s.hkdf(ROOT, b"x") == s.hkdf(ROOT, b"x", salt=bytes(32))  # no salt: 32 zero bytes
    nonce = s.message_nonce(0x0102, 0x03040506, 0x0708090A)
    assert nonce == bytes.fromhex("0102" + "0000" + "03040506" + "0708090a")
    assert len(s.link_tag(bytes(32), b"")) == s.LINK_TAG_BYTES == 8


# ---------------------------------------------------------------------------- message


def test_sealed_message() -> None:
    aad = header().associated_data()
    assert aad.hex() == AAD
    assert aad == bytes([1]) + msgpack.packb([1, 2, 5, 0x0B, 1800, 3600])
    ct = s.seal(s.message_key(ROOT, 1, 2), s.message_nonce(1, 1800, 5), PAYLOAD, aad)
    assert ct.hex() == CIPHERTEXT
    assert len(ct) == len(PAYLOAD) + s.AEAD_TAG_BYTES
    assert relayed().encode().hex() == ENCODED_MESSAGE
    assert decode_message(bytes.fromhex(ENCODED_MESSAGE)) == relayed()


class NoGroups:
    def is_group(self, address: int) -> bool:
        return False


class VectorKeys:
    """Node `address` of the vectors, holding the epoch-0 root of nodes 1 and 2."""

    epoch_seconds = 3600
    roster = NoGroups()

    def __init__(self, address: int) -> None:
        self.address = address

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        if {src, dst} != {1, 2} or epoch != 0:
            return None
        return s.message_key(ROOT, src, dst)

    def sign(self, data: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(SIGNING_SEED).sign(data)

    def verify(self, address: int, data: bytes, signature: bytes) -> bool:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(SIGNER_PUBLIC))
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return False
        return address == 1


def test_sealing_module_reproduces_the_vector() -> None:
    msg = seal_message(
        VectorKeys(1), Submission(2, PAYLOAD, Precedence.FLASH, 3600, receipt=True), seq=5,
        created=1800,
    )  # fmt: skip
    assert msg.ciphertext.hex() == CIPHERTEXT
    assert msg.with_hops(1) == relayed()
    opened = open_message(VectorKeys(2), relayed())
    assert opened.payload == PAYLOAD
    assert not opened.signed and not opened.control


def signed_header(ciphertext: bytes = bytes(16)) -> Message:
    flags = Flags.SIGNED | Flags.COMPRESSED
    return Message(1, 2, 6, Precedence.PRIORITY, flags, 1805, 600, 0, ciphertext)


def test_signed_compressed_message() -> None:
    private = Ed25519PrivateKey.from_private_bytes(SIGNING_SEED)
    assert private.public_key().public_bytes_raw().hex() == SIGNER_PUBLIC
    deflated = bytes.fromhex(DEFLATED)
    assert zlib.decompressobj(-12).decompress(deflated) == ORDER
    aad = signed_header().associated_data()
    assert aad.hex() == SIGNED_AAD
    signature = private.sign(aad + ORDER)
    assert signature.hex() == SIGNATURE
    nonce = s.message_nonce(1, 1805, 6)
    ct = s.seal(s.message_key(ROOT, 1, 2), nonce, signature + deflated, aad)
    assert ct.hex() == SIGNED_CIPHERTEXT
    assert len(ct) == 64 + len(deflated) + 16 == 130
    opened = open_message(VectorKeys(2), signed_header(ct))
    assert opened.payload == ORDER
    assert opened.signed


def test_signed_compressed_message_from_the_sealing_module() -> None:
    """The sealing module opens its own output the same way (its compressor may differ)."""
    msg = seal_message(
        VectorKeys(1), Submission(2, ORDER, Precedence.PRIORITY, 600, sign=True), seq=6,
        created=1805,
    )  # fmt: skip
    assert msg.associated_data().hex() == SIGNED_AAD
    assert open_message(VectorKeys(2), msg).payload == ORDER


# ---------------------------------------------------------------------------- frames


def test_data_frame() -> None:
    assert tagged(DataFrame(2, 1000, relayed())).hex() == DATA


def test_data_frame_decodes_and_authenticates_at_the_next_hop() -> None:
    def link_key(sender: int, receiver: int, epoch: int) -> bytes | None:
        return s.link_key(ROOT23, sender, receiver) if {sender, receiver} == {2, 3} else None

    node3 = LinkGuard(3, link_key)
    frame = node3.unprotect(bytes.fromhex(DATA), 0)
    assert frame == DataFrame(2, 1000, relayed())
    for other, expected in OTHER_FRAMES:
        assert node3.unprotect(bytes.fromhex(expected), 0) == other


@pytest.mark.parametrize(("frame", "expected"), OTHER_FRAMES)
def test_other_frames(frame: Frame, expected: str) -> None:
    assert tagged(frame).hex() == expected
    data = bytes.fromhex(expected)
    assert decode_frame(data[: -s.LINK_TAG_BYTES]) == frame


def signed_relayed() -> Message:
    return signed_header(bytes.fromhex(SIGNED_CIPHERTEXT)).with_hops(1)


def test_batch_frame() -> None:
    """14.7: the two messages of 14.2 and 14.3 in one BATCH, from their stored encodings
    as from the frame object, and decoded back at node 3 (tag checked)."""
    assert signed_relayed().encode().hex() == SIGNED_RELAYED
    frame = BatchFrame(2, 1007, (relayed(), signed_relayed()))
    assert tagged(frame).hex() == BATCH
    fast = encode_batch_frame(2, 1007, [bytes.fromhex(ENCODED_MESSAGE), signed_relayed().encode()])
    assert fast.hex() == BATCH[: -2 * s.LINK_TAG_BYTES]
    assert len(BATCH) // 2 == 203 == 12 + 44 + 147  # 12 of overhead (section 13)
    assert len(DATA) // 2 - len(ENCODED_MESSAGE) // 2 == 13  # a DATA frame's
    assert decode_frame(bytes.fromhex(BATCH)[: -s.LINK_TAG_BYTES]) == frame

    def link_key(sender: int, receiver: int, epoch: int) -> bytes | None:
        return s.link_key(ROOT23, sender, receiver) if {sender, receiver} == {2, 3} else None

    assert LinkGuard(3, link_key).unprotect(bytes.fromhex(BATCH), 0) == frame
    assert "The frame (203 bytes)" in doc_text()


def test_net_frame() -> None:
    """14.8: the message of 14.2 from relay 2 to nodes 3 and 1 in one NET frame, each
    receiver taking it as the DATA frame of its own counter."""
    keys = {frozenset((2, 3)): ROOT23, frozenset((1, 2)): ROOT}

    def link_key(sender: int, receiver: int, epoch: int) -> bytes | None:
        root = keys.get(frozenset((sender, receiver)))
        return None if root is None or epoch else s.link_key(root, sender, receiver)

    encoded = encode_net_frame(2, [(3, 1008), (1, 40)], bytes.fromhex(ENCODED_MESSAGE))
    assert encoded.hex() == NET_ARRAY
    assert LinkGuard(2, link_key).protect_net(encoded, [3, 1], 0).hex() == NET
    assert len(NET) // 2 == 69 == len(DATA) // 2 + 12
    frame = decode_message(bytes.fromhex(ENCODED_MESSAGE))
    assert LinkGuard(3, link_key).unprotect(bytes.fromhex(NET), 0) == DataFrame(2, 1008, frame)
    assert LinkGuard(1, link_key).unprotect(bytes.fromhex(NET), 0) == DataFrame(2, 40, frame)
    assert "The frame is 69 bytes" in doc_text()


def test_receipt_body() -> None:
    body = ReceiptBody(DELIVERED, (1, 0, 5), 1805)
    assert encode_receipt(body).hex() == RECEIPT
    assert decode_receipt(bytes.fromhex(RECEIPT)) == body


def test_notice_of_eviction_body() -> None:
    body = ReceiptBody(EVICTED, (1, 0, 5), 1805, ((1, 0, 6), (1, 0, 9)))
    assert encode_receipt(body).hex() == NOTICE
    assert decode_receipt(bytes.fromhex(NOTICE)) == body
    assert body.mids == ((1, 0, 5), (1, 0, 6), (1, 0, 9))


# ---------------------------------------------------------------------------- the document


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("value", ALL_VECTORS)
def test_vector_appears_in_the_document(value: str) -> None:
    assert value in doc_text()


def test_annotated_data_frame_matches() -> None:
    """The annotation's byte column concatenates to the frame, at the stated offsets."""
    text = doc_text()
    start = text.index("Annotated DATA frame")
    block = text[text.index("```", start) + 3 :]
    block = block[: block.index("```")]
    rows = [line.split() for line in block.strip().splitlines()[1:]]
    joined = ""
    for row in rows:
        offsets, hex_bytes = row[0], row[1]
        first, _, last = offsets.partition("-")
        assert int(first) == len(joined) // 2, row
        joined += hex_bytes
        assert int(last or first) == len(joined) // 2 - 1, row
    assert joined == DATA
    assert f"Annotated DATA frame ({len(DATA) // 2} bytes)" in text


# ---------------------------------------------------------------------------- overhead


def data_frame_size(sender: int, counter: int, message: Message) -> int:
    return len(encode_frame(DataFrame(sender, counter, message))) + s.LINK_TAG_BYTES


def hundred_byte_message(**fields: int) -> Message:
    values = {"src": 1, "dst": 2, "seq": 5, "created": 1800, "ttl": 3600, "hops": 1}
    values.update(fields)
    return Message(
        values["src"], values["dst"], values["seq"], Precedence.FLASH,
        Flags.RECEIPT_REQUESTED, values["created"], values["ttl"], values["hops"],
        bytes(100 + s.AEAD_TAG_BYTES),
    )  # fmt: skip


def test_overhead_table() -> None:
    """The figures of the overhead section, measured with the real encoder."""
    typical = data_frame_size(2, 1000, hundred_byte_message())
    smallest = data_frame_size(2, 0, hundred_byte_message(seq=0, created=100, ttl=60))
    day = data_frame_size(300, 70000, hundred_byte_message(seq=70000, created=90000, ttl=86400))
    top = hundred_byte_message(src=U16, dst=U16, seq=U32, created=U32, ttl=U32, hops=255)
    largest = data_frame_size(U16, U32, top)
    signed = data_frame_size(2, 1000, hundred_byte_message()) + 64
    assert (smallest, typical, day, largest) == (137, 143, 155, 160)
    assert signed == 207
    ack = len(encode_frame(AckFrame(2, 1001, ((1, 0, 5),)))) + s.LINK_TAG_BYTES
    assert ack == 20
    frag = FragFrame(2, 1003, (1, 0, 5), 0, 2, bytes(200))
    assert len(encode_frame(frag)) + s.LINK_TAG_BYTES - 200 == 21
    frag = FragFrame(U16, U32, (U16, U32, U32), 65533, 65534, bytes(1000))
    assert len(encode_frame(frag)) + s.LINK_TAG_BYTES - 1000 == 40
    setup = SetupFrame(1, 0, 1, 2, 0, 0, bytes(1088), bytes(64))
    assert len(encode_frame(setup)) + s.LINK_TAG_BYTES == 1173
    text = doc_text()
    overhead = text[text.index("## 13. Overhead") : text.index("## 14. Test vectors")]
    overhead = " ".join(overhead.split())
    for figure in (
        f"**{typical}**",
        f"**{smallest}-{largest}**",
        f"**{typical - 100}**",
        f"**{smallest - 100}-{largest - 100}**",
        f"is {day} bytes",
        f"ACK frame of {ack} bytes",
        "21 bytes beyond its chunk",
        "40 at most",
        "BATCH costs 12 bytes beyond its messages",
        "in a DATA frame of its own costs 13",
    ):
        assert figure in overhead, figure
    assert "1173 bytes or more" in text


def test_engine_size_bounds_cover_the_worst_case() -> None:
    """The engine sizes fragments with fixed worst-case overheads (docs section 11)."""
    message = hundred_byte_message(src=U16, dst=U16, seq=U32, created=U32, ttl=U32, hops=255)
    data = encode_frame(DataFrame(U16, U32, message)) + bytes(s.LINK_TAG_BYTES)
    assert len(data) - len(message.encode()) <= DATA_OVERHEAD == 24
    frag = FragFrame(U16, U32, (U16, U32, U32), 65534, 65535, bytes(60000))
    assert len(encode_frame(frag)) + s.LINK_TAG_BYTES - 60000 <= FRAG_OVERHEAD == 48
    batch = BatchFrame(U16, U32, (message,) * 64)
    data = encode_frame(batch) + bytes(s.LINK_TAG_BYTES)
    assert len(data) - 64 * len(message.encode()) <= BATCH_OVERHEAD == 24
    text = doc_text()
    assert "`len(encoded) + 24 <= MTU`" in text
    assert "`size = MTU - 48`" in text
    assert "len(encoded) + 24 <= MTU`" in text.split("Batching (4.8)")[1]


def test_no_stray_hex_in_the_vectors_section() -> None:
    """Every long hex string of the vectors section is one this file checks."""
    text = doc_text()
    section = text[text.index("## 14. Test vectors") :]
    known = {
        *ALL_VECTORS,
        ROOT.hex(),
        ROOT23.hex(),
        hashlib.sha256(b"").hexdigest(),
        bytes(range(8)).hex(),  # the mission id of the pair-root vector
        "37aecc7d5045084f4c953882b3fb",
        "2147f2b4c6540ede4cb556c04b15e472",
        "d2901e70946f4436",
    }
    for found in re.findall(r"\b[0-9a-f]{16,}\b", section):
        assert found in known, found
