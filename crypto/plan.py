"""The mission plan in memory: what the authority knows, and how nodes are issued.

`MissionPlan` is used by `crypto.mission` (which loads and saves it in a mission directory)
and by `crypto.mission.build_mission` (which builds one from a seeded RNG for the emulator
and tests). Randomness is always passed in as a `randbytes(n)` callable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from crypto.errors import MissionError
from crypto.keyfile import (
    ED25519_PRIVATE_BYTES,
    MLKEM768_SEED_BYTES,
    X25519_PRIVATE_BYTES,
    NodeKeys,
    StoredRoot,
)
from crypto.pairing import initiate
from crypto.roster import (
    MAX_ADDRESS,
    MAX_EPOCH,
    MISSION_ID_BYTES,
    NAME_PATTERN,
    NAME_RULE,
    GroupEntry,
    NodeEntry,
    Roster,
    valid_name,
)
from crypto.schedule import KEY_BYTES

RandBytes = Callable[[int], bytes]
T0_MAX = 253_402_300_799
"""The latest mission start a new mission takes: 9999-12-31T23:59:59Z, the last second a
calendar date (and so an operator, or `mission show`) can name."""
NODE_KINDS = ("node", "revoked node")


def check_name(name: str, kind: str) -> None:
    if not valid_name(name):
        raise MissionError(
            f"{kind} name {name!r}: expected {NAME_RULE} (pattern {NAME_PATTERN.pattern})"
        )


def check_parameters(epoch_seconds: int, grace_epochs: int, t0: int) -> None:
    if type(epoch_seconds) is not int or not 1 <= epoch_seconds <= MAX_EPOCH:
        raise MissionError(f"epoch seconds {epoch_seconds!r}: expected an integer >= 1")
    if type(grace_epochs) is not int or not 0 <= grace_epochs <= MAX_EPOCH:
        raise MissionError(f"grace epochs {grace_epochs!r}: expected an integer >= 0")
    if type(t0) is not int or not 0 <= t0 <= T0_MAX:
        raise MissionError(
            f"mission start t0 {t0!r}: expected unix seconds 0..{T0_MAX} (up to the end of 9999)"
        )


@dataclass
class MissionPlan:
    """The authority's view of a mission; mutated by add_node and revoke, then re-signed."""

    authority: Ed25519PrivateKey
    mission_id: bytes
    t0: int
    epoch_seconds: int
    grace_epochs: int
    version: int = 1
    nodes: dict[int, NodeEntry] = field(default_factory=dict)
    groups: dict[int, GroupEntry] = field(default_factory=dict)
    group_roots: dict[int, bytes] = field(default_factory=dict)
    keys: dict[str, NodeKeys] = field(default_factory=dict)

    @classmethod
    def new(
        cls, randbytes: RandBytes, *, t0: int, epoch_seconds: int, grace_epochs: int
    ) -> MissionPlan:
        check_parameters(epoch_seconds, grace_epochs, t0)
        return cls(
            authority=Ed25519PrivateKey.from_private_bytes(randbytes(ED25519_PRIVATE_BYTES)),
            mission_id=randbytes(MISSION_ID_BYTES),
            t0=t0,
            epoch_seconds=epoch_seconds,
            grace_epochs=grace_epochs,
        )

    @classmethod
    def from_roster(
        cls, authority: Ed25519PrivateKey, roster: Roster, group_roots: dict[int, bytes]
    ) -> MissionPlan:
        return cls(
            authority=authority,
            mission_id=roster.mission_id,
            t0=roster.t0,
            epoch_seconds=roster.epoch_seconds,
            grace_epochs=roster.grace_epochs,
            version=roster.version,
            nodes={node.address: node for node in roster.nodes},
            groups={group.address: group for group in roster.groups},
            group_roots=dict(group_roots),
        )

    def roster(self) -> Roster:
        """The current roster, signed by the authority."""
        unsigned = Roster(
            mission_id=self.mission_id,
            version=self.version,
            t0=self.t0,
            epoch_seconds=self.epoch_seconds,
            grace_epochs=self.grace_epochs,
            authority=self.authority.public_key().public_bytes_raw(),
            nodes=tuple(self.nodes[a] for a in sorted(self.nodes)),
            groups=tuple(self.groups[a] for a in sorted(self.groups)),
        )
        return unsigned.signed(self.authority)

    def _next_address(self, reserved: int = 0) -> int:
        address = max((*self.nodes, *self.groups, reserved)) + 1
        if address > MAX_ADDRESS:
            raise MissionError(f"no free address: all of 1..{MAX_ADDRESS} are allocated")
        return address

    def _name_taken(self, name: str) -> str | None:
        for node in self.nodes.values():
            if node.name == name:
                return "revoked node" if node.revoked else "node"
        if any(group.name == name for group in self.groups.values()):
            return "group"
        return None

    def _group_addresses(
        self, node_name: str, node_address: int, group_names: list[str], randbytes: RandBytes
    ) -> tuple[int, ...]:
        """Addresses of the named groups, creating (with a fresh root) those that are new."""
        for group_name in group_names:
            check_name(group_name, "group")
            if group_name == node_name or self._name_taken(group_name) in NODE_KINDS:
                raise MissionError(
                    f"group name {group_name!r}: expected a name not used by a node"
                )
        addresses = set()
        for group_name in group_names:
            existing = [g for g in self.groups.values() if g.name == group_name]
            if existing:
                addresses.add(existing[0].address)
                continue
            group = GroupEntry(name=group_name, address=self._next_address(node_address))
            self.groups[group.address] = group
            self.group_roots[group.address] = randbytes(KEY_BYTES)
            addresses.add(group.address)
        return tuple(sorted(addresses))

    def add_node(
        self, name: str, group_names: Iterable[str], randbytes: RandBytes, *, pair: bool = True
    ) -> tuple[NodeKeys, tuple[str, ...]]:
        """Issue node `name`; returns its keys and the names of peers whose keys changed.

        Every non-revoked node must have its keys in `self.keys`: each gets the epoch-0
        root of its pair with the new node. `pair=False` leaves the pair roots to the caller
        (the emulator draws them from its seed: a hybrid exchange per pair costs O(nodes^2)
        key agreements, too many for a 500-node run, and its randomness is the system's).
        """
        check_name(name, "node")
        if isinstance(group_names, str):
            raise MissionError(f"groups of {name!r}: expected a list of names, found a string")
        taken = self._name_taken(name)
        if taken is not None:
            raise MissionError(f"node name {name!r}: already used by a {taken}")
        peers = [node for node in self.nodes.values() if not node.revoked]
        missing = [node.name for node in peers if node.name not in self.keys]
        if missing:
            raise MissionError(f"node {name!r}: key files missing for {', '.join(missing)}")
        address = self._next_address()
        groups = self._group_addresses(name, address, list(group_names), randbytes)
        keys = NodeKeys(
            mission_id=self.mission_id,
            authority=self.authority.public_key().public_bytes_raw(),
            name=name,
            address=address,
            ed25519_private=randbytes(ED25519_PRIVATE_BYTES),
            x25519_private=randbytes(X25519_PRIVATE_BYTES),
            mlkem768_seed=randbytes(MLKEM768_SEED_BYTES),
            group_roots=tuple(StoredRoot(g, 0, self.group_roots[g]) for g in groups),
        )
        public = keys.public_keys()
        self.nodes[address] = NodeEntry(
            name, address, public.ed25519, public.x25519, public.mlkem768, groups
        )
        if pair:
            keys = self._pair_with(keys, peers)
        self.keys[name] = keys
        self.version += 1
        return keys, tuple(peer.name for peer in peers)

    def _pair_with(self, keys: NodeKeys, peers: list[NodeEntry]) -> NodeKeys:
        roots = []
        for peer in peers:
            _ciphertext, root = initiate(keys, peer, self.mission_id)
            roots.append(StoredRoot(peer.address, 0, root))
            self.keys[peer.name] = self.keys[peer.name].with_pair_root(
                StoredRoot(keys.address, 0, root)
            )
        return keys.with_roots(tuple(roots), keys.group_roots)

    def revoke(self, name: str) -> NodeEntry:
        """Mark node `name` revoked; its address and name are never reused."""
        check_name(name, "node")
        node = next((n for n in self.nodes.values() if n.name == name), None)
        if node is None:
            raise MissionError(f"node name {name!r}: expected a node of this mission")
        if node.revoked:
            raise MissionError(f"node {name!r}: already revoked")
        revoked = dataclasses.replace(node, revoked=True)
        self.nodes[node.address] = revoked
        self.version += 1
        return revoked
