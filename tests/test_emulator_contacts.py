"""Contact plans in the emulator: on a hand-made case the contact-plan choice beats the
greedy one, and a contact that does not happen strands nothing."""

from __future__ import annotations

from typing import Any

from emulator.oracle import earliest_arrivals
from emulator.results import timeline
from emulator.run import BASE, Emulation, contact_plan
from emulator.traffic import Offer
from tawan.core.precedence import Precedence
from topologies.load import scenario_from_data

SIZE = 24_000
"""80 s of air time per HF hop at 2.4 kbit/s, so the greedy copy is all at c before the
pass opens (a copy still leaving a when it opens would take the pass too); 20 ms over the
LEO pass."""
PASS = (120.0, 400.0)
SENT_AT = 10.0


def relay(
    *, contacts: bool, faults: list[dict[str, Any]] | None = None,
    window: tuple[float, float] = PASS,
) -> Emulation:  # fmt: skip
    """a reaches b over two HF nets through c now, or directly over a LEO pass from 120 s;
    a sends b one 24 kB message at 10 s. PACE lets HF carry it: the choice is routing's."""
    data: dict[str, Any] = {
        "run": {"name": "pass", "duration_s": 1200.0, "seed": 3},
        "engine": {"contacts": contacts, "pace": {"largest": {}}},
        "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "links": [{"a": "a", "b": "b", "bearer": "satcom-leo", "name": "leo",
                   "available": [list(window)]}],
        "nets": [{"name": "hf-ac", "bearer": "hf", "members": ["a", "c"], "bursts": False},
                 {"name": "hf-cb", "bearer": "hf", "members": ["c", "b"], "bursts": False}],
        "faults": faults or [],
    }  # fmt: skip
    em = Emulation(scenario_from_data(data, "pass"))
    em.step_until(SENT_AT)
    em.offer(Offer("a", "b", SIZE, Precedence.ROUTINE, 3600, False, "one"))
    em.run()
    return em


def arrival(em: Emulation) -> float:
    [record] = em.record.offers.values()
    assert list(record.delivered) == ["b"]
    return record.delivered["b"]


def message_bytes(em: Emulation) -> dict[str, int]:
    return {name: tally.message_bytes for name, tally in em.record.links.items()}


def test_the_contact_plan_choice_beats_the_greedy_one() -> None:
    planned, greedy = relay(contacts=True), relay(contacts=False)
    for em in (planned, greedy):
        assert em.record.duplicates == 0  # each delivered exactly once
    # Greedy: the path now, two HF hops through c (about 2 x 80 s from 10 s).
    assert arrival(greedy) > SENT_AT + 2 * SIZE * 8 / 2400
    sent = message_bytes(greedy)
    assert sent.get("leo", 0) == 0 and sent["hf-ac"] >= SIZE and sent["hf-cb"] >= SIZE
    # The plan: held at a until the pass, then straight to b over it.
    assert PASS[0] < arrival(planned) < PASS[0] + 5
    assert arrival(planned) < arrival(greedy) - 40
    # The oracle, knowing the whole future, waits for the pass too: the plan comes close.
    [bound] = earliest_arrivals(timeline(planned)).values()
    assert bound is not None and bound <= arrival(planned) < bound + 2
    sent = message_bytes(planned)
    assert sent["leo"] >= SIZE and sent.get("hf-ac", 0) == 0 and sent.get("hf-cb", 0) == 0


def test_a_pass_that_opens_is_called_at_once() -> None:
    """The message waits for the pass; when it opens, a calls b there at once (a hello
    that asks for an answer) rather than at its next hello on the LEO link, which comes
    every 10 s. (The pass of the other tests opens at a LEO handover, whose gap swallows
    that call; this one opens between handovers.)"""
    start = PASS[0] + 5
    em = relay(contacts=True, window=(start, PASS[1]))
    assert start < arrival(em) < start + 1.5


def test_a_pass_that_does_not_happen_falls_back_to_the_path_now() -> None:
    """The plan promises the pass; a SATCOM outage keeps it from coming. The message waits
    for it to the pass's end, then goes through c over HF: late, but delivered once."""
    outage = {"kind": "satcom-outage", "at_s": 0.0, "duration_s": 1100.0}
    em = relay(contacts=True, faults=[outage])
    assert em.record.duplicates == 0
    assert PASS[1] + 2 * SIZE * 8 / 2400 < arrival(em) < em.duration
    sent = message_bytes(em)
    assert sent.get("leo", 0) == 0 and sent["hf-ac"] >= SIZE and sent["hf-cb"] >= SIZE


def test_the_plan_is_the_scenarios_links_on_the_engines_clock() -> None:
    em = relay(contacts=True)
    plan = em.engine_config.contacts
    assert plan is not None and plan == contact_plan(em.scenario, em.links, em.addresses)
    a, b = str(em.addresses["a"]), str(em.addresses["b"])
    leo = [c for c in plan.contacts if c.bearer == "satcom-leo"]
    assert {(c.sender, c.receiver) for c in leo} == {(a, b), (b, a)}
    assert all((c.start, c.end) == (BASE + PASS[0], BASE + PASS[1]) for c in leo)
    hf = [c for c in plan.contacts if c.bearer == "hf"]
    assert len(hf) == 4 and all((c.start, c.end) == (BASE, BASE + em.duration) for c in hf)
    assert all(c.rate_bps == 2400 for c in hf)
    assert relay(contacts=False).engine_config.contacts is None
