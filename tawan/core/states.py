"""The states of a message at a node, and every transition between them, as one table.

A message in custody here has, for each next hop it must reach, a state: `WAITING` its turn
on the link chosen for it, `IN_FLIGHT` (every piece on the air, its acknowledgement
awaited), or `HELD` (the store's "no route yet" row, kept for the message as a whole). What
may happen to it in each state is `TRANSITIONS`; nothing else may (the queues and the store
report each change to a `Lifecycle`, which checks it against the table). The table in
docs/engine.md is generated from this one (`table_markdown`, checked by
tests/test_states.py), in the spirit of h11's `_state.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final


class State(enum.Enum):
    NEW = "new"  # not (yet) in custody for this next hop
    WAITING = "waiting"
    IN_FLIGHT = "in flight"
    HELD = "held"
    DONE = "done"  # acknowledged by that next hop, or handed to another
    GONE = "gone"  # expired, evicted or dropped (a revoked source or destination)


class Input(enum.Enum):
    QUEUED = "queued for a next hop, on the link chosen for it"
    ALL_SENT = "its last piece went on the air"
    REQUEUED = "sent again: timeout, fragment map, or the link was lost"
    ACKNOWLEDGED = "the next hop acknowledged custody"
    MOVED = "handed to another next hop (routes changed, or the copies crossed)"
    NO_ROUTE = "no next hop reaches its destination"
    ROUTE_FOUND = "a route appeared: queued for the next hops it gives"
    EXPIRED = "its time to live ran out"
    EVICTED = "evicted for a higher-precedence message"
    DROPPED = "dropped: its source or destination was revoked"


@dataclass(frozen=True, slots=True)
class Transition:
    next: State
    action: str


_END = (Input.EXPIRED, Input.EVICTED, Input.DROPPED)

TRANSITIONS: Final[Mapping[tuple[State, Input], Transition]] = {
    (State.NEW, Input.QUEUED): Transition(State.WAITING, "store it for that hop, queue it"),
    (State.NEW, Input.NO_ROUTE): Transition(State.HELD, "store it, held"),
    (State.WAITING, Input.QUEUED): Transition(
        State.WAITING, "queued again, on the link chosen now"
    ),
    (State.WAITING, Input.ALL_SENT): Transition(
        State.IN_FLIGHT, "wait for the acknowledgement, retransmission deadline set"
    ),
    (State.WAITING, Input.ACKNOWLEDGED): Transition(
        State.DONE, "a late acknowledgement of an earlier send: release that hop"
    ),
    (State.WAITING, Input.MOVED): Transition(State.DONE, "queued for the new hop instead"),
    (State.IN_FLIGHT, Input.REQUEUED): Transition(
        State.WAITING, "send again: the last piece (a probe), the missing ones, or all"
    ),
    (State.IN_FLIGHT, Input.ACKNOWLEDGED): Transition(
        State.DONE, "release that hop; the message leaves when no hop is left"
    ),
    (State.IN_FLIGHT, Input.MOVED): Transition(State.DONE, "queued for the new hop instead"),
    (State.HELD, Input.ROUTE_FOUND): Transition(State.DONE, "queued for the hops found"),
    (State.HELD, Input.NO_ROUTE): Transition(State.HELD, "still held"),
    **{(s, i): Transition(State.GONE, "drop it, count it; receipt to the origin if asked")
       for s in (State.WAITING, State.IN_FLIGHT, State.HELD) for i in _END},
}  # fmt: skip
"""(state, input) -> what the node does and the state it goes to."""

IMPOSSIBLE: Final[Mapping[tuple[State, Input], str]] = {
    **{(State.NEW, i): "not in custody for that hop yet" for i in Input
       if i not in (Input.QUEUED, Input.NO_ROUTE)},
    **{(s, i): "final: nothing happens to it any more" for s in (State.DONE, State.GONE)
       for i in Input},
    (State.WAITING, Input.REQUEUED): "still waiting: nothing on the air to send again",
    (State.WAITING, Input.NO_ROUTE): "holding is for the message, not for one next hop",
    (State.WAITING, Input.ROUTE_FOUND): "it has a hop already",
    (State.IN_FLIGHT, Input.QUEUED): "on the air: sent again only by REQUEUED",
    (State.IN_FLIGHT, Input.ALL_SENT): "every piece is on the air already",
    (State.IN_FLIGHT, Input.NO_ROUTE): "holding is for the message, not for one next hop",
    (State.IN_FLIGHT, Input.ROUTE_FOUND): "it has a hop already",
    (State.HELD, Input.QUEUED): "held has no link: ROUTE_FOUND releases it",
    (State.HELD, Input.ALL_SENT): "nothing of it is on the air",
    (State.HELD, Input.REQUEUED): "nothing of it is on the air",
    (State.HELD, Input.ACKNOWLEDGED): "held is no next hop: nobody acknowledges it",
    (State.HELD, Input.MOVED): "ROUTE_FOUND releases it",
}  # fmt: skip
"""Every other pair, with why it cannot happen: the two tables cover all pairs."""


class StateError(RuntimeError):
    """The node made a transition the table does not allow: a bug of the node."""


@dataclass(slots=True)
class Lifecycle:
    """The state of each (message, next hop) at a node, moved only through the table.

    `strict` (tests, and `EngineConfig.strict_states`) follows every (message, next hop)
    and raises StateError on a transition the table does not allow. Otherwise nothing is
    followed and a move costs one call: a node in the field does not pay, per message, for
    checking what the tests check."""

    strict: bool = False
    states: dict[Hashable, State] = field(default_factory=dict)

    def move(self, key: Hashable, event: Input) -> State:
        if not self.strict:
            return State.NEW
        state = self.states.get(key, State.NEW)
        transition = TRANSITIONS.get((state, event))
        if transition is None:
            why = IMPOSSIBLE.get((state, event), "not in the table")
            raise StateError(f"{key}: {event.name} in state {state.name}: {why}")
        if transition.next in (State.DONE, State.GONE):
            self.states.pop(key, None)  # final: forgotten, so memory follows custody
        else:
            self.states[key] = transition.next
        return transition.next

    def state(self, key: Hashable) -> State:
        return self.states.get(key, State.NEW)


def table_markdown() -> str:
    """The transition table as docs/engine.md shows it."""
    lines = ["| state | input | action | next state |", "| --- | --- | --- | --- |"]
    for (state, event), transition in TRANSITIONS.items():
        lines.append(
            f"| {state.value} | {event.value} | {transition.action} | {transition.next.value} |"
        )
    return "\n".join(lines)
