"""The wire format: every frame round-trips, and untrusted bytes fail only as FrameDecodeError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tawan.core.frames import (
    KEM_CIPHERTEXT_BYTES,
    MAX_BATCH,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    SIGNATURE_BYTES,
    U16,
    U32,
    VERSION,
    AckFrame,
    BatchFrame,
    DataFrame,
    Flags,
    FragFrame,
    FragState,
    Frame,
    FrameDecodeError,
    FrameType,
    HelloFlags,
    HelloFrame,
    Message,
    RevokeFrame,
    RouteFrame,
    SetupFrame,
    decode_frame,
    decode_message,
    encode_batch_frame,
    encode_data_frame,
    encode_frame,
)
from tawan.core.precedence import Precedence

SIG = bytes(SIGNATURE_BYTES)
SEVENTEEN_BEARERS = [n for i in range(17) for n in (3, b"b%02d" % i, 1)]
FAST = settings(max_examples=60, deadline=None)
FUZZ = settings(max_examples=250, deadline=None)

# ---------------------------------------------------------------------------- strategies

addresses = st.integers(1, U16)
u32s = st.one_of(st.integers(0, 300), st.integers(0, U32))  # small values exercise fixints
mids = st.tuples(addresses, u32s, u32s)

messages = st.builds(
    Message,
    src=addresses,
    dst=addresses,
    seq=u32s,
    precedence=st.sampled_from(Precedence),
    flags=st.integers(0, 15).map(Flags),
    created=u32s,
    ttl=st.integers(1, U32),
    hops=st.integers(0, 255),
    ciphertext=st.binary(min_size=16, max_size=300),
)


@st.composite
def frag_frames(draw: st.DrawFn) -> FragFrame:
    count = draw(st.one_of(st.integers(2, 20), st.integers(2, 65535)))
    return FragFrame(
        draw(addresses),
        draw(u32s),
        draw(mids),
        draw(st.integers(0, count - 1)),
        count,
        draw(st.binary(min_size=1, max_size=200)),
    )


frag_states = st.builds(FragState, mids, st.binary(min_size=1, max_size=40))

data_frames = st.builds(DataFrame, addresses, u32s, messages)
batch_frames = st.builds(
    BatchFrame,
    addresses,
    u32s,
    st.one_of(
        st.lists(messages, min_size=2, max_size=4),
        st.lists(messages, min_size=14, max_size=MAX_BATCH),  # past a fixarray's 15
    ).map(tuple),
)
ack_frames = st.builds(
    AckFrame,
    addresses,
    u32s,
    st.lists(mids, max_size=20).map(tuple),
    st.lists(frag_states, max_size=5).map(tuple),
)
hello_frames = st.builds(
    HelloFrame,
    addresses,
    u32s,
    u32s,
    u32s,
    u32s,
    st.integers(0, 1000),
    st.sampled_from(HelloFlags),
)
route_frames = st.builds(
    RouteFrame,
    addresses,
    u32s,
    addresses,
    u32s,
    st.lists(st.tuples(addresses, st.integers(1, U16)), max_size=20, unique_by=lambda p: p[0])
    .map(lambda adjacency: tuple(sorted(adjacency))),
    st.binary(min_size=SIGNATURE_BYTES, max_size=SIGNATURE_BYTES),
    st.lists(
        st.tuples(addresses, st.from_regex(r"[a-z0-9][a-z0-9-]{0,31}", fullmatch=True),
                  st.integers(1, U16)),
        max_size=8, unique_by=lambda link: link[:2],
    ).map(lambda links: tuple(sorted(links))),
)  # fmt: skip
revoke_frames = st.builds(RevokeFrame, addresses, u32s, st.binary(min_size=1, max_size=200))
setup_frames = st.builds(
    SetupFrame,
    addresses,
    u32s,
    addresses,
    addresses,
    u32s,
    st.integers(0, 255),
    st.binary(min_size=KEM_CIPHERTEXT_BYTES, max_size=KEM_CIPHERTEXT_BYTES),
    st.binary(min_size=SIGNATURE_BYTES, max_size=SIGNATURE_BYTES),
)
frames: st.SearchStrategy[Frame] = st.one_of(
    data_frames,
    frag_frames(),
    ack_frames,
    hello_frames,
    route_frames,
    setup_frames,
    revoke_frames,
    batch_frames,
)

# Anything msgpack can carry, the types the format forbids included.
msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.binary(max_size=20),
        st.text(max_size=5),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.integers(0, 5), children, max_size=3),
    ),
    max_leaves=20,
)


def kind(ftype: int, version: int = VERSION) -> bytes:
    return bytes([(version << 4) | ftype])


def only_decode_errors(data: bytes) -> None:
    """Decode; anything but a frame or FrameDecodeError fails the test. A frame that does
    decode re-encodes canonically to a frame equal to it."""
    try:
        frame = decode_frame(data)
    except FrameDecodeError:
        return
    assert decode_frame(encode_frame(frame)) == frame


def only_message_errors(data: bytes) -> None:
    try:
        msg = decode_message(data)
    except FrameDecodeError:
        return
    assert decode_message(msg.encode()) == msg


# ---------------------------------------------------------------------------- round trips


@FAST
@given(frames)
def test_round_trip(frame: Frame) -> None:
    encoded = encode_frame(frame)
    assert encoded[0] == (VERSION << 4) | frame.TYPE
    assert decode_frame(encoded) == frame


@pytest.mark.parametrize(
    "strategy",
    [
        data_frames,
        frag_frames(),
        ack_frames,
        hello_frames,
        route_frames,
        setup_frames,
        revoke_frames,
        batch_frames,
    ],
    ids=[t.name for t in FrameType if t < FrameType.NET],  # NET, NET_FRAG: test_net_frames.py
)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_round_trip_of_each_type(strategy: st.SearchStrategy[Frame], data: st.DataObject) -> None:
    frame = data.draw(strategy)
    assert type(decode_frame(encode_frame(frame))) is type(frame)
    assert decode_frame(encode_frame(frame)) == frame


@FAST
@given(frames, u32s)
def test_counter_override(frame: Frame, counter: int) -> None:
    decoded = decode_frame(encode_frame(frame, counter))
    assert decoded.counter == counter
    assert decoded.sender == frame.sender


@FAST
@given(messages)
def test_message_round_trip(msg: Message) -> None:
    assert decode_message(msg.encode()) == msg
    assert msg.encode()[0] == 0x98
    assert msg.with_hops(7).hops == 7
    assert msg.with_hops(7).associated_data() == msg.associated_data()


@FAST
@given(addresses, u32s, messages)
def test_encode_data_frame_equals_encode_frame(sender: int, counter: int, msg: Message) -> None:
    fast = encode_data_frame(sender, counter, msg.encode())
    assert fast == encode_frame(DataFrame(sender, counter, msg))
    assert fast == encode_frame(DataFrame(sender, 0, msg), counter)


def test_encode_data_frame_refuses_other_encodings() -> None:
    with pytest.raises(ValueError, match="array of 8"):
        encode_data_frame(1, 0, msgpack.packb([1, 2, 3]))


@FAST
@given(addresses, u32s, st.lists(messages, min_size=2, max_size=MAX_BATCH))
def test_encode_batch_frame_equals_encode_frame(
    sender: int, counter: int, msgs: list[Message]
) -> None:
    fast = encode_batch_frame(sender, counter, [msg.encode() for msg in msgs])
    assert fast == encode_frame(BatchFrame(sender, counter, tuple(msgs)))
    assert fast == encode_frame(BatchFrame(sender, 0, tuple(msgs)), counter)


def test_encode_batch_frame_refuses_what_is_no_batch() -> None:
    one = Message(1, 2, 5, Precedence.FLASH, Flags.NONE, 1800, 3600, 0, bytes(16)).encode()
    with pytest.raises(ValueError, match="array of 8"):
        encode_batch_frame(1, 0, [one, msgpack.packb([1, 2, 3])])
    for count in (0, 1, MAX_BATCH + 1):
        with pytest.raises(ValueError, match=f"expected 2..{MAX_BATCH} messages, found {count}"):
            encode_batch_frame(1, 0, [one] * count)
        with pytest.raises(ValueError, match=f"expected 2..{MAX_BATCH} messages, found {count}"):
            BatchFrame(1, 0, (decode_message(one),) * count)


def test_associated_data_layout() -> None:
    msg = Message(1, 2, 5, Precedence.FLASH, Flags.RECEIPT_REQUESTED, 1800, 3600, 0, bytes(16))
    assert msg.associated_data() == bytes([VERSION]) + msgpack.packb(
        [1, 2, 5, 3 | 1 << 3, 1800, 3600]
    )
    assert msg.mid(3600) == (1, 0, 5)
    assert msg.mid(60) == (1, 3, 5)  # created 1800 ticks = 180 s = minute 3
    assert msg.expires == 180 + 3600  # mission seconds


def test_pf_field_packs_precedence_and_flags() -> None:
    for precedence in Precedence:
        for bits in range(16):
            msg = Message(1, 2, 0, precedence, Flags(bits), 0, 1, 0, bytes(16))
            pf = msgpack.unpackb(msg.encode())[3]
            assert pf == precedence | bits << 3
            decoded = decode_message(msg.encode())
            assert decoded.precedence is precedence and decoded.flags == bits


def test_fragment_state_bitmap() -> None:
    state = FragState((1, 0, 0), bytes([0b0000_0101, 0b1000_0000]))
    assert [i for i in range(20) if state.has(i)] == [0, 2, 15]


def test_largest_values_fit() -> None:
    frag = FragFrame(U16, U32, (U16, U32, U32), 65534, 65535, b"x")
    assert decode_frame(encode_frame(frag)) == frag
    ack = AckFrame(U16, U32, ((U16, U32, U32),) * 256, (FragState((1, 0, 0), b"\xff" * 8192),))
    assert decode_frame(encode_frame(ack)) == ack


# ---------------------------------------------------------------------------- untrusted bytes


@FUZZ
@given(st.binary(max_size=200))
@example(b"")
@example(b"\x10")
@example(b"\x10\xc1")  # msgpack's reserved byte
@example(b"\x10" + b"\x91" * 5000)  # deep nesting
@example(b"\x10\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items
@example(b"\x10\xc6\xff\xff\xff\xff")  # a bin claiming 4 GB
def test_arbitrary_bytes(data: bytes) -> None:
    only_decode_errors(data)


@FUZZ
@given(st.sampled_from(range(16)), st.binary(max_size=200))
def test_arbitrary_bytes_behind_a_valid_kind(ftype: int, data: bytes) -> None:
    only_decode_errors(kind(ftype) + data)


SOME = settings(max_examples=100, deadline=None)


@SOME
@given(st.sampled_from(FrameType), st.lists(msgpack_values, max_size=12))
def test_arbitrary_msgpack_arrays(ftype: FrameType, fields: list[object]) -> None:
    only_decode_errors(kind(ftype) + msgpack.packb(fields))


@SOME
@given(st.lists(msgpack_values, max_size=10))
def test_arbitrary_message_arrays(fields: list[object]) -> None:
    only_message_errors(msgpack.packb(fields))


@st.composite
def one_field_replaced(draw: st.DrawFn) -> bytes:
    """A valid frame with one field, or one item of a list field, replaced by anything."""
    encoded = encode_frame(draw(frames))
    fields = msgpack.unpackb(encoded[1:])
    at = draw(st.integers(0, len(fields) - 1))
    value = draw(msgpack_values)
    if isinstance(fields[at], list) and fields[at] and draw(st.booleans()):
        fields[at][draw(st.integers(0, len(fields[at]) - 1))] = value
    else:
        fields[at] = value
    return encoded[:1] + msgpack.packb(fields)


@SOME
@given(one_field_replaced())
def test_valid_frames_with_one_field_replaced(data: bytes) -> None:
    only_decode_errors(data)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_message_bytes(data: bytes) -> None:
    only_message_errors(data)
    only_message_errors(b"\x98" + data)


@st.composite
def mutated(draw: st.DrawFn, encoded: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(encoded))
    how = draw(st.sampled_from(["flip", "xor", "truncate", "extend", "insert", "delete"]))
    at = draw(st.integers(0, len(data) - 1))
    if how == "flip":
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif how == "xor":
        data[at] ^= draw(st.integers(1, 255))
    elif how == "truncate":
        del data[at:]
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=8))
    elif how == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=4))
    else:
        del data[at : at + draw(st.integers(1, 4))]
    return bytes(data)


@FUZZ
@given(mutated(frames.map(encode_frame)))
def test_mutated_frames(data: bytes) -> None:
    only_decode_errors(data)


@FUZZ
@given(mutated(messages.map(Message.encode)))
def test_mutated_messages(data: bytes) -> None:
    only_message_errors(data)


@settings(max_examples=20, deadline=None)
@given(frames)
def test_every_truncation_fails(frame: Frame) -> None:
    encoded = encode_frame(frame)
    for end in range(len(encoded)):
        with pytest.raises(FrameDecodeError):
            decode_frame(encoded[:end])
    with pytest.raises(FrameDecodeError, match="not valid msgpack"):
        decode_frame(encoded + b"\x00")


# ---------------------------------------------------------------------------- specific errors


def hello_fields(**changes: object) -> list[object]:
    fields: dict[str, object] = {
        "sender": 2,
        "counter": 7,
        "time": 123456,
        "echo": 0,
        "held": 0,
        "loss": 0,
        "flags": 1,
        "sent": 0,
    }
    fields.update(changes)
    return list(fields.values())


def message_fields(**changes: object) -> list[object]:
    fields: dict[str, object] = {
        "src": 1,
        "dst": 2,
        "seq": 5,
        "pf": 0x0B,
        "created": 1800,
        "ttl": 3600,
        "hops": 1,
        "ciphertext": bytes(16),
    }
    fields.update(changes)
    return list(fields.values())


def data_frame(**changes: object) -> bytes:
    return kind(FrameType.DATA) + msgpack.packb([2, 1000, *message_fields(**changes)])


def batch(*items: object) -> bytes:
    return kind(FrameType.BATCH) + msgpack.packb([2, 1000, list(items)])


def hello(**changes: object) -> bytes:
    return kind(FrameType.HELLO) + msgpack.packb(hello_fields(**changes))


MALFORMED = [
    # frame level
    (b"", "frame: expected 2..65535 bytes, found 0"),
    (b"\x13", "frame: expected 2..65535 bytes, found 1"),
    (kind(3) + bytes(MAX_FRAME_BYTES), "frame: expected 2..65535 bytes, found 65536"),
    (kind(3, version=2) + msgpack.packb(hello_fields()), "frame version: expected 1, found 2"),
    (kind(3, version=0) + msgpack.packb(hello_fields()), "frame version: expected 1, found 0"),
    (kind(10) + msgpack.packb(hello_fields()), "frame type: unknown type 10"),
    (kind(15) + msgpack.packb(hello_fields()), "frame type: unknown type 15"),
    (kind(3) + msgpack.packb(7), "frame: expected an array, found int"),
    (kind(3) + msgpack.packb(b"abc"), "frame: expected an array, found bytes"),
    (kind(3) + msgpack.packb(hello_fields()[:7]), "HELLO frame: expected 8 fields, found 7"),
    (kind(3) + msgpack.packb([*hello_fields(), 0]), "HELLO frame: expected 8 fields, found 9"),
    (kind(0) + msgpack.packb(hello_fields()), "DATA frame: expected 10 fields, found 8"),
    # batches: the whole frame fails, whichever item is wrong
    (batch(), "batch messages: expected 2..64 messages, found 0"),
    (batch(message_fields()), "batch messages: expected 2..64 messages, found 1"),
    (
        batch(*[message_fields(seq=i) for i in range(MAX_BATCH + 1)]),
        "batch messages: expected 2..64 messages, found 65",
    ),
    (
        kind(FrameType.BATCH) + msgpack.packb([2, 1000, message_fields()]),
        "batch message 0: expected a message array of 8 fields, found int",
    ),
    (
        kind(FrameType.BATCH) + msgpack.packb([2, 1000, bytes(40)]),
        "batch messages: expected an array, found bytes",
    ),
    (
        batch(message_fields(), msgpack.packb(message_fields())),
        "batch message 1: expected a message array of 8 fields, found bytes",
    ),
    (
        batch(message_fields(), message_fields()[:7]),
        "batch message 1: expected a message array of 8 fields, found 7 fields",
    ),
    (
        batch(message_fields(), [*message_fields(), 0]),
        "batch message 1: expected a message array of 8 fields, found 9 fields",
    ),
    (
        batch(message_fields(), message_fields(seq=6), message_fields(pf=0x0F)),
        "batch message 2: message precedence: expected 0..4, found 7",
    ),
    (
        batch(message_fields(ciphertext=bytes(15)), message_fields()),
        "batch message 0: message ciphertext: expected 16..1049600 bytes, found 15",
    ),
    (
        batch(message_fields(), message_fields(src=True)),
        "batch message 1: message source: expected an integer, found bool",
    ),
    (kind(3) + msgpack.packb(hello_fields()) + b"\x00", "not valid msgpack"),
    (kind(3) + msgpack.packb(hello_fields())[:-1], "not valid msgpack"),
    # the common fields
    (hello(sender=True), "frame sender: expected an integer, found bool"),
    (hello(sender=0), "frame sender: expected 1..65535, found 0"),
    (hello(sender=65536), "frame sender: expected 1..65535, found 65536"),
    (hello(sender=1.0), "frame sender: expected an integer, found float"),
    (hello(sender=None), "frame sender: expected an integer, found NoneType"),
    (hello(sender=[1]), "frame sender: expected an integer, found list"),
    (hello(sender={}), "frame sender: expected an integer, found dict"),
    (hello(sender=b"\x01"), "frame sender: expected an integer, found bytes"),
    (hello(counter=-1), "frame counter: expected 0..4294967295, found -1"),
    (hello(counter=U32 + 1), "frame counter: expected 0..4294967295, found 4294967296"),
    (hello(counter=False), "frame counter: expected an integer, found bool"),
    # maps and text are refused before any field is looked at
    (hello(sender={1: 2}), "not valid msgpack"),
    (hello(sender="a"), "not valid msgpack"),
    (hello(time={"a": 1}), "not valid msgpack"),
    (hello(flags="REPLY"), "not valid msgpack"),
    (kind(3) + msgpack.packb({"sender": 2}), "not valid msgpack"),
    (kind(3) + msgpack.packb([*hello_fields()[:-1], msgpack.ExtType(1, b"x")]), "not valid"),
    # HELLO
    (hello(loss=1001), "hello loss: expected 0..1000, found 1001"),
    (hello(flags=16), "hello flags: expected 0..15, found 16"),
    (hello(time=-5), "hello time: expected 0..4294967295, found -5"),
    (hello(echo=2**64 - 1), "hello echo: expected 0..4294967295, found 18446744073709551615"),
    (hello(held=True), "hello hold time: expected an integer, found bool"),
    # DATA and the message inside
    (data_frame(src=0), "message source: expected 1..65535, found 0"),
    (data_frame(dst=U16 + 1), "message destination: expected 1..65535, found 65536"),
    (data_frame(seq=-1), "message sequence: expected 0..4294967295, found -1"),
    (data_frame(pf=128), "message precedence and flags: expected 0..127, found 128"),
    (data_frame(pf=5), "message precedence: expected 0..4, found 5"),
    (data_frame(pf=0x0F), "message precedence: expected 0..4, found 7"),
    (data_frame(pf=True), "message precedence and flags: expected an integer, found bool"),
    (data_frame(created=U32 + 1), "message creation time: expected 0..4294967295"),
    (data_frame(ttl=0), "message time to live: expected 1..4294967295, found 0"),
    (data_frame(hops=256), "message hop count: expected 0..255, found 256"),
    (data_frame(ciphertext=bytes(15)), "message ciphertext: expected 16..1049600 bytes, found 15"),
    (data_frame(ciphertext=16), "message ciphertext: expected bytes, found int"),
    (data_frame(ciphertext=[0] * 16), "message ciphertext: expected bytes, found list"),
    (data_frame(ciphertext=""), "message ciphertext: expected 16..1049600 bytes, found 0"),
    (data_frame(ciphertext="x" * 16), "not valid msgpack"),
    # FRAG
    (
        kind(1) + msgpack.packb([2, 0, 1, 0, 5, 3, 3, b"x"]),
        "fragment index: expected 0..2, found 3",
    ),
    (kind(1) + msgpack.packb([2, 0, 1, 0, 5, 0, 1, b"x"]), "fragment count: expected 2..65535"),
    (kind(1) + msgpack.packb([2, 0, 1, 0, 5, 0, 65536, b"x"]), "fragment count: expected 2..6"),
    (kind(1) + msgpack.packb([2, 0, 1, 0, 5, 0, 2, b""]), "fragment chunk: expected 1..65535"),
    (kind(1) + msgpack.packb([2, 0, 0, 0, 5, 0, 2, b"x"]), "fragment source: expected 1..65535"),
    (kind(1) + msgpack.packb([2, 0, 1, -1, 5, 0, 2, b"x"]), "fragment epoch: expected 0..4294"),
    (kind(1) + msgpack.packb([2, 0, 1, 0, True, 0, 2, b"x"]), "fragment sequence: expected an"),
    # ACK
    (kind(2) + msgpack.packb([2, 0, [1, 0], []]), "acknowledgements: expected a multiple of 4"),
    (kind(2) + msgpack.packb([2, 0, [0, 0, 5, 1], []]), "acknowledged message source: expected"),
    (
        kind(2) + msgpack.packb([2, 0, [1, 0, 5, 0], []]),
        "acknowledged run length: expected 1..256",
    ),
    (
        kind(2) + msgpack.packb([2, 0, [1, 0, 5, 200, 1, 1, 5, 57], []]),
        "acknowledged run length: expected 1..56, found 57",  # 256 ids a frame at most
    ),
    (
        kind(2) + msgpack.packb([2, 0, [1, 0, 0xFFFF_FFFF, 2], []]),
        "acknowledged run: expected seq + length - 1 <= 4294967295",
    ),
    (kind(2) + msgpack.packb([2, 0, [], [1, 0, 5]]), "fragment states: expected a multiple of 4"),
    (kind(2) + msgpack.packb([2, 0, [], [1, 0, 5, b""]]), "fragment bitmap: expected 1..8192"),
    (
        kind(2) + msgpack.packb([2, 0, [], [1, 0, 5, bytes(8193)]]),
        "fragment bitmap: expected 1..8192 bytes, found 8193",
    ),
    (kind(2) + msgpack.packb([2, 0, [], [1, 0, 5, 3]]), "fragment bitmap: expected bytes"),
    (kind(2) + msgpack.packb([2, 0, 7, []]), "acknowledgements: expected an array, found int"),
    (
        kind(2) + msgpack.packb([2, 0, [1, 0, 5, 1] * 257, []]),
        "acknowledgements: expected a multiple of 4 items, at most 1024, found 1028",
    ),
    (kind(2) + msgpack.packb([2, 0, [[1, 0, 5, 1]], []]), "acknowledgements: expected a multiple"),
    # ROUTE
    (kind(4) + msgpack.packb([2, 0, 2, 7, [1], SIG]), "route adjacency: expected a multiple of 2"),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [1, 0], SIG]), "route cost: expected 1..65535, found 0"),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [0, 1], SIG]), "route neighbour: expected 1..65535"),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [3, 1, 1, 1], SIG]), "found 1 after 3"),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [1, 1, 1, 2], SIG]), "found 1 after 1"),
    (kind(4) + msgpack.packb([2, 0, 0, 7, [], SIG]), "route origin: expected 1..65535, found 0"),
    (kind(4) + msgpack.packb([2, 0, 2, -7, [], SIG]), "route sequence: expected 0..4294967295"),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [1, 1] * 257, SIG]),
        "route adjacency: expected a multiple of 2 items, at most 512, found 514",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, []]),
        "ROUTE frame: expected 6 (7 with links) fields, found 5",
    ),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG[:63]]), "route signature: expected 64..64"),
    (kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, []]), "expected at least one link"),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [3, b"hf"]]),
        "route links: expected a multiple of 3",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [3, b"HF", 1]]),
        "route link bearer: expected lower-case",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [3, b"", 1]]),
        "route link bearer: expected 1..32",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [0, b"hf", 1]]),
        "route link neighbour: expected 1..65535",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [3, b"hf", 0]]),
        "route link cost: expected 1..65535",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [4, b"hf", 1, 3, b"hf", 2]]),
        "expected in order of (neighbour, bearer), each once, found (3, 'hf') after (4, 'hf')",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, SEVENTEEN_BEARERS]),
        "more than 16 bearers named",
    ),
    (
        kind(4) + msgpack.packb([2, 0, 2, 7, [], SIG, [3, b"hf", 1, 3, b"hf", 2]]),
        "found (3, 'hf') after (3, 'hf')",
    ),
    # REVOKE
    (kind(6) + msgpack.packb([2, 0, b""]), "revocation notice: expected 1..1024 bytes, found 0"),
    (kind(6) + msgpack.packb([2, 0, bytes(1025)]), "revocation notice: expected 1..1024"),
    (kind(6) + msgpack.packb([2, 0, 5]), "revocation notice: expected bytes, found int"),
    # SETUP
    (
        kind(5) + msgpack.packb([2, 0, 1, 2, 0, 0, bytes(1087), bytes(64)]),
        "setup KEM ciphertext: expected 1088..1088 bytes, found 1087",
    ),
    (
        kind(5) + msgpack.packb([2, 0, 1, 2, 0, 0, bytes(1088), bytes(65)]),
        "setup signature: expected 64..64 bytes, found 65",
    ),
    (
        kind(5) + msgpack.packb([2, 0, 1, 2, 0, 256, bytes(1088), bytes(64)]),
        "setup hop count: expected 0..255, found 256",
    ),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_frame_names_the_field(data: bytes, message: str) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode_frame(data)
    assert message in str(info.value)


def test_integers_of_any_width_are_accepted() -> None:
    """Receivers accept non-shortest integer encodings (docs/protocol.md, section 2)."""
    shortest = kind(3) + msgpack.packb(hello_fields())
    wide = kind(3) + b"\x98" + b"".join(b"\xcf" + v.to_bytes(8, "big") for v in [2, 7, 123456])
    wide += b"\x00\x00\x00\x01" + b"\xce" + bytes(4)
    assert decode_frame(wide) == decode_frame(shortest)


def test_decoder_never_returns_bool_or_float_fields() -> None:
    frame = decode_frame(kind(3) + msgpack.packb(hello_fields()))
    assert isinstance(frame, HelloFrame)
    assert frame.flags is HelloFlags.REPLY_REQUESTED


MALFORMED_MESSAGES = [
    (b"", "not valid msgpack"),
    (msgpack.packb(message_fields())[:-1], "not valid msgpack"),
    (msgpack.packb(message_fields()) + b"\x00", "not valid msgpack"),
    (msgpack.packb(5), "message: expected an array, found int"),
    (msgpack.packb(message_fields()[:7]), "message: expected a multiple of 8 items"),
    (msgpack.packb([*message_fields(), 0]), "message: expected a multiple of 8 items"),
    (msgpack.packb([]), "message: expected 8 fields, found 0"),
    (msgpack.packb(message_fields(src=True)), "message source: expected an integer, found bool"),
    (msgpack.packb(message_fields(ttl=-1)), "message time to live: expected 1..4294967295"),
    (msgpack.packb(message_fields(pf=6)), "message precedence: expected 0..4, found 6"),
    (msgpack.packb(message_fields(dst={})), "message destination: expected an integer"),
    (msgpack.packb(message_fields(dst="x")), "not valid msgpack"),
]


@pytest.mark.parametrize(("data", "message"), MALFORMED_MESSAGES)
def test_malformed_message_names_the_field(data: bytes, message: str) -> None:
    with pytest.raises(FrameDecodeError) as info:
        decode_message(data)
    assert message in str(info.value)


def test_message_too_large_for_one_frame() -> None:
    """A message near the largest ciphertext is valid on its own, but only as fragments."""
    big = Message(1, 2, 0, Precedence.ROUTINE, Flags.NONE, 0, 1, 0, bytes(MAX_MESSAGE_BYTES))
    assert decode_message(big.encode()) == big
    with pytest.raises(FrameDecodeError, match=r"frame: expected 2\.\.65535 bytes"):
        decode_frame(encode_frame(DataFrame(1, 0, big)))
    with pytest.raises(FrameDecodeError, match="message ciphertext"):
        decode_message(msgpack.packb(message_fields(ciphertext=bytes(MAX_MESSAGE_BYTES + 1))))


@pytest.mark.parametrize(
    "changes",
    [
        {"src": 0},
        {"dst": U16 + 1},
        {"seq": -1},
        {"created": U32 + 1},
        {"ttl": 0},
        {"hops": 256},
        {"ciphertext": bytes(15)},
        {"flags": Flags(16)},
        {"precedence": 5},
        {"hops": True},
    ],
)
def test_message_constructor_refuses_bad_values(changes: dict[str, object]) -> None:
    """A local caller's mistake is a plain ValueError, not the peer's FrameDecodeError."""
    values: dict[str, object] = {
        "src": 1, "dst": 2, "seq": 0, "precedence": Precedence.ROUTINE, "flags": Flags.NONE,
        "created": 0, "ttl": 1, "hops": 0, "ciphertext": bytes(16),
    }  # fmt: skip
    values.update(changes)
    with pytest.raises(ValueError) as info:
        Message(**values)  # type: ignore[arg-type]
    assert not isinstance(info.value, FrameDecodeError)


def test_consecutive_acknowledgements_travel_as_one_run() -> None:
    """A queue of messages from one origin is acknowledged in one run, not an id each."""
    many = AckFrame(2, 0, tuple((1, 0, seq) for seq in range(100, 200)))
    one = AckFrame(2, 0, ((1, 0, 100),))
    assert len(encode_frame(many, 0)) - len(encode_frame(one, 0)) <= 1
    mixed = AckFrame(2, 0, ((3, 0, 7), (1, 0, 5), (1, 0, 6), (1, 1, 7), (1, 0, 9)))
    decoded = decode_frame(encode_frame(mixed, 0))
    assert isinstance(decoded, AckFrame)
    assert decoded.acks == ((1, 0, 5), (1, 0, 6), (1, 0, 9), (1, 1, 7), (3, 0, 7))
