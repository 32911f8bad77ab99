"""Fragments of messages still being reassembled, kept per (neighbour, message).

Another neighbour sending the same message cut differently never disturbs a transfer. A
partial message ages by its newest fragment, so a transfer still progressing is never aged out
(`partials_older_than`). Arrival times are kept in the file, so they must come from a clock
that goes on across restarts (the runtime's).
"""

from __future__ import annotations

from dataclasses import dataclass

from tawan.core import store_sql as sql
from tawan.core.store_tx import StoreBase
from tawan.core.store_types import MessageId, PartialKey, StoreError

__all__ = ["Fragments"]


@dataclass(slots=True)
class _Partial:
    """What the store holds of one neighbour's transfer of one message."""

    count: int
    held: int
    newest: float


class Fragments(StoreBase):
    """The fragments part of the store, with an in-memory summary of each transfer."""

    def _load_fragments(self) -> None:
        self._partials: dict[PartialKey, _Partial] = {}
        for hop, src, epoch, seq, count, held, newest in self._cur.execute(sql.PARTIALS):
            self._partials[(hop, (src, epoch, seq))] = _Partial(count, held, newest)
        self._fragment_bytes = sum(p.held for p in self._partials.values())

    def put_fragment(
        self, hop: int, mid: MessageId, index: int, count: int, chunk: bytes, now: float
    ) -> int:
        """Keep fragment `index` of `count` of `mid`, received from neighbour `hop` at `now`;
        returns the bytes now held of that neighbour's transfer.

        A repeated fragment is ignored, and is no progress. Raises StoreError when the
        index is out of range or `count` disagrees with the fragments already held from `hop`
        (the caller starts that transfer again); other neighbours' transfers are untouched.
        """
        if not 0 <= index < count:
            raise StoreError(
                f"fragment of {mid} from {hop}: index must be in [0, {count}), found {index}"
            )
        key = (hop, mid)
        partial = self._partials.get(key)
        if partial is not None and partial.count != count:
            raise StoreError(
                f"fragment {index} of {mid} from {hop} says {count} fragments, earlier ones "
                f"said {partial.count}"
            )
        self._begin()
        self._cur.execute(sql.INSERT_FRAGMENT, (*mid, hop, index, count, chunk, now))
        if partial is None:
            partial = self._partials[key] = _Partial(count, 0, now)
        if self._cur.rowcount == 1:  # new: the transfer progressed
            partial.held += len(chunk)
            partial.newest = max(partial.newest, now)
            self._fragment_bytes += len(chunk)
        return partial.held

    def fragments(self, hop: int, mid: MessageId) -> dict[int, bytes]:
        """The fragments held of neighbour `hop`'s transfer of `mid`, by index."""
        return dict(self._cur.execute(sql.FRAGMENTS_OF, (*mid, hop)))

    def fragment_indices(self, hop: int, mid: MessageId) -> set[int]:
        rows = self._cur.execute(sql.FRAGMENT_INDICES, (*mid, hop))
        return {idx for (idx,) in rows}

    def drop_fragments(self, hop: int, mid: MessageId) -> None:
        """Forget a partial message: reassembled, abandoned, or dropped to bound memory."""
        partial = self._partials.pop((hop, mid), None)
        if partial is None:
            return
        self._begin()
        self._cur.execute(sql.DELETE_FRAGMENTS, (*mid, hop))
        self._fragment_bytes -= partial.held

    def fragment_bytes(self) -> int:
        """Bytes held in fragments of partial messages (not counted in `bytes_used`)."""
        return self._fragment_bytes

    def oldest_partial(self) -> PartialKey | None:
        """The transfer to drop first: of the neighbour with the most transfers under way
        (then the most bytes), the one idle longest (by its newest fragment). A neighbour
        starting transfer after transfer to fill the reassembly budget thus loses its own
        first, not another neighbour's one big message."""
        if not self._partials:
            return None
        by_hop: dict[int, tuple[int, int]] = {}
        for (hop, _), partial in self._partials.items():
            count, held = by_hop.get(hop, (0, 0))
            by_hop[hop] = (count + 1, held + partial.held)
        heaviest = max(by_hop, key=lambda hop: (*by_hop[hop], -hop))
        mine = [item for item in self._partials.items() if item[0][0] == heaviest]
        return min(mine, key=lambda item: item[1].newest)[0]

    def partials_older_than(self, t: float) -> list[PartialKey]:
        """Transfers whose newest fragment arrived before `t`: abandoned, to be dropped."""
        return [key for key, partial in self._partials.items() if partial.newest < t]
