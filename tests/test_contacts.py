"""Contact plans: routing rules checked by hand, against a brute force and a greedy baseline;
the ION, HDTN and native readers on golden inputs; the `tawan contacts route` command."""

from __future__ import annotations

import datetime
import json
import math
import random
from pathlib import Path

import pytest

from tawan.cli import main
from tawan.contact_files import load_plan
from tawan.core.contact_import import (
    parse_hdtn_json,
    parse_ion,
    parse_native,
    parse_native_toml,
    plan_to_native,
)
from tawan.core.contacts import (
    Contact,
    ContactPlan,
    ContactPlanError,
    Hop,
    Route,
    book,
    hop_over,
    route,
    routes,
)

KB = 1000  # bytes: 8000 bits, one second at 8 kbit/s


def plan(*contacts: Contact) -> ContactPlan:
    return ContactPlan(contacts)


def greedy_route(
    p: ContactPlan, source: str, dest: str, at: float, size: int, max_hops: int = 10
) -> Route | None:
    """The "first contact available" baseline: at each node take the usable contact that
    departs first (then arrives first), never back to a node already visited."""
    node, ready, visited = source, at, {source}
    hops: list[Hop] = []
    while node != dest and len(hops) < max_hops:
        options = [
            h
            for c in p.open_after(node, ready)
            if c.receiver not in visited and (h := hop_over(c, ready, size)) is not None
        ]
        if not options:
            return None
        hop = min(options, key=lambda h: (h.depart_s, h.arrive_s))
        hops.append(hop)
        node, ready = hop.contact.receiver, hop.arrive_s
        visited.add(node)
    return Route(tuple(hops), ready) if node == dest else None


# ---------------------------------------------------------------------------- the rules


def test_waiting_for_a_later_faster_contact_beats_the_slow_one_now() -> None:
    slow_now = Contact(0, 1000, "a", "b", rate_bps=800)  # 1 kB takes 10 s
    fast_later = Contact(5, 100, "a", "b", rate_bps=8000)  # 1 kB takes 1 s, from t=5
    p = plan(slow_now, fast_later)
    chosen = route(p, "a", "b", 0, KB)
    assert chosen == Route((Hop(fast_later, 5.0, 6.0),), 6.0)
    greedy = greedy_route(p, "a", "b", 0, KB)
    assert greedy is not None and greedy.arrival_s == 10.0
    assert chosen.arrival_s < greedy.arrival_s


def test_the_plan_beats_greedy_over_two_hops() -> None:
    """Greedy leaves at once for c, a dead end until late; the plan waits for b's relay."""
    p = plan(
        Contact(0, 100, "a", "c", rate_bps=8000),
        Contact(500, 600, "c", "d", rate_bps=8000),
        Contact(10, 100, "a", "b", rate_bps=8000),
        Contact(20, 100, "b", "d", rate_bps=8000, owlt_s=2),
    )
    chosen = route(p, "a", "d", 0, KB)
    assert chosen is not None
    assert [h.contact.receiver for h in chosen.hops] == ["b", "d"]
    assert chosen.arrival_s == 23.0  # a->b 10..11, wait at b, b->d 20..21, +2 s owlt
    greedy = greedy_route(p, "a", "d", 0, KB)
    assert greedy is not None and greedy.arrival_s == 501.0


def test_a_transmission_must_finish_by_the_contact_end() -> None:
    window = Contact(0, 1, "a", "b", rate_bps=8000)
    assert route(plan(window), "a", "b", 0, KB) == Route((Hop(window, 0.0, 1.0),), 1.0)
    assert route(plan(window), "a", "b", 0, KB + 1) is None  # one byte more ends past 1.0
    assert route(plan(window), "a", "b", 0.5, KB) is None  # ready late: would end at 1.5
    later = Contact(10, 20, "a", "b", rate_bps=8000)
    waited = route(plan(window, later), "a", "b", 0, KB + 1)
    assert waited == Route((Hop(later, 10.0, 10 + 1.001),), 10 + 1.001)


