"""Bytes on the wire beyond the payload, and the cost of sealing.

Every figure is measured by encoding real frames, not computed from a formula. Field values
that msgpack sizes by magnitude are set to a mid-mission steady state (stated below) and, for
the 100-byte case, also to their worst case. The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import random
import time

from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.schedule import link_key, link_tag
from tawan.core.frames import (
    KEM_CIPHERTEXT_BYTES,
    SIGNATURE_BYTES,
    TICKS_PER_SECOND,
    U16,
    U32,
    DataFrame,
    Flags,
    FragFrame,
    Message,
    SetupFrame,
    encode_frame,
    epoch_of_ticks,
)
from tawan.core.precedence import Precedence
from tawan.core.sealing import open_message, seal_message
from tawan.core.specs import Submission

# Mid-mission steady state: 30 hours in (the creation time, in tenths of a second, needs 5
# bytes, as it would in seconds past the first 18 hours), the 1000th message of
# this node in the current hourly epoch, the 5000th frame on this link in the epoch, a roster
# of under 128 nodes and groups, a one-hour time to live, one hop done.
STEADY = {
    "created": (30 * 3600 + 17) * TICKS_PER_SECOND,
    "seq": 1000,
    "counter": 5000,
    "ttl": 3600,
    "hops": 1,
}
WORST = {"created": U32 - 4000, "seq": U32, "counter": U32, "ttl": U32 - 1, "hops": 255}
LINK_KEY = link_key(bytes(32), 1, 2)


def mission() -> tuple[Keyring, Keyring, int, int]:
    names = {f"n{i}": (["coy-a"] if i < 10 else []) for i in range(1, 41)}
    roster, keys = build_mission(names, random.Random(7), t0=0)
    a, b = Keyring(keys["n1"], roster), Keyring(keys["n2"], roster)
    for keyring in (a, b):  # as a running node does at every epoch change
        keyring.advance(epoch_of_ticks(STEADY["created"], roster.epoch_seconds))
    group = roster.group_named("coy-a")
    assert group is not None
    return a, b, b.address, group.address


def frame_bytes(keys: Keyring, dst: int, payload: bytes, values: dict[str, int]) -> int:
    submission = Submission(dst, payload, Precedence.PRIORITY, values["ttl"])
    msg = seal_message(keys, submission, seq=values["seq"], created=values["created"])
    msg = msg.with_hops(values["hops"])
    encoded = encode_frame(DataFrame(keys.address, values["counter"], msg))
    return len(encoded + link_tag(LINK_KEY, encoded))


def overhead(keys: Keyring, dst: int, size: int, values: dict[str, int] = STEADY) -> int:
    payload = os.urandom(size)  # incompressible: no help from zlib
    return frame_bytes(keys, dst, payload, values) - size


def worst_case_overhead(size: int) -> int:
    """Every field at its widest: the same layout, sealed bytes of the real length."""
    msg = Message(
        U16, U16 - 1, WORST["seq"], Precedence.OVERRIDE, Flags(15), WORST["created"],
        WORST["ttl"], WORST["hops"], os.urandom(size + 16),
    )  # fmt: skip
    encoded = encode_frame(DataFrame(U16 - 2, WORST["counter"], msg))
    return len(encoded) + 8 - size


def fragment_overhead() -> int:
    chunk = os.urandom(150)
    epoch = epoch_of_ticks(STEADY["created"], 3600)
    frame = FragFrame(1, STEADY["counter"], (1, epoch, 1000), 7, 40, chunk)
    return len(encode_frame(frame)) + 8 - len(chunk)


def pair_setup_bytes() -> int:
    frame = SetupFrame(
        1, 1, 1, 2, STEADY["created"], 0, bytes(KEM_CIPHERTEXT_BYTES), bytes(SIGNATURE_BYTES)
    )
    return len(encode_frame(frame)) + 8


def seal_open_rate(a: Keyring, b: Keyring, dst: int, seconds: float = 2.0) -> float:
    payload = os.urandom(100)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for seq in range(count, count + 500):
            submission = Submission(dst, payload, Precedence.ROUTINE, 600)
            msg = seal_message(a, submission, seq=seq, created=STEADY["created"])
            open_message(b, msg)
        count += 500
    return count / (time.perf_counter() - start)


def main() -> None:
    a, b, dst, group = mission()
    results = {
        "overhead_bytes_16": overhead(a, dst, 16),
        "overhead_bytes_100": overhead(a, dst, 100),
        "overhead_bytes_1000": overhead(a, dst, 1000),
        "overhead_bytes_group_100": overhead(a, group, 100),
        "overhead_bytes_100_worst_case": worst_case_overhead(100),
        "fragment_overhead_bytes": fragment_overhead(),
        "pair_setup_bytes": pair_setup_bytes(),
        "pair_setup_bytes_planned_pairs": 0,
        "seal_open_per_s": round(seal_open_rate(a, b, dst)),
    }
    print("steady state:", STEADY, "| worst case: every field at its widest")
    for key, value in results.items():
        print(f"  {key:32} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
