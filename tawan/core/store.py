"""The durable store of a node: messages in custody, their next hops, dedup, inbox, fragments.

The protocol engine calls it synchronously and passes every time in as an argument; the store
has no clock, no threads and no trio. One SQLite database per node, in WAL mode; the same code
runs on ":memory:" so the emulator can hold hundreds of nodes in one process.

`Store` is composed of parts that write into one transaction:

- `store_tx.StoreBase`: the transaction owner (opening, schema and upgrades, commit,
  rollback, sync, close); the custody rule (nothing acknowledged before its commit) and the
  durability levels are written down there;
- `store_custody.Custody`: messages in custody, their next hops, fair share, eviction, expiry
  and the in-memory held index;
- `store_seen.Seen`: duplicate memory and the messages sent asking for a receipt;
- `store_mailbox.Mailbox`: the inbox and the receipts waiting for the application;
- `store_fragments.Fragments`: fragments of messages being reassembled;
- `store_state.EngineState`: the engine's own key/value state;
- `store_refs.Refs`: clients' references of submissions, so a retried send is not sent twice.

What housekeeping asks every few seconds (has anything expired, when does the next message
expire) is answered from bounds kept in memory (`store_expiry`) while nothing is due.

Every SQL statement lives in `store_sql` (the pragmas of `store_tx` aside); the types the
store hands out and raises in `store_types`, re-exported here.
"""

from __future__ import annotations

from tawan.core.store_custody import Custody
from tawan.core.store_fragments import Fragments
from tawan.core.store_mailbox import Mailbox
from tawan.core.store_refs import Refs, SubmissionRef
from tawan.core.store_seen import Seen
from tawan.core.store_state import EngineState
from tawan.core.store_tx import APPLICATION_ID, DEFAULT_MAX_BYTES, SCHEMA_VERSION
from tawan.core.store_types import (
    HELD,
    InboxEntry,
    MessageId,
    MessageRef,
    PartialKey,
    Receipt,
    StoredMessage,
    StoreError,
    StoreFull,
    StoreShareExceeded,
    StoreUnwritable,
    custody_slot,
    wire_id,
)

__all__ = [
    "APPLICATION_ID",
    "DEFAULT_MAX_BYTES",
    "HELD",
    "SCHEMA_VERSION",
    "InboxEntry",
    "MessageId",
    "MessageRef",
    "PartialKey",
    "Receipt",
    "Store",
    "StoreError",
    "StoreFull",
    "StoreShareExceeded",
    "StoreUnwritable",
    "StoredMessage",
    "SubmissionRef",
    "custody_slot",
    "wire_id",
]


class Store(Custody, Seen, Mailbox, Fragments, EngineState, Refs):
    """The durable store of one node. Not thread-safe: one engine owns it."""

    @classmethod
    def memory(cls, max_bytes: int = DEFAULT_MAX_BYTES) -> Store:
        """A store that lives and dies with the process, for the emulator and tests."""
        return cls(":memory:", max_bytes=max_bytes)

    def _load_counters(self) -> None:
        """Rebuild every part's in-memory state from the file (at open, after a rollback).
        The expiry bounds first, so a reload failing half way leaves none stale."""
        self._load_seen()
        self._load_refs()
        self._load_custody()
        self._load_fragments()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