def test_an_empty_message_still_needs_the_contact_open() -> None:
    window = Contact(0, 1, "a", "b", rate_bps=8000)
    assert route(plan(window), "a", "b", 0.999, 0) is not None
    assert route(plan(window), "a", "b", 1.0, 0) is None  # [start, end): closed at end


def test_owlt_is_added_after_the_transmission() -> None:
    link = Contact(0, 100, "a", "b", rate_bps=8000, owlt_s=0.25)
    assert route(plan(link), "a", "b", 3, KB) == Route((Hop(link, 3.0, 4.25),), 4.25)


def test_multi_hop_with_waiting_at_the_relay() -> None:
    first = Contact(0, 10, "a", "b", rate_bps=8000, owlt_s=0.5)
    second = Contact(20, 30, "b", "c", rate_bps=16000, owlt_s=1)
    chosen = route(plan(first, second), "a", "c", 0, KB)
    assert chosen == Route((Hop(first, 0.0, 1.5), Hop(second, 20.0, 21.5)), 21.5)
    # Arriving at b after b's contact ends: no route (the second window is over).
    assert route(plan(first, second), "a", "c", 29.6, KB) is None


def test_source_is_destination_and_unknown_nodes() -> None:
    p = plan(Contact(0, 10, "a", "b", rate_bps=8000))
    assert route(p, "a", "a", 7, KB) == Route((), 7)
    assert route(p, "b", "a", 0, KB) is None
    assert route(p, "zz", "a", 0, KB) is None


def test_booked_volume_shrinks_the_window() -> None:
    window = Contact(0, 2, "a", "b", rate_bps=8000)
    p = plan(window)
    first = route(p, "a", "b", 0, KB)
    assert first is not None and first.arrival_s == 1.0
    booked = book({}, first, KB)
    assert booked == {window: KB}
    second = route(p, "a", "b", 0, KB, booked=booked)
    assert second is not None and second.arrival_s == 2.0  # after the first kB drains
    full = book(booked, second, KB)
    assert route(p, "a", "b", 0, KB, booked=full) is None
    assert route(p, "a", "b", 0, 0, booked=full) is None  # not even empty: it opens at end


def test_alternatives_leave_on_different_first_contacts() -> None:
    direct = Contact(0, 100, "a", "d", rate_bps=800)  # arrives 10
    via_b = Contact(0, 100, "a", "b", rate_bps=8000)
    b_d = Contact(0, 100, "b", "d", rate_bps=8000)  # via b arrives 2
    via_c = Contact(3, 100, "a", "c", rate_bps=8000)
    c_d = Contact(0, 100, "c", "d", rate_bps=8000)  # via c arrives 5
    p = plan(direct, via_b, b_d, via_c, c_d)
    found = routes(p, "a", "d", 0, KB, k=5)
    assert [(r.first, r.arrival_s) for r in found] == [(via_b, 2), (via_c, 5), (direct, 10)]
    assert route(p, "a", "d", 0, KB, exclude=[via_b, via_c]) == found[2]
    assert routes(p, "a", "d", 0, KB, k=1) == found[:1]


def brute_force(p: ContactPlan, source: str, dest: str, at: float, size: int) -> float:
    """Earliest arrival over every node-simple sequence of contacts (waiting allowed)."""
    best = math.inf

    def walk(node: str, ready: float, visited: frozenset[str]) -> None:
        nonlocal best
        if node == dest:
            best = min(best, ready)
            return
        for c in p.contacts:
            if c.sender == node and c.receiver not in visited:
                hop = hop_over(c, ready, size)
                if hop is not None:
                    walk(c.receiver, hop.arrive_s, visited | {c.receiver})

    walk(source, at, frozenset({source}))
    return best


def random_plan(rng: random.Random, nodes: list[str], count: int) -> ContactPlan:
    contacts: set[Contact] = set()
    while len(contacts) < count:
        sender, receiver = rng.sample(nodes, 2)
        start = rng.randrange(0, 100)
        contacts.add(
            Contact(start, start + rng.randrange(1, 30), sender, receiver,
                    rate_bps=rng.choice([800, 8000, 80000]), owlt_s=rng.choice([0, 0.5, 3]))
        )  # fmt: skip
    return ContactPlan(tuple(sorted(contacts, key=repr)))


