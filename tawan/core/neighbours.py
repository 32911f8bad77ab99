"""Neighbours and the links that reach them: liveness, round-trip time, loss.

A neighbour may be reachable over several links of different bearers. Each (neighbour, link)
pair is a `Adjacency` with its own measurements; `best_link` picks the one to use now, which is
how failover between bearers happens: when the preferred link dies, the next one is chosen.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from transports.profile import BearerProfile


@dataclass(slots=True)
class Adjacency:
    """One neighbour as seen over one link."""

    neighbour: int
    link: str
    profile: BearerProfile
    peer: str | None  # transport endpoint; None until learned (TCP listen side)
    up: bool = False
    last_heard: float = float("-inf")
    srtt: float | None = None
    rttvar: float = 0.0
    rx_frames: int = 0  # frames received from the neighbour in the current epoch
    first_counter: int = -1  # lowest and highest counter seen from it in the current epoch
    highest_counter: int = -1
    epoch: int = -1
    last_hello_ms: int = 0  # time_ms of the neighbour's last hello, echoed back
    last_hello_at: float = 0.0
    tx_loss: float = 0.0  # loss the neighbour reports on frames we send it
    transport_up: bool = True
    moved_at: float = float("-inf")  # when `peer` last moved to another endpoint
    skipped_at: float = float("-inf")  # when our counters last skipped past its marks
    silent: bool = False  # it announced emission control here: up, though it never answers
    probed_at: float | None = None  # when a hello asked it to answer, its messages unanswered
    probe_until: float = 0.0  # lost if nothing is heard from it by then

    def heard(self, now: float, counter: int, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self.rx_frames = epoch, 0
            self.first_counter = self.highest_counter = counter
        self.rx_frames += 1
        self.first_counter = min(self.first_counter, counter)
        self.highest_counter = max(self.highest_counter, counter)
        self.last_heard = now

    @property
    def rx_loss(self) -> float:
        """Loss of frames from the neighbour, from the gaps in its counters."""
        expected = self.highest_counter - self.first_counter + 1
        if expected < 16:  # too few frames to say anything
            return 0.0
        return max(0.0, 1.0 - self.rx_frames / expected)

    def add_rtt_sample(self, rtt: float) -> None:
        """RFC 6298 smoothing."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def retransmit_timeout(self, size: int, floor: float) -> float:
        """How long to wait for an acknowledgement of `size` bytes before sending again."""
        serialisation = size * 8 / self.profile.rate_bps
        if self.srtt is None:
            base = max(1.0, 4 * self.profile.delay_s)  # no sample yet: four one-way delays
        else:
            base = self.srtt + 4 * self.rttvar
        return max(floor, base) + serialisation

    @property
    def cost(self) -> int:
        """Routing cost: the bearer's nominal cost, worse with measured loss."""
        loss = max(self.rx_loss, self.tx_loss)
        return max(1, round(self.profile.cost * (1 + 4 * loss)))


@dataclass(slots=True)
class NeighbourTable:
    adjacencies: dict[tuple[int, str], Adjacency] = field(default_factory=dict)

    def add(
        self, neighbour: int, link: str, profile: BearerProfile, peer: str | None
    ) -> Adjacency:
        adj = self.adjacencies.get((neighbour, link))
        if adj is None:
            adj = self.adjacencies[(neighbour, link)] = Adjacency(neighbour, link, profile, peer)
        elif peer is not None:
            adj.peer = peer
        return adj

    def get(self, neighbour: int, link: str) -> Adjacency | None:
        return self.adjacencies.get((neighbour, link))

    def on_link(self, link: str) -> list[Adjacency]:
        return [a for a in self.adjacencies.values() if a.link == link]

    def of(self, neighbour: int) -> list[Adjacency]:
        return [a for a in self.adjacencies.values() if a.neighbour == neighbour]

    def best_link(self, neighbour: int, avoid: Collection[str] = ()) -> Adjacency | None:
        """The up link to `neighbour` with the lowest cost, then the highest rate (of those
        not in `avoid`)."""
        candidates = [
            a for a in self.of(neighbour) if a.up and a.peer is not None and a.link not in avoid
        ]
        if not candidates:
            return None
        return min(candidates, key=lambda a: (a.cost, -a.profile.rate_bps, a.link))

    def up_neighbours(self) -> dict[int, int]:
        """Each reachable neighbour with its cheapest link cost, for link-state adverts."""
        costs: dict[int, int] = {}
        for adj in self.adjacencies.values():
            if adj.up and adj.peer is not None:
                costs[adj.neighbour] = min(costs.get(adj.neighbour, 0xFFFF), adj.cost)
        return costs
