"""The SQL of the custody store: its schema, its migrations and every statement, in one place.

Message ids are (src, epoch, seq) and every statement names them ?1, ?2, ?3; a neighbour
(next hop, fragment sender) that goes with the id binds as ?4. The parts of
`tawan.core.store` (store_tx, store_custody, store_seen, ...) are the only users.
"""

from __future__ import annotations

import functools
from typing import Final

# Fragments are keyed by the neighbour sending them, so two neighbours' transfers of the same
# message never mix. Shared by the schema and the migration from version 1, which rebuilds
# the table because its unique key changed.
FRAGMENTS_TABLE: Final = """
CREATE TABLE fragments (
    hop INTEGER NOT NULL, src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, count INTEGER NOT NULL, chunk BLOB NOT NULL,
    received_at REAL NOT NULL,
    UNIQUE (hop, src, epoch, seq, idx)
) STRICT;
"""

SENT_TABLE: Final = """
CREATE TABLE sent (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    dst INTEGER NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (src, epoch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX sent_by_expiry ON sent (expires);
"""

# A client's own reference for a submission, and the message it became (`store_refs`).
REFS_TABLE: Final = """
CREATE TABLE refs (
    ref BLOB PRIMARY KEY, src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    digest BLOB NOT NULL, expires INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX refs_by_expiry ON refs (expires);
"""
# The order messages take their turn in a transmit queue (highest precedence, then oldest):
# a queue longer than it keeps in memory reads its next messages from here (`PENDING_FOR`).
# IF NOT EXISTS: a file that has it already (made by a build that had it at version 3)
# still migrates.
TURN_INDEX: Final = (
    "CREATE INDEX IF NOT EXISTS messages_by_turn ON messages (precedence, created);"
)

# Columns added since version 1 come last and carry the default the migration gives old rows,
# so a new store and an upgraded one have the same tables, column for column. (The f-strings
# here join constants of this module, never data: S608 does not apply.)
SCHEMA: Final = f"""
CREATE TABLE messages (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    dst INTEGER NOT NULL, precedence INTEGER NOT NULL,
    created INTEGER NOT NULL, expires INTEGER NOT NULL, body BLOB NOT NULL,
    local_origin INTEGER NOT NULL, received_at REAL NOT NULL, size INTEGER NOT NULL,
    prev_hop INTEGER NOT NULL DEFAULT 0,
    UNIQUE (src, epoch, seq)
) STRICT;
CREATE INDEX messages_by_eviction ON messages (precedence, expires);
{TURN_INDEX}
CREATE TABLE next_hops (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, hop INTEGER NOT NULL,
    PRIMARY KEY (src, epoch, seq, hop)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER messages_drop_next_hops AFTER DELETE ON messages BEGIN
    DELETE FROM next_hops WHERE src = old.src AND epoch = old.epoch AND seq = old.seq;
END;
CREATE TABLE seen (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    expires INTEGER NOT NULL, PRIMARY KEY (src, epoch, seq)
) STRICT, WITHOUT ROWID;
CREATE INDEX seen_by_expiry ON seen (expires);
{SENT_TABLE}
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mid_src INTEGER NOT NULL, mid_epoch INTEGER NOT NULL, mid_seq INTEGER NOT NULL,
    src INTEGER NOT NULL, dst INTEGER NOT NULL, precedence INTEGER NOT NULL,
    created INTEGER NOT NULL, received_at REAL NOT NULL, payload BLOB NOT NULL,
    signed INTEGER NOT NULL
) STRICT;
CREATE TABLE receipts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind INTEGER NOT NULL, at INTEGER NOT NULL, reporter INTEGER NOT NULL DEFAULT 0
) STRICT;
{FRAGMENTS_TABLE}
CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
{REFS_TABLE}
"""  # noqa: S608

# Version 1 to 2: messages learn their previous hop (0: as if submitted here), receipts their
# reporter (0: unknown), sent messages get a table, and fragments are re-keyed by neighbour.
# Fragments kept from version 1 get neighbour 0 and arrival time 0, so the first aging pass
# drops them: their sender cannot be known and will resend.
MIGRATE_1_TO_2: Final = f"""
ALTER TABLE messages ADD COLUMN prev_hop INTEGER NOT NULL DEFAULT 0;
ALTER TABLE receipts ADD COLUMN reporter INTEGER NOT NULL DEFAULT 0;
{SENT_TABLE}
ALTER TABLE fragments RENAME TO fragments_v1;
{FRAGMENTS_TABLE}
INSERT INTO fragments (hop, src, epoch, seq, idx, count, chunk, received_at)
    SELECT 0, src, epoch, seq, idx, count, chunk, 0.0 FROM fragments_v1 ORDER BY rowid;
DROP TABLE fragments_v1;
"""  # noqa: S608

