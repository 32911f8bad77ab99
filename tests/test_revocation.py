"""Revocation notices: their encoding, their signature, and what a keyring does with them."""

from __future__ import annotations

import dataclasses
import random

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import RevocationError, RosterError
from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.plan import MissionPlan
from crypto.revocation import (
    MAX_REVOCATION_BYTES,
    MAX_REVOKED,
    REVOCATION_LABEL,
    Revocation,
    decode_revocation,
    make_revocation,
)
from crypto.roster import Roster

PLAN = {"alpha": ["ops"], "bravo": ["ops"], "charlie": [], "delta": ["ops", "log"]}
ALPHA, OPS, BRAVO, CHARLIE, DELTA, LOG = 1, 2, 3, 4, 5, 6
SEED = 11


def authority() -> Ed25519PrivateKey:
    """The authority key build_mission draws from random.Random(SEED)."""
    plan = MissionPlan.new(random.Random(SEED).randbytes, t0=0, epoch_seconds=60, grace_epochs=0)
    return plan.authority


ROSTER, KEYS = build_mission(PLAN, random.Random(SEED), t0=0, epoch_seconds=60, grace_epochs=3)
MISSION = ROSTER.mission_id
AUTHORITY = authority()
PUBLIC = AUTHORITY.public_key().public_bytes_raw()


def notice(*revoked: int, version: int | None = None) -> Revocation:
    return make_revocation(
        AUTHORITY, MISSION, ROSTER.version + 1 if version is None else version, revoked
    )


def ring(name: str, roster: Roster = ROSTER) -> Keyring:
    return Keyring(KEYS[name], roster)


def revoked_roster(roster: Roster, *names: str) -> Roster:
    plan = MissionPlan.from_roster(AUTHORITY, roster, {})
    for name in names:
        plan.revoke(name)
    return plan.roster()


# ---------------------------------------------------------------------------- the notice


def test_round_trip_and_layout() -> None:
    one = notice(CHARLIE)
    data = one.to_bytes()
    assert decode_revocation(data) == one
    assert msgpack.unpackb(data) == [MISSION, ROSTER.version + 1, [CHARLIE], one.signature]
    assert data[:11] == b"\x94\xc4\x08" + MISSION  # array of 4, bin 8
    assert len(data) == 80
    assert one.signed_bytes() == REVOCATION_LABEL + msgpack.packb(
        [MISSION, ROSTER.version + 1, [CHARLIE]]
    )
    assert one.verify(PUBLIC, MISSION)


def test_sizes_fit_a_small_link_frame() -> None:
    two_far = make_revocation(AUTHORITY, MISSION, (1 << 63) - 1, (65_534, 65_535))
    assert len(two_far.to_bytes()) == 93  # well inside a 128-byte frame
    most = make_revocation(
        AUTHORITY, MISSION, (1 << 63) - 1, tuple(range(65_536 - MAX_REVOKED, 65_536))
    )
    assert len(most.to_bytes()) == MAX_REVOCATION_BYTES
    assert decode_revocation(most.to_bytes()) == most


def test_verify() -> None:
    one = notice(CHARLIE)
    assert not one.verify(PUBLIC, bytes(8))
    assert not one.verify(Ed25519PrivateKey.generate().public_key().public_bytes_raw(), MISSION)
    assert not one.verify(b"\0" * 31, MISSION)
    for changed in (
        dataclasses.replace(one, version=one.version + 1),
        dataclasses.replace(one, revoked=(BRAVO,)),
        dataclasses.replace(one, revoked=(CHARLIE, DELTA)),
        dataclasses.replace(one, mission_id=bytes(8)),
        dataclasses.replace(one, signature=bytes(64)),
    ):
        assert not changed.verify(PUBLIC, changed.mission_id)


