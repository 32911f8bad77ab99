"""Contact plans from text: ION's ionadmin commands, HDTN's JSON, and our own form.

Text in, `ContactPlan` out, no files opened (`tawan.contact_files.load_plan` reads them).
All times end up in seconds on the plan's clock, whose zero is `epoch` (a POSIX UTC time):

- ION (ionrc(5)): `a contact START STOP FROM TO RATE [CONFIDENCE]` and
  `a range START STOP ONE OTHER DISTANCE`. Times are `+SECONDS` after the reference time
  (which starts at plan zero and moves with `@ TIME`) or absolute `yyyy/mm/dd-hh:mm:ss` UTC.
  RATE is in bytes per second (ION's unit; multiplied by 8 here); DISTANCE is in light
  seconds, the contact's owlt. Registration (start -1) and hypothetical (stop 0) contacts
  are windows of nothing and are skipped; so are comments and every other command.
- HDTN: `{"contacts": [{"contact", "source", "dest", "startTime", "endTime",
  "rateBitsPerSec", "owlt"}]}`, times in seconds after the router starts (or unix times:
  then pass `epoch`). As HDTN does, a missing owlt is 0; its rate 0 means "unlimited",
  which has no transmission time to count, so it is refused unless `unlimited_rate_bps`
  says what to count instead.
- Ours (`format = "tawan-contacts/1"`, TOML or JSON): a list `contacts` of tables with
  start, end, from, to, rate_bps, and optional owlt_s, confidence, bearer.

ION and HDTN name nodes by number; `names` maps numbers to our node names (without it, the
number as text is the name). Errors name the line (ION) or the contact's index, the field,
what was expected and what was found. Node numbers are 1 to 2**64 - 1 (ION's and HDTN's
unsigned 64-bit numbers) in ASCII digits; numbers must be finite as floats; a document
nested too deeply to read is refused, never a Python error.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import reprlib
import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass

from tawan.core.contacts import Contact, ContactPlan, ContactPlanError

NATIVE_FORMAT = "tawan-contacts/1"
_ION_ABSOLUTE = "%Y/%m/%d-%H:%M:%S"
_LINE_END = re.compile(r"\r\n|\r|\n")
_NODE_DIGITS = re.compile(r"[0-9]{1,20}")  # ASCII only: "²".isdigit(), but int("²") fails
MAX_NODE = 2**64 - 1
_NODE_EXPECTED = f"a node number (1 to {MAX_NODE})"
_JSON_MAX_DIGITS = 400
"""A JSON integer longer than this is kept as its length only: no finite float is that long,
and Python refuses to read one of more than 4300 digits."""


# ---------------------------------------------------------------------------- ION


@dataclass(frozen=True, slots=True)
class _IonLine:
    number: int
    start: float
    end: float
    one: int
    other: int
    value: float  # a contact's rate in bytes/s, a range's distance in light seconds
    confidence: float = 1.0


def parse_ion(
    text: str,
    *,
    names: Mapping[int, str] | None = None,
    epoch: float = 0.0,
    default_owlt_s: float = 0.0,
) -> ContactPlan:
    """The scheduled contacts of an ionadmin command file.

    Each contact's owlt is the largest distance of the ranges for its direction that
    overlap its window (the worst case, when a range changes within a contact); a contact
    no range covers gets `default_owlt_s`. A range declared from the lower node number to
    the higher one counts for the reverse direction too, unless ranges are declared for
    that direction themselves (ionrc(5)); one declared from higher to lower counts for that
    direction only."""
    contacts: list[_IonLine] = []
    ranges: dict[tuple[int, int], list[_IonLine]] = {}
    reference = 0.0
    # Lines as an editor counts them: ended by "\r\n", "\n" or a lone "\r" (an old
    # Mac's), not by the form feeds, \x1c-\x1e, \x85 and \u2028 str.splitlines also takes.
    for number, raw in enumerate(_LINE_END.split(text), start=1):
        words = raw.split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "@" and len(words) == 2:
            reference = _ion_time(words[1], reference, epoch, number)
        elif words[:2] == ["a", "contact"]:
            found = _ion_contact(words, reference, epoch, number)
            if found is not None:
                contacts.append(found)
        elif words[:2] == ["a", "range"]:
            found_range = _ion_range(words, reference, epoch, number)
            ranges.setdefault((found_range.one, found_range.other), []).append(found_range)
    by_pair = {pair: _Ranges.of(lines) for pair, lines in ranges.items()}
    built = []
    for line in contacts:
        where = f"line {line.number}"
        owlt = _owlt_for(line, by_pair, default_owlt_s)
        sender = _name(line.one, names, f"{where}: from")
        receiver = _name(line.other, names, f"{where}: to")
        contact = _contact(
            where, line.start, line.end, sender, receiver, line.value * 8, owlt, line.confidence
        )
        built.append((where, contact))
    return _plan(built)


def _ion_contact(words: list[str], reference: float, epoch: float, number: int) -> _IonLine | None:
    where = f"line {number}: a contact"
    if len(words) not in (7, 8):
        raise ContactPlanError(
            f"{where}: expected START STOP FROM TO RATE [CONFIDENCE], "
            f"found {_shown(' '.join(words[2:]))}"
        )
    if words[2] == "-1" or words[3] == "0":
        return None  # registration or hypothetical: no scheduled window to route over
    start = _ion_time(words[2], reference, epoch, number)
    end = _ion_time(words[3], reference, epoch, number)
    one, other = _node(words[4], number, "FROM"), _node(words[5], number, "TO")
    rate = _number(words[6], f"{where}: RATE")
    if rate <= 0:
        raise ContactPlanError(
            f"{where}: RATE: expected bytes/s above 0, found {_shown(words[6])}"
        )
    confidence = _number(words[7], f"{where}: CONFIDENCE") if len(words) == 8 else 1.0
    return _IonLine(number, start, end, one, other, rate, confidence)


def _ion_range(words: list[str], reference: float, epoch: float, number: int) -> _IonLine:
    where = f"line {number}: a range"
    if len(words) != 7:
        raise ContactPlanError(
            f"{where}: expected START STOP ONE OTHER DISTANCE, found {_shown(' '.join(words[2:]))}"
        )
    start = _ion_time(words[2], reference, epoch, number)
    end = _ion_time(words[3], reference, epoch, number)
    one, other = _node(words[4], number, "ONE"), _node(words[5], number, "OTHER")
    distance = _number(words[6], f"{where}: DISTANCE (light seconds)")
    if not 0 <= distance < math.inf:
        raise ContactPlanError(f"{where}: DISTANCE: expected 0 or more, found {_shown(words[6])}")
    if not end > start:
        raise ContactPlanError(f"{where}: STOP: expected after START, found {_shown(words[3])}")
    return _IonLine(number, start, end, one, other, distance)


def _ion_time(word: str, reference: float, epoch: float, number: int) -> float:
    """Seconds on the plan clock: +S after the reference time, or an absolute UTC time."""
    if word.startswith("+"):
        when = reference + _number(word[1:], f"line {number}: time")
    else:
        when = _ion_absolute(word, number) - epoch
    if not math.isfinite(when):  # two finite times can add up past the largest float
        raise ContactPlanError(f"line {number}: time: expected a finite time, found {when}")
    return when


def _ion_absolute(word: str, number: int) -> float:
    try:
        when = datetime.datetime.strptime(word, _ION_ABSOLUTE).replace(tzinfo=datetime.UTC)
    except ValueError:
        raise ContactPlanError(
            f"line {number}: time: expected +SECONDS or yyyy/mm/dd-hh:mm:ss, found {_shown(word)}"
        ) from None
    return when.timestamp()


@dataclass(frozen=True, slots=True)
class _Ranges:
    """One direction's ranges sorted by start; `reach[i]` is the latest end among the first
    i + 1, so the ranges over a window are found by bisection, not by scanning them all."""

    starts: tuple[float, ...]
    reach: tuple[float, ...]
    lines: tuple[_IonLine, ...]

    @classmethod
    def of(cls, lines: list[_IonLine]) -> _Ranges:
        ordered = sorted(lines, key=lambda r: r.start)
        reach, latest = [], -math.inf
        for r in ordered:
            latest = max(latest, r.end)
            reach.append(latest)
        return cls(tuple(r.start for r in ordered), tuple(reach), tuple(ordered))

    def worst_over(self, start: float, end: float) -> float | None:
        """The largest distance of the ranges overlapping [start, end) (r.start < end and
        start < r.end), or None; of equal ones the first in the file (0.0 and -0.0)."""
        first = bisect_right(self.reach, start)  # the ranges before it all end by `start`
        last = bisect_left(self.starts, end)  # those from it on all start at `end` or later
        over = [r for r in self.lines[first:last] if start < r.end]
        return max(over, key=lambda r: (r.value, -r.number)).value if over else None


def _owlt_for(
    contact: _IonLine, ranges: Mapping[tuple[int, int], _Ranges], default: float
) -> float:
    def worst(one: int, other: int) -> float | None:
        found = ranges.get((one, other))
        return None if found is None else found.worst_over(contact.start, contact.end)

    own = worst(contact.one, contact.other)
    if own is None and contact.other < contact.one:
        own = worst(contact.other, contact.one)  # implied by the lower-to-higher range
    return default if own is None else own


def _node(word: str, number: int, what: str) -> int:
    found = _node_number(word)
    if found is None:
        raise ContactPlanError(
            f"line {number}: {what}: expected {_NODE_EXPECTED}, found {_shown(word)}"
        )
    return found


def _node_number(word: str) -> int | None:
    if _NODE_DIGITS.fullmatch(word) is None:
        return None
    value = int(word)
    return value if 1 <= value <= MAX_NODE else None


# ---------------------------------------------------------------------------- HDTN


def parse_hdtn_json(
    text: str,
    *,
    names: Mapping[int, str] | None = None,
    epoch: float = 0.0,
    unlimited_rate_bps: float | None = None,
    skip_empty_windows: bool = False,
) -> ContactPlan:
    """The contacts of an HDTN contact plan (times minus `epoch`; see the module doc).

    Numbers may be quoted ("1000000000"): HDTN's reader takes every value as text. Some of
    HDTN's generated plans hold windows that end at or before they start; they are refused
    (naming the first) unless `skip_empty_windows` leaves them out."""
    return _hdtn_plan(
        _json(text),
        names=names,
        epoch=epoch,
        unlimited_rate_bps=unlimited_rate_bps,
        skip_empty_windows=skip_empty_windows,
    )


def _hdtn_plan(
    data: object,
    *,
    names: Mapping[int, str] | None,
    epoch: float,
    unlimited_rate_bps: float | None,
    skip_empty_windows: bool,
) -> ContactPlan:
    items = data.get("contacts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ContactPlanError(
            f'contacts: expected an object with a "contacts" list, found {_kind(data)}'
        )
    built = []
    for index, item in enumerate(items):
        where = f"contacts[{index}]"
        if not isinstance(item, dict):
            raise ContactPlanError(f"{where}: expected an object, found {_kind(item)}")
        # Fields read in the order HDTN's files list them, so the first error is reported.
        sender = _name(_hdtn_node(item, "source", where), names, f"{where}: source")
        receiver = _name(_hdtn_node(item, "dest", where), names, f"{where}: dest")
        start = _hdtn_number(item, "startTime", where) - epoch
        end = _hdtn_number(item, "endTime", where) - epoch
        rate = _hdtn_rate(item, where, unlimited_rate_bps)
        owlt = _hdtn_number(item, "owlt", where, default=0.0)
        if skip_empty_windows and end <= start:
            continue
        built.append((where, _contact(where, start, end, sender, receiver, rate, owlt)))
    return _plan(built)


def _hdtn_rate(item: Mapping[str, object], where: str, unlimited: float | None) -> float:
    if "rateBitsPerSec" not in item and "rate" in item:
        return _hdtn_number(item, "rate", where) * 1e6  # HDTN's older key, in Mbit/s
    rate = _hdtn_number(item, "rateBitsPerSec", where)
    if rate == 0:
        if unlimited is None:
            raise ContactPlanError(
                f"{where}: rateBitsPerSec: expected a rate above 0 (0 is HDTN's "
                f"'unlimited': give unlimited_rate_bps to route over it), found 0"
            )
        return unlimited
    return rate


def _hdtn_node(item: Mapping[str, object], key: str, where: str) -> int:
    value = item.get(key)
    number = _node_number(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_NODE:
        raise ContactPlanError(f"{where}: {key}: expected {_NODE_EXPECTED}, found {_shown(value)}")
    return number


def _hdtn_number(
    item: Mapping[str, object], key: str, where: str, *, default: float | None = None
) -> float:
    value = item.get(key)
    if isinstance(value, str):
        return _number(value, f"{where}: {key}")
    return _field(item, key, where, default=default)


# ---------------------------------------------------------------------------- ours

_NATIVE_KEYS = {"start", "end", "from", "to", "rate_bps", "owlt_s", "confidence", "bearer"}


def parse_native(data: object) -> ContactPlan:
    """A plan in our own form, already decoded from TOML or JSON."""
    if not isinstance(data, dict) or data.get("format") != NATIVE_FORMAT:
        found = data.get("format") if isinstance(data, dict) else _kind(data)
        raise ContactPlanError(f"format: expected {NATIVE_FORMAT!r}, found {_shown(found)}")
    items = data.get("contacts", [])
    if not isinstance(items, list):
        raise ContactPlanError(f"contacts: expected a list of tables, found {_kind(items)}")
    built = []
    for index, item in enumerate(items):
        where = f"contacts[{index}]"
        if not isinstance(item, dict):
            raise ContactPlanError(f"{where}: expected a table, found {_kind(item)}")
        unknown = sorted(set(item) - _NATIVE_KEYS)
        if unknown:
            raise ContactPlanError(
                f"{where}: {unknown[0]}: expected one of {sorted(_NATIVE_KEYS)}, found it"
            )
        bearer = item.get("bearer")
        if bearer is not None and not isinstance(bearer, str):
            raise ContactPlanError(f"{where}: bearer: expected text, found {_shown(bearer)}")
        contact = _contact(
            where,
            _field(item, "start", where),
            _field(item, "end", where),
            _text(item, "from", where),
            _text(item, "to", where),
            _field(item, "rate_bps", where),
            _field(item, "owlt_s", where, default=0.0),
            _field(item, "confidence", where, default=1.0),
            bearer,
        )
        built.append((where, contact))
    return _plan(built)


def parse_native_toml(text: str) -> ContactPlan:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ContactPlanError(f"TOML: expected a valid document, found an error: {exc}") from None
    except ValueError:  # tomllib reads integers with int(), which refuses 4300+ digits
        raise ContactPlanError(
            "TOML: expected a valid document, found an integer too long to read"
        ) from None
    except RecursionError:
        raise ContactPlanError(
            "TOML: expected a valid document, found arrays or tables nested too deeply to read"
        ) from None
    return parse_native(data)


def parse_json_plan(
    text: str,
    *,
    names: Mapping[int, str] | None = None,
    epoch: float = 0.0,
    unlimited_rate_bps: float | None = None,
    skip_empty_windows: bool = False,
) -> ContactPlan:
    """JSON of either kind: ours if it says `format`, HDTN's otherwise."""
    data = _json(text)
    if isinstance(data, dict) and "format" in data:
        return parse_native(data)
    return _hdtn_plan(
        data,
        names=names,
        epoch=epoch,
        unlimited_rate_bps=unlimited_rate_bps,
        skip_empty_windows=skip_empty_windows,
    )


