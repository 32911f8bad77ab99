"""What a shared net allows a FLASH: the stack's latency beside the oracle's and two bounds.

The oracle (emulator/oracle.py) sends each copy alone on a channel of its own and counts
only its payload. On a radio net the channel is shared: a FLASH offered while another
member's frame is on the air waits for its end, whatever the protocol, for no station can
stop another's transmission. This bench runs a scenario (the reference, seeds 7-9, by
default) and, for every FLASH copy from a member of a net to a member that has no other link
(a platoon on its company net: every way to it ends on that net), computes from the
realised air time of every frame on that net:

- `bound_payload`: the time until the frame of another member on the air at the offer
  ends (0 when the channel is free), plus the copy's payload alone on the air, plus the
  net's delay: what a protocol without a single header byte would do, given the channel
  the moment it is free;
- `bound_sealed`: the same with the payload and only what end-to-end security must add to
  a group message, whatever the link layer: its origin's signature (64 bytes) and its AEAD
  tag (16): what any protocol whose FLASH to a group is signed and encrypted allows;
- `bound_frame`: the same with the source's first message frame on the net after the offer
  (the FLASH goes first: its headers, its signature, its tag per receiver) in place of the
  payload: what the stack's own frame allows.

Copies pool over the seeds; a p95 is the nearest-rank percentile (emulator.stats), of the
delivered copies for the stack and the oracle. The last line printed is one JSON object:
{"scenario", "seeds", "copies", "busy_at_offer" (copies offered while another member's frame
was on the air), "p95_s": {"stack", "oracle", "bound_payload", "bound_sealed", "bound_frame"},
"busy_by_frame" (those copies by the kind of frame on the air: DATA, FRAG, NET_FRAG, ...),
"late" (the copies the oracle delivers that the stack delivered later than twice the
oracle's p95, or not at all, by what was on the air at the offer: the kind of another
member's frame, "own" for a frame of the source's own, "free" for none; null when the
oracle delivers none)}.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from crypto.roster import SIGNATURE_BYTES
from crypto.schedule import AEAD_TAG_BYTES
from emulator.oracle import earliest_arrivals
from emulator.results import message_id, timeline
from emulator.run import Emulation, Options
from emulator.stats import percentile
from tawan.core.frames import FrameType
from tawan.core.precedence import Precedence
from topologies.load import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
SEALED_BYTES = SIGNATURE_BYTES + AEAD_TAG_BYTES  # a group message's, on any link layer
MESSAGE_TYPES = frozenset(
    (FrameType.DATA, FrameType.FRAG, FrameType.BATCH, FrameType.NET, FrameType.NET_FRAG)
)


@dataclass(frozen=True, slots=True)
class OnAir:
    start: float
    end: float
    sender: str
    size: int
    message: bool  # a frame that carries a message or a piece of one
    kind: str  # its frame type's name


@dataclass(frozen=True, slots=True)
class Copy:
    stack: float | None  # None: not delivered
    oracle: float | None  # None: the oracle cannot deliver it
    bound_payload: float
    bound_sealed: float
    bound_frame: float
    blocker: str | None  # the kind of another member's frame on the air at the offer
    own_on_air: bool  # a frame of the source's own on the air at the offer


def copies_of_run(scenario_path: Path, seed: int) -> list[Copy]:
    em = Emulation(load_scenario(scenario_path), Options(seed=seed))
    nets = {name: model for name, model in em.links.items() if len(model.members) > 2}
    links_of: dict[str, set[str]] = {}
    for name, model in em.links.items():
        for member in model.members:
            links_of.setdefault(member, set()).add(name)
    air: dict[str, list[OnAir]] = {name: [] for name in nets}

    def on_air(start: float, link: str, sender: str, receiver: str, data: bytes) -> None:
        if link in air:
            end = start + len(data) * 8 / nets[link].bearer.rate_bps
            kind = FrameType(data[0] & 0xF)
            message = kind in MESSAGE_TYPES
            air[link].append(OnAir(start, end, sender, len(data), message, kind.name))

    em.frame_hooks.append(on_air)
    em.run()
    arrivals = earliest_arrivals(timeline(em))
    found = []
    for record in em.record.offers.values():
        if record.precedence < Precedence.FLASH:  # FLASH, and OVERRIDE counted with it
            continue
        for name, model in nets.items():
            if record.source not in model.members:
                continue
            frames, t = air[name], record.time
            others = [f for f in frames if f.sender != record.source and f.start <= t < f.end]
            busy = max((f.end for f in others), default=t)
            blocker = max(others, key=lambda f: f.end).kind if others else None
            own_on_air = any(f.sender == record.source and f.start <= t < f.end for f in frames)
            mine = (f for f in frames if f.sender == record.source and f.start >= t and f.message)
            own = next(mine, None)
            rate, delay = model.bearer.rate_bps, model.bearer.delay_s
            frame_bytes = own.size if own is not None else record.size
            for dst in record.destinations:
                if links_of.get(dst) != {name}:
                    continue  # another link may reach it: the net is not the only way
                got = record.delivered.get(dst)
                best = arrivals.get((message_id(record), dst))
                found.append(Copy(
                    None if got is None else got - t,
                    None if best is None else best - t,
                    busy - t + record.size * 8 / rate + delay,
                    busy - t + (record.size + SEALED_BYTES) * 8 / rate + delay,
                    busy - t + frame_bytes * 8 / rate + delay,
                    blocker,
                    own_on_air,
                ))  # fmt: skip
    em.close()
    return found


def _p95(values: list[float]) -> float | None:
    return round(percentile(sorted(values), 95), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="reference.toml", help="a file in scenarios/")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    args = parser.parse_args()
    copies: list[Copy] = []
    for seed in args.seeds:
        run = copies_of_run(SCENARIOS / args.scenario, seed)
        print(f"seed {seed}: {len(run)} FLASH copies to members reached only by a net")
        copies += run
    p95 = {
        "stack": _p95([c.stack for c in copies if c.stack is not None]),
        "oracle": _p95([c.oracle for c in copies if c.oracle is not None]),
        "bound_payload": _p95([c.bound_payload for c in copies]),
        "bound_sealed": _p95([c.bound_sealed for c in copies]),
        "bound_frame": _p95([c.bound_frame for c in copies]),
    }
    busy = Counter(c.blocker for c in copies if c.blocker is not None)
    print(f"{len(copies)} copies, {busy.total()} offered while another member was on the air; "
          "p95: " + ", ".join(f"{k} {v} s" for k, v in p95.items()))  # fmt: skip
    late = _late(copies, p95["oracle"])
    if late is None:
        print("late copies: n/a (the oracle delivers none)")
    else:
        print(f"{late.total()} delivered later than twice the oracle's p95 or not at all: "
              + ", ".join(f"{n} {cause}" for cause, n in late.most_common()))  # fmt: skip
    summary = {
        "scenario": args.scenario, "seeds": args.seeds, "copies": len(copies),
        "busy_at_offer": busy.total(), "p95_s": p95, "busy_by_frame": dict(busy),
        "late": None if late is None else dict(late),
    }  # fmt: skip
    print(json.dumps(summary, sort_keys=True))


def _late(copies: list[Copy], oracle_p95: float | None) -> Counter[str] | None:
    """The copies the oracle delivers that the stack delivered later than twice the
    oracle's p95, or not at all, by what was on the air when they were offered."""
    if oracle_p95 is None:
        return None
    return Counter(
        c.blocker or ("own" if c.own_on_air else "free")
        for c in copies
        if c.oracle is not None and (c.stack is None or c.stack > 2 * oracle_p95)
    )


if __name__ == "__main__":
    main()
