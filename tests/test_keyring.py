"""The keyring: pair, group and link keys, epochs, erasure, revocation, sealing."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest

from crypto import sealing as aead
from crypto.errors import KeyFileError, RosterError
from crypto.keyfile import load_keyfile
from crypto.keyring import EPOCHS_AHEAD, Keyring
from crypto.mission import build_mission
from crypto.plan import MissionPlan
from crypto.roster import Roster, check_successor
from crypto.sealing import open_message, seal_message, sign_detached, verify_detached

PLAN = {"alpha": ["ops"], "bravo": ["ops"], "charlie": [], "delta": ["ops"]}
GRACE = 3
ALPHA, OPS, BRAVO, CHARLIE, DELTA = 1, 2, 3, 4, 5


@pytest.fixture
def ring() -> dict[str, Keyring]:
    roster, keys = build_mission(
        PLAN, random.Random(11), t0=1_000, epoch_seconds=60, grace_epochs=GRACE
    )
    return {name: Keyring(k, roster) for name, k in keys.items()}


def re_signed(
    roster: Roster,
    *,
    t0: int | None = None,
    epoch_seconds: int | None = None,
    grace_epochs: int | None = None,
) -> Roster:
    """The roster, version +1, with the given changes, signed as build_mission signed it."""
    plan = MissionPlan.new(random.Random(11).randbytes, t0=0, epoch_seconds=60, grace_epochs=0)
    changed = dataclasses.replace(
        roster,
        version=roster.version + 1,
        t0=roster.t0 if t0 is None else t0,
        epoch_seconds=roster.epoch_seconds if epoch_seconds is None else epoch_seconds,
        grace_epochs=roster.grace_epochs if grace_epochs is None else grace_epochs,
        signature=b"",
    )
    return changed.signed(plan.authority)


def revoked(roster: Roster, address: int, authority_seed: int = 11) -> Roster:
    """The roster with `address` revoked, version +1, signed as build_mission signed it."""
    rng = random.Random(authority_seed)
    plan = MissionPlan.new(rng.randbytes, t0=roster.t0, epoch_seconds=60, grace_epochs=GRACE)
    plan = MissionPlan.from_roster(plan.authority, roster, {})
    node = roster.node_at(address)
    assert node is not None
    plan.revoke(node.name)
    return plan.roster()


def test_attributes(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    assert (alpha.address, alpha.name, alpha.t0) == (ALPHA, "alpha", 1_000)
    assert (alpha.epoch_seconds, alpha.grace_epochs) == (60, GRACE)
    assert alpha.mission_id == alpha.roster.mission_id
    assert alpha.epoch_of(0) == 0 and alpha.epoch_of(59.9) == 0 and alpha.epoch_of(60) == 1
    assert alpha.epoch_of(-1) == -1
    assert alpha.epoch_at(1_000 + 125) == 2


def test_both_ends_derive_the_same_keys(ring: dict[str, Keyring]) -> None:
    alpha, bravo = ring["alpha"], ring["bravo"]
    for epoch in range(GRACE + 1):
        forward = alpha.message_key(ALPHA, BRAVO, epoch)
        assert forward is not None and len(forward) == 32
        assert forward == bravo.message_key(ALPHA, BRAVO, epoch)
        assert alpha.message_key(BRAVO, ALPHA, epoch) == bravo.message_key(BRAVO, ALPHA, epoch)
        assert forward != alpha.message_key(BRAVO, ALPHA, epoch)
        assert alpha.link_key(ALPHA, BRAVO, epoch) == bravo.link_key(ALPHA, BRAVO, epoch)
        assert alpha.link_key(ALPHA, BRAVO, epoch) != alpha.link_key(BRAVO, ALPHA, epoch)
        assert alpha.link_key(ALPHA, BRAVO, epoch) != forward
    assert alpha.message_key(ALPHA, BRAVO, 1) != alpha.message_key(ALPHA, BRAVO, 2)


def test_keys_of_other_pairs_and_unknown_addresses_are_none(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    assert alpha.message_key(BRAVO, CHARLIE, 0) is None
    assert alpha.link_key(BRAVO, CHARLIE, 0) is None
    assert alpha.message_key(ALPHA, 999, 0) is None
    assert alpha.message_key(ALPHA, ALPHA, 0) is None
    assert alpha.message_key(ALPHA, BRAVO, -1) is None


def test_group_key_shared_by_members_only(ring: dict[str, Keyring]) -> None:
    key = ring["alpha"].message_key(ALPHA, OPS, 1)
    assert key is not None
    assert ring["bravo"].message_key(ALPHA, OPS, 1) == key
    assert ring["delta"].message_key(ALPHA, OPS, 1) == key
    assert ring["charlie"].message_key(ALPHA, OPS, 1) is None
    assert ring["charlie"].message_key(CHARLIE, OPS, 1) is None
    assert ring["bravo"].message_key(999, OPS, 1) is None
    assert ring["alpha"].message_key(ALPHA, OPS, 2) != key


def test_keys_too_far_ahead_are_none(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    alpha.advance(40)
    assert alpha.message_key(ALPHA, BRAVO, 40 + EPOCHS_AHEAD) is not None
    assert alpha.message_key(ALPHA, BRAVO, 40 + EPOCHS_AHEAD + 1) is None
    assert alpha.message_key(ALPHA, OPS, 40 + EPOCHS_AHEAD + 1) is None
    assert alpha.link_key(ALPHA, BRAVO, 40 + EPOCHS_AHEAD + 1) is None


def test_advance_erases_old_epochs_in_memory_and_on_disk(
    ring: dict[str, Keyring], tmp_path: Path
) -> None:
    alpha, bravo = ring["alpha"], ring["bravo"]
    old_message = alpha.message_key(ALPHA, BRAVO, 2)
    old_group = alpha.message_key(ALPHA, OPS, 2)
    bravo.advance(7)
    kept = bravo.message_key(ALPHA, BRAVO, 7)
    original_file = alpha.to_keyfile_bytes()

    assert alpha.advance(10) is True
    assert alpha.oldest_epoch == 10 - GRACE
    assert alpha.advance(10) is False
    assert alpha.advance(9) is False
    assert alpha.message_key(ALPHA, BRAVO, 6) is None
    assert alpha.message_key(ALPHA, OPS, 2) is None
    assert alpha.link_key(ALPHA, BRAVO, 6) is None
    assert alpha.message_key(ALPHA, BRAVO, 7) == kept
    assert kept is not None
    assert ring["delta"].message_key(ALPHA, OPS, 2) == old_group  # delta has not advanced

    path = tmp_path / "alpha.key"
    alpha.save(path)
    saved = path.read_bytes()
    assert saved == alpha.to_keyfile_bytes() != original_file
    for secret in (old_message, old_group):
        assert secret is not None and secret not in saved
    for root in (*load_keyfile(path).pair_roots, *load_keyfile(path).group_roots):
        assert root.epoch == 10 - GRACE

    reloaded = Keyring(load_keyfile(path, alpha.roster), alpha.roster)
    assert reloaded.message_key(ALPHA, BRAVO, 2) is None
    assert reloaded.message_key(ALPHA, OPS, 6) is None
    assert reloaded.message_key(ALPHA, BRAVO, 7) == kept
    bravo.advance(10)
    assert reloaded.message_key(ALPHA, BRAVO, 10 + EPOCHS_AHEAD) == bravo.message_key(
        ALPHA, BRAVO, 10 + EPOCHS_AHEAD
    )


def test_revoked_node_keys_are_dropped(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    assert alpha.message_key(ALPHA, CHARLIE, 0) is not None
    signature = ring["charlie"].sign(b"report")
    assert alpha.verify(CHARLIE, b"report", signature)
    group_from_bravo = alpha.message_key(BRAVO, OPS, 0)
    assert group_from_bravo is not None

    newer = revoked(alpha.roster, CHARLIE)
    alpha.update_roster(newer)
    assert alpha.roster is newer
    assert alpha.message_key(ALPHA, CHARLIE, 0) is None
    assert alpha.message_key(CHARLIE, ALPHA, 0) is None
    assert alpha.link_key(ALPHA, CHARLIE, 0) is None
    assert not alpha.verify(CHARLIE, b"report", signature)
    assert alpha.message_key(ALPHA, BRAVO, 0) is not None
    assert all(root.peer != CHARLIE for root in alpha.keys().pair_roots)
    alpha.update_roster(newer)  # the same roster again: no change
    assert alpha.roster is newer

    newest = revoked(newer, BRAVO)
    alpha.update_roster(newest)
    assert alpha.message_key(BRAVO, OPS, 0) is None  # a revoked sender to a group
    with pytest.raises(RosterError, match="older than the known version"):
        alpha.update_roster(newer)


def test_update_roster_refuses_forgeries(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    roster = alpha.roster
    newer = revoked(roster, CHARLIE)
    forged = dataclasses.replace(newer, signature=bytes(64))
    with pytest.raises(RosterError, match="bad authority signature"):
        alpha.update_roster(forged)
    other, _ = build_mission(PLAN, random.Random(12), t0=1_000)
    with pytest.raises(RosterError, match="expected mission"):
        alpha.update_roster(dataclasses.replace(other, version=roster.version + 1))
    impostor = dataclasses.replace(newer, authority=other.authority, signature=b"")
    with pytest.raises(RosterError, match="another authority"):
        alpha.update_roster(impostor)
    same_version = dataclasses.replace(newer, version=roster.version)
    with pytest.raises(RosterError, match="differs from the known one"):
        alpha.update_roster(same_version)
    assert alpha.message_key(ALPHA, CHARLIE, 0) is not None


def test_key_file_of_another_mission_refused() -> None:
    roster, keys = build_mission(PLAN, random.Random(11), t0=1_000)
    _other, other_keys = build_mission(PLAN, random.Random(12), t0=1_000)
    with pytest.raises(KeyFileError, match="mission"):
        Keyring(other_keys["alpha"], roster)
    wrong_node = dataclasses.replace(keys["alpha"], address=BRAVO)
    with pytest.raises(KeyFileError, match="not that node"):
        Keyring(wrong_node, roster)


def test_sign_and_verify(ring: dict[str, Keyring]) -> None:
    alpha, bravo = ring["alpha"], ring["bravo"]
    signature = alpha.sign(b"order")
    assert bravo.verify(ALPHA, b"order", signature)
    assert not bravo.verify(ALPHA, b"orders", signature)
    assert not bravo.verify(BRAVO, b"order", signature)
    assert not bravo.verify(OPS, b"order", signature)
    assert not bravo.verify(999, b"order", signature)
    entry = bravo.roster.node_at(ALPHA)
    assert entry is not None
    assert verify_detached(entry.ed25519_public, b"order", signature)
    detached = sign_detached(alpha._signing_key, b"x")
    assert verify_detached(entry.ed25519_public, b"x", detached)
    assert not verify_detached(b"\0" * 31, b"x", detached)


def test_seal_and_open(ring: dict[str, Keyring]) -> None:
    alpha, bravo = ring["alpha"], ring["bravo"]
    key = alpha.message_key(ALPHA, BRAVO, 0)
    peer_key = bravo.message_key(ALPHA, BRAVO, 0)
    assert key is not None and peer_key is not None
    sealed = seal_message(key, ALPHA, 1800, 7, b"header", b"attack at dawn")
    assert len(sealed) == len(b"attack at dawn") + 16
    assert open_message(peer_key, ALPHA, 1800, 7, b"header", sealed) == b"attack at dawn"
    assert open_message(peer_key, ALPHA, 1800, 8, b"header", sealed) is None
    assert open_message(peer_key, ALPHA, 1801, 7, b"header", sealed) is None
    assert open_message(peer_key, ALPHA, 1800, 7, b"headers", sealed) is None
    assert open_message(peer_key, ALPHA, 1800, 7, b"header", sealed[:-1] + b"\0") is None
    other = alpha.message_key(ALPHA, CHARLIE, 0)
    assert other is not None
    assert open_message(other, ALPHA, 1800, 7, b"header", sealed) is None


def cipher_cache_holds(key: bytes) -> bool:
    """Whether anything crypto.sealing holds at module level (caches) refers to `key`."""
    for value in vars(aead).values():
        if isinstance(value, dict) and (key in value or key in value.values()):
            return True
        if isinstance(value, (list, set, tuple)) and key in value:
            return True
    return False


def test_erased_keys_leave_the_cipher_cache(ring: dict[str, Keyring]) -> None:
    """Issue 7: the AEAD cache of crypto.sealing must not keep the keys of erased epochs."""
    alpha = ring["alpha"]
    old_pair, old_group = alpha.message_key(ALPHA, BRAVO, 0), alpha.message_key(ALPHA, OPS, 0)
    kept = alpha.message_key(ALPHA, BRAVO, 4)
    assert old_pair is not None and old_group is not None and kept is not None
    for key in (old_pair, old_group, kept):
        seal_message(key, ALPHA, 0, 1, b"header", b"order")
        assert cipher_cache_holds(key)
    alpha.advance(4)  # epochs before 4 - GRACE are erased
    assert alpha.message_key(ALPHA, BRAVO, 0) is None
    assert not cipher_cache_holds(old_pair)
    assert not cipher_cache_holds(old_group)
    assert alpha.message_key(ALPHA, BRAVO, 4) == kept  # a kept epoch still works
    assert cipher_cache_holds(kept)


def test_keys_of_revoked_peers_leave_the_cipher_cache(ring: dict[str, Keyring]) -> None:
    alpha = ring["alpha"]
    to_charlie = alpha.message_key(ALPHA, CHARLIE, 0)
    assert to_charlie is not None
    seal_message(to_charlie, ALPHA, 0, 1, b"header", b"order")
    alpha.update_roster(revoked(alpha.roster, CHARLIE))
    assert not cipher_cache_holds(to_charlie)


def test_a_successor_roster_keeps_the_epochs(ring: dict[str, Keyring]) -> None:
    """Issue 7: another t0 or epoch length would map old messages to other epochs' keys."""
    alpha = ring["alpha"]
    known = alpha.roster
    changes = [
        ("t0", known.t0 + 60, re_signed(known, t0=known.t0 + 60)),
        ("epoch_seconds", 30, re_signed(known, epoch_seconds=30)),
    ]
    for field, value, changed in changes:
        with pytest.raises(RosterError, match=f"{field}: expected the known value") as info:
            check_successor(known, changed)
        assert str(getattr(known, field)) in str(info.value) and str(value) in str(info.value)
        with pytest.raises(RosterError, match=field):
            alpha.update_roster(changed)
    assert alpha.roster is known
    longer_grace = re_signed(known, grace_epochs=GRACE + 1)
    alpha.update_roster(longer_grace)  # the grace period may change
    assert alpha.roster is longer_grace


def test_only_active_members_may_send_to_a_group(ring: dict[str, Keyring]) -> None:
    """Issue 7: a group key exists only for a sender that is a non-revoked member."""
    for receiver in ("alpha", "bravo", "delta"):
        assert ring[receiver].message_key(CHARLIE, OPS, 1) is None  # not a member
        assert ring[receiver].message_key(BRAVO, OPS, 1) is not None
