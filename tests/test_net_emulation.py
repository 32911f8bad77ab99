"""A company's FLASH to its group on a VHF net in the emulator: one NET frame on the air,
heard by every platoon, each delivering it once (docs/engine.md, "One copy for a net")."""

from __future__ import annotations

from emulator.run import Emulation
from tawan.core.frames import FrameType
from tawan.core.precedence import Precedence
from topologies.load import parse_scenario

PLATOONS = [f"p{i}" for i in range(1, 7)]
COMPANY = """
[run]
name = "company-net"
duration_s = 400
seed = 5

[engine]
hello_interval_s = 5
dead_interval_s = 60

[[nodes]]
name = "hq"
role = "hq"
groups = ["coy"]
{platoons}

[[nets]]
name = "coy"
bearer = "vhf"
members = ["hq", {members}]
bursts = false

[[traffic]]
sources = ["hq"]
to = "own-group"
precedence = "FLASH"
size_bytes = 150
interval_s = 60
start_s = 60
ttl_s = 600
"""


def company() -> Emulation:
    platoons = "\n".join(
        f'[[nodes]]\nname = "{p}"\nparent = "hq"\nposition = [{i + 1}, 1]\ngroups = ["coy"]'
        for i, p in enumerate(PLATOONS)
    )
    text = COMPANY.format(platoons=platoons, members=", ".join(f'"{p}"' for p in PLATOONS))
    return Emulation(parse_scenario(text, "company-net.toml"))


def test_a_group_flash_is_one_frame_heard_by_every_platoon() -> None:
    em = company()
    frames: list[tuple[str, str, bytes]] = []
    em.frame_hooks.append(lambda t, link, s, r, data: frames.append((s, r, data)))
    em.run()
    flash = [o for o in em.record.offers.values() if o.precedence == Precedence.FLASH]
    assert len(flash) >= 5
    assert all(sorted(o.delivered) == PLATOONS for o in flash)
    assert em.record.duplicates == 0
    from_hq = [d for s, _, d in frames if s == "hq" and d[0] & 0xF in (0, 7, 8)]
    nets = [d for d in from_hq if d[0] & 0xF == FrameType.NET]
    # one frame per FLASH (a resend to one that missed it aside), not one per platoon
    assert len(nets) >= len(flash)
    assert len(from_hq) < 2 * len(flash)
    latencies = [t - o.time for o in flash for t in o.delivered.values()]
    assert max(latencies) < 1.0  # one frame of about 300 bytes, 0.25 s on 9.6 kbit/s
    # a NET frame's bytes are counted once, as it took the air once
    on_air = sum(len(d) for _, _, d in frames if d[0] & 0xF in (0, 1, 7, 8, 9))
    assert em.record.links["coy"].message_bytes == on_air
