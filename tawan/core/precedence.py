"""Message precedence: the STANAG 4406 levels, lowest first."""

from __future__ import annotations

import enum


class Precedence(enum.IntEnum):
    """Higher values are served first and may evict lower ones from a full store, the same
    at every level (OVERRIDE over FLASH as FLASH over IMMEDIATE); nothing evicts OVERRIDE."""

    ROUTINE = 0
    PRIORITY = 1
    IMMEDIATE = 2
    FLASH = 3
    OVERRIDE = 4

    @classmethod
    def parse(cls, text: str) -> Precedence:
        """`flash`, `FLASH` or `3`; a clear ValueError otherwise."""
        name = text.strip().upper()
        if name in cls.__members__:
            return cls[name]
        if name.isdigit() and int(name) in cls._value2member_map_:
            return cls(int(name))
        choices = ", ".join(m.name.lower() for m in cls)
        raise ValueError(f"precedence {text!r} is not one of: {choices}")
