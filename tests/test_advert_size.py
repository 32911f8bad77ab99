"""An advert larger than a link's MTU is not put on that link, and the node says so."""

from __future__ import annotations

from harness import FakeLink, Net, profile

from tawan.core.events import AdvertTooLarge
from tawan.core.frames import RouteFrame, decode_frame
from tawan.node.metrics import snapshot_samples

LEAVES = [f"leaf{i}" for i in range(24)]


def hub_net() -> Net:
    """A hub with 24 leaves on links of the smallest MTU (128 bytes: its advert of 25
    neighbours does not fit) and one node on a wide link (1400 bytes)."""
    small, wide = profile(mtu=128), profile(mtu=1400)
    links = [FakeLink("hub", leaf, small) for leaf in LEAVES] + [FakeLink("hub", "wide", wide)]
    return Net(dict.fromkeys(["hub", "wide", *LEAVES], ()), links)


def test_an_advert_too_large_for_a_link_stays_off_it_and_is_reported() -> None:
    net = hub_net()
    adverts: dict[str, list[RouteFrame]] = {}

    def spy(sender: str, link: str, data: bytes) -> None:
        if sender == "hub" and data[0] & 0xF == 4:  # ROUTE
            frame = decode_frame(data[:-8])
            assert isinstance(frame, RouteFrame)
            adverts.setdefault(link, []).append(frame)

    net.tap(spy)
    net.run(30.0)
    small_links = [f"hub-{leaf}" for leaf in LEAVES]
    for link in small_links:
        assert net.largest_frame[link] <= 128, link
    # The hub's own advert, of all 25 neighbours, went where it fits.
    own = [f for f in adverts.get("hub-wide", []) if f.origin == net.address("hub")]
    assert own and max(len(f.adjacency) for f in own) == 25
    assert not any(
        f.origin == net.address("hub") and len(f.adjacency) == 25
        for link in small_links
        for f in adverts.get(link, [])
    )
    told = [e for e in net.events["hub"] if isinstance(e, AdvertTooLarge)]
    assert {e.link for e in told} == set(small_links)
    assert all(e.size > e.mtu == 128 for e in told)
    hub = net.engines["hub"]
    assert hub.stats.adverts_too_large == len(told) >= len(small_links)
    # Counted per link too, and exported by link: each small link once per refused advert.
    exported = {
        labels[0]: value
        for name, labels, value in snapshot_samples(hub.snapshot(net.now))
        if name == "tawan_link_adverts_too_large"
    }
    per_link = {link: sum(e.link == link for e in told) for link in small_links}
    assert exported == per_link | {"hub-wide": 0}


def test_an_advert_too_large_for_the_best_link_takes_a_wider_one_to_the_same_neighbour() -> None:
    """`twin` is a neighbour of the hub on two links: the best one (the faster) of 128 bytes,
    which the hub's advert exceeds, and a wider, slower one. The advert reaches it by the
    wider one, and nothing is reported for it."""
    small = profile(mtu=128)
    best, slower = profile(rate_bps=2_000_000, mtu=128), profile(rate_bps=500_000, mtu=1400)
    links = [FakeLink("hub", leaf, small) for leaf in LEAVES] + [
        FakeLink("hub", "twin", best),
        FakeLink("twin", "hub", slower),
    ]
    net = Net(dict.fromkeys(["hub", "twin", *LEAVES], ()), links)
    heard: dict[str, int] = {}

    def spy(sender: str, link: str, data: bytes) -> None:
        if sender == "hub" and data[0] & 0xF == 4:  # ROUTE
            frame = decode_frame(data[:-8])
            assert isinstance(frame, RouteFrame)
            if frame.origin == net.address("hub"):
                heard[link] = max(heard.get(link, 0), len(frame.adjacency))

    net.tap(spy)
    net.run(30.0)
    best_way = net.engines["twin"].forwarding.best(net.address("hub"))
    assert best_way is not None and best_way.link == "hub-twin"
    assert heard.get("twin-hub") == 25  # the hub's own advert, all its neighbours
    assert "hub-twin" not in heard
    told = {e.link for e in net.events["hub"] if isinstance(e, AdvertTooLarge)}
    assert told == {f"hub-{leaf}" for leaf in LEAVES}
    # The twin's routes come from it: the hub's leaves through the hub.
    assert net.engines["twin"].router.next_hop(net.address(LEAVES[0])) == net.address("hub")


def test_a_newer_advert_too_large_takes_the_older_one_waiting_off_the_link() -> None:
    net = Net({"hub": (), "leaf": ()}, [FakeLink("hub", "leaf", profile(mtu=128))])
    net.run(5.0)
    hub, leaf, origin = net.engines["hub"], net.address("leaf"), net.address("hub") + 100
    adj = hub.forwarding.best(leaf)
    assert adj is not None
    waiting = hub.tx.links[adj.link].adverts
    older = RouteFrame(net.address("hub"), 0, origin, 7, ((leaf, 1),), bytes(64))
    newer = RouteFrame(
        net.address("hub"), 0, origin, 8, tuple((n, 1) for n in range(40)), bytes(64)
    )
    hub._send_route([adj], older)
    assert waiting[leaf, origin, None] == older
    hub._send_route([adj], newer)
    assert (leaf, origin, None) not in waiting
