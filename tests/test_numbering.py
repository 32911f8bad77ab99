"""Message numbers never repeat for one source, across restarts and clocks going back."""

from __future__ import annotations

from pathlib import Path

from tawan.numbering import SEQ_RESERVE, Numbering
from tawan.store import Store


def test_numbers_continue_above_the_reserved_block_after_a_crash(tmp_path: Path) -> None:
    path = str(tmp_path / "node.db")
    store = Store(path)
    numbering = Numbering(store, epoch_seconds=3600)
    used = [numbering.allocate(100)[1] for _ in range(10)]
    assert used == list(range(10))
    assert numbering.reserved_new_block
    store.commit()  # the engine commits before any of these messages leaves
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
