"""Naive flooding, the baseline routing is measured against (EngineConfig.routing "flood").

Every message goes to every up neighbour but the one it came from, unicast and group alike;
the seen table stops it: a copy that reaches a node a second time is acknowledged as a
duplicate and goes no further (`Forwarding.floods`). Nothing else changes: custody,
acknowledgements, retransmission and queues per neighbour are the engine's as ever, and the
link-state router still runs (its adverts cost what they cost), it only no longer decides.
A node with nothing to hand a copy on to is done with it; only a copy that has no up
neighbour at all to go to is held, until the routes change.
"""

from __future__ import annotations

from typing import ClassVar

from crypto.roster import Roster
from tawan.core.contact_routing import Parcel
from tawan.core.forwarding import Forwarding


class Flooding(Forwarding):
    floods: ClassVar[bool] = True

    def next_hops(
        self, roster: Roster, src: int, dst: int, came_from: int | None,
        parcel: Parcel | None = None, now: float = 0.0,
    ) -> set[int]:  # fmt: skip
        """Every up neighbour but `came_from`: the group copy mechanism sends one each (a
        contact plan is not consulted: the flood is the baseline without one)."""
        hops = set(self.router.my_adjacency)
        hops.discard(self.me)
        if came_from is not None:
            hops.discard(came_from)
        return hops

    def unreached(self, roster: Roster, dst: int) -> bool:
        """Flooding waits for no route: what reaches a member reaches it through others."""
        return False

    def covered(self, roster: Roster, dst: int) -> bool:
        """Nothing to hand on: the other copies of the flood carry it, for any destination."""
        return True
