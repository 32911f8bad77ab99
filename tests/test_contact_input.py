"""Contact plans that no plan could mean: each refused with one line naming the file, the
line or contact, and the field, never a Python error; and a large ION plan read in seconds.

Every case here failed on the code before it: a traceback (UnicodeDecodeError,
OverflowError, RecursionError, ValueError), a duplicate named by its position among the
contacts kept, `NaN` in the JSON output, or a minute to read 20 000 contacts."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from tawan.cli import INTERNAL_ERROR, main
from tawan.cli_contacts import ROUTE_EXIT_STATUS
from tawan.contact_files import load_plan
from tawan.contacts_commands import NO_ROUTE
from tawan.core.contact_import import parse_hdtn_json, parse_ion, parse_native_toml
from tawan.core.contacts import ContactPlanError

NATIVE_HEAD = 'format = "tawan-contacts/1"\n'
NATIVE_CONTACT = '[[contacts]]\nstart = 0\nend = {end}\nfrom = "a"\nto = "b"\nrate_bps = 8\n'
NODE_RANGE = "(1 to 18446744073709551615)"
BIG = "1" + "0" * 400  # 10**400: no float holds it


def hdtn(**fields: object) -> str:
    item: dict[str, object] = {"source": 1, "dest": 2, "startTime": 0, "endTime": 10}
    item |= {"rateBitsPerSec": 8, **fields}
    return json.dumps({"contacts": [item]})


def refused(parse: object, text: str) -> str:
    assert callable(parse)
    with pytest.raises(ContactPlanError) as caught:
        parse(text)
    return str(caught.value)


def shortened(message: str) -> str:
    """`message`, up to the "..." where it quotes a long value cut short (under 100
    characters of it: the message stays one readable line)."""
    head, cut, tail = message.partition("...")
    assert len(tail) < 100
    return head[: head.index("found ") + 16] if cut else message


def route_cli(
    capsys: pytest.CaptureFixture[str], plan: Path, *options: str
) -> tuple[int, str, str]:
    argv = ["contacts", "route", str(plan), "--from", "1", "--to", "2", "--size", "1"]
    status = main([*argv, *options])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# ---------------------------------------------------------------------------- 1. speed


def big_ion_plan(count: int) -> str:
    """`count` contacts and as many ranges among 50 nodes, each contact under one range."""
    lines = []
    for i in range(count):
        one, other = 1 + i % 50, 1 + (i * 7 + 1) % 50
        other = other if other != one else one % 50 + 1
        lines.append(f"a contact +{i} +{i + 10} {one} {other} 1000")
        low, high = sorted((one, other))
        lines.append(f"a range +{i} +{i + 10} {low} {high} {i % 7}")
    return "\n".join(lines) + "\n"


def test_a_plan_of_20k_contacts_and_20k_ranges_is_read_in_seconds() -> None:
    text = big_ion_plan(20_000)
    began = time.perf_counter()
    p = parse_ion(text)
    took = time.perf_counter() - began
    assert len(p.contacts) == 20_000
    assert p.contacts[7].owlt_s == 0  # i = 7: its own range says 7 % 7
    assert p.contacts[8].owlt_s == 1  # only its own range overlaps it (i + 1 starts at i + 1)
    assert took < 10, f"{took:.1f} s (about 90 s when every contact scanned every range)"


def brute_owlt(text: str, default: float) -> list[float]:
    """The owlt of each contact by the rule in ionrc(5) as parse_ion documents it, by
    scanning every range for every contact (what the code did before its index)."""
    contacts: list[tuple[float, ...]] = []
    ranges: list[tuple[float, ...]] = []
    for line in text.splitlines():
        words = line.split()
        numbers = (float(words[2][1:]), float(words[3][1:]), int(words[4]), int(words[5]))
        (contacts if words[1] == "contact" else ranges).append((*numbers, float(words[6])))

    def over(c: tuple[float, ...], one: float, other: float) -> list[float]:
        return [r[4] for r in ranges if r[2:4] == (one, other) and r[0] < c[1] and c[0] < r[1]]

    found = []
    for c in contacts:
        own = over(c, c[2], c[3])
        if not own and c[3] < c[2]:
            own = over(c, c[3], c[2])
        found.append(max(own, default=default))
    return found


def test_the_range_index_gives_the_owlt_a_scan_of_every_range_gives() -> None:
    rng = random.Random(7)
    for _ in range(500):
        lines, seen = [], set()
        for _ in range(rng.randint(1, 12)):
            one = rng.randint(1, 3)
            other = rng.choice([n for n in (1, 2, 3) if n != one])
            start = rng.randint(0, 30)
            end = start + rng.randint(1, 20)
            if rng.random() < 0.5 and (start, end, one, other) not in seen:
                seen.add((start, end, one, other))
                lines.append(f"a contact +{start} +{end} {one} {other} 10")
            else:
                lines.append(f"a range +{start} +{end} {one} {other} {rng.randint(0, 5)}")
        text = "\n".join(lines)
        expected = brute_owlt(text, default=9.0)
        assert [c.owlt_s for c in parse_ion(text, default_owlt_s=9.0).contacts] == expected


# ---------------------------------------------------------------------------- 2. not UTF-8


def test_a_plan_not_in_utf8_is_named_with_the_byte_offset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "latin1.rc"
    plan.write_bytes(b"a contact +0 +10 1 2 100\n# caf\xe9\n")
    with pytest.raises(ContactPlanError) as caught:
        load_plan(plan)
    assert str(caught.value) == (
        f"{plan}: expected UTF-8 text, found byte 0xe9 (invalid continuation byte) "
        "at byte offset 30 (line 2)"
    )
    status, out, err = route_cli(capsys, plan)
    assert (status, out) == (2, "")
    assert err == f"tawan: error: {caught.value}\n"


def test_a_byte_order_mark_does_not_hide_the_first_line(tmp_path: Path) -> None:
    # Read with it, the first ION line began "\ufeffa contact", not a command: it was lost.
    plan = tmp_path / "bom.rc"
    plan.write_bytes(b"\xef\xbb\xbfa contact +0 +10 1 2 100\n")
    assert len(load_plan(plan).contacts) == 1
    plan.write_bytes(b"\xef\xbb\xbfa contact +0 +10 1 2 100\n# caf\xe9\n")
    with pytest.raises(ContactPlanError, match=r"found byte 0xe9 .* at byte offset 33 \(line 2\)"):
        load_plan(plan)


# ---------------------------------------------------------------------------- 3. numbers


@pytest.mark.parametrize(
    ("parse", "text", "named"),
    [
        (parse_hdtn_json, hdtn(endTime=10**400),
         "contacts[0]: endTime: expected a finite number, found an integer of 401 digits"),
        (parse_hdtn_json, hdtn(owlt=10**400) + " ",
         "contacts[0]: owlt: expected a finite number, found an integer of 401 digits"),
        (parse_hdtn_json, hdtn(endTime=1).replace('"endTime": 1', '"endTime": 1e400'),
         "contacts[0]: endTime: expected a finite number, found 1e400"),
        (parse_hdtn_json, hdtn(rateBitsPerSec="1e400"),
         "contacts[0]: rateBitsPerSec: expected a finite number, found '1e400'"),
        (parse_native_toml, NATIVE_HEAD + NATIVE_CONTACT.format(end=BIG),
         "contacts[0]: end: expected a finite number, found an integer of 401 digits"),
        (parse_ion, f"a contact +0 +10 1 2 {BIG}\n",
         "line 1: a contact: RATE: expected a finite number, found '100000000"),
        (parse_ion, "@ +1e308\na contact +0 +1e308 1 2 10\n",
         "line 2: time: expected a finite time, found inf"),
    ],
)  # fmt: skip
def test_a_number_no_float_holds_names_its_field(parse: object, text: str, named: str) -> None:
    assert shortened(refused(parse, text)) == named


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--size", str(10**400)], f"--size: expected 0 to {2**53} bytes, found {10**400}"),
        (["--size", "-1"], f"--size: expected 0 to {2**53} bytes, found -1"),
        (["--at", "nan"], "--at: expected a finite number of seconds, found nan"),
        (["--at", "inf"], "--at: expected a finite number of seconds, found inf"),
        (["--at=-inf"], "--at: expected a finite number of seconds, found -inf"),
        (["--epoch", "nan"], "--epoch: expected a finite number of seconds, found nan"),
        (["--unlimited-rate", "inf"], "--unlimited-rate: expected a finite rate above 0, "
         "found inf"),
    ],
)  # fmt: skip
def test_a_bad_option_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], named: str
) -> None:
    plan = tmp_path / "plan.rc"
    plan.write_text("a contact +0 +10 1 2 100\n", encoding="utf-8")
    status, out, err = route_cli(capsys, plan, *options)
    assert (status, out, err) == (2, "", f"tawan: error: {named}\n")


# ---------------------------------------------------------------------------- 4. nesting


@pytest.mark.parametrize(
    ("name", "text", "named"),
    [
        ("deep.json", "[" * 100_000, "JSON: expected a valid document, found arrays or "
         "objects nested too deeply to read"),
        ("deep.json", '{"contacts": ' + '{"a": ' * 100_000, "JSON: expected a valid "
         "document, found arrays or objects nested too deeply to read"),
        ("arrays.toml", NATIVE_HEAD + "x = " + "[" * 5000 + "]" * 5000 + "\n", "TOML: "
         "expected a valid document, found arrays or tables nested too deeply to read"),
        ("tables.toml", NATIVE_HEAD + "x = " + "{a = " * 5000 + "1" + "}" * 5000 + "\n",
         "TOML: expected a valid document, found arrays or tables nested too deeply to read"),
    ],
)  # fmt: skip
def test_a_plan_nested_too_deeply_names_the_file(
    tmp_path: Path, name: str, text: str, named: str
) -> None:
    plan = tmp_path / name
    plan.write_text(text, encoding="utf-8")
    with pytest.raises(ContactPlanError) as caught:
        load_plan(plan)
    assert str(caught.value) == f"{plan}: {named}"


# ---------------------------------------------------------------------------- 5. digits


@pytest.mark.parametrize(
    ("parse", "text", "named"),
    [
        (parse_ion, "a contact +0 +10 \u00b2 2 100\n",
         f"line 1: FROM: expected a node number {NODE_RANGE}, found '\u00b2'"),
        (parse_ion, "a range +0 +10 1 \u0662 1\n",
         f"line 1: OTHER: expected a node number {NODE_RANGE}, found '\u0662'"),
        (parse_ion, f"a contact +0 +10 1 {2**64} 100\n",
         f"line 1: TO: expected a node number {NODE_RANGE}, found '{2**64}'"),
        (parse_ion, "a contact +0 +10 " + "1" * 5000 + " 2 100\n",
         f"line 1: FROM: expected a node number {NODE_RANGE}, found '111111111"),
        (parse_hdtn_json, hdtn(source="\u00b2"),
         f"contacts[0]: source: expected a node number {NODE_RANGE}, found '\u00b2'"),
        (parse_hdtn_json, hdtn(dest=2**64),
         f"contacts[0]: dest: expected a node number {NODE_RANGE}, found {2**64}"),
        (parse_hdtn_json, hdtn(dest=10**300),
         f"contacts[0]: dest: expected a node number {NODE_RANGE}, found an integer of 301 "
         "digits"),
        (parse_hdtn_json, hdtn(dest="1" * 5000),
         f"contacts[0]: dest: expected a node number {NODE_RANGE}, found '111111111"),
        (parse_hdtn_json, hdtn(endTime=1).replace('"endTime": 1', '"endTime": 1' + "0" * 5000),
         "contacts[0]: endTime: expected a finite number, found an integer of 5001 digits"),
        (parse_native_toml, NATIVE_HEAD + NATIVE_CONTACT.format(end="1" + "0" * 5000),
         "TOML: expected a valid document, found an integer too long to read"),
    ],
)  # fmt: skip
def test_digits_int_cannot_read_name_their_field(parse: object, text: str, named: str) -> None:
    assert shortened(refused(parse, text)) == named


# ---------------------------------------------------------------------------- 6. where


def test_an_ion_duplicate_is_named_by_its_line_in_the_file() -> None:
    text = "# plan\na contact +0 +10 1 2 100\na contact -1 -1 1 2 100\na contact +0 +10 1 2 100\n"
    assert refused(parse_ion, text) == (
        "line 4: expected a contact not already in the plan, found a copy of line 2"
    )


@pytest.mark.parametrize("separator", ["\f", "\x1c", "\x85", "\u2028"])
def test_an_ion_line_is_numbered_as_an_editor_numbers_it(separator: str) -> None:
    # A form feed (or another character str.splitlines breaks at) inside line 1, or a CRLF
    # file: the bad contact is still on line 2.
    text = f"# plan{separator} page two\r\na contact +0 +10 1 2 zero\n"
    assert refused(parse_ion, text).startswith("line 2: a contact: RATE: expected a number")


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_an_ion_file_with_any_line_ending_is_read_whole(tmp_path: Path, end: str) -> None:
    # A lone "\r" ends a line too (files from old Macs): read as one line, a plan opening
    # with a comment would lose every contact without a word.
    plan = tmp_path / "plan.rc"
    plan.write_bytes(end.join(["## begin ionadmin", "a contact +0 +10 1 2 100",
                               "a contact +20 +30 2 3 100", ""]).encode())  # fmt: skip
    assert len(load_plan(plan).contacts) == 2


def test_an_hdtn_duplicate_is_named_by_its_index_in_the_file() -> None:
    """contacts[1] is an empty window left out: the copy is contacts[2], not the plan's
    contact 1."""
    item = {"source": 1, "dest": 2, "startTime": 0, "endTime": 10, "rateBitsPerSec": 8}
    empty = {**item, "endTime": -5}
    text = json.dumps({"contacts": [item, empty, item]})
    with pytest.raises(ContactPlanError) as caught:
        parse_hdtn_json(text, skip_empty_windows=True)
    assert str(caught.value) == (
        "contacts[2]: expected a contact not already in the plan, found a copy of contacts[0]"
    )


def test_an_internal_error_exits_3_not_1_which_means_no_route(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.rc"
    plan.write_text("a contact +0 +10 1 2 100\n", encoding="utf-8")
    assert route_cli(capsys, plan, "--at", "10")[0] == NO_ROUTE == 1

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr("tawan.contacts_commands.routes", broken)
    status, out, err = route_cli(capsys, plan)
    assert (status, out) == (INTERNAL_ERROR, "")
    assert INTERNAL_ERROR not in (0, NO_ROUTE, 2)
    assert "RuntimeError: a bug" in err and "tawan: internal error" in err


def test_the_exit_statuses_are_documented_in_help_and_docs() -> None:
    for status in ("0 a route was found", "1 no route", "2 the plan or an option is wrong",
                   f"{INTERNAL_ERROR} an internal error"):  # fmt: skip
        assert status in ROUTE_EXIT_STATUS
    docs = (Path(__file__).parent.parent / "docs" / "contacts.md").read_text(encoding="utf-8")
    for row in ("| 0 | a route was found", "| 1 | no route", "| 2 | the plan is broken",
                f"| {INTERNAL_ERROR} | an internal error"):  # fmt: skip
        assert row in docs
