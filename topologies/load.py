"""Scenario files in and out: TOML text to a checked `Scenario`, and back.

Validation happens here, once: pydantic checks each key's type and bounds, then
`topologies.checks` checks what refers to what (link ends, net members, traffic selectors,
fault targets). Every problem is reported as a key path into the file
(``links[3].bearer``) with what was expected and what was found, so an engineer can fix a
scenario without reading a traceback.
"""

from __future__ import annotations

import enum
import re
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import tomli_w
from pydantic import ValidationError

from tawan.core.precedence import Precedence
from topologies.checks import cross_check
from topologies.scenario import Fault, Scenario

MAX_REPORTED = 5
"""Problems listed in one error; the rest are counted (the first few are what gets fixed)."""

_FAULT_KINDS = frozenset(
    get_args(model.model_fields["kind"].annotation)[0] for model in get_args(get_args(Fault)[0])
)


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    """Where in the file: ``links[3].bearer``; empty for the file as a whole."""
    text: str
    """What was expected and what was found."""


class ScenarioError(ValueError):
    """A scenario that cannot be used; names the file, the key path, expected and found."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.source = source
        self.problems = tuple(problems)
        self.path = self.problems[0].path
        shown = [_line(source, p) for p in self.problems[:MAX_REPORTED]]
        hidden = len(self.problems) - MAX_REPORTED
        if hidden > 0:
            shown.append(f"{source}: and {hidden} more problem{'s' * (hidden > 1)}")
        super().__init__("\n".join(shown))


def _line(source: str, problem: Problem) -> str:
    return (
        f"{source}: {problem.path}: {problem.text}"
        if problem.path
        else f"{source}: {problem.text}"
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario file; `ScenarioError` names what is wrong and where."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(
            path.name, [Problem("", f"expected UTF-8 text, found {exc.reason}")]
        ) from None
    return parse_scenario(text, path.name)


def parse_scenario(text: str, source: str) -> Scenario:
    """Check TOML `text` (`source` names it in errors) and build the scenario."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(source, [_syntax_problem(str(exc))]) from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ScenarioError(
            source, [Problem("", "expected TOML nested a few levels deep, found far deeper")]
        ) from None
    except ValueError as exc:  # an integer longer than Python converts (int_max_str_digits)
        raise ScenarioError(source, [_long_number_problem(text, exc)]) from None
    return scenario_from_data(data, source)


def scenario_from_data(data: Mapping[str, Any], source: str) -> Scenario:
    """Check already-parsed scenario data (TOML tables, a generator's dict) and build it."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        errors = _consequential(exc.errors())
        raise ScenarioError(source, [_pydantic_problem(e) for e in errors]) from None
    problems = [Problem(path, text) for path, text in cross_check(scenario)]
    if problems:
        raise ScenarioError(source, problems)
    return scenario


def dump_scenario(scenario: Scenario) -> str:
    """The scenario as TOML; `parse_scenario` of it gives an equal scenario.

    Sections come in file order ([run], then each [[nodes]], [[links]], ...), and keys left
    at their defaults are left out, so a dumped file reads like a written one."""
    data = _toml_ready(
        scenario.model_dump(mode="python", exclude_defaults=True, exclude_none=True)
    )
    run = _toml_ready(scenario.run.model_dump(mode="python", exclude_none=True))
    chunks = ["[run]\n" + _table(run)]
    for section in SECTIONS:
        chunks.extend(f"[[{section}]]\n" + _table(item) for item in data.get(section, ()))
    return "\n".join(chunks)


def _table(table: Mapping[str, Any]) -> str:
    """One table's keys, each on one line (tomli_w spreads an array over lines: a 500-node
    file would be thousands of lines of brackets)."""
    return "".join(f"{key} = {_value(value)}\n" for key, value in table.items())


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return tomli_w.dumps({"v": value}).removeprefix("v = ").rstrip("\n")


SECTIONS = ("nodes", "links", "nets", "traffic", "faults")


def _toml_ready(value: Any) -> Any:
    """Enums by name, tuples as arrays: what TOML can hold."""
    if isinstance(value, Precedence):
        return value.name
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {key: _toml_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_toml_ready(item) for item in value]
    return value


def _long_number_problem(text: str, exc: ValueError) -> Problem:
    limit = sys.get_int_max_str_digits()
    found = re.search(rf"[0-9_]{{{limit + 1},}}", text)
    if found is None:
        return Problem("", f"expected TOML numbers, found {exc}")
    line = text.count("\n", 0, found.start()) + 1
    digits = sum(c.isdigit() for c in found.group())
    return Problem(
        "", f"line {line}: expected an integer of at most {limit} digits, found {digits} digits"
    )


_AT_LINE = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _syntax_problem(message: str) -> Problem:
    found = _AT_LINE.search(message)
    if found is None:
        return Problem("", f"not valid TOML: {message}")
    text = message[: found.start()]
    return Problem("", f"line {found.group(1)}, column {found.group(2)}: not valid TOML: {text}")


def key_path(loc: Sequence[int | str]) -> str:
    """pydantic's ``('links', 3, 'bearer')`` as ``links[3].bearer``.

    The discriminator pydantic puts after a fault's index (``('faults', 0, 'jam', 'at_s')``)
    is not a key of the file and is dropped."""
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not (isinstance(previous, int) and item in _FAULT_KINDS and parts[:1] == ["faults"]):
            parts.append(f".{item}" if parts else item)
        previous = item
    return "".join(parts)


def _consequential(errors: Sequence[Any]) -> list[Any]:
    """Drop "too short" for a list whose short count comes from its invalid items."""
    locs = [tuple(e["loc"]) for e in errors]
    return [
        error
        for error, loc in zip(errors, locs, strict=True)
        if error["type"] != "too_short" or not any(o[: len(loc)] == loc and o != loc for o in locs)
    ]


_PRECEDENCES = [p.name for p in Precedence]


def _pydantic_problem(error: Mapping[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    if loc[-1:] == ("[key]",):  # a table's key that is wrong, not its value
        loc = loc[:-1]
    path = key_path(loc)
    kind = error["type"]
    found = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return Problem(path, "expected a value, found nothing (the key is required)")
    if kind == "extra_forbidden":
        return Problem(path, f"expected no such key, found {loc[-1]!r} (unknown key)")
    if kind == "union_tag_invalid":
        return Problem(
            f"{path}.kind", f"expected one of [{ctx['expected_tags']}], found {ctx['tag']!r}"
        )
    if kind == "union_tag_not_found":
        return Problem(
            f"{path}.kind", f"expected one of [{', '.join(sorted(_FAULT_KINDS))}], found nothing"
        )
    if (
        kind == "enum"
        and loc
        and (loc[-1] == "precedence" or loc[:3] == ("engine", "pace", "bearers"))
    ):
        return Problem(path, f"expected one of {_PRECEDENCES}, found {found!r}")
    if kind == "literal_error":
        return Problem(
            path, f"expected one of [{ctx['expected'].replace(' or ', ', ')}], found {found!r}"
        )
    message = str(error["msg"])
    message = re.sub(r"^(Input|Value|String) should (be|have) ", "expected ", message)
    message = re.sub(r"^Value error, ", "", message)
    if kind in ("too_short", "too_long"):
        message = message.split(" after validation")[0].replace("Tuple should have", "expected")
        return Problem(path, f"{message}, found {ctx.get('actual_length')}")
    return Problem(path, f"{message}, found {found!r}")
