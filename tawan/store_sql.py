"""The SQL of the custody store: its schema and every statement, in one place.

Message ids are (src, epoch, seq) and every statement names them ?1, ?2, ?3. `tawan.store`
is the only user.
"""

from __future__ import annotations

from typing import Final

SCHEMA: Final = """
CREATE TABLE messages (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    dst INTEGER NOT NULL, precedence INTEGER NOT NULL,
    created INTEGER NOT NULL, expires INTEGER NOT NULL, body BLOB NOT NULL,
    local_origin INTEGER NOT NULL, received_at REAL NOT NULL, size INTEGER NOT NULL,
    UNIQUE (src, epoch, seq)
) STRICT;
CREATE INDEX messages_by_eviction ON messages (precedence, expires);
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
    kind INTEGER NOT NULL, at INTEGER NOT NULL
) STRICT;
CREATE TABLE fragments (
    src INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    idx INTEGER NOT NULL, count INTEGER NOT NULL, chunk BLOB NOT NULL,
    UNIQUE (src, epoch, seq, idx)
) STRICT;
CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
"""

# Statements are literals, so each reads whole. A message id binds as ?1 ?2 ?3; the ten
# message columns are always in the order `_message` unpacks.
INSERT_MESSAGE: Final = "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
MESSAGE_AT: Final = (
    "SELECT m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, m.expires, m.body, "
    "m.local_origin, m.received_at FROM messages AS m WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
)
MESSAGE_EXISTS: Final = "SELECT 1 FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
DELETE_MESSAGE: Final = (
    "DELETE FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3 RETURNING precedence, size"
)
DELETE_ROW: Final = (
    "DELETE FROM messages WHERE rowid = ? RETURNING src, epoch, seq, dst, precedence, "
    "created, expires, body, local_origin, received_at"
)
DELETE_IF_NO_HOPS: Final = (
    "DELETE FROM messages WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND NOT EXISTS "
    "(SELECT 1 FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3) "
    "RETURNING precedence, size"
)
EVICTION_ORDER: Final = (
    "SELECT rowid, size FROM messages WHERE precedence < ? ORDER BY precedence, expires, rowid"
)
# "precedence IN (...)" lets expiry use the eviction index: five range scans, no extra index.
ANY_EXPIRED: Final = (
    "SELECT 1 FROM messages WHERE precedence IN (0, 1, 2, 3, 4) AND expires <= ? LIMIT 1"
)
DELETE_EXPIRED: Final = (
    "DELETE FROM messages WHERE precedence IN (0, 1, 2, 3, 4) AND expires <= ? "
    "RETURNING src, epoch, seq, dst, precedence, created, expires, body, local_origin, "
    "received_at"
)
INSERT_HOP: Final = "INSERT OR IGNORE INTO next_hops VALUES (?, ?, ?, ?)"
DELETE_HOP: Final = "DELETE FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3 AND hop = ?4"
DELETE_HOPS: Final = "DELETE FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
HOPS_OF: Final = "SELECT hop FROM next_hops WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
# Keyset paging over (message rowid, hop), ?3 selecting held (1) or routed (0) rows: each
# page is read whole before it is handed out, so the caller may write between pages.
HOP_PAGE: Final = (
    "SELECT m.rowid, h.hop, m.src, m.epoch, m.seq, m.dst, m.precedence, m.created, "
    "m.expires, m.body, m.local_origin, m.received_at "
    "FROM messages AS m JOIN next_hops AS h "
    "ON h.src = m.src AND h.epoch = m.epoch AND h.seq = m.seq "
    "WHERE m.rowid >= ?1 AND (m.rowid > ?1 OR h.hop > ?2) AND (h.hop = 0) = ?3 "
    "ORDER BY m.rowid, h.hop LIMIT ?4"
)
SEEN: Final = "SELECT 1 FROM seen WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
FRAGMENTS_OF: Final = "SELECT idx, chunk FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
FRAGMENT_INDICES: Final = "SELECT idx FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
DELETE_FRAGMENTS: Final = "DELETE FROM fragments WHERE src = ?1 AND epoch = ?2 AND seq = ?3"
