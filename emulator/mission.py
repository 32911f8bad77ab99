"""A whole mission for an emulation, drawn from the run's seed.

Identities and the roster come from `crypto.plan.MissionPlan` as for a real mission; only
the pair roots are drawn from the seed instead of agreed by ML-KEM + X25519 (which draws
from the operating system and would cost O(nodes^2) exchanges). So the same scenario and
seed give the same keys, hence the same frames, down to the byte.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from crypto.keyfile import NodeKeys, StoredRoot
from crypto.plan import MissionPlan
from crypto.roster import Roster
from crypto.schedule import KEY_BYTES
from topologies.scenario import EPOCH_S, GRACE_EPOCHS

MISSION_T0 = 1_000_000
"""The mission's start, in the engines' clock; emulated time 0 is `MISSION_T0 + LEAD_S`."""
LEAD_S = 60.0


def seeded_mission(
    names: Mapping[str, Sequence[str]], seed: int
) -> tuple[Roster, dict[str, NodeKeys]]:
    """The roster and every node's keys for `names` (node -> its groups), from `seed`."""
    rng = random.Random(f"{seed}/mission")
    plan = MissionPlan.new(
        rng.randbytes, t0=MISSION_T0, epoch_seconds=EPOCH_S, grace_epochs=GRACE_EPOCHS
    )
    for name, groups in names.items():
        plan.add_node(name, groups, rng.randbytes, pair=False)
    keys = dict(plan.keys)
    addresses = {name: k.address for name, k in keys.items()}
    roots: dict[str, list[StoredRoot]] = {name: [] for name in keys}
    ordered = sorted(keys)
    for i, x in enumerate(ordered):
        for y in ordered[i + 1 :]:
            root = _pair_root(seed, x, y)
            roots[x].append(StoredRoot(addresses[y], 0, root))
            roots[y].append(StoredRoot(addresses[x], 0, root))
    keys = {name: k.with_roots(tuple(roots[name]), k.group_roots) for name, k in keys.items()}
    return plan.roster(), keys


def _pair_root(seed: int, x: str, y: str) -> bytes:
    # A hash rather than one shared stream: adding a node does not change the other pairs.
    digest = hashlib.blake2b(f"{seed}/pair/{x}/{y}".encode(), digest_size=KEY_BYTES)
    return digest.digest()
