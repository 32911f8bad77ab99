"""A root that ratchets forward one epoch at a time, remembering the epochs it may serve."""

from __future__ import annotations

from crypto import schedule


class RootChain:
    """Roots of epochs `base_epoch` onwards, derived on demand from the base root.

    The roots of epochs before `base_epoch` are gone: `schedule.ratchet` is one-way, so
    nothing held here can recompute them.
    """

    __slots__ = ("_roots", "base_epoch")

    def __init__(self, base_epoch: int, base_root: bytes) -> None:
        self.base_epoch = base_epoch
        self._roots = [base_root]  # _roots[i] is the root of epoch base_epoch + i

    @property
    def base_root(self) -> bytes:
        return self._roots[0]

    def root_at(self, epoch: int) -> bytes | None:
        """The root of `epoch`, or None for an erased epoch. Cost: one HKDF per new epoch."""
        index = epoch - self.base_epoch
        if index < 0:
            return None
        roots = self._roots
        while len(roots) <= index:
            roots.append(schedule.ratchet(roots[-1], self.base_epoch + len(roots)))
        return roots[index]

    def erase_before(self, epoch: int) -> bool:
        """Forget every root older than `epoch`; True when something was forgotten."""
        if epoch <= self.base_epoch:
            return False
        self.root_at(epoch)
        del self._roots[: epoch - self.base_epoch]
        self.base_epoch = epoch
        return True
