"""A node's status as plain JSON-ready data, for `tawan status` and the local API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tawan.core.precedence import Precedence

if TYPE_CHECKING:
    from tawan.core.engine import Engine


def engine_status(engine: Engine, now: float) -> dict[str, object]:
    roster = engine.keys.roster

    def name(address: int) -> str:
        entry = roster.by_address(address)
        return entry.name if entry is not None else str(address)

    by_precedence = {p.name.lower(): 0 for p in Precedence}
    for queue in engine.queues.values():
        for key, count in queue.counts_by_precedence().items():
            by_precedence[key] += count
    store = engine.store
    return {
        "node": name(engine.me),
        "address": engine.me,
        "links": [
            {
                "name": spec.name,
                "bearer": spec.profile.name,
                "rate_bps": spec.profile.rate_bps,
                "mtu": spec.profile.mtu,
            }
            for spec in engine.tx.specs()
        ],
        "neighbours": [
            {
                "name": name(a.neighbour),
                "address": a.neighbour,
                "link": a.link,
                "up": a.up,
                "rtt_ms": None if a.srtt is None else round(a.srtt * 1000, 2),
                "loss": round(max(a.rx_loss, a.tx_loss), 4),
                "last_heard_s": None
                if a.last_heard == float("-inf")
                else round(now - a.last_heard, 2),
            }
            for a in engine.neighbours.adjacencies.values()
        ],
        "queues": by_precedence,
        "held": len(store.messages_without_next_hop()),
        "store": {
            "messages": store.message_count(),
            "bytes": store.bytes_used(),
            "max_bytes": store.max_bytes,
            "inbox": store.inbox_count(),
        },
        "routes": {name(d): name(h) for d, h in sorted(engine.router_table().items())},
    }
