"""On-air pair setup for nodes issued after deployment."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import PairSetupError
from crypto.keyfile import NodeKeys
from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.pairing import (
    MLKEM768_CIPHERTEXT_BYTES,
    PAIR_SETUP_BYTES,
    PairSetup,
    accept_pair_setup,
    make_pair_setup,
)
from crypto.plan import MissionPlan
from crypto.roster import NodeEntry, Roster

PLAN: dict[str, list[str]] = {"alpha": [], "bravo": [], "charlie": [], "delta": []}
ALPHA, BRAVO, CHARLIE, DELTA = 1, 2, 3, 4

ROSTER, KEYS = build_mission(PLAN, random.Random(5), t0=0, epoch_seconds=60, grace_epochs=2)


def entry(address: int) -> NodeEntry:
    node = ROSTER.node_at(address)
    assert node is not None
    return node


def unpaired(keys: NodeKeys, peer: int) -> NodeKeys:
    """`keys` as if the node had been issued without a root for `peer`."""
    return keys.with_roots(tuple(r for r in keys.pair_roots if r.peer != peer), keys.group_roots)


def test_round_trip_gives_both_ends_the_same_root() -> None:
    setup, root = make_pair_setup(KEYS["delta"], entry(ALPHA))
    assert len(setup.to_bytes()) == PAIR_SETUP_BYTES == 1 + MLKEM768_CIPHERTEXT_BYTES + 64
    assert accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, setup) == root
    assert accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, setup.to_bytes()) == root
    second, other_root = make_pair_setup(KEYS["delta"], entry(ALPHA))
    assert second.ciphertext != setup.ciphertext and other_root != root


def test_keyrings_pair_on_air() -> None:
    delta = Keyring(unpaired(KEYS["delta"], ALPHA), ROSTER)
    alpha = Keyring(unpaired(KEYS["alpha"], DELTA), ROSTER)
    assert not alpha.has_pair(DELTA)
    assert delta.message_key(DELTA, ALPHA, 0) is None
    setup = delta.start_pairing(ALPHA)
    alpha.accept_pairing(DELTA, setup)
    assert alpha.has_pair(DELTA) and delta.has_pair(ALPHA)
    for epoch in (0, 1):
        key = delta.message_key(DELTA, ALPHA, epoch)
        assert key is not None and key == alpha.message_key(DELTA, ALPHA, epoch)
        assert delta.link_key(ALPHA, DELTA, epoch) == alpha.link_key(ALPHA, DELTA, epoch)


def test_replayed_setup_does_not_bring_back_erased_epochs() -> None:
    delta = Keyring(unpaired(KEYS["delta"], ALPHA), ROSTER)
    alpha = Keyring(unpaired(KEYS["alpha"], DELTA), ROSTER)
    setup = delta.start_pairing(ALPHA)
    alpha.accept_pairing(DELTA, setup)
    for ring in (alpha, delta):
        ring.advance(10)
    alpha.accept_pairing(DELTA, setup)
    assert alpha.message_key(DELTA, ALPHA, 3) is None
    assert alpha.message_key(DELTA, ALPHA, 10) == delta.message_key(DELTA, ALPHA, 10)
    assert all(root.epoch == 8 for root in alpha.keys().pair_roots)


def flipped(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x40]) + data[index + 1 :]


@pytest.mark.parametrize("index", [1, 500, 1088, 1089, PAIR_SETUP_BYTES - 1])
def test_modified_setup_rejected(index: int) -> None:
    setup, _ = make_pair_setup(KEYS["delta"], entry(ALPHA))
    with pytest.raises(PairSetupError, match="signature does not verify"):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, flipped(setup.to_bytes(), index))


def test_forged_setups_rejected() -> None:
    from_charlie, _ = make_pair_setup(KEYS["charlie"], entry(ALPHA))
    with pytest.raises(PairSetupError, match="signature does not verify"):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, from_charlie)
    for_bravo, _ = make_pair_setup(KEYS["delta"], entry(BRAVO))
    with pytest.raises(PairSetupError, match="signature does not verify"):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, for_bravo)
    with pytest.raises(PairSetupError, match="expected another non-revoked node"):
        accept_pair_setup(KEYS["alpha"], ROSTER, 999, for_bravo)
    with pytest.raises(PairSetupError, match="expected another non-revoked node"):
        accept_pair_setup(KEYS["alpha"], ROSTER, ALPHA, for_bravo)


def revoke(roster: Roster, name: str) -> Roster:
    plan = MissionPlan.new(random.Random(5).randbytes, t0=0, epoch_seconds=60, grace_epochs=2)
    plan = MissionPlan.from_roster(plan.authority, roster, {})
    plan.revoke(name)
    return plan.roster()


def test_revoked_initiator_rejected() -> None:
    setup, _ = make_pair_setup(KEYS["delta"], entry(ALPHA))
    newer = revoke(ROSTER, "delta")
    with pytest.raises(PairSetupError, match="non-revoked"):
        accept_pair_setup(KEYS["alpha"], newer, DELTA, setup)
    with pytest.raises(PairSetupError, match="revoked"):
        make_pair_setup(KEYS["alpha"], newer.node_at(DELTA))  # type: ignore[arg-type]
    alpha = Keyring(unpaired(KEYS["alpha"], DELTA), ROSTER)
    alpha.update_roster(newer)
    with pytest.raises(PairSetupError):
        alpha.accept_pairing(DELTA, setup)
    with pytest.raises(PairSetupError):
        alpha.add_pair_root(DELTA, 0, bytes(32))


def test_setup_of_another_mission_rejected() -> None:
    other, other_keys = build_mission(PLAN, random.Random(6), t0=0)
    setup, _ = make_pair_setup(other_keys["delta"], other.node_at(ALPHA))  # type: ignore[arg-type]
    with pytest.raises(PairSetupError):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, setup)
    with pytest.raises(PairSetupError, match="different missions"):
        accept_pair_setup(other_keys["alpha"], ROSTER, DELTA, setup)


def test_cannot_pair_with_itself() -> None:
    with pytest.raises(PairSetupError, match="itself"):
        make_pair_setup(KEYS["alpha"], entry(ALPHA))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01",
        bytes(PAIR_SETUP_BYTES - 1),
        bytes(PAIR_SETUP_BYTES + 1),
        bytes(PAIR_SETUP_BYTES),
    ],
)
def test_malformed_setup_rejected(data: bytes) -> None:
    with pytest.raises(PairSetupError, match="pair setup"):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, data)


def test_setup_fields_checked() -> None:
    with pytest.raises(PairSetupError, match="ciphertext"):
        PairSetup(ciphertext=b"short", signature=bytes(64))
    with pytest.raises(PairSetupError, match="signature"):
        PairSetup(ciphertext=bytes(MLKEM768_CIPHERTEXT_BYTES), signature=b"")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=PAIR_SETUP_BYTES, max_size=PAIR_SETUP_BYTES) | st.binary(max_size=64))
def test_random_setup_bytes_raise_only_pair_setup_error(data: bytes) -> None:
    with pytest.raises(PairSetupError):
        accept_pair_setup(KEYS["alpha"], ROSTER, DELTA, data)
