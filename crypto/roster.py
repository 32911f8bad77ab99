"""The mission roster: every node and group, its address and public keys, signed.

A roster file is msgpack ``[b"tawan-roster", 1, body, signature]`` where ``body`` is the
canonical msgpack encoding of the roster and ``signature`` the mission authority's Ed25519
signature over ``body``. docs/keys.md gives the body layout field by field.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crypto.codec import Fields, pack, unpack, unpack_file
from crypto.errors import RosterError
from crypto.files import read_public

ROSTER_MAGIC = b"tawan-roster"
ROSTER_FORMAT = 1
MISSION_ID_BYTES = 8
ED25519_PUBLIC_BYTES = 32
X25519_PUBLIC_BYTES = 32
MLKEM768_PUBLIC_BYTES = 1184
SIGNATURE_BYTES = 64
MAX_ADDRESS = 0xFFFF
MAX_EPOCH = 0xFFFFFFFF
_MAX_U63 = (1 << 63) - 1
MAX_VERSION = _MAX_U63
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
NAME_RULE = "1-32 characters of a-z, 0-9 and '-', not starting with '-'"
"""NAME_PATTERN in words, for the errors that refuse a name."""


def valid_name(name: str) -> bool:
    """True for a node or group name: 1-32 of a-z, 0-9 and '-', not starting with '-'."""
    return NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class GroupEntry:
    name: str
    address: int


@dataclass(frozen=True, slots=True)
class NodeEntry:
    name: str
    address: int
    ed25519_public: bytes
    x25519_public: bytes
    mlkem768_public: bytes
    groups: tuple[int, ...] = ()
    revoked: bool = False


@dataclass(frozen=True)
class Roster:
    """A validated roster; lookups are dictionary reads built once at construction."""

    mission_id: bytes
    version: int
    t0: int
    epoch_seconds: int
    grace_epochs: int
    authority: bytes
    nodes: tuple[NodeEntry, ...]
    groups: tuple[GroupEntry, ...]
    signature: bytes = b""
    _by_address: dict[int, NodeEntry | GroupEntry] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, NodeEntry | GroupEntry] = field(init=False, repr=False, compare=False)
    _members: dict[int, tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_parameters(self)
        by_address: dict[int, NodeEntry | GroupEntry] = {}
        by_name: dict[str, NodeEntry | GroupEntry] = {}
        entries: tuple[NodeEntry | GroupEntry, ...] = (*self.groups, *self.nodes)
        for entry in entries:
            _check_entry(entry)
            if entry.address in by_address:
                raise RosterError(f"roster: address {entry.address} is used twice")
            if entry.name in by_name:
                raise RosterError(f"roster: name {entry.name!r} is used twice")
            by_address[entry.address] = entry
            by_name[entry.name] = entry
        members: dict[int, list[int]] = {group.address: [] for group in self.groups}
        for node in self.nodes:
            for group in node.groups:
                if group not in members:
                    raise RosterError(
                        f"roster: node {node.name!r} lists group address {group}, "
                        "which is not a group"
                    )
                if not node.revoked:
                    members[group].append(node.address)
        object.__setattr__(self, "_by_address", by_address)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_members", {g: tuple(m) for g, m in members.items()})

    def node_named(self, name: str) -> NodeEntry | None:
        entry = self._by_name.get(name)
        return entry if isinstance(entry, NodeEntry) else None

    def group_named(self, name: str) -> GroupEntry | None:
        entry = self._by_name.get(name)
        return entry if isinstance(entry, GroupEntry) else None

    def by_name(self, name: str) -> NodeEntry | GroupEntry | None:
        return self._by_name.get(name)

    def by_address(self, address: int) -> NodeEntry | GroupEntry | None:
        return self._by_address.get(address)

    def node_at(self, address: int) -> NodeEntry | None:
        entry = self._by_address.get(address)
        return entry if isinstance(entry, NodeEntry) else None

    def is_group(self, address: int) -> bool:
        return isinstance(self._by_address.get(address), GroupEntry)

    def is_revoked(self, address: int) -> bool:
        entry = self._by_address.get(address)
        return isinstance(entry, NodeEntry) and entry.revoked

    def members(self, group: int) -> tuple[int, ...]:
        """Addresses of the group's non-revoked members, ascending; () for a non-group."""
        return self._members.get(group, ())

    def groups_of(self, node: int) -> tuple[int, ...]:
        """Group addresses the node belongs to; () for an unknown address or a group."""
        entry = self.node_at(node)
        return entry.groups if entry is not None else ()

    def active_nodes(self) -> tuple[NodeEntry, ...]:
        return tuple(node for node in self.nodes if not node.revoked)

    def with_revoked(self, addresses: Iterable[int]) -> Roster:
        """A derived roster: this one with the nodes at `addresses` marked revoked.

        It is unsigned (no signature) and never written or sent: a keyring derives it from
        the signed roster and the revocation notices it has applied (crypto.revocation).
        Returns this roster itself when every one of them is revoked already.
        """
        wanted = set(addresses)
        for address in sorted(wanted):
            if self.node_at(address) is None:
                raise RosterError(
                    f"roster version {self.version}: revoking address {address}: "
                    "expected a node of the roster"
                )
        if all(self.is_revoked(address) for address in wanted):
            return self
        nodes = tuple(
            dataclasses.replace(node, revoked=True) if node.address in wanted else node
            for node in self.nodes
        )
        return dataclasses.replace(self, nodes=nodes, signature=b"")

    def body_bytes(self) -> bytes:
        """The canonical encoding that the authority signs."""
        return pack(
            [
                self.mission_id,
                self.version,
                self.t0,
                self.epoch_seconds,
                self.grace_epochs,
                self.authority,
                [_node_item(node) for node in self.nodes],
                [[group.name, group.address] for group in self.groups],
            ]
        )

    def to_bytes(self) -> bytes:
        """The roster file: the body and the authority's signature."""
        return pack([ROSTER_MAGIC, ROSTER_FORMAT, self.body_bytes(), self.signature])

    def signed(self, authority: Ed25519PrivateKey) -> Roster:
        """This roster with the authority's signature over its body."""
        if authority.public_key().public_bytes_raw() != self.authority:
            raise RosterError("roster: signing key is not the roster's authority key")
        return _replace_signature(self, authority.sign(self.body_bytes()))

    def signature_valid(self) -> bool:
        try:
            public = Ed25519PublicKey.from_public_bytes(self.authority)
            public.verify(self.signature, self.body_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True


def _replace_signature(roster: Roster, signature: bytes) -> Roster:
    return Roster(
        roster.mission_id, roster.version, roster.t0, roster.epoch_seconds,
        roster.grace_epochs, roster.authority, roster.nodes, roster.groups, signature,
    )  # fmt: skip


def _node_item(node: NodeEntry) -> list[object]:
    return [
        node.name,
        node.address,
        node.ed25519_public,
        node.x25519_public,
        node.mlkem768_public,
        list(node.groups),
        node.revoked,
    ]


def _check_parameters(roster: Roster) -> None:
    checks = [
        (len(roster.mission_id) == MISSION_ID_BYTES, "mission_id", "8 bytes"),
        (1 <= roster.version <= _MAX_U63, "version", "an integer >= 1"),
        (0 <= roster.t0 <= _MAX_U63, "t0", "unix seconds >= 0"),
        (1 <= roster.epoch_seconds <= MAX_EPOCH, "epoch_seconds", "1..2^32-1"),
        (0 <= roster.grace_epochs <= MAX_EPOCH, "grace_epochs", "0..2^32-1"),
        (len(roster.authority) == ED25519_PUBLIC_BYTES, "authority key", "32 bytes"),
        (len(roster.signature) in (0, SIGNATURE_BYTES), "signature", "64 bytes"),
    ]
    for ok, what, expected in checks:
        if not ok:
            raise RosterError(f"roster: {what}: expected {expected}")
    if list(roster.nodes) != sorted(roster.nodes, key=lambda n: n.address):
        raise RosterError("roster: nodes: expected ascending addresses")
    if list(roster.groups) != sorted(roster.groups, key=lambda g: g.address):
        raise RosterError("roster: groups: expected ascending addresses")


def _check_entry(entry: NodeEntry | GroupEntry) -> None:
    where = f"roster entry {entry.name!r}"
    if not valid_name(entry.name):
        raise RosterError(f"{where}: expected a name matching {NAME_PATTERN.pattern}")
    if not 1 <= entry.address <= MAX_ADDRESS:
        raise RosterError(f"{where}: address {entry.address}: expected 1..{MAX_ADDRESS}")
    if isinstance(entry, GroupEntry):
        return
    lengths = (
        (entry.ed25519_public, ED25519_PUBLIC_BYTES, "Ed25519 key"),
        (entry.x25519_public, X25519_PUBLIC_BYTES, "X25519 key"),
        (entry.mlkem768_public, MLKEM768_PUBLIC_BYTES, "ML-KEM-768 key"),
    )
    for value, length, what in lengths:
        if len(value) != length:
            raise RosterError(f"{where}: {what}: expected {length} bytes, found {len(value)}")
    if list(entry.groups) != sorted(set(entry.groups)):
        raise RosterError(f"{where}: groups: expected ascending distinct addresses")


def _decode_body(body: bytes, source: str) -> Roster:
    fields = Fields(RosterError, source)
    items = fields.array(unpack(body, RosterError, source), "roster body", 8)
    nodes = tuple(_decode_node(fields, item) for item in fields.array(items[6], "nodes"))
    groups = tuple(_decode_group(fields, item) for item in fields.array(items[7], "groups"))
    return Roster(
        mission_id=fields.binary(items[0], "mission_id", MISSION_ID_BYTES),
        version=fields.integer(items[1], "version", 1, _MAX_U63),
        t0=fields.integer(items[2], "t0", 0, _MAX_U63),
        epoch_seconds=fields.integer(items[3], "epoch_seconds", 1, MAX_EPOCH),
        grace_epochs=fields.integer(items[4], "grace_epochs", 0, MAX_EPOCH),
        authority=fields.binary(items[5], "authority key", ED25519_PUBLIC_BYTES),
        nodes=nodes,
        groups=groups,
    )


def _decode_node(fields: Fields, value: object) -> NodeEntry:
    items = fields.array(value, "node entry", 7)
    groups = fields.array(items[5], "node groups")
    return NodeEntry(
        name=fields.text(items[0], "node name"),
        address=fields.integer(items[1], "node address", 1, MAX_ADDRESS),
        ed25519_public=fields.binary(items[2], "node Ed25519 key", ED25519_PUBLIC_BYTES),
        x25519_public=fields.binary(items[3], "node X25519 key", X25519_PUBLIC_BYTES),
        mlkem768_public=fields.binary(items[4], "node ML-KEM key", MLKEM768_PUBLIC_BYTES),
        groups=tuple(fields.integer(g, "group address", 1, MAX_ADDRESS) for g in groups),
        revoked=fields.boolean(items[6], "revoked"),
    )


def _decode_group(fields: Fields, value: object) -> GroupEntry:
    items = fields.array(value, "group entry", 2)
    return GroupEntry(
        name=fields.text(items[0], "group name"),
        address=fields.integer(items[1], "group address", 1, MAX_ADDRESS),
    )


def _decode_signed(data: bytes, source: str) -> Roster:
    """Decode a roster file and check it is signed by the authority key it names."""
    fields = Fields(RosterError, source)
    document = unpack_file(data, RosterError, source, ROSTER_MAGIC, "tawan roster file")
    items = fields.header(document, ROSTER_MAGIC, ROSTER_FORMAT, 4)
    body = items[2]
    if type(body) is not bytes:
        fields.fail("roster body", "bytes", type(body).__name__)
    signature = fields.binary(items[3], "signature", SIGNATURE_BYTES)
    roster = _replace_signature(_decode_body(body, source), signature)
    if roster.body_bytes() != body:
        raise RosterError(f"{source}: roster body is not in canonical form")
    if not roster.signature_valid():
        raise RosterError(f"{source}: bad authority signature")
    return roster


def verify_roster_bytes(
    data: bytes,
    *,
    authority: bytes | None = None,
    mission_id: bytes | None = None,
    source: str = "roster",
) -> Roster:
    """Decode and verify a roster, requiring the given authority key and/or mission id.

    At least one expectation is needed: a roster is only as good as the key it is
    checked against, and its own embedded key proves nothing on its own.
    """
    if authority is None and mission_id is None:
        raise RosterError("verify_roster_bytes: expected an authority key or a mission id")
    roster = _decode_signed(data, source)
    if mission_id is not None and roster.mission_id != mission_id:
        raise RosterError(
            f"{source}: roster of mission {roster.mission_id.hex()}, "
            f"expected mission {mission_id.hex()}"
        )
    if authority is not None and roster.authority != authority:
        raise RosterError(f"{source}: roster signed by another authority than expected")
    return roster


def check_successor(known: Roster, new: Roster, source: str = "roster") -> None:
    """Refuse `new` unless it is the same mission, authority, t0 and epoch length, and not
    older than `known`."""
    if new.mission_id != known.mission_id:
        raise RosterError(
            f"{source}: roster of mission {new.mission_id.hex()}, "
            f"expected mission {known.mission_id.hex()}"
        )
    if new.authority != known.authority:
        raise RosterError(f"{source}: roster signed by another authority than the known one")
    # Epochs are counted from t0 in steps of epoch_seconds: changing either would map
    # messages already numbered to other epochs, so keys and nonces would be used again.
    for what, held, found in (
        ("t0", known.t0, new.t0),
        ("epoch_seconds", known.epoch_seconds, new.epoch_seconds),
    ):
        if found != held:
            raise RosterError(
                f"{source}: roster version {new.version}: {what}: expected the known "
                f"value {held}, found {found} (a mission never changes its epochs)"
            )
    if new.version < known.version:
        raise RosterError(
            f"{source}: roster version {new.version} is older than the known version "
            f"{known.version}"
        )
    if new.version == known.version and new != known:
        raise RosterError(f"{source}: roster version {new.version} differs from the known one")


def load_roster(path: str | os.PathLike[str], known: Roster | None = None) -> Roster:
    """Load a roster file; with `known`, accept it only as the same or a newer version."""
    where = Path(path)
    data = read_public(where, RosterError)
    if known is None:
        return _decode_signed(data, str(where))
    roster = verify_roster_bytes(
        data, authority=known.authority, mission_id=known.mission_id, source=str(where)
    )
    check_successor(known, roster, str(where))
    return roster
