"""PACE policy: which bearers a message may take, by its precedence and its size.

A signal plan names for each kind of traffic the means it may use (primary, alternate,
contingency, emergency). The policy here is the part a node can apply per message: which
bearers each precedence may use, and the largest message each bearer may carry (no imagery
over HF). The forwarding decision (tawan.core.forwarding) takes, of the links to the next
hop, the best one the policy allows; when it allows none that is up, the message waits for
one, as it waits for a route.

A bearer is named as the link profiles name it; a name in the policy also covers every
profile named with it and a dash ("satcom" covers "satcom-geo" and "satcom-leo").

Defaults (`DEFAULT_PACE`): every precedence may use every bearer, SATCOM and HF included,
and no message over 4 KiB goes over HF (at 2.4 kbit/s that is 14 s of air time taken from
every other user of the net).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from tawan.core.precedence import Precedence

HF_LARGEST: Final = 4096


def covers(pattern: str, bearer: str) -> bool:
    """Whether policy name `pattern` names profile `bearer` ("satcom" covers "satcom-geo")."""
    return bearer == pattern or bearer.startswith(pattern + "-")


@dataclass(frozen=True, slots=True)
class PacePolicy:
    """`bearers`: per precedence, the bearers it may use (a precedence not listed: all);
    `largest`: per bearer, the largest message it may carry, in bytes as sent."""

    bearers: Mapping[Precedence, frozenset[str]] = field(default_factory=dict)
    largest: Mapping[str, int] = field(default_factory=lambda: {"hf": HF_LARGEST})

    def __post_init__(self) -> None:
        for precedence, names in self.bearers.items():
            if not isinstance(precedence, Precedence) or not isinstance(names, frozenset):
                raise TypeError(
                    f"PacePolicy.bearers: expected Precedence -> frozenset of bearer names, "
                    f"found {precedence!r} -> {names!r}"
                )
        for bearer, size in self.largest.items():
            if type(size) is not int or size < 1:
                raise ValueError(
                    f"PacePolicy.largest[{bearer!r}]: expected a size in bytes >= 1, "
                    f"found {size!r}"
                )

    def allows(self, bearer: str, precedence: Precedence, size: int) -> bool:
        """Whether a message of `precedence` and `size` bytes may go over `bearer`."""
        names = self.bearers.get(precedence)
        if names is not None and not any(covers(n, bearer) for n in names):
            return False
        for name, most in self.largest.items():  # the size first: most messages are short
            if size > most and covers(name, bearer):
                return False
        return True

    def restricts(self, bearer: str) -> bool:
        """Whether some message may not go over `bearer`: a precedence whose bearers leave
        it out, or a largest size for it."""
        if any(not any(covers(n, bearer) for n in names) for names in self.bearers.values()):
            return True
        return any(covers(n, bearer) for n in self.largest)

    @property
    def unrestricted(self) -> bool:
        return not self.bearers and not self.largest


DEFAULT_PACE: Final = PacePolicy()
