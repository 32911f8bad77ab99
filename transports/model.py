"""A bearer in numbers: when a frame put on the air now reaches the far end, if it does.

No I/O and no clock: the test harness's event heap, the emulator's and the trio adapter
(`transports.emulated`) ask the model the same question, "this sender puts `size` bytes on
the link at `now`: when does each copy arrive?", and it answers from a random source they
inject, so a seeded run replays exactly (trio's test_dtls "terrible network", as a model
instead of a hook).

A send goes through four stages, one method each; each is where a later feature goes:

1. `_admits`: the frame fits the MTU (a bounded sender queue, availability windows);
2. `_serialise`: one sender's frames go on the air one after another at `rate_bps` (a
   shared half-duplex radio channel: key the transmitter by channel, not by sender);
3. `_copies`: lost, delivered once or twice (Gilbert-Elliott bursty loss: a two-state
   chain stepped per frame, in place of the one draw against `loss`);
4. `_propagation`: the nominal delay plus up to `jitter_s` per copy, so frames overtake.

A link that is down still transmits (the radio does not know it is jammed): the frame takes
its air time and vanishes, and nobody is told.

Every admitted frame draws the same four numbers from `rng`, whatever the settings, so two
runs that differ only in `loss` (or in when the link was down) see the same jitter on every
frame both deliver: their results can be compared frame by frame.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from transports.profile import BearerProfile


@dataclass(slots=True)
class BearerModel:
    """One bearer between its ends: `send` turns a frame into its arrival times.

    `loss`, `duplicate`, `jitter_s` and `up` are conditions, changed as a run goes on (a
    fault timeline, a test); they are checked on every assignment. The model has no clock
    of its own: `now` is whatever time the caller runs on (virtual or trio's).
    """

    profile: BearerProfile
    rng: random.Random
    loss: float = 0.0
    """Chance that a frame is lost, each frame alone (Bernoulli)."""
    jitter_s: float = 0.0
    """Up to this many seconds added to each copy's delay, uniformly."""
    duplicate: float = 0.0
    """Chance that a delivered frame arrives twice."""
    up: bool = True
    _free_at: dict[str, float] = field(default_factory=dict, init=False, repr=False)

    def __setattr__(self, name: str, value: object) -> None:
        _check_condition(name, value)
        object.__setattr__(self, name, value)

    def send(self, sender: str, size: int, now: float) -> list[float]:
        """`sender` puts a frame of `size` bytes on the link at `now`: the arrival time of
        each copy, earliest first. Empty when the frame is lost, the link is down, or the
        frame is larger than the MTU (refused: it takes no air time and draws nothing)."""
        if size < 0:
            raise ValueError(f"BearerModel.send: expected a size >= 0, found {size}")
        if not self._admits(size):
            return []
        done = self._serialise(sender, size, now)
        copies = self._copies()
        delays = self._propagation()
        if not self.up:
            return []
        return sorted(done + delay for delay in delays[:copies])

    # ------------------------------------------------------------------ the stages
    def _admits(self, size: int) -> bool:
        return size <= self.profile.mtu

    def _serialise(self, sender: str, size: int, now: float) -> float:
        """When the frame's last bit has left the sender: after the sender's earlier frames."""
        start = max(now, self._free_at.get(sender, now))
        done = start + size * 8 / self.profile.rate_bps
        self._free_at[sender] = done
        return done

    def _copies(self) -> int:
        lost, doubled = self.rng.random(), self.rng.random()
        if lost < self.loss:
            return 0
        return 2 if doubled < self.duplicate else 1

    def _propagation(self) -> tuple[float, float]:
        """The delay of a first and of a possible second copy (both drawn, always)."""
        first, second = self.rng.random(), self.rng.random()
        delay = self.profile.delay_s
        return delay + first * self.jitter_s, delay + second * self.jitter_s


def _check_condition(name: str, value: object) -> None:
    if name in ("loss", "duplicate"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"BearerModel.{name}: expected a chance in 0..1, found {value!r}")
    elif name == "jitter_s":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"BearerModel.jitter_s: expected seconds >= 0, found {value!r}")
    elif name == "up" and not isinstance(value, bool):
        raise ValueError(f"BearerModel.up: expected True or False, found {value!r}")
