"""Plain counters the engine keeps; the metrics module exports them to Prometheus.

Label values are bounded: precedence names, rejection reasons from a fixed set, link names
from the configuration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class LinkStats:
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    retransmissions: int = 0
    batched: int = 0  # messages sent in BATCH frames (each counted once per frame)
    net_copies: int = 0  # copies sent in NET frames, one per receiver (each frame once on air)
    adverts_too_large: int = 0  # adverts not put on the link: larger than its MTU


@dataclass(slots=True)
class EngineStats:
    submitted: Counter[str] = field(default_factory=Counter)  # by precedence name
    delivered: Counter[str] = field(default_factory=Counter)
    forwarded: Counter[str] = field(default_factory=Counter)
    expired: Counter[str] = field(default_factory=Counter)
    evicted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    duplicates: int = 0
    receipts_received: int = 0
    endpoint_moves: int = 0  # a neighbour's reply endpoint moved (authenticated, newer frame)
    clock_jumps: int = 0  # forward jumps of more than an epoch (key erasure held)
    notices_sent: int = 0  # notices of eviction sent to origins (each for one or more ids)
    notices_unsent: int = 0  # evictions never told: no room for the notice even in reserve
    room_signals: int = 0  # HELLOs with ROOM sent to neighbours refused for want of room
    store_failures: int = 0  # writes or commits the store could not do (full, read-only)
    refused_unwritable: int = 0  # messages and fragments not taken: the store cannot write
    suspected_links: int = 0  # adjacencies lost because messages went unanswered over them
    adverts_too_large: int = 0  # adverts not sent on a link whose MTU they exceed
    links: dict[str, LinkStats] = field(default_factory=dict)

    def link(self, name: str) -> LinkStats:
        stats = self.links.get(name)
        if stats is None:
            stats = self.links[name] = LinkStats()
        return stats
