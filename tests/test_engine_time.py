"""The engine and a clock that misbehaves: jumps forward must not erase keys for good."""

from __future__ import annotations

from harness import START, Net, chain

from crypto.keyring import Keyring
from tawan.core.engine import Engine
from tawan.core.events import ClockJumped, Event, NeighbourChanged
from tawan.core.precedence import Precedence
from tawan.core.specs import Submission

EPOCH = 3600


def two() -> Net:
    net = Net({"a": [], "b": []}, chain("a", "b"))
    net.run(3)
    return net


def test_a_forward_jump_erases_nothing_until_the_new_time_has_held_an_epoch() -> None:
    net = two()
    a = net.engines["a"]
    oldest = oldest_epoch(a)
    jumped = net.now + 30 * EPOCH  # a wrong clock: 30 hours ahead, beyond the grace period
    a.handle_timer(jumped)
    assert [e for e in _events(a) if isinstance(e, ClockJumped)]
    assert oldest_epoch(a) == oldest
    # Messages can still be sealed at the new time meanwhile.
    a.submit(Submission(net.address("b"), b"x", Precedence.ROUTINE, 60), jumped)
    a.handle_timer(jumped + EPOCH / 2)
    assert oldest_epoch(a) == oldest
    a.handle_timer(jumped + EPOCH + 1)  # it held for an epoch: it is the time
    assert oldest_epoch(a) > oldest


def test_a_jump_set_right_again_costs_no_key() -> None:
    net = two()
    a = net.engines["a"]
    oldest = oldest_epoch(a)
    a.handle_timer(net.now + 30 * EPOCH)
    a.handle_timer(net.now + 10)  # the clock is corrected
    a.handle_timer(net.now + 20)
    assert oldest_epoch(a) == oldest


def test_epochs_passing_one_by_one_still_erase() -> None:
    net = two()
    a = net.engines["a"]
    oldest = oldest_epoch(a)
    t = START
    for hour in range(1, 30):
        t = START + hour * EPOCH
        a.handle_timer(t)
    assert oldest_epoch(a) > oldest
    assert not [e for e in _events(a) if isinstance(e, ClockJumped)]


def oldest_epoch(engine: Engine) -> int:
    keyring = engine.keys
    assert isinstance(keyring, Keyring)
    return keyring.oldest_epoch


def _events(engine: Engine) -> list[Event]:
    out = []
    while (event := engine.next_event()) is not None:
        out.append(event)
    return out


def test_a_node_restarted_with_its_clock_ahead_erases_nothing_yet() -> None:
    # At start-up the ratchet used to follow the clock at once: a node booted with a clock
    # 30 hours fast (no GPS fix yet) lost every root for good, and rewrote its key file.
    net = two()
    oldest = oldest_epoch(net.engines["a"])
    net.now += 30 * EPOCH
    net.restart("a")
    a = net.engines["a"]
    assert oldest_epoch(a) == oldest
    assert [e for e in _events(a) if isinstance(e, ClockJumped)]
    a.handle_timer(net.now + EPOCH + 1)  # the new time held for an epoch: now it erases
    assert oldest_epoch(a) > oldest


def test_an_idle_node_sleeps_between_hellos_and_still_sees_a_neighbour_die() -> None:
    net = two()
    a = net.engines["a"]
    calls = {"n": 0}
    handle = a.handle_timer

    def counting(now: float) -> None:
        calls["n"] += 1
        handle(now)

    a.handle_timer = counting  # type: ignore[method-assign]
    net.run(600)
    # Hellos every ~2 s are 300 wake-ups; housekeeping every second would add 600 more.
    assert calls["n"] < 450
    net.links["a-b"].up = False
    cut, seen_down = net.now, None
    for _ in range(200):
        net.run(0.1)
        if any(isinstance(e, NeighbourChanged) and not e.up for e in net.events["a"]):
            seen_down = net.now
            break
    assert seen_down is not None
    assert seen_down - cut <= a.config.dead_interval + a.config.housekeeping_interval
