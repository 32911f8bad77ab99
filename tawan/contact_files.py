"""Contact plan files: the format chosen by the file's suffix, the text parsed in the core.

.json is HDTN's form, or ours when it says `format`; .toml is ours; .rc, .ionrc and .txt
are ionadmin command files (docs/contacts.md).
"""

from __future__ import annotations

from codecs import BOM_UTF8
from collections.abc import Mapping
from pathlib import Path

from tawan.core.contact_import import parse_ion, parse_json_plan, parse_native_toml
from tawan.core.contacts import ContactPlan, ContactPlanError

ION_SUFFIXES = (".rc", ".ionrc", ".txt")


def load_plan(
    path: str | Path,
    *,
    names: Mapping[int, str] | None = None,
    epoch: float = 0.0,
    unlimited_rate_bps: float | None = None,
    skip_empty_windows: bool = False,
) -> ContactPlan:
    """The plan in `path`; a ContactPlanError names the file (and says where text that is not
    UTF-8 starts), an OSError if it can't be read."""
    where = Path(path)
    suffix = where.suffix.lower()
    if suffix not in (".json", ".toml", *ION_SUFFIXES):
        raise ContactPlanError(
            f"{where}: expected a .json, .toml, {', '.join(ION_SUFFIXES)} file, "
            f"found {suffix or 'no suffix'!r}"
        )
    text = _utf8_text(where)
    try:
        if suffix == ".json":
            return parse_json_plan(
                text,
                names=names,
                epoch=epoch,
                unlimited_rate_bps=unlimited_rate_bps,
                skip_empty_windows=skip_empty_windows,
            )
        if suffix == ".toml":
            return parse_native_toml(text)
        return parse_ion(text, names=names, epoch=epoch)
    except ContactPlanError as exc:
        raise ContactPlanError(f"{where}: {exc}") from None


def _utf8_text(where: Path) -> str:
    """The file's text; a byte-order mark, which some editors write first, is not part of
    it (read as text, it would make the first line of an ION plan an unknown command)."""
    data = where.read_bytes()
    skip = len(BOM_UTF8) if data.startswith(BOM_UTF8) else 0
    try:
        return data[skip:].decode("utf-8")
    except UnicodeDecodeError as exc:
        start = skip + exc.start  # in the file, the mark counted
        line = data.count(b"\n", 0, start) + 1
        raise ContactPlanError(
            f"{where}: expected UTF-8 text, found byte 0x{data[start]:02x} "
            f"({exc.reason}) at byte offset {start} (line {line})"
        ) from None
