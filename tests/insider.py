"""An insider for the security tests: a roster member that sends crafted frames.

It holds a real node's keys, so its frames carry valid link tags and counters; what it puts
inside them is whatever the attack needs (another node's message ids, adverts, receipts).
"""

from __future__ import annotations

from harness import Net

from tawan.core.frames import TICKS_PER_SECOND, Flags, Frame, Message, encode_frame
from tawan.core.precedence import Precedence


class Insider:
    def __init__(self, net: Net, name: str) -> None:
        self.net = net
        self.name = name
        self.engine = net.engines[name]
        self.address = net.address(name)

    def link_to(self, victim: str) -> str:
        for link in self.net.links.values():
            if set(link.members) == {self.name, victim}:
                return link.name
        raise LookupError(f"no link {self.name}-{victim}")

    def frame_bytes(self, victim: str, frame: Frame) -> bytes:
        """`frame` numbered and tagged as this node's next frame to `victim`."""
        to = self.net.address(victim)
        epoch = self.engine._epoch_at(self.net.now)
        counter = self.engine.guard.next_counter(to, epoch)
        return self.engine.guard.protect(encode_frame(frame, counter), to, epoch)

    def send(self, victim: str, frame: Frame) -> None:
        """Put `frame` straight into `victim`, as if it came over their link."""
        data = self.frame_bytes(victim, frame)
        self.net.engines[victim].receive(self.link_to(victim), self.name, data, self.net.now)
        self.net._flush()

    def forged_message(
        self,
        src: str,
        dst: str | int,
        seq: int,
        *,
        precedence: Precedence = Precedence.ROUTINE,
        ttl: int = 600,
        created_ticks: int | None = None,
    ) -> Message:
        """A message claiming `src` with a guessed sequence number and garbage inside."""
        if created_ticks is None:
            created_ticks = int((self.net.now - self.engine.keys.t0) * TICKS_PER_SECOND)
        to = dst if isinstance(dst, int) else self.net.address(dst)
        return Message(
            self.net.address(src), to, seq, precedence, Flags.NONE, created_ticks, ttl, 0,
            b"\x00" * 40,
        )  # fmt: skip
