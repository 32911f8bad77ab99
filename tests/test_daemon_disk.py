"""Live daemons on 127.0.0.1 with a full disk at the relay, and sends retried with a ref.

bravo's store is filled to its file cap before it starts (the cap is what a full disk looks
like to SQLite: "database or disk is full"); it must come up, refuse custody with one clear
line, keep its neighbours' messages with them, and take custody again once room is made
(here: the filler rows are deleted through a second connection, as an operator freeing
space would)."""

from __future__ import annotations

import sqlite3

import pytest
from test_daemons import Daemons, cli, nodes, received_at  # noqa: F401  # nodes: a fixture

from tawan.core.store import Store, StoreUnwritable
from tawan.demo import wait_for
from tawan.node.client import Client

pytestmark = pytest.mark.slow


def fill_store(path: str) -> None:
    """Create bravo's store and fill it up to the file cap of a 1 MiB store."""
    with Store(path, max_bytes=1 << 20) as store:
        rows = 0
        for size in (16384, 1024, 64):  # to the last bytes of the last page
            for _ in range(100_000):
                try:
                    store.set_state(f"filler-{rows}", bytes(size))
                    store.commit()
                except StoreUnwritable:
                    break
                rows += 1
        assert rows > 100


def test_a_relay_on_a_full_disk_stays_up_and_takes_custody_once_there_is_room(
    nodes: Daemons,  # noqa: F811
) -> None:
    text = nodes.config("bravo").read_text()
    nodes.config("bravo").write_text(
        text.replace('durability = "process"', 'durability = "process"\nstore_max_bytes = 1048576')
    )
    fill_store(str(nodes.base / "bravo.db"))
    for name in nodes.names:
        nodes.start(name)
    nodes.neighbours_up("bravo", {"alpha", "charlie"})
    sent = cli("send", "--api", nodes.api["alpha"], "--to", "charlie", "--ref", "r-1", "sitrep")
    assert sent.returncode == 0, sent.stderr
    again = cli("send", "--api", nodes.api["alpha"], "--to", "charlie", "--ref", "r-1", "sitrep")
    assert again.stdout == sent.stdout  # the retry is the same message
    clash = cli("send", "--api", nodes.api["alpha"], "--to", "charlie", "--ref", "r-1", "other")
    assert clash.returncode != 0 and "already used" in clash.stderr

    def bravo_unwritable() -> bool:
        store = nodes.status("bravo")["store"]
        return isinstance(store, dict) and store["writable"] is False

    mids = [sent.stdout.strip()]
    with Client(nodes.api["alpha"], timeout=5) as client:
        for i in range(50):  # until bravo's next write finds no room
            if bravo_unwritable():
                break
            mids.append(client.send("charlie", bytes(range(256)) * 8, ref=f"fill-{i}"))
    wait_for("bravo to find its disk full", bravo_unwritable)
    refused = cli("send", "--api", nodes.api["bravo"], "--to", "charlie", "hello")
    assert refused.returncode != 0
    assert "store cannot write" in refused.stderr and len(refused.stderr.splitlines()) == 1

    def alpha_holds_some() -> bool:
        held = nodes.status("alpha")["store"]
        return isinstance(held, dict) and held["messages"] > 0

    wait_for("alpha to keep what bravo refused", alpha_holds_some)
    conn = sqlite3.connect(nodes.base / "bravo.db")  # the operator makes room
    conn.execute("DELETE FROM state WHERE key LIKE 'filler-%'")
    conn.commit()
    conn.close()

    got: list[str] = []

    def delivered() -> bool:
        got.extend(str(m["mid"]) for m in received_at(nodes, "charlie"))
        return len(got) >= len(mids)

    wait_for("charlie to get every message", delivered, timeout=90)
    assert sorted(got) == sorted(mids)  # each once
    store = nodes.status("bravo")["store"]
    assert isinstance(store, dict) and store["writable"] is True
    log = nodes.log("bravo")
    assert log.count("event=store_unwritable") == 1 and "event=store_writable" in log
    with Client(nodes.api["bravo"], timeout=2) as client:  # and it takes custody again
        assert client.send("charlie", b"room again")
