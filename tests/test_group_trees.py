"""Group trees are the same at every node, whatever each node has measured of its own links.

A radio net of a company HQ (1) and three platoons (2, 3, 4), all planned at cost 4. The HQ
has since measured its links at other costs (a slow first answer, a jammed minute) and not
advertised them yet. Were its tree computed from what only it knows, it would send one copy
to platoon 3 for all three, while platoon 3, which knows the HQ's links by the plan, takes
itself for a leaf and passes nothing on: two platoons would never get the message.
"""

from __future__ import annotations

from harness import FakeLink, Net, profile

from tawan.core.precedence import Precedence
from tawan.core.routing import Router

HQ = 1
PLATOONS = (2, 3, 4)
NODES = (HQ, *PLATOONS)
PLAN = {n: {m: 4 for m in NODES if m != n} for n in NODES}


def router(me: int, measured: dict[int, int] | None = None) -> Router:
    r = Router(me, planned=PLAN)
    r.update_local(measured if measured is not None else PLAN[me])
    return r


def test_every_node_computes_the_source_tree_the_same_way() -> None:
    hq = router(HQ, {2: 20, 3: 7, 4: 20})
    others = [router(p) for p in PLATOONS]
    assert all(r.tree(HQ) == hq.tree(HQ) for r in others)
    assert hq.group_next_hops(HQ, PLATOONS, None) == set(PLATOONS)
    assert [r.group_next_hops(HQ, PLATOONS, HQ) for r in others] == [set(), set(), set()]


def test_an_advert_sent_is_what_the_tree_uses_for_our_own_links() -> None:
    hq = router(HQ, {2: 20, 3: 7, 4: 20})
    hq.publish({2: 20, 3: 7, 4: 20})  # now the network holds these costs of ours
    assert hq.tree(HQ)[2] == 3  # 7 + 4 < 20: through platoon 3, as everyone now computes
    platoon = router(3)
    assert platoon.shared_graph()[3][HQ] == 4  # not yet received: the plan still stands


def test_unicast_routing_still_sees_the_costs_measured_here() -> None:
    hq = router(HQ, {2: 20, 3: 7, 4: 20})
    assert hq.graph()[HQ] == {2: 20, 3: 7, 4: 20}
    assert hq.shared_graph()[HQ] == {2: 4, 3: 4, 4: 4}


def test_unicast_routes_leave_out_a_planned_link_that_is_down_here() -> None:
    """The network still holds our link to 2 (the plan); we know it is down: a message
    for 2 goes round through 3, not to a neighbour we cannot reach."""
    hq = router(HQ, {3: 4, 4: 4})
    assert hq.next_hop(2) in (3, 4)
    assert hq.tree(HQ)[2] == HQ  # the common tree still hangs 2 under us


def test_a_leaf_that_acknowledged_still_gets_the_copy_for_a_member_hung_under_it_since() -> None:
    """s reaches m through b; s-b dies unnoticed while a group message leaves, a takes it
    (a member, a leaf then: it keeps no copy) and acknowledges. Once s knows, its tree
    hangs b and m under a: s must hand the copy to a again, although a has had it, or m
    never gets it (a's acknowledgement spoke for a alone)."""
    p = profile()
    links = [FakeLink("s", "a", p), FakeLink("s", "b", p), FakeLink("a", "b", p),
             FakeLink("b", "m", p)]  # fmt: skip
    net = Net({"s": ["g"], "a": ["g"], "b": [], "m": ["g"]}, links)
    net.run(60)
    net.links["s-b"].up = False
    net.submit("s", "g", b"to all of g", precedence=Precedence.ROUTINE, ttl=3600)
    net.run(600)
    for member in ("a", "m"):
        assert [e.payload for e in net.delivered(member)] == [b"to all of g"]
