"""Emission control: a node under EMCON receives on its radios and sends nothing there; it
still uses SATCOM; what it could not acknowledge its senders keep until it speaks again."""

from __future__ import annotations

from typing import Any

from emulator.run import Emulation
from topologies.load import scenario_from_data

EMCON_FROM, EMCON_TO = 300.0, 1500.0


def run(*, satcom: bool) -> Emulation:
    data: dict[str, Any] = {
        "run": {"name": "emcon", "duration_s": 2400.0, "seed": 5},
        "nodes": [{"name": "hq", "role": "hq"}, {"name": "pl", "position": [3.0, 0.0],
                                                 "parent": "hq"}],
        "nets": [{"name": "vhf", "bearer": "vhf", "members": ["hq", "pl"]}],
        "traffic": [
            {"name": "orders", "sources": ["hq"], "to": "pl", "size_bytes": 200,
             "interval_s": 60.0, "precedence": "IMMEDIATE", "ttl_s": 7200},
            {"name": "reports", "sources": ["pl"], "to": "hq", "size_bytes": 100,
             "interval_s": 60.0, "ttl_s": 7200},
        ],
        "faults": [{"kind": "emcon", "node": "pl", "at_s": EMCON_FROM,
                    "duration_s": EMCON_TO - EMCON_FROM}],
    }  # fmt: skip
    if satcom:
        data["links"] = [{"a": "hq", "b": "pl", "bearer": "satcom-geo"}]
    em = Emulation(scenario_from_data(data, "emcon"))
    em.run()
    return em


def by_generator(em: Emulation, generator: str) -> list[tuple[float, float | None]]:
    return [
        (r.time, next(iter(r.delivered.values()), None))
        for r in em.record.offers.values()
        if r.generator == generator
    ]


def test_a_silent_node_hears_keeps_quiet_and_its_messages_wait() -> None:
    em = run(satcom=False)
    # The engine keeps off its radio by itself: the net never had to drop a frame of it.
    assert em.record.bearers["vhf"].dropped["silenced"] == 0
    orders = by_generator(em, "orders")
    during = [got for sent, got in orders if EMCON_FROM + 5 < sent < EMCON_TO - 5]
    assert during and all(got is not None and got < EMCON_TO for got in during)  # heard
    reports = by_generator(em, "reports")
    quiet = [(sent, got) for sent, got in reports if EMCON_FROM + 5 < sent < EMCON_TO - 5]
    assert quiet and all(got is not None and got >= EMCON_TO for _, got in quiet)
    assert all(got is not None for _, got in reports[:-1])  # nothing lost
    assert em.record.duplicates == 0


def test_under_emcon_satcom_still_carries_what_the_radio_may_not() -> None:
    em = run(satcom=True)
    assert em.record.bearers["vhf"].dropped["silenced"] == 0
    reports = by_generator(em, "reports")
    quiet = [(sent, got) for sent, got in reports if EMCON_FROM + 5 < sent < EMCON_TO - 5]
    assert quiet and all(got is not None and got - sent < 30 for sent, got in quiet)
