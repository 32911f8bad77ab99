"""No end-to-end nonce is ever used twice, whatever happens to the store (docs/keys.md).

ChaCha20-Poly1305 under one key with one nonce twice XORs both plaintexts with the same
keystream: ct1 ^ ct2 == pt1 ^ pt2. Each test records every message a node put on air across
an accident to its store, and looks for exactly that, so it checks the property itself and
not how the code numbers messages. The three accidents are those of docs/keys.md: a power
cut at durability "process", a failed commit that somebody swallowed, a store restored from a
backup.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import sqlite3
from typing import Any

from harness import Net, chain

from crypto.keyring import Keyring
from crypto.schedule import LINK_TAG_BYTES
from tawan.core.frames import BatchFrame, DataFrame, Message, decode_frame
from tawan.core.precedence import Precedence
from tawan.core.sealing import open_message
from tawan.core.specs import Submission
from tawan.core.store import Store, StoreError


class PowerCutStore(Store):
    """A store that loses, at a power cut, every commit not forced to disk: what a power
    cut does to an SQLite database at synchronous=NORMAL."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self._on_disk = sqlite3.connect(":memory:")
        self._conn.backup(self._on_disk)

    def commit(self, *args: Any, **kwargs: Any) -> None:
        super().commit(*args, **kwargs)
        if kwargs.get("sync"):
            self._conn.backup(self._on_disk)

    def power_cut(self) -> None:
        self.rollback()
        self._on_disk.backup(self._conn)
        self._load_counters()


class FailingCommitStore(Store):
    """A store whose next commit fails the way a full disk makes SQLite fail: rolled back."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.fail_next = False

    def commit(self, *args: Any, **kwargs: Any) -> None:
        if self.fail_next and self.dirty:
            self.fail_next = False
            self.rollback()
            raise StoreError("commit failed: database or disk is full")
        super().commit(*args, **kwargs)


def on_air(net: Net, name: str) -> list[Message]:
    """Start recording the messages `name` puts on links."""
    sent: list[Message] = []

    def spy(sender: str, link: str, data: bytes) -> None:
        frame = decode_frame(data[:-LINK_TAG_BYTES])
        if sender == name and isinstance(frame, DataFrame):
            sent.append(frame.message)
        if sender == name and isinstance(frame, BatchFrame):
            sent.extend(frame.messages)

    net.tap(spy)
    return sent


def keystream_reuses(net: Net, receiver: str, sent: list[Message]) -> list[tuple[int, int]]:
    """Pairs of distinct messages whose ciphertexts XOR to their plaintexts' XOR."""
    keys = Keyring(net.keys[receiver], net.roster)
    opened = {}
    for msg in sent:
        opened[(msg.src, msg.created, msg.seq, msg.ciphertext)] = (msg, open_message(keys, msg))
    found = []
    for (m1, o1), (m2, o2) in itertools.combinations(opened.values(), 2):
        if m1.ciphertext == m2.ciphertext:
            continue
        n = min(len(o1.payload), len(o2.payload), 32)
        xor_ct = bytes(a ^ b for a, b in zip(m1.ciphertext[:n], m2.ciphertext[:n], strict=True))
        xor_pt = bytes(a ^ b for a, b in zip(o1.payload[:n], o2.payload[:n], strict=True))
        if xor_ct == xor_pt:
            found.append((m1.seq, m2.seq))
    return found


def submit_batch(net: Net, count: int, rng: random.Random) -> None:
    """`count` messages from a to b, sealed now; those that can leave are on air at once."""
    for _ in range(count):
        payload = rng.randbytes(48)  # random: never compressed, so the payload is the plaintext
        net.submit("a", "b", payload, precedence=Precedence.ROUTINE, ttl=600)


def test_a_power_cut_at_process_durability_reuses_no_nonce() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b"))
    store = PowerCutStore()
    net.stores["a"] = store
    net.restart("a")
    net.run(3)
    sent = on_air(net, "a")
    rng = random.Random(1)
    submit_batch(net, 5, rng)
    assert len(sent) == 5  # on air
    store.power_cut()
    net.restart("a")  # at once, on the same clock tick: only the sequence tells them apart
    submit_batch(net, 5, rng)
    net.run(5)
    assert len(sent) >= 10
    assert keystream_reuses(net, "b", sent) == []


def test_a_failed_commit_swallowed_by_the_api_reuses_no_nonce() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b"))
    store = FailingCommitStore()
    net.stores["a"] = store
    net.restart("a")
    net.run(3)
    sent = on_air(net, "a")
    rng = random.Random(2)
    a = net.engines["a"]
    for _ in range(3):
        submission = Submission(net.address("b"), rng.randbytes(48), Precedence.ROUTINE, 600)
        a.submit(submission, net.now)
    # The API acknowledges the inbox and commits; the commit fails, the API carries on.
    store.ack_inbox(0)
    store.fail_next = True
    with contextlib.suppress(StoreError):
        store.commit()
    net._flush()  # on the same clock tick
    # The queues read a message's body from the store when its turn comes, and the rollback
    # took the bodies: nothing sealed in the lost transaction goes on air, so nothing
    # numbered from it can meet a reused number later.
    assert sent == []
    store.rollback()  # and the node dies
    net.restart("a")
    submit_batch(net, 3, rng)
    net.run(5)
    assert len(sent) >= 3
    assert keystream_reuses(net, "b", sent) == []


def test_a_store_restored_from_a_backup_reuses_no_nonce() -> None:
    net = Net({"a": [], "b": []}, chain("a", "b"))
    net.run(3)
    sent = on_air(net, "a")
    rng = random.Random(3)
    backup = sqlite3.connect(":memory:")
    net.stores["a"].commit()
    net.stores["a"]._conn.backup(backup)  # before any message: no sequence number reserved
    submit_batch(net, 5, rng)
    net.run(5)
    store = net.stores["a"]
    store.rollback()
    backup.backup(store._conn)  # the backup is put back, and the node started again
    store._load_counters()
    net.restart("a")
    submit_batch(net, 5, rng)
    net.run(5)
    assert len(sent) >= 10
    assert [m.seq for m in sent[:5]] == [m.seq for m in sent[5:10]]  # the numbers came back
    assert keystream_reuses(net, "b", sent) == []
