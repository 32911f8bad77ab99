"""Neighbours and the links that reach them: liveness, round-trip time, loss.

A neighbour may be reachable over several links of different bearers. Each (neighbour, link)
pair is a `Adjacency` with its own measurements; `best_link` picks the one to use now, which is
how failover between bearers happens: when the preferred link dies, the next one is chosen.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

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
    rx_frames: int = 0  # frames received from the neighbour on this link
    # Its count of frames sent to us on this link at its last hello, and ours of frames
    # received here before that hello (None: no hello counted since the link came up).
    hello_sent: int | None = None
    hello_rx: int = 0
    expected: float = 0.0  # frames it sent here over the last hellos (halved as it grows)
    lost: float = 0.0  # of those, the ones that never arrived
    last_hello_ms: int = 0  # time_ms of the neighbour's last hello, echoed back
    last_hello_at: float = 0.0
    tx_loss: float = 0.0  # loss the neighbour reports on frames we send it
    transport_up: bool = True
    moved_at: float = float("-inf")  # when `peer` last moved to another endpoint
    skipped_at: float = float("-inf")  # when our counters last skipped past its marks
    silent: bool = False  # it announced emission control here: up, though it never answers
    probed_at: float | None = None  # when a hello asked it to answer, its messages unanswered
    probe_until: float = 0.0  # lost if nothing is heard from it by then

    def heard(self, now: float) -> None:
        self.rx_frames += 1
        self.last_heard = now

    def hello_counted(self, sent: int) -> None:
        """A hello that says the neighbour had sent `sent` frames here before it (this one
        heard already): the frames sent since its last hello heard, against those that
        arrived. Frame counters cannot say this: they number a neighbour's frames on all
        its links to us together, so a link would count as lost every frame the others
        carried."""
        received = self.rx_frames - 1
        if self.hello_sent is not None:
            sent_since = (sent - self.hello_sent) & 0xFFFF_FFFF
            arrived = received - self.hello_rx
            if not 0 < sent_since < 1 << 31 or arrived > sent_since:
                self.count_loss_afresh()  # its count began again (a restart): a new start
            else:
                self.expected += sent_since
                self.lost += sent_since - arrived
                if self.expected > LOSS_WINDOW:
                    self.expected, self.lost = self.expected / 2, self.lost / 2
        self.hello_sent, self.hello_rx = sent, received

    def count_loss_afresh(self) -> None:
        """Count loss from the next hello on: what went missing while the link was down
        was the outage, not the quality of the link now back (reported at once in a hello,
        it would make the link look worse than the one it failed over to)."""
        self.hello_sent, self.expected, self.lost = None, 0.0, 0.0

    @property
    def rx_loss(self) -> float:
        """Loss of the neighbour's frames on this link, over its last `LOSS_WINDOW` or so."""
        if self.expected < LOSS_MIN_FRAMES:  # too few frames to say anything
            return 0.0
        return self.lost / self.expected

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


LOSS_WINDOW: Final = 256
"""Frames over which link loss is measured: past this many, the counts are halved, so a
link's loss follows its last few hundred frames (a link that was jammed an hour ago does
not stay dear for the rest of the day)."""

LOSS_MIN_FRAMES: Final = 16
"""Below this many frames sent, no loss is estimated (one lost hello would be 1/2)."""


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