def test_route_finds_the_earliest_arrival_a_brute_force_finds() -> None:
    rng = random.Random(7)
    nodes = ["a", "b", "c", "d", "e"]
    reached = 0
    for _ in range(300):
        p = random_plan(rng, nodes, 12)
        at, size = rng.randrange(0, 50), rng.choice([100, KB, 5 * KB])
        chosen = route(p, "a", "e", at, size)
        expected = brute_force(p, "a", "e", at, size)
        if chosen is None:
            assert expected == math.inf
            continue
        reached += 1
        assert chosen.arrival_s == expected
        # The route is a chain: each hop leaves its sender after the last one arrived there.
        ready, node = float(at), "a"
        for hop in chosen.hops:
            assert hop.contact.sender == node and hop.depart_s >= max(ready, hop.contact.start)
            assert hop.depart_s + hop.contact.transmission_s(size) <= hop.contact.end
            ready, node = hop.arrive_s, hop.contact.receiver
        assert (node, ready) == ("e", chosen.arrival_s)
    assert reached > 50  # the check above ran on routes, not only on "no route"


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"end": 0}, "end: expected greater than start (0"),
        ({"rate_bps": 0}, "rate_bps: expected a finite rate above 0, found 0"),
        ({"owlt_s": -1}, "owlt_s: expected a finite delay of 0 or more, found -1"),
        ({"receiver": "a"}, "receiver: expected a node other than the sender"),
        ({"confidence": 0}, "confidence: expected a number in (0, 1], found 0"),
        ({"start": math.nan}, "start: expected a finite number of seconds, found nan"),
    ],
)
def test_a_broken_contact_names_its_field(kwargs: dict[str, float | str], named: str) -> None:
    fields: dict[str, float | str] = {
        "start": 0, "end": 10, "sender": "a", "receiver": "b", "rate_bps": 8000
    }  # fmt: skip
    fields.update(kwargs)
    with pytest.raises(ContactPlanError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Contact(**fields)  # type: ignore[arg-type]


def test_a_plan_names_the_index_of_a_duplicate() -> None:
    c = Contact(0, 10, "a", "b", rate_bps=8000)
    with pytest.raises(ContactPlanError, match=r"contact 2: .* found a copy of contact 0"):
        ContactPlan((c, Contact(0, 10, "b", "a", rate_bps=8000), c))


def test_lookups_by_sender_skip_contacts_already_over() -> None:
    early, late = Contact(0, 10, "a", "b", rate_bps=1), Contact(5, 50, "a", "c", rate_bps=1)
    p = plan(late, early, Contact(0, 10, "b", "a", rate_bps=1))
    assert p.from_sender("a") == (early, late)
    assert p.open_after("a", 9.9) == (early, late)
    assert p.open_after("a", 10) == (late,)
    assert p.open_after("nobody", 0) == ()
    assert p.nodes() == {"a", "b", "c"}


# ---------------------------------------------------------------------------- ION

ION_PLAN = """\
## begin ionadmin
1 1 ''
s
# contacts between 1 and 2, both ways, 1 kB/s; one range covers both directions
a contact +0 +600 1 2 1000
a contact +0 +600 2 1 1000
a range +0 +600 1 2 1
# 3 -> 2 has a range of its own (higher to lower: that direction only)
a range +0 +2000 3 2 5
a contact 2024/01/01-00:10:00 2024/01/01-00:20:00 2 3 125 0.9
@ +1000
a contact +0 +100 3 2 500
a contact -1 -1 4 4 0
a contact +0 0 1 4 0
m horizon +0
## end ionadmin
## begin ipnadmin
a plan 2 ltp/2
## end ipnadmin
"""
EPOCH_2024 = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC).timestamp()


