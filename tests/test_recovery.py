"""Getting traffic through again after a jammer: resends that do not lock onto its period,
and lost neighbours called again while messages wait."""

from __future__ import annotations

import pytest
from harness import FakeLink, Net, profile

from tawan.core.control import RECALL_S
from tawan.core.precedence import Precedence
from tawan.core.transmitter import _spread


def test_resends_at_the_ceiling_do_not_keep_one_phase() -> None:
    """Backed off to the ceiling, every resend of every message would come one ceiling
    after the last: against a jammer on that period (the campaign's, 48 of every 60 s)
    each fell in the jammed part, for an hour. Each waits 0.75 to 1 of it, by message and
    attempt, so a resend lands anywhere in a 15 s stretch."""
    mids = [(src, epoch, seq) for src in (3, 13) for epoch in (0, 1) for seq in range(50)]
    for mid in mids:
        waits = [_spread(mid, attempt) for attempt in range(2, 12)]
        assert all(0.75 <= w <= 1.0 for w in waits)
        assert max(waits) - min(waits) > 0.1  # one message's resends move about
    firsts = sorted(_spread(mid, 2) for mid in mids)
    assert firsts[0] < 0.77 and firsts[-1] > 0.98  # and messages differ from each other


@pytest.mark.parametrize("seed", range(1, 9))
def test_a_lost_neighbour_is_called_again_while_messages_wait(seed: int) -> None:
    """On a slow link hellos are far apart (their share of its rate is bounded: 71 s
    here); a message waiting for a neighbour lost there goes within RECALL_S of the
    link's return, not whenever the next hello happens to fall (up to 60 s later in two
    of these eight seeds without the calls)."""
    link = FakeLink("a", "b", profile(rate_bps=2_400))
    net = Net({"a": [], "b": []}, [link], seed=seed)
    net.run(5)
    timers = net.engines["a"]._link_timers[link.name]
    assert timers.hello_s > 2 * RECALL_S
    link.up = False
    net.submit("a", "b", b"after the jam", precedence=Precedence.IMMEDIATE, ttl=7200)
    net.run(timers.dead_s + 30)
    assert net.delivered("b") == []
    link.up = True
    net.run(RECALL_S)
    assert [e.payload for e in net.delivered("b")] == [b"after the jam"]