# Version 2 to 3: submissions remember the client's reference.
MIGRATE_2_TO_3: Final = REFS_TABLE
# Version 3 to 4: the index of transmit turns (nothing else changes).
MIGRATE_3_TO_4: Final = TURN_INDEX

# Statements are literals, so each reads whole. A message id binds as ?1 ?2 ?3; the eleven
# message columns are always in the order `store_types.stored_message` unpacks.
INSERT_MESSAGE: Final = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
MESSAGE_AT: Final = (
    "SELECT m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, m.expires, m.body, "
    "m.local_origin, m.received_at, m.prev_hop FROM messages AS m "
    "WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
)
MESSAGE_EXISTS: Final = "SELECT 1 FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
DELETE_MESSAGE: Final = (
    "DELETE FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3 "
    "RETURNING precedence, size, prev_hop, dst, expires"
)
DELETE_ROW: Final = (
    "DELETE FROM messages WHERE rowid = ? RETURNING src, epoch, seq, dst, precedence, "
    "created, expires, body, local_origin, received_at, prev_hop"
)
DELETE_IF_NO_HOPS: Final = (
    "DELETE FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND NOT EXISTS "
    "(SELECT 1 FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3) "
    "RETURNING precedence, size, prev_hop, expires"
)
EVICTION_ORDER: Final = (
    "SELECT rowid, size FROM messages WHERE precedence < ? ORDER BY precedence, expires, rowid"
)
# The same, among messages held for a route still missing (a HELD row in next_hops).
EVICTION_ORDER_HELD: Final = (
    "SELECT rowid, size FROM messages m WHERE precedence < ? AND EXISTS (SELECT 1 FROM "
    "next_hops h WHERE h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq AND h.hop = 0) "
    "ORDER BY precedence, expires, rowid"
)
# "precedence IN (...)" lets expiry use the eviction index: five range scans, no extra index.
EARLIEST_EXPIRY: Final = (
    "SELECT min(e) FROM (SELECT min(expires) AS e FROM messages WHERE precedence = 0 "
    "UNION ALL SELECT min(expires) FROM messages WHERE precedence = 1 "
    "UNION ALL SELECT min(expires) FROM messages WHERE precedence = 2 "
    "UNION ALL SELECT min(expires) FROM messages WHERE precedence = 3 "
    "UNION ALL SELECT min(expires) FROM messages WHERE precedence = 4)"
)
"""An index seek per precedence (messages_by_eviction), in one statement: min(expires) over
the whole table would scan the index."""
DELETE_EXPIRED: Final = (
    "DELETE FROM messages WHERE precedence IN (0, 1, 2, 3, 4) AND expires <= ? "
    "RETURNING src, epoch, seq, dst, precedence, created, expires, body, local_origin, "
    "received_at, prev_hop"
)
# The tallies of `Custody._load_custody`, one scan each.
BYTES_BY_PRECEDENCE: Final = (
    "SELECT precedence, count(*), sum(size) FROM messages GROUP BY precedence"
)
HELD_BY_DESTINATION: Final = (
    "SELECT m.dst, count(*) FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq WHERE h.hop = 0 GROUP BY m.dst"
)
HELD_MESSAGES: Final = (
    "SELECT m.src, m.epoch, m.seq FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq WHERE h.hop = 0"
)
IS_HELD_ROW: Final = (
    "SELECT 1 FROM messages AS m JOIN next_hops AS h ON h.src = m.src AND h.epoch = m.epoch "
    "AND h.seq = m.seq WHERE m.rowid = ? AND h.hop = 0"
)
IS_HELD: Final = "SELECT 1 FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = 0"
HELD_EXPIRING: Final = (
    "SELECT m.src, m.epoch, m.seq FROM messages AS m WHERE precedence IN (0, 1, 2, 3, 4) "
    "AND expires <= ? AND "
    "EXISTS (SELECT 1 FROM next_hops AS h WHERE h.src = m.src AND h.epoch = m.epoch "
    "AND h.seq = m.seq AND h.hop = 0)"
)
# The held messages for one destination, in the order they arrived (rowid: stored order).
# A page of the messages held for destination ?1 stored after rowid ?2, in stored order, no
# body: (src, epoch, seq, dst, precedence, created, size, received_at, rowid). By rowid, so
# each page starts where the last ended (a page by arrival time would sort the table again).
HELD_FOR_PAGE: Final = (
    "SELECT m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, length(m.body), "
    "m.received_at, m.rowid FROM messages AS m WHERE m.dst = ?1 AND m.rowid > ?2 AND "
    "EXISTS (SELECT 1 FROM next_hops AS h WHERE h.src = m.src AND h.epoch = m.epoch "
    "AND h.seq = m.seq AND h.hop = 0) ORDER BY m.rowid LIMIT ?3"
)
# A transmit queue's next turns: messages of one precedence pending for hop ?1, from
# (created, rowid) >= (?3, ?4) on, in the order of the turn index. No body: it is read when
# the message's turn comes (`BODY_OF`).
PENDING_FOR: Final = (
    "SELECT m.src, m.epoch, m.seq, m.created, m.size, m.rowid FROM messages AS m "
    "INDEXED BY messages_by_turn WHERE m.precedence = ?2 AND (m.created, m.rowid) >= (?3, ?4) "
    "AND EXISTS (SELECT 1 FROM next_hops AS h WHERE h.src = m.src AND h.epoch = m.epoch "
    "AND h.seq = m.seq AND h.hop = ?1) ORDER BY m.created, m.rowid LIMIT ?5"
)
PENDING_COUNTS_FOR: Final = (
    "SELECT m.precedence, count(*) FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq WHERE h.hop = ? "
    "GROUP BY m.precedence"
)
PENDING_HOPS: Final = "SELECT DISTINCT hop FROM next_hops WHERE hop != 0 ORDER BY hop"
BODY_OF: Final = "SELECT body FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
DESTINATION_OF: Final = "SELECT dst FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
BYTES_BY_SOURCE: Final = "SELECT src, sum(size) FROM messages GROUP BY src HAVING sum(size) > 0"
BYTES_BY_PREV_HOP: Final = (
    "SELECT prev_hop, sum(size) FROM messages GROUP BY prev_hop HAVING sum(size) > 0"
)
INSERT_HOP: Final = "INSERT OR IGNORE INTO next_hops VALUES (?, ?, ?, ?)"
DELETE_HOP: Final = "DELETE FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = ?4"
DELETE_HOPS: Final = "DELETE FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
ID_BATCH: Final = 64
"""Most ids one statement of `delete_if_only_hop_each` / `delete_hop_each` names: a whole
acknowledgement frame (transmitter.ACKS_PER_FRAME) in one write."""


