"""A token bucket: how much receive work a class of senders may cost per second.

The UDP link gives senders that are no configured peer one shared bucket, so a flood from
anywhere else costs the node a bounded number of reads per second, whatever its rate.
"""

from __future__ import annotations

import math


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; the clock is the caller's."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"TokenBucket.rate: expected a finite number > 0, found {rate}")
        if burst < 1:
            raise ValueError(f"TokenBucket.burst: expected an integer >= 1, found {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = -math.inf

    def available(self, now: float) -> int:
        """Whole tokens that may be taken at `now`."""
        self._refill(now)
        return int(self._tokens)

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait(self, now: float) -> float:
        """Seconds until the next whole token (0 if one is there now)."""
        self._refill(now)
        return max(0.0, (1 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            if self._stamp != -math.inf:
                earned = (now - self._stamp) * self.rate
                self._tokens = min(float(self.burst), self._tokens + earned)
            self._stamp = now