def test_ion_golden() -> None:
    p = parse_ion(ION_PLAN, epoch=EPOCH_2024)
    assert p.contacts == (
        Contact(0, 600, "1", "2", rate_bps=8000, owlt_s=1),
        Contact(0, 600, "2", "1", rate_bps=8000, owlt_s=1),  # implied by the 1 -> 2 range
        Contact(600, 1200, "2", "3", rate_bps=1000, owlt_s=0, confidence=0.9),  # no range
        Contact(1000, 1100, "3", "2", rate_bps=4000, owlt_s=5),
    )
    chosen = route(p, "1", "3", 0, KB)
    assert chosen is not None and chosen.arrival_s == 600 + 8.0  # waits at 2 for the slot
    named = parse_ion(ION_PLAN, epoch=EPOCH_2024, names={1: "hq", 2: "sat", 3: "fob"})
    assert {c.sender for c in named.contacts} == {"hq", "sat", "fob"}


def test_ion_explicit_reverse_range_overrides_the_implied_one() -> None:
    text = "a contact +0 +10 2 1 100\na range +0 +10 1 2 1\na range +0 +10 2 1 4\n"
    assert parse_ion(text).contacts[0].owlt_s == 4
    text = "a contact +0 +10 1 2 100\na range +0 +5 1 2 1\na range +5 +10 1 2 3\n"
    assert parse_ion(text).contacts[0].owlt_s == 3  # the worst range over the window


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("# ok\na contact +0 +10 1 2\n", "line 2: a contact: expected START STOP FROM TO RATE"),
        ("\n\na contact now +10 1 2 100\n", "line 3: time: expected +SECONDS or yyyy/mm/dd"),
        ("a contact +0 +10 1 x 100\n", "line 1: TO: expected a node number (1 to 1844"),
        ("a contact +0 +10 1 2 fast\n", "line 1: a contact: RATE: expected a number"),
        ("a contact +0 +10 1 2 0\n", "line 1: a contact: RATE: expected bytes/s above 0"),
        ("s\na contact +10 +5 1 2 100\n", "line 2: end: expected greater than start"),
        ("a range +0 +10 1 2 -3\n", "line 1: a range: DISTANCE: expected 0 or more"),
        ("a range +0 +10 1 2\n", "line 1: a range: expected START STOP ONE OTHER DISTANCE"),
    ],
)
def test_ion_errors_name_the_line(text: str, named: str) -> None:
    with pytest.raises(ContactPlanError) as caught:
        parse_ion(text)
    assert str(caught.value).startswith(named)


def test_ion_names_must_cover_every_node() -> None:
    with pytest.raises(ContactPlanError, match="line 1: to: expected a node number in names"):
        parse_ion("a contact +0 +10 1 7 100\n", names={1: "hq"})


# ---------------------------------------------------------------------------- HDTN

HDTN_PLAN = """\
{
    "contacts": [
        {"contact": 0, "source": 1, "dest": 10, "startTime": 0, "endTime": 2000,
         "rateBitsPerSec": 1000000, "owlt": 1},
        {"contact": 1, "source": 10, "dest": 2, "startTime": 100, "endTime": 2000,
         "rateBitsPerSec": 500000, "owlt": 2},
        {"contact": 2, "source": 2, "dest": 10, "startTime": 0, "endTime": 60,
         "rateBitsPerSec": 1000000}
    ]
}
"""


def test_hdtn_golden() -> None:
    p = parse_hdtn_json(HDTN_PLAN)
    assert p.contacts == (
        Contact(0, 2000, "1", "10", rate_bps=1e6, owlt_s=1),
        Contact(100, 2000, "10", "2", rate_bps=5e5, owlt_s=2),
        Contact(0, 60, "2", "10", rate_bps=1e6, owlt_s=0),  # no owlt: 0, as HDTN reads it
    )
    chosen = route(p, "1", "2", 0, 125_000)  # 1 Mbit: 1 s, then 2 s at 500 kbit/s
    assert chosen is not None
    assert [(h.depart_s, h.arrive_s) for h in chosen.hops] == [(0, 2), (100, 104)]
    unix = parse_hdtn_json(HDTN_PLAN.replace('"endTime": 60', '"endTime": 1060'), epoch=1000)
    assert unix.contacts[2].start == -1000 and unix.contacts[2].end == 60


