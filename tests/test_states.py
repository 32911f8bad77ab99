"""The message-state table (tawan.core.states): total, enforced, the one in the docs, used."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from harness import FakeLink, Net, chain, profile

from tawan.core.precedence import Precedence
from tawan.core.states import (
    IMPOSSIBLE,
    TRANSITIONS,
    Input,
    Lifecycle,
    State,
    StateError,
    table_markdown,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "engine.md"


def test_every_state_against_every_input_is_either_a_transition_or_impossible() -> None:
    for pair in itertools.product(State, Input):
        assert (pair in TRANSITIONS) != (pair in IMPOSSIBLE), pair


def test_a_transition_outside_the_table_raises_when_strict_and_costs_nothing_otherwise() -> None:
    strict = Lifecycle(strict=True)
    assert strict.move("m", Input.QUEUED) is State.WAITING
    with pytest.raises(StateError, match=r"REQUEUED in state WAITING: still waiting"):
        strict.move("m", Input.REQUEUED)
    lenient = Lifecycle()
    lenient.move("m", Input.QUEUED)
    lenient.move("m", Input.REQUEUED)  # not followed, not checked: no cost in the field
    assert lenient.states == {}


def test_the_docs_show_the_table_of_the_code() -> None:
    assert table_markdown() in DOCS.read_text(encoding="utf-8")


def test_traffic_through_loss_cuts_and_expiry_uses_the_table() -> None:
    visited: set[tuple[State, Input]] = set()
    move = Lifecycle.move

    def spy(self: Lifecycle, key: object, event: Input) -> State:
        visited.add((self.state(key), event))
        return move(self, key, event)

    Lifecycle.move = spy  # type: ignore[method-assign]
    try:
        links = [*chain("a", "b", "c"), FakeLink("a", "c", profile(), loss=0.3)]
        net = Net({"a": [], "b": [], "c": []}, links, seed=4)
        net.run(3)
        for i in range(20):
            net.submit("a", "c", b"order %d" % i, precedence=Precedence.ROUTINE, ttl=600)
        net.run(20)
        net.links["b-c"].up = False
        net.links["a-c"].up = False
        net.run(10)
        net.submit("a", "c", b"held", precedence=Precedence.ROUTINE, ttl=600)
        net.submit("a", "c", b"expires", precedence=Precedence.ROUTINE, ttl=5)
        net.run(10)
        net.links["b-c"].up = True
        net.run(20)
    finally:
        Lifecycle.move = move  # type: ignore[method-assign]
    assert len(net.delivered("c")) == 21
    assert net.engines["a"].lifecycle.strict  # every move above was checked
    expected = {
        (State.NEW, Input.QUEUED),
        (State.WAITING, Input.ALL_SENT),
        (State.IN_FLIGHT, Input.ACKNOWLEDGED),
        (State.IN_FLIGHT, Input.REQUEUED),
        (State.NEW, Input.NO_ROUTE),
        (State.HELD, Input.ROUTE_FOUND),
        (State.HELD, Input.EXPIRED),
    }
    assert expected <= visited, expected - visited
