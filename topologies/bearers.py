"""The bearer catalogue: each bearer's nominal numbers, in one table.

The emulator's link models (emulator/links.py) turn these into arrival times; routing sees
`profile()` (the engine's `BearerProfile`); scenario files name a bearer and may override
any number per link or net. Where each number comes from is in docs/bearers.md; a number
no public source gave is marked there as an assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from transports.profile import BearerProfile

Kind = Literal["wired", "radio", "satcom"]


@dataclass(frozen=True, slots=True)
class GilbertElliott:
    """Bursty loss: a two-state chain stepped once per frame (Gilbert-Elliott).

    `p` is the chance to go from the good state to the bad one, `r` back; `loss_good` and
    `loss_bad` the loss in each state (Pieper & Voran, NTIA TM-23-565: p, r, 1-k, 1-h)."""

    p: float
    r: float
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p", "r", "loss_good", "loss_bad"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"GilbertElliott.{name}: expected a chance 0..1, found {value}")
        if self.p + self.r == 0:
            raise ValueError("GilbertElliott: p and r cannot both be 0")

    @property
    def mean_loss(self) -> float:
        """The long-run loss rate: time in bad state times its loss, plus good's."""
        bad = self.p / (self.p + self.r)
        return bad * self.loss_bad + (1 - bad) * self.loss_good


@dataclass(frozen=True, slots=True)
class Bearer:
    """One kind of bearer with its nominal figures."""

    name: str
    kind: Kind
    band: str
    """What a jammer must cover to reach it: "hf", "vhf", "uhf", "shf", "satcom", "fibre"."""
    rate_bps: int
    delay_s: float
    """One way: propagation plus the modem's fixed processing (interleaver, FEC blocks)."""
    mtu: int
    cost: float
    jitter_s: float = 0.0
    loss: float = 0.0
    """Independent loss per frame, on top of `bursts` when both are set."""
    bursts: GilbertElliott | None = None
    range_km: float | None = None
    """Radio reach between two stations; None: not limited by distance (wired, SATCOM)."""
    queue_bytes: int = 64_000
    """The sender-side modem queue: what does not fit is dropped, as on a real modem."""
    shared: bool = False
    """A radio net: one half-duplex channel shared by every member."""
    priority_access: bool = False
    """A net's channel goes to the frame of highest precedence waiting at any member when it
    is free (MIL-STD-188-220's prioritised net access, STANAG 5066's U_PDU priority,
    idealised: docs/bearers.md); False: in the order frames were sent."""
    handover_period_s: float = 0.0
    handover_gap_s: float = 0.0
    """LEO SATCOM: every `handover_period_s` the link is lost for `handover_gap_s`."""
    tx_power_w: float = 0.0
    """Radio: transmitter power (EIRP toward the far end) the jammer-to-signal model uses."""
    path_loss_exponent: float = 2.0
    """Radio: n in path loss ~ d^n (2 free space; more over the ground)."""
    hello_s: float = 0.0
    """The shortest hello interval the engines use on it (0: their `hello_interval`)."""

    def profile(self) -> BearerProfile:
        """What the engine is told of this bearer (routing and fragmentation use it)."""
        return BearerProfile(
            self.name, self.rate_bps, self.delay_s, self.mtu, self.cost, hello_s=self.hello_s
        )

    def with_overrides(self, **numbers: object) -> Bearer:
        """A copy with some numbers replaced (a scenario's per-link overrides); None keeps."""
        given = {key: value for key, value in numbers.items() if value is not None}
        return replace(self, **given)  # type: ignore[arg-type]


FAST_HELLO_S = 10.0
"""The hello interval of the fast bearers: OSPF's default HelloInterval on broadcast and
point-to-point networks (docs/bearers.md). Quicker hellos would find a silent failure of
an idle link sooner and buy nothing else: a fibre's carrier reports a cut at once, and on
a link carrying traffic a message sent three times unanswered makes the link suspect
within a few round trips (tawan/core/liveness.py). The slow radio nets' hellos are longer
still, bounded by their share of the rate."""

BEARERS: dict[str, Bearer] = {
    b.name: b
    for b in (
        Bearer(
            "fibre", "wired", "fibre", 100_000_000, 0.001, 1400, 1.0, queue_bytes=1_000_000,
            hello_s=FAST_HELLO_S,
        ),
        Bearer(
            "radio-relay", "radio", "shf", 8_000_000, 0.0005, 1400, 2.0,
            jitter_s=0.0005, loss=0.001, range_km=48.0, queue_bytes=500_000,
            tx_power_w=3_000.0, path_loss_exponent=2.0, hello_s=FAST_HELLO_S,
        ),
        Bearer(
            "satcom-geo", "satcom", "satcom", 384_000, 0.28, 1400, 8.0,
            jitter_s=0.02, loss=0.005, queue_bytes=256_000, hello_s=FAST_HELLO_S,
        ),
        Bearer(
            "satcom-leo", "satcom", "satcom", 10_000_000, 0.015, 1400, 6.0,
            jitter_s=0.015, loss=0.005, queue_bytes=500_000,
            handover_period_s=15.0, handover_gap_s=0.1, hello_s=FAST_HELLO_S,
        ),
        Bearer(
            "uhf", "radio", "uhf", 64_000, 0.02, 1024, 3.0,
            jitter_s=0.005, loss=0.02, range_km=10.0, shared=True, priority_access=True,
            queue_bytes=32_000, tx_power_w=20.0, path_loss_exponent=3.0, hello_s=FAST_HELLO_S,
        ),
        Bearer(
            "vhf", "radio", "vhf", 9_600, 0.05, 512, 4.0,
            jitter_s=0.01, range_km=30.0, shared=True, priority_access=True, queue_bytes=16_000,
            bursts=GilbertElliott(p=0.01, r=0.3, loss_good=0.01, loss_bad=0.6),
            tx_power_w=50.0, path_loss_exponent=3.0,
        ),
        Bearer(
            "hf", "radio", "hf", 2_400, 1.0, 2048, 10.0,
            jitter_s=0.2, range_km=2000.0, shared=True, priority_access=True, queue_bytes=8_000,
            bursts=GilbertElliott(p=0.02, r=0.2, loss_good=0.02, loss_bad=0.7),
            tx_power_w=100.0, path_loss_exponent=2.0,
        ),
    )
}  # fmt: skip
"""Every bearer a scenario may name; numbers and sources in docs/bearers.md."""


def bearer(name: str) -> Bearer:
    """The catalogue entry `name`; KeyError names the known ones."""
    try:
        return BEARERS[name]
    except KeyError:
        raise KeyError(f"unknown bearer {name!r}, expected one of {sorted(BEARERS)}") from None