def plan_to_native(plan: ContactPlan) -> dict[str, object]:
    """Our form of a plan (for TOML or JSON), which `parse_native` reads back as it was."""
    contacts: list[dict[str, object]] = []
    for c in plan.contacts:
        item: dict[str, object] = {"start": c.start, "end": c.end, "from": c.sender,
                                   "to": c.receiver, "rate_bps": c.rate_bps,
                                   "owlt_s": c.owlt_s, "confidence": c.confidence}  # fmt: skip
        if c.bearer is not None:
            item["bearer"] = c.bearer
        contacts.append(item)
    return {"format": NATIVE_FORMAT, "contacts": contacts}


# ---------------------------------------------------------------------------- shared


def _contact(
    where: str,
    start: float,
    end: float,
    sender: str,
    receiver: str,
    rate_bps: float,
    owlt_s: float,
    confidence: float = 1.0,
    bearer: str | None = None,
) -> Contact:
    try:
        return Contact(start, end, sender, receiver, rate_bps, owlt_s, confidence, bearer)
    except ContactPlanError as exc:
        raise ContactPlanError(f"{where}: {exc}") from None


def _plan(built: list[tuple[str, Contact]]) -> ContactPlan:
    """The plan of (where, contact) pairs; a duplicate is named by its line or index in the
    file (ContactPlan would name it by its position among the contacts kept)."""
    first_seen: dict[Contact, str] = {}
    for where, contact in built:
        first = first_seen.setdefault(contact, where)
        if first != where:
            raise ContactPlanError(
                f"{where}: expected a contact not already in the plan, found a copy of {first}"
            )
    return ContactPlan(tuple(contact for _, contact in built))


