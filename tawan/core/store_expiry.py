"""What the store knows, without asking SQLite, of the earliest expiry in a table.

Housekeeping asks every few seconds whether anything has expired (dedup records, sent
messages, references, messages in custody) and when the next message expires; on an idle
node the answer is almost always "nothing yet". A bound kept in memory answers that without a
statement: every insert lowers it, a prune or a query of the table raises it again. It is
only ever a lower bound of what the file holds, so a stale one costs a query, never a wrong
answer; after a rollback, or when the file was put back from elsewhere, it is forgotten
(`Store._load_counters`) and the next question goes to SQLite.
"""

from __future__ import annotations

import math

from tawan.core.store_types import StoreError

__all__ = ["EarliestExpiry", "ExpiryBound"]


class ExpiryBound:
    """A lower bound of the expiries (mission seconds) in one table: `bound` is at most every
    expiry stored, math.inf when the table is known to be empty, -math.inf when nothing is
    known. Rows deleted without telling it leave it a lower bound still."""

    __slots__ = ("bound",)

    def __init__(self) -> None:
        self.bound: float = -math.inf

    def forget(self) -> None:
        """The table changed behind this bound (a rollback): ask SQLite next time."""
        self.bound = -math.inf

    def found(self, earliest: int | None) -> None:
        """SQLite said the earliest expiry stored is `earliest` (None: the table is empty)."""
        self.bound = math.inf if earliest is None else earliest

    def added(self, expires: int) -> None:
        """A row expiring at `expires` was written (or may have been)."""
        self.bound = min(self.bound, expires)

    def pruned(self, before: int) -> None:
        """Every row expiring before `before` was deleted."""
        self.bound = max(self.bound, before)


class EarliestExpiry(ExpiryBound):
    """An `ExpiryBound` that is also `exact` (the earliest expiry itself) as long as every
    row deleted is reported (`removed`): the messages in custody, whose every delete returns
    the row's expiry."""

    __slots__ = ("exact",)

    def __init__(self) -> None:
        super().__init__()
        self.exact = False

    def forget(self) -> None:
        super().forget()
        self.exact = False

    def found(self, earliest: int | None) -> None:
        super().found(earliest)
        self.exact = True

    # `added` keeps `exact`: the earlier of the earliest and a new expiry is the earliest.

    def removed(self, expires: int) -> None:
        """A row expiring at `expires` was deleted: if it was the earliest, the next one is
        not known."""
        if expires <= self.bound:
            self.exact = False

    def pruned(self, before: int) -> None:
        super().pruned(before)
        self.exact = False

    def earliest(self) -> int | None:
        """The earliest expiry, when `exact` (None: the table is empty)."""
        if not self.exact:
            raise StoreError("the earliest expiry of the messages is not known: query it first")
        return None if self.bound == math.inf else int(self.bound)
