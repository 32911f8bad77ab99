"""A node's key file: its private keys and the roots of its pairs and groups.

File layout (msgpack): ``[b"tawan-node", 1, mission_id, authority, name, address, ed25519_private,
x25519_private, mlkem768_seed, [[peer, epoch, root], ...], [[group, epoch, root], ...]]``.
A root is stored at the oldest epoch the node may still use; older roots were erased.
``authority`` (the mission authority's Ed25519 public key) pins the roster: a roster signed
by any other key is refused even if it carries the same mission id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crypto.codec import Fields, pack, unpack_file
from crypto.errors import KeyFileError, RosterError
from crypto.files import read_private, write_atomic
from crypto.roster import (
    ED25519_PUBLIC_BYTES,
    MAX_ADDRESS,
    MAX_EPOCH,
    MISSION_ID_BYTES,
    Roster,
    valid_name,
)
from crypto.schedule import KEY_BYTES

KEYFILE_MAGIC = b"tawan-node"
KEYFILE_FORMAT = 1
ED25519_PRIVATE_BYTES = 32
X25519_PRIVATE_BYTES = 32
MLKEM768_SEED_BYTES = 64


@dataclass(frozen=True, slots=True)
class StoredRoot:
    """The root of a pair (peer = the other node) or a group, as of `epoch`."""

    peer: int
    epoch: int
    root: bytes


@dataclass(frozen=True, slots=True)
class PublicKeys:
    ed25519: bytes
    x25519: bytes
    mlkem768: bytes


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """Everything one node holds secret. Built once, never mutated."""

    mission_id: bytes
    authority: bytes
    name: str
    address: int
    ed25519_private: bytes
    x25519_private: bytes
    mlkem768_seed: bytes
    pair_roots: tuple[StoredRoot, ...] = ()
    group_roots: tuple[StoredRoot, ...] = ()

    def __post_init__(self) -> None:
        _check_node_keys(self)

    def signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.ed25519_private)

    def agreement_key(self) -> X25519PrivateKey:
        return X25519PrivateKey.from_private_bytes(self.x25519_private)

    def kem_key(self) -> MLKEM768PrivateKey:
        return MLKEM768PrivateKey.from_seed_bytes(self.mlkem768_seed)

    def public_keys(self) -> PublicKeys:
        return PublicKeys(
            ed25519=self.signing_key().public_key().public_bytes_raw(),
            x25519=self.agreement_key().public_key().public_bytes_raw(),
            mlkem768=self.kem_key().public_key().public_bytes_raw(),
        )

    def with_roots(
        self, pair_roots: tuple[StoredRoot, ...], group_roots: tuple[StoredRoot, ...]
    ) -> NodeKeys:
        return NodeKeys(
            self.mission_id, self.authority, self.name, self.address, self.ed25519_private,
            self.x25519_private, self.mlkem768_seed,
            tuple(sorted(pair_roots, key=lambda r: r.peer)),
            tuple(sorted(group_roots, key=lambda r: r.peer)),
        )  # fmt: skip

    def with_pair_root(self, root: StoredRoot) -> NodeKeys:
        """These keys with the pair root for `root.peer` added or replaced."""
        others = tuple(r for r in self.pair_roots if r.peer != root.peer)
        return self.with_roots((*others, root), self.group_roots)

    def to_bytes(self) -> bytes:
        return pack(
            [
                KEYFILE_MAGIC,
                KEYFILE_FORMAT,
                self.mission_id,
                self.authority,
                self.name,
                self.address,
                self.ed25519_private,
                self.x25519_private,
                self.mlkem768_seed,
                [[r.peer, r.epoch, r.root] for r in self.pair_roots],
                [[r.peer, r.epoch, r.root] for r in self.group_roots],
            ]
        )


def _check_node_keys(keys: NodeKeys) -> None:
    where = f"key file of {keys.name!r}"
    if len(keys.mission_id) != MISSION_ID_BYTES:
        raise KeyFileError(f"{where}: mission_id: expected {MISSION_ID_BYTES} bytes")
    if len(keys.authority) != ED25519_PUBLIC_BYTES:
        raise KeyFileError(f"{where}: authority key: expected {ED25519_PUBLIC_BYTES} bytes")
    if not valid_name(keys.name):
        raise KeyFileError(f"{where}: name: expected a valid node name")
    if not 1 <= keys.address <= MAX_ADDRESS:
        raise KeyFileError(f"{where}: address: expected 1..{MAX_ADDRESS}")
    sizes = (
        (keys.ed25519_private, ED25519_PRIVATE_BYTES, "Ed25519 key"),
        (keys.x25519_private, X25519_PRIVATE_BYTES, "X25519 key"),
        (keys.mlkem768_seed, MLKEM768_SEED_BYTES, "ML-KEM seed"),
    )
    for value, size, what in sizes:
        if len(value) != size:
            raise KeyFileError(f"{where}: {what}: expected {size} bytes, found {len(value)}")
    _check_roots(where, "pair", keys.pair_roots)
    _check_roots(where, "group", keys.group_roots)


def _check_roots(where: str, kind: str, roots: tuple[StoredRoot, ...]) -> None:
    peers = [r.peer for r in roots]
    if peers != sorted(set(peers)):
        raise KeyFileError(f"{where}: {kind} roots: expected ascending distinct addresses")
    for r in roots:
        if not (1 <= r.peer <= MAX_ADDRESS and 0 <= r.epoch <= MAX_EPOCH):
            raise KeyFileError(
                f"{where}: {kind} root {r.peer}: expected address 1..{MAX_ADDRESS}, "
                f"epoch 0..{MAX_EPOCH}, found {r.peer}, {r.epoch}"
            )
        if len(r.root) != KEY_BYTES:
            raise KeyFileError(f"{where}: {kind} root {r.peer}: expected {KEY_BYTES} bytes")


def decode_keyfile(data: bytes, source: str = "key file") -> NodeKeys:
    """Decode key file bytes; anything malformed raises KeyFileError naming `source`."""
    fields = Fields(KeyFileError, source)
    document = unpack_file(data, KeyFileError, source, KEYFILE_MAGIC, "tawan key file")
    items = fields.header(document, KEYFILE_MAGIC, KEYFILE_FORMAT, 11)
    return NodeKeys(
        mission_id=fields.binary(items[2], "mission_id", MISSION_ID_BYTES),
        authority=fields.binary(items[3], "authority key", ED25519_PUBLIC_BYTES),
        name=fields.text(items[4], "name"),
        address=fields.integer(items[5], "address", 1, MAX_ADDRESS),
        ed25519_private=fields.binary(items[6], "Ed25519 key", ED25519_PRIVATE_BYTES),
        x25519_private=fields.binary(items[7], "X25519 key", X25519_PRIVATE_BYTES),
        mlkem768_seed=fields.binary(items[8], "ML-KEM seed", MLKEM768_SEED_BYTES),
        pair_roots=_decode_roots(fields, items[9], "pair roots"),
        group_roots=_decode_roots(fields, items[10], "group roots"),
    )


def _decode_roots(fields: Fields, value: object, what: str) -> tuple[StoredRoot, ...]:
    roots = []
    for item in fields.array(value, what):
        peer, epoch, root = fields.array(item, what, 3)
        roots.append(
            StoredRoot(
                peer=fields.integer(peer, f"{what} address", 1, MAX_ADDRESS),
                epoch=fields.integer(epoch, f"{what} epoch", 0, MAX_EPOCH),
                root=fields.binary(root, f"{what} root", KEY_BYTES),
            )
        )
    return tuple(roots)


def check_against_roster(
    keys: NodeKeys, roster: Roster, source: str, roster_source: str | None = None
) -> None:
    """Refuse keys of another mission, or whose public half is not the roster's entry.

    With `roster_source` the roster is a file read with the key file, and the key file is
    the reference: it pins the mission and its authority, so a roster that does not match
    them is the file out of place, and the message names it first."""
    if roster_source is not None:
        _check_roster_file(keys, roster, source, roster_source)
    if keys.mission_id != roster.mission_id:
        raise KeyFileError(
            f"{source}: key file of mission {keys.mission_id.hex()}, "
            f"but the roster is of mission {roster.mission_id.hex()}"
        )
    if keys.authority != roster.authority:
        raise KeyFileError(
            f"{source}: the roster is signed by another authority than this key file's"
        )
    entry = roster.node_at(keys.address)
    if entry is None or entry.name != keys.name:
        raise KeyFileError(
            f"{source}: node {keys.name!r} at address {keys.address} is not in the roster"
        )
    public = keys.public_keys()
    if (public.ed25519, public.x25519, public.mlkem768) != (
        entry.ed25519_public,
        entry.x25519_public,
        entry.mlkem768_public,
    ):
        where = f" {roster_source}" if roster_source is not None else ""
        raise KeyFileError(
            f"{source}: keys of {keys.name!r}: expected those of its entry in the roster"
            f"{where}, found others (a key file issued again since?)"
        )


def _check_roster_file(keys: NodeKeys, roster: Roster, source: str, roster_source: str) -> None:
    if keys.mission_id != roster.mission_id:
        raise RosterError(
            f"{roster_source}: mission: expected {keys.mission_id.hex()} (that of key file "
            f"{source}), found {roster.mission_id.hex()}: a roster of another mission"
        )
    if keys.authority != roster.authority:
        raise RosterError(
            f"{roster_source}: authority: expected the key pinned by key file {source}, "
            "found another: a roster not signed by this mission's authority"
        )
    entry = roster.node_at(keys.address)
    if entry is None or entry.name != keys.name:
        found = "no node there" if entry is None else f"node {entry.name!r}"
        raise RosterError(
            f"{roster_source}: node at address {keys.address}: expected {keys.name!r} (the "
            f"node of key file {source}), found {found}: a roster older than the key file?"
        )


def load_keyfile(path: str | os.PathLike[str], roster: Roster | None = None) -> NodeKeys:
    """Load a key file (mode 0600 required); with `roster`, check it belongs to it."""
    where = Path(path)
    keys = decode_keyfile(read_private(where), str(where))
    if roster is not None:
        check_against_roster(keys, roster, str(where))
    return keys


def write_keyfile(path: str | os.PathLike[str], keys: NodeKeys) -> None:
    """Atomically replace the key file at `path`, mode 0600."""
    write_atomic(Path(path), keys.to_bytes())