@functools.cache
def delete_hop_each(count: int) -> str:
    """DELETE_HOP for `count` ids at once, hop ?1 and the ids from ?2 on (three parameters
    each), returning the ids whose row went. An OR of equalities, not row values IN a list,
    since only that searches the primary key (SQLite 3.40 scans the table for the other)."""
    ids = " OR ".join(
        f"(src = ?{n} AND epoch = ?{n + 1} AND seq = ?{n + 2})" for n in range(2, 3 * count, 3)
    )
    return f"DELETE FROM next_hops WHERE hop = ?1 AND ({ids}) RETURNING src, epoch, seq"  # noqa: S608


@functools.cache
def delete_if_only_hop_each(count: int) -> str:
    """For `count` ids at once (from ?2 on, three parameters each): delete each message whose
    one pending next hop is ?1 (its row goes with it, `messages_drop_next_hops`), returning
    (src, epoch, seq, precedence, size, prev_hop, expires) of each. A relay's
    acknowledgements are all of these: one statement per frame of them."""
    ids = " OR ".join(
        f"(m.src = ?{n} AND m.epoch = ?{n + 1} AND m.seq = ?{n + 2})"
        for n in range(2, 3 * count, 3)
    )
    return (
        f"DELETE FROM messages AS m WHERE ({ids}) AND EXISTS (SELECT 1 FROM next_hops AS h "  # noqa: S608
        "WHERE h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq AND h.hop = ?1) AND NOT "
        "EXISTS (SELECT 1 FROM next_hops AS h WHERE h.src = m.src AND h.epoch = m.epoch AND "
        "h.seq = m.seq AND h.hop != ?1) RETURNING src, epoch, seq, precedence, size, prev_hop, "
        "expires"
    )


