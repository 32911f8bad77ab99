"""The mission directory: the authority's key, the signed roster and every node's key file.

    DIR/authority.key     0600  msgpack [b"tawan-authority", 1, mission_id,
                                         ed25519_private, [[group, root], ...]]
    DIR/roster.tawan      0644  the signed roster (crypto.roster)
    DIR/nodes/NAME.key    0600  each node's key file (crypto.keyfile)
    DIR/revocations/vN.tawan-revoke
                          0644  the revocation notice of roster version N (crypto.revocation)

Each change writes the node key files (or the revocation notice) first and the roster last,
so the roster (the record of who exists) only ever names nodes whose keys are on disk, and
every revocation it records has its notice.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.codec import Fields, pack, unpack
from crypto.errors import KeyFileError, MissionError, RevocationError, RosterError
from crypto.files import PUBLIC_MODE, read_private, read_public, write_atomic
from crypto.keyfile import ED25519_PRIVATE_BYTES, NodeKeys, load_keyfile, write_keyfile
from crypto.plan import MissionPlan, check_name
from crypto.revocation import Revocation, decode_revocation, make_revocation
from crypto.roster import (
    MAX_ADDRESS,
    MISSION_ID_BYTES,
    NodeEntry,
    Roster,
    verify_roster_bytes,
)
from crypto.schedule import KEY_BYTES

AUTHORITY_FILE = "authority.key"
ROSTER_FILE = "roster.tawan"
NODES_DIR = "nodes"
REVOCATIONS_DIR = "revocations"
REVOCATION_SUFFIX = ".tawan-revoke"
AUTHORITY_MAGIC = b"tawan-authority"
AUTHORITY_FORMAT = 1

PathLike = str | os.PathLike[str]


def keyfile_path(directory: PathLike, name: str) -> Path:
    check_name(name, "node")
    return Path(directory) / NODES_DIR / f"{name}.key"


def roster_path(directory: PathLike) -> Path:
    return Path(directory) / ROSTER_FILE


def revocation_path(directory: PathLike, version: int) -> Path:
    """Where the notice of the revocation made by roster `version` is kept."""
    return Path(directory) / REVOCATIONS_DIR / f"v{version}{REVOCATION_SUFFIX}"


def _encode_authority(plan: MissionPlan) -> bytes:
    private = plan.authority.private_bytes_raw()
    roots = [[group, root] for group, root in sorted(plan.group_roots.items())]
    return pack([AUTHORITY_MAGIC, AUTHORITY_FORMAT, plan.mission_id, private, roots])


def _decode_authority(
    data: bytes, source: str
) -> tuple[bytes, Ed25519PrivateKey, dict[int, bytes]]:
    fields = Fields(KeyFileError, source)
    document = unpack(data, KeyFileError, source)
    items = fields.header(document, AUTHORITY_MAGIC, AUTHORITY_FORMAT, 5)
    mission_id = fields.binary(items[2], "mission_id", MISSION_ID_BYTES)
    private = fields.binary(items[3], "authority key", ED25519_PRIVATE_BYTES)
    roots: dict[int, bytes] = {}
    for item in fields.array(items[4], "group roots"):
        group, root = fields.array(item, "group root", 2)
        address = fields.integer(group, "group address", 1, MAX_ADDRESS)
        roots[address] = fields.binary(root, "group root", KEY_BYTES)
    return mission_id, Ed25519PrivateKey.from_private_bytes(private), roots


def _load(base: Path) -> tuple[MissionPlan, Roster]:
    authority_file = base / AUTHORITY_FILE
    if not authority_file.exists():
        raise MissionError(f"{base}: expected a mission directory (no {AUTHORITY_FILE})")
    mission_id, authority, group_roots = _decode_authority(
        read_private(authority_file), str(authority_file)
    )
    roster = verify_roster_bytes(
        read_public(roster_path(base), RosterError),
        authority=authority.public_key().public_bytes_raw(),
        mission_id=mission_id,
        source=str(roster_path(base)),
    )
    return MissionPlan.from_roster(authority, roster, group_roots), roster


def load_plan(directory: PathLike, *, with_keys: bool = False) -> MissionPlan:
    """Load a mission directory, checking the roster against the authority key.

    With `with_keys`, the key files of all non-revoked nodes found in DIR/nodes are loaded
    too (add_node needs them to give each the root of its pair with the new node).
    """
    base = Path(directory)
    plan, roster = _load(base)
    if with_keys:
        for node in roster.active_nodes():
            path = keyfile_path(base, node.name)
            if path.exists():
                plan.keys[node.name] = load_keyfile(path, roster)
    return plan


def _save(directory: Path, plan: MissionPlan, changed: Iterable[str]) -> Roster:
    for name in changed:
        write_keyfile(keyfile_path(directory, name), plan.keys[name])
    write_atomic(directory / AUTHORITY_FILE, _encode_authority(plan))
    roster = plan.roster()
    write_atomic(roster_path(directory), roster.to_bytes(), PUBLIC_MODE)
    return roster


def init_mission(
    directory: PathLike,
    *,
    epoch_seconds: int = 3600,
    grace_epochs: int = 24,
    t0: int | None = None,
) -> Roster:
    """Create a mission in `directory` (new or empty of mission files): authority and roster."""
    base = Path(directory)
    for existing in (base / AUTHORITY_FILE, roster_path(base)):
        if existing.exists():
            raise MissionError(f"{base}: expected no mission here, found {existing.name}")
    start = int(time.time()) if t0 is None else t0
    plan = MissionPlan.new(
        os.urandom, t0=start, epoch_seconds=epoch_seconds, grace_epochs=grace_epochs
    )
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    (base / NODES_DIR).mkdir(mode=0o700, exist_ok=True)
    return _save(base, plan, ())


def add_node(directory: PathLike, name: str, groups: Sequence[str] = ()) -> NodeEntry:
    """Issue node `name` (in `groups`, created if new); pairs it with every active node."""
    base = Path(directory)
    plan = load_plan(base, with_keys=True)
    _keys, peers = plan.add_node(name, groups, os.urandom)
    roster = _save(base, plan, (name, *peers))
    entry = roster.node_named(name)
    if entry is None:  # pragma: no cover - add_node just put it there
        raise MissionError(f"node {name!r}: missing from the roster after issuing it")
    return entry


def revoke_node(directory: PathLike, name: str) -> Roster:
    """Revoke node `name`; returns the new roster, which must now reach every node.

    Also writes the revocation notice (`revocation_path(directory, roster.version)`), small
    enough to be flooded over any link long before the roster gets there.
    """
    base = Path(directory)
    plan = load_plan(base)
    entry = plan.revoke(name)
    notice = make_revocation(plan.authority, plan.mission_id, plan.version, (entry.address,))
    path = revocation_path(base, plan.version)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    write_atomic(path, notice.to_bytes(), PUBLIC_MODE)
    return _save(base, plan, ())


def load_revocations(directory: PathLike) -> list[tuple[Path, Revocation]]:
    """The revocation notices of a mission directory, each verified, by roster version."""
    base = Path(directory)
    roster = load_mission_roster(base)
    folder = base / REVOCATIONS_DIR
    if not folder.is_dir():
        return []
    notices = []
    for path in sorted(folder.glob(f"v*{REVOCATION_SUFFIX}")):
        notice = decode_revocation(read_public(path, RevocationError), str(path))
        if not notice.verify(roster.authority, roster.mission_id):
            raise RevocationError(f"{path}: not a notice signed by this mission's authority")
        notices.append((path, notice))
    return sorted(notices, key=lambda item: item[1].version)


def load_mission_roster(directory: PathLike) -> Roster:
    """The roster of a mission directory, verified with the authority key there."""
    return _load(Path(directory))[1]


def build_mission(
    names_and_groups: Mapping[str, Sequence[str]] | Iterable[tuple[str, Sequence[str]]],
    rng: random.Random,
    t0: int = 0,
    epoch_seconds: int = 3600,
    grace_epochs: int = 24,
) -> tuple[Roster, dict[str, NodeKeys]]:
    """A whole mission in memory, every private key drawn from `rng` (deterministic).

    Same seed, same public keys and roster; only the pair roots differ between runs,
    because ML-KEM encapsulation draws its own randomness.
    """
    items = names_and_groups.items() if isinstance(names_and_groups, Mapping) else names_and_groups
    plan = MissionPlan.new(
        rng.randbytes, t0=t0, epoch_seconds=epoch_seconds, grace_epochs=grace_epochs
    )
    for name, groups in items:
        plan.add_node(name, groups, rng.randbytes)
    return plan.roster(), dict(plan.keys)