def test_hdtn_unlimited_rate_needs_a_stand_in() -> None:
    text = '{"contacts": [{"source": 1, "dest": 2, "startTime": 0, "endTime": 9, ' \
           '"rateBitsPerSec": 0, "owlt": 1}]}'  # fmt: skip
    with pytest.raises(ContactPlanError, match=r"contacts\[0\]: rateBitsPerSec: .* found 0"):
        parse_hdtn_json(text)
    assert parse_hdtn_json(text, unlimited_rate_bps=1e9).contacts[0].rate_bps == 1e9


def test_hdtn_quoted_numbers_and_empty_windows() -> None:
    """Both seen in HDTN's own plans: quoted numbers, and windows ending before they start."""
    text = (
        '{"contacts": [{"source": "1", "dest": 2, "startTime": 10, "endTime": 20, '
        '"rateBitsPerSec": "1000000000", "owlt": 1}, {"source": 3, "dest": 2, '
        '"startTime": 46812, "endTime": 39588, "rateBitsPerSec": 8, "owlt": 1}]}'
    )
    with pytest.raises(ContactPlanError, match=r"contacts\[1\]: end: expected greater"):
        parse_hdtn_json(text)
    assert parse_hdtn_json(text, skip_empty_windows=True).contacts == (
        Contact(10, 20, "1", "2", rate_bps=1e9, owlt_s=1),
    )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[1, 2]", 'contacts: expected an object with a "contacts" list, found list'),
        ('{"contacts": [1]}', "contacts[0]: expected an object, found int"),
        ('{"contacts": [{"source": 1, "dest": 2, "startTime": 0, "rateBitsPerSec": 8}]}',
         "contacts[0]: endTime: expected a number, found nothing"),
        ('{"contacts": [{"source": "a", "dest": 2}]}',
         "contacts[0]: source: expected a node number (1 to 18446744073709551615), "
         "found 'a'"),
        ('{"contacts": [{"source": 1, "dest": 2, "startTime": 5, "endTime": 5, '
         '"rateBitsPerSec": 8}]}', "contacts[0]: end: expected greater than start"),
        ('{"contacts": [', "JSON: expected a valid document"),
    ],
)  # fmt: skip
def test_hdtn_errors_name_the_contact_and_field(text: str, named: str) -> None:
    with pytest.raises(ContactPlanError) as caught:
        parse_hdtn_json(text)
    assert str(caught.value).startswith(named)


# ---------------------------------------------------------------------------- ours

NATIVE_TOML = """\
format = "tawan-contacts/1"

[[contacts]]
start = 0
end = 600
from = "hq"
to = "leo-1"
rate_bps = 9600
owlt_s = 0.02
bearer = "leo"

[[contacts]]
start = 3000
end = 3600
from = "leo-1"
to = "fob"
rate_bps = 9600
confidence = 0.8
"""


def test_native_toml_and_its_round_trip() -> None:
    p = parse_native_toml(NATIVE_TOML)
    assert p.contacts[0] == Contact(0, 600, "hq", "leo-1", 9600, 0.02, bearer="leo")
    assert p.contacts[1].confidence == 0.8
    assert parse_native(plan_to_native(p)) == p
    chosen = route(p, "hq", "fob", 0, 1200)
    assert chosen is not None and chosen.confidence == 0.8


def test_native_refuses_unknown_keys_and_formats() -> None:
    with pytest.raises(ContactPlanError, match=r"contacts\[1\]: owlt: expected one of"):
        parse_native_toml(NATIVE_TOML.replace("confidence = 0.8", "owlt = 3"))
    with pytest.raises(ContactPlanError, match="format: expected 'tawan-contacts/1'"):
        parse_native({"format": "v0", "contacts": []})


