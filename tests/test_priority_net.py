"""A congested radio net with priority access: the headquarters' FLASH takes the channel
before the platoons' waiting ROUTINE frames, where in the order sent it waited behind them
(docs/emulation.md, "Links"; docs/bearers.md, "Channel access")."""

from __future__ import annotations

from emulator.run import Emulation
from emulator.stats import percentile
from tawan.core.precedence import Precedence
from topologies.load import parse_scenario

NET = """
[run]
name = "busy-net"
duration_s = 600
seed = 11

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
priority_access = {access}
bursts = false

[[traffic]]
sources = ["role:unit"]
to = "parent"
size_bytes = 400
interval_s = 3
process = "poisson"
ttl_s = 600

[[traffic]]
sources = ["hq"]
to = "p1"
precedence = "FLASH"
size_bytes = 100
interval_s = 20
start_s = 60
ttl_s = 600
"""
PLATOONS = [f"p{i}" for i in range(1, 7)]


def flash_latencies(access: bool) -> list[float]:
    platoons = "\n".join(
        f'[[nodes]]\nname = "{p}"\nparent = "hq"\nposition = [{i + 1}, 1]\ngroups = ["coy"]'
        for i, p in enumerate(PLATOONS)
    )
    text = NET.format(
        platoons=platoons,
        members=", ".join(f'"{p}"' for p in PLATOONS),
        access="true" if access else "false",
    )
    em = Emulation(parse_scenario(text, "busy-net.toml"))
    em.run()
    flash = [o for o in em.record.offers.values() if o.precedence == Precedence.FLASH]
    assert flash
    assert all(o.delivered for o in flash)
    busy = em.record.links["coy"].air_s / em.duration
    assert busy > 0.75  # the platoons' reports keep the channel near full
    return [t - o.time for o in flash for t in o.delivered.values()]


def test_a_flash_crosses_a_congested_net_sooner_with_priority_access() -> None:
    in_order_sent = flash_latencies(access=False)
    by_precedence = flash_latencies(access=True)
    # behind every member's waiting frames, against one frame on the air at most
    assert percentile(sorted(by_precedence), 95) < percentile(sorted(in_order_sent), 95) / 2
    assert max(by_precedence) < 2.0  # a 400-byte frame is 0.33 s on 9.6 kbit/s
