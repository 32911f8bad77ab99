"""Message numbers never repeat for one source, across restarts and clocks going back."""

from __future__ import annotations

from pathlib import Path

from tawan.core.numbering import SEQ_RESERVE, Numbering
from tawan.core.store import Store


def test_numbers_continue_above_the_reserved_block_after_a_crash(tmp_path: Path) -> None:
    path = str(tmp_path / "node.db")
    store = Store(path)
    numbering = Numbering(store, epoch_seconds=3600)
    used = [numbering.allocate(100)[1] for _ in range(10)]
    assert used == list(range(10))
    assert numbering.reservation_pending
    store.set_state("seq", numbering.state())
    store.commit(sync=True)  # the engine commits before any of these messages leaves
    store.close()  # ...and then the process dies: the in-memory counter is gone
    again = Numbering(Store(path), epoch_seconds=3600)
    created, seq = again.allocate(100)
    assert seq == SEQ_RESERVE  # above every number that may have been used
    assert created == 100


def test_a_clock_going_back_does_not_reuse_numbers(tmp_path: Path) -> None:
    numbering = Numbering(Store.memory(), epoch_seconds=60)
    first = numbering.allocate(1300)  # ticks: 130 s, epoch 2
    second = numbering.allocate(100)  # the clock jumped back into epoch 0
    assert second[0] >= first[0]
    assert (second[0] // 600, second[1]) != (first[0] // 600, first[1])


def test_a_new_epoch_starts_at_zero() -> None:
    numbering = Numbering(Store.memory(), epoch_seconds=60)
    assert [numbering.allocate(5)[1] for _ in range(3)] == [0, 1, 2]
    assert numbering.allocate(610) == (610, 0)  # ticks: 61 s is epoch 1


def test_creation_times_never_go_backwards_within_a_block() -> None:
    # The floor used to move only when a block was reserved: between two reservations a
    # clock going back gave creation times earlier than ones already used.
    numbering = Numbering(Store.memory(), epoch_seconds=3600)
    assert numbering.allocate(500)[0] == 500  # reserves a block
    assert numbering.allocate(600)[0] == 600
    assert numbering.allocate(550)[0] == 600  # the clock went back by 5 s


def test_a_block_is_pending_until_its_commit_is_confirmed() -> None:
    numbering = Numbering(Store.memory(), epoch_seconds=3600)
    numbering.allocate(1)
    assert numbering.reservation_pending
    state = numbering.state()
    numbering.allocate(2)  # the same block
    numbering.committed(state)
    assert not numbering.reservation_pending