@pytest.mark.parametrize(
    ("mission_id", "version", "revoked", "expected"),
    [
        (bytes(7), 2, (1,), "mission_id"),
        (bytearray(8), 2, (1,), "mission_id"),
        (bytes(8), 0, (1,), "version"),
        (bytes(8), True, (1,), "version"),
        (bytes(8), 1 << 63, (1,), "version"),
        (bytes(8), 2, (), "revoked"),
        (bytes(8), 2, (0,), "revoked"),
        (bytes(8), 2, (65_536,), "revoked"),
        (bytes(8), 2, (3, 2), "revoked"),
        (bytes(8), 2, (2, 2), "revoked"),
        (bytes(8), 2, (True,), "revoked"),
        (bytes(8), 2, tuple(range(1, MAX_REVOKED + 2)), "revoked"),
    ],
)
def test_bad_notices_are_refused(
    mission_id: bytes, version: int, revoked: tuple[int, ...], expected: str
) -> None:
    with pytest.raises(RevocationError, match=f"revocation: {expected}: expected"):
        make_revocation(AUTHORITY, mission_id, version, revoked)
    with pytest.raises(RevocationError, match=expected):
        Revocation(mission_id, version, revoked, bytes(64))


def test_a_notice_needs_a_whole_signature() -> None:
    with pytest.raises(RevocationError, match="signature: expected 64 bytes, found 63 bytes"):
        Revocation(MISSION, 2, (1,), bytes(63))


def encoded(*items: object) -> bytes:
    return msgpack.packb(list(items), use_bin_type=True)


