"""The engine's own durable state, by key: sequence counters, epochs, link counters."""

from __future__ import annotations

from tawan.core import store_sql as sql
from tawan.core.store_tx import StoreBase

__all__ = ["EngineState"]


class EngineState(StoreBase):
    """The key/value part of the store."""

    def get_state(self, key: str) -> bytes | None:
        row = self._cur.execute(sql.GET_STATE, (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def set_state(self, key: str, value: bytes) -> None:
        """Durable with the next commit, like every other write (sequence counters, links)."""
        self._begin()
        self._cur.execute(sql.SET_STATE, (key, value))