HOPS_OF: Final = "SELECT hop FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
# Keyset paging over (message rowid, hop), ?3 selecting held (1) or routed (0) rows: each
# page is read whole before it is handed out, so the caller may write between pages.
HOP_PAGE: Final = (
    "SELECT m.rowid, h.hop, m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, "
    "m.expires, m.body, m.local_origin, m.received_at, m.prev_hop "
    "FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq "
    "WHERE m.rowid >= ?1 AND (m.rowid > ?1 OR h.hop > ?2) AND (h.hop = 0) = ?3 "
    "ORDER BY m.rowid, h.hop LIMIT ?4"
)
# The same over the rows pending for one hop ?1, from message rowid ?2 on.
HOP_ROWS_PAGE: Final = (
    "SELECT m.rowid, m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, "
    "m.expires, m.body, m.local_origin, m.received_at, m.prev_hop "
    "FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq "
    "WHERE h.hop = ?1 AND m.rowid > ?2 ORDER BY m.rowid LIMIT ?3"
)
SEEN: Final = "SELECT 1 FROM seen WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
INSERT_SEEN: Final = "INSERT OR IGNORE INTO seen VALUES (?, ?, ?, ?)"
DELETE_SEEN: Final = "DELETE FROM seen WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
# The earliest expiries use the expiry indexes (a seek each), and bound the prunes in memory
# (`store_expiry`): an idle node asks nothing and opens no transaction.
EARLIEST_SEEN: Final = "SELECT min(expires) FROM seen"
DELETE_SEEN_BEFORE: Final = "DELETE FROM seen WHERE expires < ?"
EARLIEST_SENT: Final = "SELECT min(expires) FROM sent"
DELETE_SENT_BEFORE: Final = "DELETE FROM sent WHERE expires < ?"
PUT_SENT: Final = "INSERT OR REPLACE INTO sent VALUES (?, ?, ?, ?, ?)"
SENT_TO: Final = "SELECT dst FROM sent WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
INSERT_RECEIPT: Final = (
    "INSERT INTO receipts (id, src, epoch, seq, kind, at, reporter) "
    "VALUES (NULL, ?, ?, ?, ?, ?, ?)"
)
RECEIPTS_AFTER: Final = (
    "SELECT id, src, epoch, seq, kind, at, reporter FROM receipts WHERE id > ? ORDER BY id LIMIT ?"
)
INSERT_FRAGMENT: Final = (
    "INSERT OR IGNORE INTO fragments (src, epoch, seq, hop, idx, count, chunk, received_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
FRAGMENTS_OF: Final = (
    "SELECT idx, chunk FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = ?4"
)
FRAGMENT_INDICES: Final = (
    "SELECT idx FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = ?4"
)
DELETE_FRAGMENTS: Final = (
    "DELETE FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = ?4"
)
# One row per partial message, in the order its first fragment arrived.
PARTIALS: Final = (
    "SELECT hop, src, epoch, seq, max(count), sum(length(chunk)), max(received_at) "
    "FROM fragments GROUP BY hop, src, epoch, seq ORDER BY min(rowid)"
)
COUNT_SCHEMA: Final = "SELECT count(*) FROM sqlite_schema"
INSERT_INBOX: Final = "INSERT INTO inbox VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INBOX_PAGE: Final = "SELECT * FROM inbox WHERE id > ? ORDER BY id LIMIT ?"
ACK_INBOX: Final = "DELETE FROM inbox WHERE id <= ?"
COUNT_INBOX: Final = "SELECT count(*) FROM inbox"
ACK_RECEIPTS: Final = "DELETE FROM receipts WHERE id <= ?"
GET_STATE: Final = "SELECT value FROM state WHERE key = ?"
INSERT_REF: Final = "INSERT INTO refs VALUES (?, ?, ?, ?, ?, ?)"
REF_AT: Final = "SELECT src, epoch, seq, digest, expires FROM refs WHERE ref = ?"
DELETE_REF: Final = "DELETE FROM refs WHERE ref = ?"
EARLIEST_REF: Final = "SELECT min(expires) FROM refs"
DELETE_REFS_BEFORE: Final = "DELETE FROM refs WHERE expires < ?"
SET_STATE: Final = "INSERT OR REPLACE INTO state VALUES (?, ?)"
DELETE_STATE: Final = "DELETE FROM state WHERE key = ?"
