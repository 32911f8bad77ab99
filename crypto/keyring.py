"""The runtime key holder of one node: which key protects which message and frame.

Built from the node's key file and the roster. Keys are derived once and cached, so the hot
path (`message_key`, `link_key`) costs a dictionary lookup. `advance` erases old epochs;
the caller then persists `to_keyfile_bytes()` so the erased roots are gone from disk too.

Two rosters are held: `base_roster`, the signed roster file, and `roster`, the effective one:
the base with the nodes of every applied revocation notice (crypto.revocation) revoked.
Every decision (keys, signatures, pairing) follows the effective roster.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from crypto import schedule
from crypto import sealing as aead
from crypto.chain import RootChain
from crypto.errors import KeyFileError, PairSetupError, RevocationError, RosterError
from crypto.keyfile import (
    NodeKeys,
    StoredRoot,
    check_against_roster,
    load_keyfile,
    write_keyfile,
)
from crypto.pairing import PairSetup, accept_pair_setup, make_pair_setup
from crypto.revocation import Revocation
from crypto.roster import MAX_EPOCH, Roster, check_successor, load_roster

EPOCHS_AHEAD = 2
"""How far past the newest advanced epoch a key may be derived (bounds a sender's lie)."""
_CACHE_LIMIT = 1 << 16

KeyCache = dict[tuple[int, int, int], bytes]


class Keyring:
    """Keys of node `address` in the mission of `roster`."""

    def __init__(self, keys: NodeKeys, roster: Roster) -> None:
        _check_keys_fit(keys, roster)
        self.address = keys.address
        self.name = keys.name
        self.mission_id = keys.mission_id
        self.base_roster = roster
        self.roster = roster
        self.revocations: list[Revocation] = []
        self._compromised: frozenset[int] = frozenset()
        self.epoch_seconds = roster.epoch_seconds
        self.grace_epochs = roster.grace_epochs
        self.t0: float = roster.t0
        self._keys = keys
        self._signing_key = keys.signing_key()
        self._pairs = {r.peer: RootChain(r.epoch, r.root) for r in keys.pair_roots}
        self._groups = {r.peer: RootChain(r.epoch, r.root) for r in keys.group_roots}
        bases = [chain.base_epoch for chain in (*self._pairs.values(), *self._groups.values())]
        self._floor = min(bases, default=0)
        # A key file is saved right after `advance(e)`, with its roots at e - grace_epochs.
        self._newest = max(bases, default=0) + self.grace_epochs
        self._message_keys: KeyCache = {}
        self._link_keys: KeyCache = {}
        self._verify_keys: dict[int, Ed25519PublicKey] = {}
        self._drop_revoked()

    @classmethod
    def from_files(
        cls, key_path: str | os.PathLike[str], roster_path: str | os.PathLike[str]
    ) -> Keyring:
        """Load a node's key file and roster, each checked against the other; a roster
        that does not match the key file is named as the file out of place."""
        keys = load_keyfile(key_path)
        roster = load_roster(roster_path)
        check_against_roster(keys, roster, str(key_path), str(roster_path))
        return cls(keys, roster)

    # Time

    def epoch_of(self, mission_seconds: float) -> int:
        """The epoch of a time given in seconds since the mission start t0."""
        return int(mission_seconds // self.epoch_seconds)

    def epoch_at(self, unix_seconds: float) -> int:
        return self.epoch_of(unix_seconds - self.t0)

    @property
    def oldest_epoch(self) -> int:
        """The oldest epoch whose keys may still exist; older ones were erased."""
        return self._floor

    # Keys on the hot path

    def message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        """End-to-end key of a message src -> dst (a node or a group) in `epoch`, or None."""
        key = self._message_keys.get((src, dst, epoch))
        if key is None:
            key = self._derive_message_key(src, dst, epoch)
        return key

    def link_key(self, sender: int, receiver: int, epoch: int) -> bytes | None:
        """Hop-by-hop key of frames sender -> receiver (one of them us) in `epoch`, or None."""
        key = self._link_keys.get((sender, receiver, epoch))
        if key is None:
            root = self._pair_root(sender, receiver, epoch)
            if root is None:
                return None
            key = schedule.link_key(root, sender, receiver)
            self._remember(self._link_keys, (sender, receiver, epoch), key)
        return key

    def _derive_message_key(self, src: int, dst: int, epoch: int) -> bytes | None:
        if self.roster.is_group(dst):
            root = self._group_root(src, dst, epoch)
            key = None if root is None else schedule.group_key(root, dst)
        else:
            root = self._pair_root(src, dst, epoch)
            key = None if root is None else schedule.message_key(root, src, dst)
        if key is not None:
            self._remember(self._message_keys, (src, dst, epoch), key)
        return key

    def _usable_epoch(self, epoch: int) -> bool:
        return self._floor <= epoch <= min(self._newest + EPOCHS_AHEAD, MAX_EPOCH)

    def _pair_root(self, src: int, dst: int, epoch: int) -> bytes | None:
        if src == self.address:
            peer = dst
        elif dst == self.address:
            peer = src
        else:
            return None
        chain = self._pairs.get(peer)
        if chain is None or peer == self.address or not self._usable_epoch(epoch):
            return None
        return chain.root_at(epoch)

    def _group_root(self, src: int, group: int, epoch: int) -> bytes | None:
        chain = self._groups.get(group)
        if chain is None or not self._usable_epoch(epoch):
            return None
        # Only an active member may send to a group, and nobody to a compromised one.
        if group in self._compromised or src not in self.roster.members(group):
            return None
        return chain.root_at(epoch)

    def group_compromised(self, group: int) -> bool:
        """True when a revoked node was a member of `group`: it holds the group root, so the
        group is unusable (no key, to seal or to open) until a new fill re-keys it."""
        return group in self._compromised

    def _remember(self, cache: KeyCache, index: tuple[int, int, int], key: bytes) -> None:
        if len(cache) >= _CACHE_LIMIT:
            self._clear(cache)
        cache[index] = key

    def _clear(self, cache: KeyCache) -> None:
        if cache is self._message_keys:
            aead.forget(cache.values())  # the AEAD cache holds message keys, not link keys
        cache.clear()

    # Signatures

    def sign(self, data: bytes) -> bytes:
        return self._signing_key.sign(data)

    def verify(self, address: int, data: bytes, signature: bytes) -> bool:
        """True when `signature` is by the non-revoked node at `address`."""
        public = self._verify_keys.get(address)
        if public is None:
            entry = self.roster.node_at(address)
            if entry is None or entry.revoked:
                return False
            public = Ed25519PublicKey.from_public_bytes(entry.ed25519_public)
            self._verify_keys[address] = public
        try:
            public.verify(signature, data)
        except InvalidSignature:
            return False
        return True

    # State changes

    def advance(self, current_epoch: int, *, erase: bool = True) -> bool:
        """Erase every root older than current_epoch - grace_epochs.

        Returns True when stored roots changed: the caller must then persist
        `to_keyfile_bytes()` (or call `save`) so the erased roots leave the disk too. With
        `erase` False, only the keys up to `current_epoch` + EPOCHS_AHEAD become usable and
        nothing is erased (a clock that jumped ahead and may yet be set right again).
        """
        self._newest = max(self._newest, current_epoch)
        floor = current_epoch - self.grace_epochs
        if not erase or floor <= self._floor:
            return False
        self._floor = floor
        changed = False
        for chain in (*self._pairs.values(), *self._groups.values()):
            changed |= chain.erase_before(floor)
        stale = [index for index in self._message_keys if index[2] < floor]
        aead.forget([self._message_keys.pop(index) for index in stale])
        for index in [index for index in self._link_keys if index[2] < floor]:
            del self._link_keys[index]
        return changed

    def update_roster(self, roster: Roster) -> None:
        """Adopt a newer signed roster of this mission; the base roster again is a no-op.

        Raises RosterError for another mission or authority, another t0 or epoch length, a
        bad signature, an older version, or a different roster under the same version (all
        checked against `base_roster`). Roots of nodes revoked by the new roster are dropped
        at once. Notices of a later version than the new roster stay applied; older ones are
        dropped, unless the new roster leaves some of their nodes unrevoked.
        """
        check_successor(self.base_roster, roster)
        if roster.version == self.base_roster.version:
            return
        if not roster.signature_valid():
            raise RosterError(f"roster version {roster.version}: bad authority signature")
        entry = roster.node_at(self.address)
        if entry is None or entry.name != self.name:
            raise RosterError(f"roster version {roster.version}: node {self.name!r} is missing")
        self.base_roster = roster
        self.revocations = [
            notice
            for notice in self.revocations
            if notice.version > roster.version
            or not all(roster.is_revoked(address) for address in notice.revoked)
        ]
        self._derive_roster()

    def apply_revocation(self, notice: Revocation) -> bool:
        """Apply a revocation notice of the mission authority; False when it brings nothing
        new (every node it names is revoked already, or named by a notice already applied).

        Raises RevocationError when the notice is of another mission or not signed by the
        authority of `base_roster`. When applied, the effective `roster` revokes the nodes
        it names (those this roster knows; the others once a roster naming them arrives),
        their pair roots are erased, the groups they belonged to become compromised, and the
        notice is kept in `revocations`. A notice naming this node erases all its roots. The
        caller should then save the key file, as after `advance`.
        """
        where = f"revocation of roster version {notice.version}"
        if notice.mission_id != self.mission_id:
            raise RevocationError(
                f"{where}: of mission {notice.mission_id.hex()}, "
                f"expected mission {self.mission_id.hex()}"
            )
        if not notice.verify(self.base_roster.authority, self.mission_id):
            raise RevocationError(f"{where}: bad authority signature")
        applied = {address for kept in self.revocations for address in kept.revoked}
        if all(self.roster.is_revoked(a) or a in applied for a in notice.revoked):
            return False
        self.revocations.append(notice)
        self._derive_roster()
        return True

    def _derive_roster(self) -> None:
        """The effective roster: the base with every applied notice's known nodes revoked."""
        base = self.base_roster
        named = {address for notice in self.revocations for address in notice.revoked}
        self.roster = base.with_revoked(a for a in named if base.node_at(a) is not None)
        self._drop_revoked()

    def _drop_revoked(self) -> None:
        roster = self.roster
        self._compromised = frozenset(
            group for node in roster.nodes if node.revoked for group in node.groups
        )
        if roster.is_revoked(self.address):
            self._pairs.clear()
            self._groups.clear()
        for peer in [p for p in self._pairs if roster.node_at(p) is None or roster.is_revoked(p)]:
            del self._pairs[peer]
        for group in [g for g in self._groups if not roster.is_group(g) or g in self._compromised]:
            del self._groups[group]
        self._clear(self._message_keys)
        self._link_keys.clear()
        self._verify_keys.clear()

    # Pairing after deployment

    def has_pair(self, peer: int) -> bool:
        return peer in self._pairs

    def add_pair_root(self, peer: int, epoch: int, root: bytes) -> None:
        """Install the root of the pair with `peer` as of `epoch`.

        The root is ratcheted up to the oldest epoch still kept, so installing an old root
        (say, from a replayed setup) never brings erased epochs back.
        """
        entry = self.roster.node_at(peer)
        if entry is None or entry.revoked or peer == self.address:
            raise PairSetupError(f"pair root for address {peer}: expected a non-revoked peer")
        if len(root) != schedule.KEY_BYTES or not 0 <= epoch <= MAX_EPOCH:
            raise PairSetupError(f"pair root for address {peer}: expected 32 bytes, epoch >= 0")
        chain = RootChain(epoch, root)
        chain.erase_before(self._floor)
        self._pairs[peer] = chain
        self._clear(self._message_keys)
        self._link_keys.clear()

    def start_pairing(self, peer: int) -> bytes:
        """Pair with `peer` on air: installs the root and returns the setup to send it."""
        entry = self.roster.node_at(peer)
        if entry is None:
            raise PairSetupError(f"pair setup: address {peer}: expected a node of the roster")
        setup, root = make_pair_setup(self._keys, entry)
        self.add_pair_root(peer, 0, root)
        return setup.to_bytes()

    def accept_pairing(self, initiator: int, setup: PairSetup | bytes) -> None:
        """Check a setup received from `initiator` and install the pair's root."""
        root = accept_pair_setup(self._keys, self.roster, initiator, setup)
        self.add_pair_root(initiator, 0, root)

    # Persistence

    def keys(self) -> NodeKeys:
        """The key file contents as of now: roots only from the oldest kept epoch on."""
        return self._keys.with_roots(
            tuple(StoredRoot(p, c.base_epoch, c.base_root) for p, c in self._pairs.items()),
            tuple(StoredRoot(g, c.base_epoch, c.base_root) for g, c in self._groups.items()),
        )

    def to_keyfile_bytes(self) -> bytes:
        return self.keys().to_bytes()

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomically rewrite the node's key file (mode 0600) with the current roots."""
        write_keyfile(Path(path), self.keys())


def _check_keys_fit(keys: NodeKeys, roster: Roster) -> None:
    if keys.mission_id != roster.mission_id:
        raise KeyFileError(
            f"key file of {keys.name!r} is of mission {keys.mission_id.hex()}, "
            f"the roster of mission {roster.mission_id.hex()}"
        )
    if keys.authority != roster.authority:
        raise KeyFileError(f"key file of {keys.name!r}: roster signed by another authority")
    entry = roster.node_at(keys.address)
    if entry is None or entry.name != keys.name:
        raise KeyFileError(
            f"key file of {keys.name!r}: address {keys.address} is not that node in the roster"
        )
