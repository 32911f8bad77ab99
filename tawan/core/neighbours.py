"""Neighbours and the links that reach them: liveness, round-trip time, loss.

A neighbour may be reachable over several links of different bearers. Each (neighbour, link)
pair is a `Adjacency` with its own measurements; `best_link` picks the one to use now, which is
how failover between bearers happens: when the preferred link dies, the next one is chosen.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Final

from tawan.core.frames import U32
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
    # Its last two hellos heard here (frame counter, frames it had sent here before, when),
    # and the counters of the frames heard here since the older one: `hello_counted`.
    hellos: list[tuple[int, int, float]] = field(default_factory=list)  # and when heard
    counters: list[int] = field(default_factory=list)
    expected: float = 0.0  # frames it sent here over the last hellos (decayed with time)
    lost: float = 0.0  # of those, the ones that never arrived
    counted_at: float = 0.0  # when `expected` and `lost` were last brought up to date
    last_hello_ms: int = 0  # time_ms of the neighbour's last hello, echoed back
    last_hello_at: float = 0.0
    tx_loss: float = 0.0  # loss the neighbour reports on frames we send it
    told_loss: float = 0.0  # `rx_loss` as our last hello to it reported it
    told_at: float = float("-inf")  # when a hello last went to it out of turn for that
    transport_up: bool = True
    moved_at: float = float("-inf")  # when `peer` last moved to another endpoint
    skipped_at: float = float("-inf")  # when our counters last skipped past its marks
    silent: bool = False  # it announced emission control here: up, though it never answers
    probed_at: float | None = None  # when a hello asked it to answer, its messages unanswered
    probe_until: float = 0.0  # lost if nothing is heard from it by then

    def heard(self, now: float, counter: int) -> None:
        self.rx_frames += 1
        self.last_heard = now
        self.counters.append(counter)
        if len(self.counters) > COUNTERS_HELD:
            self.count_loss_afresh()  # no hello for that long: nothing to count them against

    def hello_counted(self, counter: int, sent: int, now: float) -> None:
        """A hello, frame `counter`, that says the neighbour had put `sent` frames on this
        link for us before it. The frames it sent here between its two hellos before this
        one are counted against those of them that arrived here (frame counters, numbered
        in the order sent, tell which those are), so a frame overtaken by a later hello, on
        a net that serves precedence first or a link with jitter, has a hello interval more
        to arrive before it counts as lost. Frame counters alone cannot give a link's loss:
        they number a neighbour's frames on all its links to us together, so each link
        would count as lost every frame the others carried. What was counted fades with
        time (`LOSS_HALF_LIFE_S`)."""
        fade = 0.5 ** (max(0.0, now - self.counted_at) / LOSS_HALF_LIFE_S)
        self.expected, self.lost, self.counted_at = self.expected * fade, self.lost * fade, now
        hellos = self.hellos
        if hellos and not (counter > hellos[-1][0] and (sent - hellos[-1][1]) & U32 < 1 << 31):
            self.count_loss_afresh()  # its counts began again (a restart, a new epoch)
        hellos.append((counter, sent, now))
        if len(hellos) < 3:
            return
        (start, sent_then, _), (end, sent_before, heard_at) = hellos[0], hellos[1]
        sent_between = (sent_before - sent_then) & U32
        arrived = sum(1 for c in self.counters if start <= c < end)
        # As old as its end: on a slow net a hello interval is minutes, and what a jam
        # lost must not come in as news when its hellos are counted, after the jam.
        weight = 0.5 ** (max(0.0, now - heard_at) / LOSS_HALF_LIFE_S)
        self.expected += weight * sent_between
        self.lost += weight * max(0, sent_between - arrived)
        if self.expected > LOSS_WINDOW:
            self.expected, self.lost = self.expected / 2, self.lost / 2
        del hellos[0]
        self.counters = [c for c in self.counters if c >= end]

    def count_loss_afresh(self) -> None:
        """Count loss from the next hellos on: what went missing while the link was down
        was the outage, not the quality of the link now back (reported at once in a hello,
        it would make the link look worse than the one it failed over to)."""
        self.hellos, self.counters, self.expected, self.lost = [], [], 0.0, 0.0

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


def _add_up_link(by_bearer: dict[str, int], adj: Adjacency) -> None:
    if adj.up and adj.peer is not None:
        name = adj.profile.name
        by_bearer[name] = min(by_bearer.get(name, 0xFFFF), adj.cost)


LOSS_WINDOW: Final = 256
"""Frames over which link loss is measured: past this many, the counts are halved, so a
link's loss follows its last few hundred frames (a link that was jammed an hour ago does
not stay dear for the rest of the day)."""

COUNTERS_HELD: Final = 4096
"""Frames heard on a link between two hellos, at most, that are kept to count its loss."""

LOSS_HALF_LIFE_S: Final = 120.0
"""What a link lost counts half as much after this long: on a slow net, 256 frames are an
hour, and a company net jammed on and off still looked three quarters lossy 20 minutes after
its jammer stopped, so routes went round its direct links through other members."""

LOSS_TELL_STEP: Final = 0.25
"""A link's loss as measured here that moved this far from what our last hello told the
neighbour is told again at once (`ControlPlane._on_hello`): its cost of the link, and its
adverts, rest on what we tell it, and a slow net's next hello may be many minutes away."""
LOSS_TELL_GAP_S: Final = 10.0  # and no more often than this, per neighbour and link

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

    def up_links(self) -> dict[int, dict[str, int]]:
        """Each reachable neighbour's up links by bearer (the profile's name), each at its
        cost (the cheapest of two links of one bearer)."""
        links: dict[int, dict[str, int]] = {}
        for adj in self.adjacencies.values():
            _add_up_link(links.setdefault(adj.neighbour, {}), adj)
        return {neighbour: by_bearer for neighbour, by_bearer in links.items() if by_bearer}

    def up_links_of(self, neighbour: int) -> dict[str, int]:
        """`up_links` of one neighbour."""
        by_bearer: dict[str, int] = {}
        for adj in self.of(neighbour):
            _add_up_link(by_bearer, adj)
        return by_bearer

    def up_neighbours(self) -> dict[int, int]:
        """Each reachable neighbour with its cheapest link cost, for link-state adverts."""
        costs: dict[int, int] = {}
        for adj in self.adjacencies.values():
            if adj.up and adj.peer is not None:
                costs[adj.neighbour] = min(costs.get(adj.neighbour, 0xFFFF), adj.cost)
        return costs