def test_load_plan_chooses_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "p.rc").write_text(ION_PLAN, encoding="utf-8")
    (tmp_path / "p.json").write_text(HDTN_PLAN, encoding="utf-8")
    (tmp_path / "p.toml").write_text(NATIVE_TOML, encoding="utf-8")
    native = json.dumps(plan_to_native(parse_native_toml(NATIVE_TOML)))
    (tmp_path / "ours.json").write_text(native, encoding="utf-8")
    assert len(load_plan(tmp_path / "p.rc", epoch=EPOCH_2024).contacts) == 4
    assert load_plan(tmp_path / "p.json") == parse_hdtn_json(HDTN_PLAN)
    assert load_plan(tmp_path / "p.toml") == load_plan(tmp_path / "ours.json")
    with pytest.raises(ContactPlanError, match=r"p\.csv: expected a \.json, \.toml"):
        load_plan(tmp_path / "p.csv")


# ---------------------------------------------------------------------------- the command


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_cli_prints_the_route_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "plan.json", HDTN_PLAN)
    argv = ["contacts", "route", path, "--from", "1", "--to", "2", "--size", "125000"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["route"]["arrival_s"] == 104
    hops = [
        (h["sender"], h["receiver"], h["depart_s"], h["arrive_s"]) for h in out["route"]["hops"]
    ]
    assert hops == [("1", "10", 0, 2), ("10", "2", 100, 104)]


def test_cli_no_route_prints_null_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "plan.json", HDTN_PLAN)
    argv = ["contacts", "route", path, "--from", "2", "--to", "1", "--size", "10", "--at", "61"]
    assert main(argv) == 1
    assert json.loads(capsys.readouterr().out)["route"] is None


def test_cli_broken_plan_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "plan.rc", "a contact +0 +10 1 2 100\na contact +0 +10 1 2\n")
    assert main(["contacts", "route", path, "--from", "1", "--to", "2", "--size", "1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "plan.rc: line 2: a contact: expected START STOP FROM TO RATE" in captured.err
    missing = str(tmp_path / "none.toml")
    assert main(["contacts", "route", missing, "--from", "1", "--to", "2", "--size", "1"]) == 2


def test_the_documented_example_routes_as_docs_contacts_md_says() -> None:
    example = Path(__file__).parent.parent / "examples" / "contacts" / "leo-relay.rc"
    p = load_plan(example)
    best, courier = routes(p, "1", "3", 0, 100_000, k=2)
    assert [(h.depart_s, h.arrive_s) for h in best.hops] == [
        (600, 600 + 800_000 / 96_000 + 1),
        (700, 700 + 800_000 / 96_000 + 1),
    ]
    assert courier.arrival_s == 1200 + 0.1 + 3600
    late = route(p, "1", "3", 900, 100_000)
    assert late is not None and late.arrival_s == courier.arrival_s
    assert route(p, "3", "1", 0, 100) is None
    docs = (example.parent.parent.parent / "docs" / "contacts.md").read_text(encoding="utf-8")
    assert f'"arrival_s": {best.arrival_s!r}' in docs


def test_of_equal_arrivals_the_route_with_fewer_hops_wins() -> None:
    """x is settled (t=3) before y (t=4), and offers d first, with more hops: y's direct
    contact to d arrives at the same time with fewer, and replaces it."""
    p = plan(
        Contact(0, 100, "a", "p", rate_bps=8000),  # p at 1
        Contact(0, 100, "p", "q", rate_bps=8000),  # q at 2
        Contact(0, 100, "q", "x", rate_bps=8000),  # x at 3, three hops
        Contact(3, 4, "x", "d", rate_bps=8000, owlt_s=1),  # d at 5 via x: four hops
        Contact(3, 100, "a", "y", rate_bps=8000),  # y at 4, one hop
        Contact(4, 100, "y", "d", rate_bps=8000),  # d at 5 via y: two hops
    )
    chosen = route(p, "a", "d", 0, KB)
    assert chosen is not None and chosen.arrival_s == 5
    assert [h.contact.sender for h in chosen.hops] == ["a", "y"]
