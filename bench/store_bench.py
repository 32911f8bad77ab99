"""How fast the store takes custody: the relay hot path, per message.

One relayed message costs put_message (custody, one next hop), mark_seen (dedup) and, once
the neighbour acknowledges, remove_next_hop; commits are grouped. Also measured: a commit
forced to disk with commit(sync=True) (nonce reservations), and the housekeeping pass of an
idle node (forget_seen_before with nothing expired: a probe, no transaction). Figures only,
never a pass/fail: run `python bench/store_bench.py [--count N] [--dir DIR]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tawan.core.store import Store, StoredMessage


def relay(
    store: Store, count: int, commit_every: int, *, dedup: bool, epoch: int, sync: bool = False
) -> float:
    """Seconds to take custody of `count` messages of 200 bytes and see them acknowledged.

    Acknowledgements trail the inserts by 64 messages, as they do on a real link.
    """
    body = bytes(200)
    start = time.perf_counter()
    for seq in range(count):
        mid = (7, epoch, seq)
        if dedup:
            store.mark_seen(mid, 3600)
        store.put_message(StoredMessage(mid, 9, seq % 4, 0, 3600, body, False, 0.0, 3), (3,))
        if seq >= 64:
            store.remove_next_hop((7, epoch, seq - 64), 3)
        if seq % commit_every == commit_every - 1:
            store.commit(sync=sync)
    store.commit()
    return time.perf_counter() - start


def measure(
    name: str,
    opener: Callable[[], Store],
    count: int,
    every: int,
    dedup: bool,
    *,
    sync: bool = False,
) -> None:
    store = opener()
    try:
        relay(store, min(count, 2000), every, dedup=dedup, epoch=1, sync=sync)  # warm caches
        seconds = relay(store, count, every, dedup=dedup, epoch=2, sync=sync)
    finally:
        store.close()
    label = "+ dedup" if dedup else "+ sync " if sync else "       "
    print(
        f"{name:<18} commit/{every:<3} relay {label}"
        f"{count / seconds:>10,.0f} msg/s {seconds / count * 1e6:>8.1f} us/msg"
    )


def idle(name: str, opener: Callable[[], Store], count: int) -> None:
    """Housekeeping passes of a node holding 10,000 dedup records, none of them expired."""
    store = opener()
    for seq in range(10_000):
        store.mark_seen((8, 1, seq), 3600)
    store.commit()
    start = time.perf_counter()
    for _ in range(count):
        store.forget_seen_before(60)
        store.commit()
    seconds = time.perf_counter() - start
    store.close()
    print(f"{name:<18} idle housekeeping  {seconds / count * 1e6:>10.1f} us/pass")


def inserts(name: str, opener: Callable[[], Store], count: int, every: int) -> None:
    """Custody only (the store fills up): inserts per second."""
    store = opener()
    body = bytes(200)
    start = time.perf_counter()
    for seq in range(count):
        store.put_message(StoredMessage((5, 1, seq), 9, 0, 0, 3600, body, False, 0.0), (3,))
        if seq % every == every - 1:
            store.commit()
    store.commit()
    seconds = time.perf_counter() - start
    store.close()
    print(
        f"{name:<18} commit/{every:<3} insert only  {count / seconds:>10,.0f} inserts/s "
        f"{seconds / count * 1e6:>8.1f} us/insert"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--dir", help="where the store files go (fsync cost depends on it)")
    args = parser.parse_args()
    count: int = args.count
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        n = 0

        def file_store(durability: str) -> Callable[[], Store]:
            def open_new() -> Store:
                nonlocal n
                n += 1
                path = Path(tmp) / f"node{n}.db"
                if durability == "power":
                    return Store(path, durability="power")
                return Store(path)

            return open_new

        print(f"{count} messages of 200 bytes, one next hop each")
        inserts("memory", Store.memory, count, 64)
        inserts("file WAL process", file_store("process"), count, 64)
        inserts("file WAL power", file_store("power"), count, 64)
        for dedup in (False, True):
            measure("memory", Store.memory, count, 64, dedup)
            measure("file WAL process", file_store("process"), count, 64, dedup)
            measure("file WAL power", file_store("power"), count, 64, dedup)
        measure("file WAL process", file_store("process"), count // 4, 1, False)
        measure("file WAL process", file_store("process"), count // 10, 1, False, sync=True)
        measure("file WAL power", file_store("power"), count // 10, 1, False)
        idle("memory", Store.memory, count)
        idle("file WAL process", file_store("process"), count)


if __name__ == "__main__":
    main()
