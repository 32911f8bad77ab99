"""The mission directory: issuing nodes, the signed roster, key files and their checks."""

from __future__ import annotations

import dataclasses
import random
import stat
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import KeyFileError, MissionError, RevocationError, RosterError
from crypto.keyfile import decode_keyfile, load_keyfile, write_keyfile
from crypto.keyring import Keyring
from crypto.mission import (
    add_node,
    build_mission,
    init_mission,
    keyfile_path,
    load_mission_roster,
    load_revocations,
    revocation_path,
    revoke_node,
    roster_path,
)
from crypto.roster import load_roster, verify_roster_bytes


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def mission(tmp_path: Path) -> Path:
    directory = tmp_path / "mission"
    init_mission(directory, epoch_seconds=600, grace_epochs=4, t0=1_700_000_000)
    add_node(directory, "alpha", ["ops", "log"])
    add_node(directory, "bravo", ["ops"])
    add_node(directory, "charlie", [])
    return directory


def test_init_writes_authority_and_roster(tmp_path: Path) -> None:
    directory = tmp_path / "m"
    roster = init_mission(directory, epoch_seconds=60, grace_epochs=2, t0=1000)
    assert (roster.version, roster.t0, roster.epoch_seconds, roster.grace_epochs) == (
        1,
        1000,
        60,
        2,
    )
    assert roster.nodes == () and roster.groups == ()
    assert mode_of(directory / "authority.key") == 0o600
    assert mode_of(directory / "nodes") == 0o700
    assert load_mission_roster(directory) == roster


def test_init_refuses_existing_mission(mission: Path) -> None:
    with pytest.raises(MissionError, match="expected no mission here"):
        init_mission(mission)


@pytest.mark.parametrize(("epoch_seconds", "grace"), [(0, 1), (-5, 1), (60, -1)])
def test_init_refuses_bad_parameters(tmp_path: Path, epoch_seconds: int, grace: int) -> None:
    with pytest.raises(MissionError):
        init_mission(tmp_path / "m", epoch_seconds=epoch_seconds, grace_epochs=grace)


def test_addresses_increase_and_are_shared_by_nodes_and_groups(mission: Path) -> None:
    roster = load_mission_roster(mission)
    addresses = {node.name: node.address for node in roster.nodes}
    addresses.update({group.name: group.address for group in roster.groups})
    assert addresses == {"alpha": 1, "ops": 2, "log": 3, "bravo": 4, "charlie": 5}
    assert roster.version == 4
    assert roster.members(2) == (1, 4)
    assert roster.groups_of(1) == (2, 3)
    assert roster.is_group(2) and not roster.is_group(1)


@pytest.mark.parametrize("name", ["", "-x", "Alpha", "a_b", "a" * 33, "a\n", "é"])
def test_invalid_node_name_refused(mission: Path, name: str) -> None:
    with pytest.raises(MissionError, match="expected 1-32 characters"):
        add_node(mission, name, [])


def test_duplicate_names_refused(mission: Path) -> None:
    with pytest.raises(MissionError, match="'alpha': already used by a node"):
        add_node(mission, "alpha", [])
    with pytest.raises(MissionError, match="'ops': already used by a group"):
        add_node(mission, "ops", [])
    with pytest.raises(MissionError, match="group name 'bravo'"):
        add_node(mission, "delta", ["bravo"])
    with pytest.raises(MissionError, match="group name 'echo'"):
        add_node(mission, "echo", ["echo"])
    assert load_mission_roster(mission).version == 4


def test_key_files_are_private_and_loose_ones_refused(mission: Path) -> None:
    path = keyfile_path(mission, "alpha")
    assert mode_of(path) == 0o600
    roster = load_mission_roster(mission)
    load_keyfile(path, roster)
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"alpha\.key: key file mode is 0644"):
        load_keyfile(path, roster)
    with pytest.raises(KeyFileError, match=r"alpha\.key"):
        add_node(mission, "delta", [])


def test_add_node_needs_the_key_files_of_active_nodes(mission: Path) -> None:
    keyfile_path(mission, "bravo").unlink()
    with pytest.raises(MissionError, match="key files missing for bravo"):
        add_node(mission, "delta", [])
    revoke_node(mission, "bravo")
    assert add_node(mission, "delta", []).address == 6


