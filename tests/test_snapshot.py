"""One frozen snapshot of a node: what status and metrics read."""

from __future__ import annotations

import dataclasses

import pytest
from harness import Net, chain

from tawan.core.precedence import Precedence


def test_a_snapshot_is_frozen_and_tells_what_the_node_holds() -> None:
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"))
    net.run(3)
    net.links["b-c"].up = False
    net.run(10)
    net.submit("a", "c", b"held: no route", precedence=Precedence.PRIORITY, ttl=600)
    net.run(2)
    view = net.engines["a"].snapshot(net.now)
    assert (view.node, view.store.messages, view.store.held) == ("a", 1, 1)
    assert view.store.messages_by_precedence["priority"] == 1
    assert {(n.name, n.up) for n in view.neighbours} == {("b", True)}
    assert dict(view.routes) == {"b": "b"}
    assert view.counters.submitted["priority"] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.node = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.queued["routine"] = 5  # type: ignore[index]
    assert net.engines["a"].status(net.now) == view.status()
