"""The nominal figures of a bearer, validated once so links and routing can trust them.

Routing weighs links by these numbers (rate and delay for latency, cost for preference) and
fragmentation sizes frames by `mtu`, so a bad value must fail at configuration time with a
message that points at the offending entry, not later inside the engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Final, NoReturn

MTU_MIN = 128  # below this a 1 MiB message would need more than 65,535 fragments
"""Below this a frame cannot hold a header and a useful payload."""

MTU_MAX = 65507
"""The largest UDP payload over IPv4; it also fits the 2-byte TCP length prefix."""

COST_MAX = 13107
"""Route adverts carry a link's cost in 1..65535, and loss raises it to 5 times nominal."""

HELLO_MAX_S = 3600.0
"""The longest hello interval a bearer may ask for: an hour without a word is a lost link."""


RATE_MAX_BPS = 10**12
"""The fastest nominal rate a bearer may claim (1 Tbit/s): rates are used as floats, and a
larger one is a typing mistake, not a bearer."""


BEARER_NAME: Final = r"[a-z0-9][a-z0-9-]{0,31}"
"""A bearer's name: adverts carry it on the wire (docs/protocol.md 4.5)."""
BEARER_NAME_RE: Final = re.compile(BEARER_NAME)
BEARER_NAME_RULE: Final = "1 to 32 of a-z, 0-9 and -, beginning with a letter or digit"


@dataclass(frozen=True, slots=True)
class BearerProfile:
    """Nominal rate, delay, MTU and cost of one bearer ("vhf", "satcom-geo", "ip", ...), and
    the shortest hello interval it wants (`hello_s`; 0: the engine's `hello_interval`).

    A bearer asks for longer hellos where a quick hello buys nothing its link does not give
    already: a wire reports a cut by its carrier, and a link on which traffic flows is
    watched by that traffic (tawan/core/liveness.py)."""

    name: str
    rate_bps: int
    delay_s: float
    mtu: int
    cost: float
    hello_s: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not BEARER_NAME_RE.fullmatch(self.name):
            # Adverts name bearers on the wire (docs/protocol.md 4.5): a name another node
            # could not read would make it drop every advert of this one.
            _bad("name", BEARER_NAME_RULE, self.name)
        if not _is_int(self.rate_bps) or not 0 < self.rate_bps <= RATE_MAX_BPS:
            _bad("rate_bps", f"an integer in 1..{RATE_MAX_BPS}", self.rate_bps)
        if not _is_number(self.delay_s) or not self.delay_s >= 0:
            _bad("delay_s", "a finite number >= 0", self.delay_s)
        if not _is_int(self.mtu) or not MTU_MIN <= self.mtu <= MTU_MAX:
            _bad("mtu", f"an integer in {MTU_MIN}..{MTU_MAX}", self.mtu)
        if not _is_number(self.cost) or not 0 < self.cost <= COST_MAX:
            _bad("cost", f"a finite number > 0 and <= {COST_MAX}", self.cost)
        if not _is_number(self.hello_s) or not 0 <= self.hello_s <= HELLO_MAX_S:
            _bad("hello_s", f"seconds, 0 (the engine's) to {HELLO_MAX_S:g}", self.hello_s)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], where: str) -> BearerProfile:
        """Build a profile from a parsed config table; `where` locates it in error messages.

        Unknown keys are refused: a misspelt `delay` silently falling back to a default would
        make routing wrong in a way nobody notices.
        """
        expected = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(expected))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}, expected only {expected}")
        optional = {f.name for f in fields(cls) if f.default is not MISSING}
        missing = [key for key in expected if key not in data and key not in optional]
        if missing:
            raise ValueError(f"{where}: missing keys {missing}")
        try:
            return cls(**data)  # type: ignore[arg-type]  # each field is checked in __post_init__
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def transmit_time_s(self, size: int) -> float:
        """Seconds to put `size` bytes on the bearer and have them arrive (nominal)."""
        return self.delay_s + size * 8 / self.rate_bps


def _is_int(value: object) -> bool:
    # bool is an int subclass; `mtu = true` in a config file is a mistake, not 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _bad(field: str, expected: str, found: object) -> NoReturn:
    raise ValueError(f"BearerProfile.{field}: expected {expected}, found {found!r}")