def test_planning_time_pairs_agree(mission: Path) -> None:
    roster = load_mission_roster(mission)
    rings = {
        name: Keyring(load_keyfile(keyfile_path(mission, name), roster), roster)
        for name in ("alpha", "bravo", "charlie")
    }
    for a, b in [("alpha", "bravo"), ("alpha", "charlie"), ("bravo", "charlie")]:
        ra, rb = rings[a], rings[b]
        assert ra.message_key(ra.address, rb.address, 3) == rb.message_key(
            ra.address, rb.address, 3
        )
        assert ra.link_key(rb.address, ra.address, 0) == rb.link_key(rb.address, ra.address, 0)
        assert ra.message_key(ra.address, rb.address, 3) is not None


def test_tampered_roster_refused(mission: Path) -> None:
    data = roster_path(mission).read_bytes()
    authority = load_mission_roster(mission).authority
    for index in (len(data) - 1, len(data) // 2):
        forged = bytearray(data)
        forged[index] ^= 0x01
        with pytest.raises(RosterError):
            verify_roster_bytes(bytes(forged), authority=authority)
    roster_path(mission).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(RosterError, match="bad authority signature"):
        load_mission_roster(mission)


def test_roster_of_another_mission_refused(mission: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_mission(other)
    add_node(other, "alpha", [])
    ours, theirs = load_mission_roster(mission), load_mission_roster(other)
    with pytest.raises(RosterError, match="expected mission"):
        verify_roster_bytes(roster_path(other).read_bytes(), mission_id=ours.mission_id)
    with pytest.raises(RosterError, match="another authority"):
        verify_roster_bytes(roster_path(other).read_bytes(), authority=ours.authority)
    with pytest.raises(RosterError, match="expected mission"):
        load_roster(roster_path(other), known=ours)
    with pytest.raises(KeyFileError, match="mission"):
        load_keyfile(keyfile_path(mission, "alpha"), theirs)
    with pytest.raises(RosterError, match="expected an authority key or a mission id"):
        verify_roster_bytes(roster_path(other).read_bytes())


def test_older_roster_refused_newer_accepted(mission: Path, tmp_path: Path) -> None:
    old_copy = tmp_path / "old.tawan"
    old_copy.write_bytes(roster_path(mission).read_bytes())
    old = load_roster(old_copy)
    revoke_node(mission, "charlie")
    new = load_roster(roster_path(mission), known=old)
    assert new.version == old.version + 1
    assert new.is_revoked(5)
    with pytest.raises(RosterError, match="older than the known version"):
        load_roster(old_copy, known=new)
    assert load_roster(roster_path(mission), known=new) == new


def test_revoke(mission: Path) -> None:
    roster = revoke_node(mission, "bravo")
    assert roster.is_revoked(4) and not roster.is_revoked(1)
    assert roster.members(2) == (1,)
    with pytest.raises(MissionError, match="already revoked"):
        revoke_node(mission, "bravo")
    with pytest.raises(MissionError, match="expected a node of this mission"):
        revoke_node(mission, "zulu")
    with pytest.raises(MissionError, match="already used by a revoked node"):
        add_node(mission, "bravo", [])
    delta = add_node(mission, "delta", ["ops"])
    assert delta.address == 6
    keys = load_keyfile(keyfile_path(mission, "delta"), load_mission_roster(mission))
    assert {root.peer for root in keys.pair_roots} == {1, 5}


def test_revoke_writes_a_signed_notice(mission: Path) -> None:
    assert load_revocations(mission) == []
    first = revoke_node(mission, "bravo")
    second = revoke_node(mission, "charlie")
    path = revocation_path(mission, first.version)
    assert path == mission / "revocations" / f"v{first.version}.tawan-revoke"
    assert mode_of(path) == 0o644 and mode_of(path.parent) == 0o700
    notices = load_revocations(mission)
    assert [(p, n.version, n.revoked) for p, n in notices] == [
        (path, first.version, (4,)),
        (revocation_path(mission, second.version), second.version, (5,)),
    ]
    for _path, notice in notices:
        assert notice.verify(second.authority, second.mission_id)
        assert notice.mission_id == second.mission_id
    # A notice not signed by the authority is refused.
    _other_path, notice = notices[0]
    forged = dataclasses.replace(notice, signature=bytes(64))
    path.write_bytes(forged.to_bytes())
    with pytest.raises(RevocationError, match="authority"):
        load_revocations(mission)
    path.write_bytes(b"\x93")
    with pytest.raises(RevocationError, match=str(path)):
        load_revocations(mission)


def test_build_mission_is_deterministic() -> None:
    plan = {"alpha": ["ops"], "bravo": ["ops", "log"], "charlie": []}
    roster_a, keys_a = build_mission(plan, random.Random(7), t0=0)
    roster_b, keys_b = build_mission(list(plan.items()), random.Random(7), t0=0)
    roster_c, _ = build_mission(plan, random.Random(8), t0=0)
    assert roster_a.to_bytes() == roster_b.to_bytes()
    assert roster_a.mission_id != roster_c.mission_id
    assert roster_a.nodes[0].mlkem768_public != roster_c.nodes[0].mlkem768_public
    for name in plan:
        assert keys_a[name].ed25519_private == keys_b[name].ed25519_private
        assert keys_a[name].group_roots == keys_b[name].group_roots


def test_build_mission_rejects_a_string_of_groups() -> None:
    with pytest.raises(MissionError, match="expected a list of names"):
        build_mission({"alpha": "ops"}, random.Random(1))


# Untrusted bytes: only our typed errors come out.

_ROSTER, _KEYS = build_mission({"alpha": ["ops"], "bravo": []}, random.Random(3), t0=5)
_ROSTER_BYTES = _ROSTER.to_bytes()
_KEY_BYTES = _KEYS["alpha"].to_bytes()

msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.binary(max_size=40)
    | st.text(max_size=10) | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=5),
    max_leaves=20,
)  # fmt: skip


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    flips = st.tuples(st.integers(0, len(valid) - 1), st.integers(1, 255)).map(
        lambda f: valid[: f[0]] + bytes([valid[f[0]] ^ f[1]]) + valid[f[0] + 1 :]
    )
    cuts = st.integers(0, len(valid) - 1).map(lambda n: valid[:n])
    return flips | cuts | st.binary(max_size=300)