SIGNATURE = notice(CHARLIE).signature
MALFORMED = {
    "empty": b"",
    "not msgpack": b"\xc1",
    "trailing byte": notice(CHARLIE).to_bytes() + b"\0",
    "a map": msgpack.packb({"a": 1}),
    "three items": encoded(MISSION, 2, [1]),
    "five items": encoded(MISSION, 2, [1], SIGNATURE, 0),
    "mission id as str": encoded("abcdefgh", 2, [1], SIGNATURE),
    "short mission id": encoded(MISSION[:7], 2, [1], SIGNATURE),
    "version 0": encoded(MISSION, 0, [1], SIGNATURE),
    "version true": encoded(MISSION, True, [1], SIGNATURE),
    "version float": encoded(MISSION, 2.0, [1], SIGNATURE),
    "negative version": encoded(MISSION, -2, [1], SIGNATURE),
    "no addresses": encoded(MISSION, 2, [], SIGNATURE),
    "address 0": encoded(MISSION, 2, [0], SIGNATURE),
    "address too big": encoded(MISSION, 2, [65_536], SIGNATURE),
    "descending": encoded(MISSION, 2, [3, 1], SIGNATURE),
    "duplicate": encoded(MISSION, 2, [3, 3], SIGNATURE),
    "address as bytes": encoded(MISSION, 2, [b"\x03"], SIGNATURE),
    "too many": encoded(MISSION, 2, list(range(1, MAX_REVOKED + 2)), SIGNATURE),
    "short signature": encoded(MISSION, 2, [1], SIGNATURE[:63]),
    "long": encoded(MISSION, 2, [1], SIGNATURE) + bytes(MAX_REVOCATION_BYTES),
    # Not canonical: the same values in a longer form than msgpack's shortest.
    "wide version": b"\x94\xc4\x08" + MISSION + b"\xcd\x00\x02\x91\x01\xc4\x40" + SIGNATURE,
    "wide address": b"\x94\xc4\x08" + MISSION + b"\x02\x91\xcc\x01\xc4\x40" + SIGNATURE,
    "array16": b"\xdc\x00\x04\xc4\x08" + MISSION + b"\x02\x91\x01\xc4\x40" + SIGNATURE,
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_notices_raise_revocation_error(data: bytes) -> None:
    with pytest.raises(RevocationError, match=r"^notice from b: "):
        decode_revocation(data, source="notice from b")


def test_canonical_counterpart_of_the_wide_forms_decodes() -> None:
    data = b"\x94\xc4\x08" + MISSION + b"\x02\x91\x01\xc4\x40" + SIGNATURE
    assert decode_revocation(data) == Revocation(MISSION, 2, (1,), SIGNATURE)


def test_only_bytes_are_decoded() -> None:
    data = notice(CHARLIE).to_bytes()
    for other in (bytearray(data), memoryview(data), data.hex()):
        with pytest.raises(RevocationError, match="expected bytes"):
            decode_revocation(other)  # type: ignore[arg-type]


def decodes_or_refuses(data: bytes) -> None:
    """The invariant: a notice decodes (and re-encodes to the same bytes), or only a
    RevocationError is raised."""
    try:
        decoded = decode_revocation(data)
    except RevocationError:
        return
    assert decoded.to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_random_bytes(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_notices(data: st.DataObject) -> None:
    original = bytearray(notice(BRAVO, CHARLIE).to_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    decodes_or_refuses(bytes(original[:cut]) + data.draw(st.binary(max_size=4)))


def test_fuzz_seeded_byte_flips() -> None:
    rng = random.Random(7)
    good = notice(BRAVO, CHARLIE).to_bytes()
    for _ in range(3000):
        changed = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            changed[rng.randrange(len(changed))] = rng.randrange(256)
        decodes_or_refuses(bytes(changed))


# ---------------------------------------------------------------------------- derived roster


def test_with_revoked_is_a_derived_unsigned_roster() -> None:
    derived = ROSTER.with_revoked([BRAVO])
    assert derived.is_revoked(BRAVO) and not ROSTER.is_revoked(BRAVO)
    assert derived.members(OPS) == (ALPHA, DELTA)
    assert derived.version == ROSTER.version and derived.signature == b""
    assert not derived.signature_valid()
    assert derived.nodes[1] == dataclasses.replace(ROSTER.nodes[1], revoked=True)
    assert derived.nodes[1].address == BRAVO and derived.nodes[2] == ROSTER.nodes[2]
    assert ROSTER.with_revoked([]) is ROSTER
    assert derived.with_revoked([BRAVO]) is derived
    with pytest.raises(RosterError, match="revoking address 2: expected a node"):
        ROSTER.with_revoked([OPS])
    with pytest.raises(RosterError, match="revoking address 99: expected a node"):
        ROSTER.with_revoked([99])


# ---------------------------------------------------------------------------- the keyring


def test_a_notice_revokes_a_peer_at_once() -> None:
    alpha = ring("alpha")
    signature = ring("charlie").sign(b"report")
    assert alpha.message_key(ALPHA, CHARLIE, 0) is not None
    assert alpha.apply_revocation(notice(CHARLIE))
    assert alpha.roster.is_revoked(CHARLIE)
    assert alpha.base_roster is ROSTER and not ROSTER.is_revoked(CHARLIE)
    assert alpha.revocations == [notice(CHARLIE)]
    assert alpha.message_key(ALPHA, CHARLIE, 0) is None
    assert alpha.message_key(CHARLIE, ALPHA, 0) is None
    assert alpha.link_key(CHARLIE, ALPHA, 0) is None
    assert not alpha.verify(CHARLIE, b"report", signature)
    assert all(root.peer != CHARLIE for root in alpha.keys().pair_roots)
    assert alpha.message_key(ALPHA, BRAVO, 0) is not None
    assert alpha.message_key(ALPHA, OPS, 0) is not None  # charlie was in no group
    assert not alpha.apply_revocation(notice(CHARLIE))  # nothing new: not flooded again
    assert alpha.revocations == [notice(CHARLIE)]


def test_invalid_notices_change_nothing() -> None:
    alpha = ring("alpha")
    other_authority = Ed25519PrivateKey.generate()
    forged = make_revocation(other_authority, MISSION, 2, (CHARLIE,))
    with pytest.raises(RevocationError, match="bad authority signature"):
        alpha.apply_revocation(forged)
    with pytest.raises(RevocationError, match="bad authority signature"):
        alpha.apply_revocation(dataclasses.replace(notice(CHARLIE), revoked=(BRAVO,)))
    other_mission = make_revocation(AUTHORITY, bytes(8), 2, (CHARLIE,))
    with pytest.raises(RevocationError, match="expected mission"):
        alpha.apply_revocation(other_mission)
    assert alpha.roster is ROSTER and alpha.revocations == []
    assert alpha.message_key(ALPHA, CHARLIE, 0) is not None


def test_a_notice_already_in_the_roster_brings_nothing() -> None:
    newer = revoked_roster(ROSTER, "charlie")
    alpha = ring("alpha", newer)
    assert not alpha.apply_revocation(notice(CHARLIE, version=newer.version))
    assert alpha.roster is newer and alpha.revocations == []


def test_a_revoked_member_compromises_its_groups() -> None:
    alpha, delta, charlie = ring("alpha"), ring("delta"), ring("charlie")
    for keyring in (alpha, delta, charlie):
        assert keyring.apply_revocation(notice(BRAVO))
        assert keyring.group_compromised(OPS)
        assert not keyring.group_compromised(LOG)
    for epoch in (0, 1):
        assert alpha.message_key(ALPHA, OPS, epoch) is None  # to seal
        assert alpha.message_key(DELTA, OPS, epoch) is None  # to open
        assert delta.message_key(ALPHA, OPS, epoch) is None
    assert all(root.peer != OPS for root in alpha.keys().group_roots)
    assert [root.peer for root in delta.keys().group_roots] == [LOG]
    assert delta.message_key(DELTA, LOG, 0) is not None
    assert alpha.message_key(ALPHA, DELTA, 0) is not None


def test_a_roster_revocation_also_compromises_the_groups() -> None:
    alpha = ring("alpha")
    alpha.update_roster(revoked_roster(ROSTER, "bravo"))
    assert alpha.group_compromised(OPS)
    assert alpha.message_key(ALPHA, OPS, 0) is None
    assert alpha.message_key(DELTA, OPS, 0) is None


def test_a_notice_naming_this_node_erases_all_its_keys() -> None:
    charlie = ring("charlie")
    assert charlie.apply_revocation(notice(BRAVO, CHARLIE))
    assert charlie.keys().pair_roots == () and charlie.keys().group_roots == ()
    assert charlie.message_key(CHARLIE, ALPHA, 0) is None
    assert charlie.link_key(CHARLIE, ALPHA, 0) is None


def test_a_newer_roster_and_the_notices_kept() -> None:
    alpha = ring("alpha")
    later = notice(DELTA, version=ROSTER.version + 2)
    assert alpha.apply_revocation(notice(CHARLIE))
    assert alpha.apply_revocation(later)
    # The roster that revokes charlie: its notice is said by the roster now; delta's stays.
    with_charlie = revoked_roster(ROSTER, "charlie")
    alpha.update_roster(with_charlie)
    assert alpha.base_roster is with_charlie
    assert alpha.revocations == [later]
    assert alpha.roster.is_revoked(CHARLIE) and alpha.roster.is_revoked(DELTA)
    assert alpha.message_key(ALPHA, DELTA, 0) is None
    alpha.update_roster(with_charlie)  # the base roster again: nothing changes
    assert alpha.roster.is_revoked(DELTA)
    # The same version as the base roster but another roster: refused against the base.
    with pytest.raises(RosterError, match="differs from the known one"):
        alpha.update_roster(dataclasses.replace(ROSTER, version=with_charlie.version))
    with_both = revoked_roster(with_charlie, "delta")
    alpha.update_roster(with_both)
    assert alpha.revocations == [] and alpha.roster is with_both


def test_an_old_notice_still_counts_when_the_new_roster_omits_it() -> None:
    alpha = ring("alpha")
    assert alpha.apply_revocation(notice(CHARLIE))
    skipped = revoked_roster(revoked_roster(ROSTER, "bravo"), "delta")  # version + 2
    alpha.update_roster(skipped)
    assert alpha.roster.is_revoked(CHARLIE)
    assert alpha.revocations == [notice(CHARLIE)]
    assert alpha.message_key(ALPHA, CHARLIE, 0) is None


def test_a_notice_of_a_node_the_roster_does_not_know_yet() -> None:
    plan = MissionPlan.new(random.Random(5).randbytes, t0=0, epoch_seconds=60, grace_epochs=3)
    rng = random.Random(6)
    plan.add_node("alpha", [], rng.randbytes)
    plan.add_node("bravo", [], rng.randbytes)
    first = plan.roster()
    alpha = Keyring(plan.keys["alpha"], first)
    late, _ = plan.add_node("late", [], rng.randbytes)
    with_late = plan.roster()
    notice_late = make_revocation(
        plan.authority, plan.mission_id, with_late.version + 1, (late.address,)
    )
    assert alpha.apply_revocation(notice_late)  # kept: alpha does not know the node yet
    assert alpha.roster is first
    assert not alpha.apply_revocation(notice_late)
    alpha.update_roster(with_late)
    assert alpha.roster.is_revoked(late.address)
    assert alpha.revocations == [notice_late]
    plan.revoke("late")
    alpha.update_roster(plan.roster())
    assert alpha.revocations == [] and alpha.roster.is_revoked(late.address)
