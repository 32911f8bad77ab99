"""The least a relayed message costs with today's store and wire work, without the engine.

`bench/engine_costs.py` measures a relay engine's calls per 100-byte message (receive,
custody, transmit, acknowledgement). This bench measures what those calls cannot avoid as
the node is built, one part at a time, over `--messages` messages handled as the relay
handles them at a steady rate: custody acknowledged upstream after each third message,
which commits first, and the next hop's acknowledgement removing each message.

- `store_us`: the store's own methods (`Store.memory()`): `mark_seen`, `put_message` with
  one next hop, `remove_next_hops` per three messages, `commit` per three;
- `sql_us`: the SQL statements those methods run on the same schema (tawan.core.store_sql),
  issued directly: what the store costs with no Python around it;
- `wire_us`: one frame decoded (msgpack) and one encoded, and two link tags
  (`crypto.schedule.LinkMac`): the frame in and the frame out;
- `floor_us`: `sql_us + wire_us`.

The last line printed is one JSON object with these four figures (microseconds per
message, the best of `--runs` runs).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from collections.abc import Callable

import msgpack

from crypto.schedule import LinkMac
from tawan.core.store import Store, StoredMessage
from tawan.core.store_sql import INSERT_HOP, INSERT_MESSAGE, INSERT_SEEN, SCHEMA

BODY = random.Random(100).randbytes(230)  # a 100-byte message as sealed and encoded
EXPIRES = 10_000_000
ACKED_EVERY = 3


def store_methods(messages: int) -> float:
    store = Store.memory()
    started = time.perf_counter()
    done: list[tuple[int, int, int]] = []
    for seq in range(messages):
        mid = (5, 1, seq)
        store.mark_seen(mid, EXPIRES)
        store.put_message(StoredMessage(mid, 9, 1, 1000, EXPIRES, BODY, False, 1.0, 2), [9])
        done.append(mid)
        if len(done) == ACKED_EVERY:
            store.commit()
            store.remove_next_hops(done, 9)
            done = []
    store.commit()
    return time.perf_counter() - started


def bare_sql(messages: int) -> float:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    cur = conn.cursor()
    started = time.perf_counter()
    cur.execute("BEGIN")
    for seq in range(messages):
        cur.execute(INSERT_SEEN, (5, 1, seq, EXPIRES))
        cur.execute(INSERT_MESSAGE, (5, 1, seq, 9, 1, 1000, EXPIRES, BODY, 0, 1.0, 230, 2))
        cur.execute(INSERT_HOP, (5, 1, seq, 9))
        if seq % ACKED_EVERY == ACKED_EVERY - 1:
            cur.execute("COMMIT")
            cur.execute("BEGIN")
            cur.execute(
                "DELETE FROM messages WHERE src = 5 AND epoch = 1 AND seq IN (?, ?, ?)",
                (seq - 2, seq - 1, seq),
            )
    cur.execute("COMMIT")
    return time.perf_counter() - started


def wire(messages: int) -> float:
    mac = LinkMac(bytes(range(32)))
    frame_in = msgpack.packb([2, 1000, [5, 9, 1, 3, 0, 1000, 3600, 0, BODY]])
    started = time.perf_counter()
    for seq in range(messages):
        fields = msgpack.unpackb(frame_in)
        mac.tag(frame_in)
        frame_out = msgpack.packb([1, 1000 + seq, fields[2]])
        mac.tag(frame_out)
    return time.perf_counter() - started


def best_us(part: Callable[[int], float], messages: int, runs: int) -> float:
    return round(min(part(messages) for _ in range(runs)) * 1e6 / messages, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures = {
        "store_us": best_us(store_methods, args.messages, args.runs),
        "sql_us": best_us(bare_sql, args.messages, args.runs),
        "wire_us": best_us(wire, args.messages, args.runs),
    }
    figures["floor_us"] = round(figures["sql_us"] + figures["wire_us"], 2)
    for name, value in figures.items():
        print(f"{name}: {value} us per relayed message")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