def _name(number: int, names: Mapping[int, str] | None, where: str) -> str:
    if names is None:
        return str(number)
    name = names.get(number)
    if name is None:
        raise ContactPlanError(f"{where}: expected a node number in names, found {number}")
    return name


def _number(word: str, where: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise ContactPlanError(f"{where}: expected a number, found {_shown(word)}") from None
    if not math.isfinite(value):
        raise ContactPlanError(f"{where}: expected a finite number, found {_shown(word)}")
    return value


def _field(
    item: Mapping[str, object], key: str, where: str, *, default: float | None = None
) -> float:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | _OutOfRange):
        found = _shown(value) if key in item else "nothing"
        raise ContactPlanError(f"{where}: {key}: expected a number, found {found}")
    number = _as_float(value)
    if not math.isfinite(number):
        raise ContactPlanError(f"{where}: {key}: expected a finite number, found {_shown(value)}")
    return number


def _as_float(value: int | float | _OutOfRange) -> float:
    if isinstance(value, _OutOfRange):
        return math.inf
    try:
        return float(value)
    except OverflowError:  # an integer past the largest float (about 1.8e308)
        return math.inf


def _text(item: Mapping[str, object], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise ContactPlanError(f"{where}: {key}: expected a node name, found {_shown(value)}")
    return value


def _json(text: str) -> object:
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float)
    except json.JSONDecodeError as exc:
        raise ContactPlanError(
            f"JSON: expected a valid document, found {exc.msg} at line {exc.lineno}"
        ) from None
    except RecursionError:
        raise ContactPlanError(
            "JSON: expected a valid document, found arrays or objects nested too deeply to read"
        ) from None


class _OutOfRange:
    """A JSON number no float holds (1e400, a 401-digit integer), kept as it is shown in the
    message that refuses it."""

    def __init__(self, shown: str) -> None:
        self.shown = shown

    def __repr__(self) -> str:
        return self.shown


def _json_int(text: str) -> int | _OutOfRange:
    digits = len(text.lstrip("-"))
    if digits > _JSON_MAX_DIGITS:
        return _OutOfRange(f"an integer of {digits} digits")
    return int(text)


def _json_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OutOfRange(_SHOWN.repr(text).strip("'"))


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 3


def _shown(value: object) -> str:
    """`value` for an error message: its repr, cut short, and a long integer by its length
    (repr() refuses one of more than 4300 digits)."""
    if isinstance(value, int) and value.bit_length() > 100:  # over 30 digits
        digits = str(len(str(abs(value)))) if value.bit_length() < 14_000 else "over 4000"
        return f"an integer of {digits} digits"
    return _SHOWN.repr(value)


def _kind(value: object) -> str:
    return type(value).__name__