def replaced_items(valid: bytes) -> st.SearchStrategy[bytes]:
    items = msgpack.unpackb(valid)
    return st.tuples(st.integers(0, len(items) - 1), msgpack_values).map(
        lambda r: msgpack.packb([*items[: r[0]], r[1], *items[r[0] + 1 :]])
    )


def replaced_body_items(valid: bytes) -> st.SearchStrategy[bytes]:
    magic, version, body, signature = msgpack.unpackb(valid)
    return replaced_items(body).map(lambda b: msgpack.packb([magic, version, b, signature]))


@settings(max_examples=300, deadline=None)
@given(
    mutations(_ROSTER_BYTES) | replaced_items(_ROSTER_BYTES) | replaced_body_items(_ROSTER_BYTES)
)
def test_malformed_roster_raises_roster_error(data: bytes) -> None:
    try:
        roster = verify_roster_bytes(data, mission_id=_ROSTER.mission_id)
    except RosterError:
        return
    assert roster == _ROSTER


@settings(max_examples=300, deadline=None)
@given(mutations(_KEY_BYTES) | replaced_items(_KEY_BYTES))
def test_malformed_key_file_raises_key_file_error(data: bytes) -> None:
    try:
        decode_keyfile(data)
    except KeyFileError:
        return


def test_malformed_roster_body_raises_roster_error() -> None:
    body = msgpack.unpackb(_ROSTER.body_bytes())
    body[6][0][1] = 0  # address 0 is reserved
    forged = msgpack.packb([b"tawan-roster", 1, msgpack.packb(body), b"\0" * 64])
    with pytest.raises(RosterError, match="address"):
        verify_roster_bytes(forged, mission_id=_ROSTER.mission_id)


def test_key_file_write_is_atomic_and_private(tmp_path: Path) -> None:
    path = tmp_path / "alpha.key"
    write_keyfile(path, _KEYS["alpha"])
    write_keyfile(path, _KEYS["alpha"])
    assert mode_of(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpha.key"]
    assert load_keyfile(path, _ROSTER) == _KEYS["alpha"]
