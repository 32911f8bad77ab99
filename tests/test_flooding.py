"""Naive flooding (EngineConfig.routing "flood"), run by the emulator on a triangle.

a-b is a direct fibre; a-c and c-b are radio relays, and e hangs off c. Link-state sends
a's traffic to b over the fibre and never through c; flooding also sends it through c, and
to e, which has nobody to hand it on to and is done with it (it holds nothing).

Invariants: every copy is delivered once; nothing goes back to the node it came from (only
a sends, and a's neighbours each get their first copy from a, so no message frame ever goes
to a, and e, whose one neighbour is c, sends none); the seen table ends the flood (at most
one message frame per message and direction of a link; over a lossy net, no node takes
custody of a message twice); and flooding sends more bytes than routing.
"""

from __future__ import annotations

from collections import Counter

import pytest

from emulator.run import Emulation
from tawan.core.engine import EngineConfig
from tawan.core.frames import FrameType
from tawan.core.specs import EngineConfigError
from topologies.load import ScenarioError, parse_scenario

TRIANGLE = """
[run]
name = "triangle"
duration_s = 240
seed = 3

[engine]
routing = "{routing}"

[[nodes]]
name = "a"
groups = ["g"]
[[nodes]]
name = "b"
position = [10, 0]
groups = ["g"]
[[nodes]]
name = "c"
position = [5, 5]
groups = ["g"]
[[nodes]]
name = "e"
position = [5, 10]

[[links]]
a = "a"
b = "b"
bearer = "fibre"
name = "direct"
[[links]]
a = "a"
b = "c"
bearer = "radio-relay"
name = "a-c"
[[links]]
a = "c"
b = "b"
bearer = "radio-relay"
name = "c-b"
[[links]]
a = "c"
b = "e"
bearer = "radio-relay"
name = "c-e"

[[traffic]]
sources = ["a"]
to = "b"
size_bytes = 500
interval_s = 10
start_s = 20
stop_s = 200
"""

GROUP_TRAFFIC = """
[[traffic]]
sources = ["a"]
to = "own-group"
precedence = "FLASH"
size_bytes = 150
interval_s = 30
start_s = 20
stop_s = 200
"""

_MESSAGE_TYPES = frozenset((FrameType.DATA, FrameType.FRAG))


Run = tuple[Emulation, Counter[tuple[str, str]]]


def run(routing: str, *, group: bool = False) -> Run:
    """The triangle run to its end (unicast a to b; `group`: and a's FLASH to the group);
    message frames by (sender, receiver)."""
    text = TRIANGLE.format(routing=routing) + (GROUP_TRAFFIC if group else "")
    em = Emulation(parse_scenario(text, "triangle.toml"))
    frames: Counter[tuple[str, str]] = Counter()

    def count(t: float, link: str, sender: str, receiver: str, data: bytes) -> None:
        if data[0] & 0xF in _MESSAGE_TYPES:
            frames[sender, receiver] += 1

    em.frame_hooks.append(count)
    em.run()
    return em, frames


@pytest.fixture(scope="module")
def link_state() -> Run:
    return run("link-state")


@pytest.fixture(scope="module")
def flood() -> Run:
    return run("flood")


@pytest.fixture(scope="module")
def flood_group() -> Run:
    return run("flood", group=True)


def total_bytes(em: Emulation) -> int:
    return sum(tally.bytes for tally in em.record.bearers.values())


def test_link_state_never_goes_through_c(
    link_state: Run,
) -> None:
    em, frames = link_state
    assert frames["a", "b"] > 0
    assert frames["a", "c"] == frames["c", "b"] == 0
    assert em.engines["c"].stats.forwarded.total() == 0


def test_flooding_reaches_b_through_c_too(
    flood: Run,
) -> None:
    em, frames = flood
    offers = list(em.record.offers.values())
    unicast = [r for r in offers if r.destinations == ("b",)]
    assert len(unicast) == 18
    assert frames["c", "b"] >= len(unicast)  # c relayed every one, link-state none
    assert em.engines["c"].stats.forwarded.total() >= len(unicast)
    assert em.engines["b"].stats.duplicates > 0  # b had each from a already
    assert frames["c", "e"] >= len(unicast)
    assert all(store.message_count() == 0 for store in em.stores.values())  # e holds none


def test_each_destination_delivers_each_message_once(flood_group: Run) -> None:
    em, _ = flood_group
    offers = list(em.record.offers.values())
    assert {len(r.destinations) for r in offers} == {1, 2}  # unicast and group
    for record in offers:
        assert set(record.delivered) == set(record.destinations)
    assert em.record.duplicates == 0
    inboxes = sum(em.stores[n].inbox_count() for n in "bc")  # what the applications got
    assert inboxes == sum(len(r.destinations) for r in offers)


def test_nothing_goes_back_where_it_came_from_and_the_seen_table_ends_the_flood(
    flood_group: Run,
) -> None:
    em, frames = flood_group
    assert frames["b", "a"] == frames["c", "a"] == 0
    assert frames["e", "c"] == 0  # e hears only c: nothing to hand on, not held for later
    messages = len(em.record.offers)
    for pair, count in frames.items():  # one frame per message and direction at most
        assert count <= messages, pair


def test_flooding_sends_more_bytes_than_link_state(
    link_state: Run,
    flood: Run,
) -> None:
    assert total_bytes(flood[0]) > total_bytes(link_state[0])
    assert sum(flood[1].values()) > sum(link_state[1].values())


def test_the_routing_mode_is_checked() -> None:
    assert EngineConfig(routing="flood").routing == "flood"
    with pytest.raises(EngineConfigError, match=r"EngineConfig\.routing: expected one of"):
        EngineConfig(routing="ospf")  # type: ignore[arg-type]
    with pytest.raises(ScenarioError, match=r"engine\.routing: expected one of"):
        parse_scenario(TRIANGLE.format(routing="ospf"), "triangle.toml")


LOSSY_NET = """
[run]
name = "lossy-net"
duration_s = 300
seed = 4

[engine]
routing = "flood"
hello_interval_s = 5
dead_interval_s = 30

[[nodes]]
name = "a"
groups = ["g"]
[[nodes]]
name = "b"
position = [2, 0]
groups = ["g"]
[[nodes]]
name = "c"
position = [4, 0]
groups = ["g"]
[[nodes]]
name = "d"
position = [2, 2]
groups = ["g"]

[[nets]]
name = "vhf"
bearer = "vhf"
members = ["a", "b", "c", "d"]
loss = 0.25

[[traffic]]
sources = ["a"]
to = "c"
size_bytes = 200
interval_s = 15
start_s = 20
stop_s = 200
"""


def test_over_a_lossy_net_each_node_relays_each_message_once() -> None:
    """Frames and acknowledgements lost make copies come back to nodes done with them:
    the seen table still stops each there (no node takes custody of one twice)."""
    em = Emulation(parse_scenario(LOSSY_NET + GROUP_TRAFFIC, "lossy.toml"))
    em.run()
    offers = list(em.record.offers.values())
    assert len(offers) > 15
    for record in offers:
        assert set(record.delivered) == set(record.destinations)
    assert em.record.duplicates == 0
    for name in "bcd":
        assert 0 < em.engines[name].stats.forwarded.total() <= len(offers), name
    assert sum(em.engines[n].stats.duplicates for n in "abcd") > len(offers)
