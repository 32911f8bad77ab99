"""After a jammer stops every member of a net exchanges its adverts with every other: the
messages that waited through the jam must not wait behind them as well."""

from __future__ import annotations

from harness import FakeLink, Net, profile

from tawan.core.frames import FrameType, RouteFrame
from tawan.core.precedence import Precedence

ORIGINS = 30
SIGNATURE = bytes(64)


def _net_with_adverts_queued(versions: int) -> tuple[Net, FakeLink]:
    """Two nodes up on a 9.6 kbit/s link, `a` with `versions` adverts of each of 30 other
    nodes queued for `b`, as when a net comes back and its database is exchanged."""
    names: dict[str, list[str]] = {n: [] for n in ["a", "b", *(f"n{i}" for i in range(ORIGINS))]}
    link = FakeLink("a", "b", profile(rate_bps=9_600, delay_s=0.05))
    net = Net(names, [link], seed=4)
    net.run(5)
    a = net.engines["a"]
    adj = a.neighbours.get(net.address("b"), link.name)
    assert adj is not None and adj.up
    for seq in range(1, versions + 1):
        for i in range(ORIGINS):
            origin = net.address(f"n{i}")
            frame = RouteFrame(a.me, 0, origin, seq, ((net.address("a"), 10),), SIGNATURE)
            a.tx.control(adj, frame)
    return net, link


def _adverts_sent(net: Net) -> list[float]:
    sent: list[float] = []
    net.tap(
        lambda sender, link, data: (
            sent.append(net.now) if sender == "a" and data[0] & 0xF == FrameType.ROUTE else None
        )
    )
    return sent


def test_a_flash_goes_before_a_database_exchange() -> None:
    """30 adverts of about 100 bytes take 2.5 s of a 9.6 kbit/s link; sent at once, ahead
    of every message, four versions of each took 10 s and the FLASH waited for them all
    (the campaign's company nets: minutes). The FLASH goes first, and of each advert only
    the latest version goes."""
    net, _ = _net_with_adverts_queued(versions=4)
    sent = _adverts_sent(net)
    start = net.now
    net.submit("a", "b", b"flash", precedence=Precedence.FLASH, ttl=3600)
    net.run(1.0)
    assert [e.payload for e in net.delivered("b")] == [b"flash"]
    assert net.delivered("b")[0].latency < 1.0
    net.run(20)
    assert len(sent) == ORIGINS  # the older versions never went
    assert max(sent) - start < 6.0


def test_immediate_messages_and_adverts_take_turns() -> None:
    """IMMEDIATE orders and adverts share the link turn about: the orders do not wait for
    the whole exchange, nor the exchange for every order."""
    net, _ = _net_with_adverts_queued(versions=1)
    sent = _adverts_sent(net)
    start = net.now
    for i in range(10):
        net.submit("a", "b", b"order %d" % i, precedence=Precedence.IMMEDIATE, ttl=3600)
    net.run(20)
    arrivals = sorted(start + e.latency for e in net.delivered("b"))
    assert len(arrivals) == 10
    assert len(sent) == ORIGINS
    # both kinds made progress from the start: neither waited for the other to finish
    assert min(sent) < arrivals[-1] and arrivals[0] < max(sent)
