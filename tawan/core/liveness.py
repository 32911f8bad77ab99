"""How often a node says hello on each link, and how long a silent neighbour lives.

One hello interval for every bearer would either flood a slow radio net or leave a fast
link's failures unnoticed. So each link gets its own: the configured `hello_interval`, or
the bearer's own where it asks for longer (`BearerProfile.hello_s`: a fibre whose carrier
reports a cut, a SATCOM channel paid by the byte), made longer until the hellos of every
member of the link to every other take at most `hello_share` of the link's nominal rate.
`dead_interval` keeps its ratio to the hello interval, so a neighbour is declared lost
after the same number of missed hellos on any bearer. Both ends of a link must give it the
same bearer figures, as OSPF's neighbours must agree on their HelloInterval.

On a 9.6 kbit/s VHF net of five members that is a hello every 3 minutes or so; on a
2.4 kbit/s HF net of six, one every 18 minutes. Waiting that long to see a dead link is too
slow while messages are flowing, so traffic speaks too: every frame heard from a neighbour
keeps it alive (`Adjacency.heard`), and a message sent `SUSPECT_ATTEMPTS` times over a link
on which nothing at all was heard from the neighbour since its first try makes the
adjacency suspect (`suspect`): a hello asks the neighbour to answer, and if it does not
within a few round trips it is lost there and its messages move to the next best link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from tawan.core.neighbours import Adjacency
from tawan.core.specs import EngineConfig, LinkSpec

HELLO_WIRE_BYTES: Final = 64
"""A hello frame on the air with its link header and tag (measured in the emulator: the
frames of an idle network average 64 bytes on HF, where nearly all are hellos)."""

SUSPECT_ATTEMPTS: Final = 3
"""Sends of one message, none of them answered by any frame, after which the link it went
over is suspect (as TCP suspects a path after R1 retransmissions): a hello asks the
neighbour to answer, and it is lost if nothing comes within `PROBE_WAITS` retransmission
timeouts of a hello."""

RESEND_SILENCE_S: Final = 1.0
"""A neighbour heard again after at least this long a silence on a link has what was resent
to it there meanwhile sent again at once (`Transmitter.resend_after_silence`); shorter gaps
are the ordinary pauses of a busy link, and not worth a look at its copies."""

PROBE_WAITS: Final = 3


@dataclass(frozen=True, slots=True)
class LinkTimers:
    hello_s: float
    dead_s: float


def link_timers(spec: LinkSpec, config: EngineConfig) -> LinkTimers:
    """The hello and dead intervals of link `spec` under `config`: the longer of the
    configured `hello_interval` and the bearer's own (`BearerProfile.hello_s`), made longer
    still where the hellos would take more than `hello_share` of the link.

    A link with several peers is taken as one shared channel (a radio net): its members
    each greet every other, `(peers + 1) * peers` hellos per interval, all on one rate.
    A hub's point-to-point links counted that way only say hello less often than needed."""
    peers = max(1, len(spec.peers))
    per_round = (peers + 1) * peers * HELLO_WIRE_BYTES * 8
    budget_bps = config.hello_share * spec.profile.rate_bps
    floor = max(config.hello_interval, spec.profile.hello_s)
    hello = max(floor, min(config.hello_ceiling, per_round / budget_bps))
    return LinkTimers(hello, hello * config.dead_interval / config.hello_interval)


def suspect(adj: Adjacency, attempts: int, first_sent_at: float) -> bool:
    """True when a message has gone `attempts` times over `adj` and nothing at all was
    heard from the neighbour there since its first send: the link is not carrying."""
    if adj.silent:
        return False  # under emission control: it hears, it does not answer
    return adj.up and attempts >= SUSPECT_ATTEMPTS and adj.last_heard < first_sent_at
