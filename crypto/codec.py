"""Strict msgpack decoding of untrusted bytes into checked Python values.

Every decoder in this package goes through `unpack` and a `Fields` reader, so malformed
input raises only the caller's chosen `CryptoError` subclass, never a msgpack or type error.
"""

from __future__ import annotations

from typing import NoReturn

import msgpack

from crypto.errors import CryptoError


def pack(obj: object) -> bytes:
    """Canonical msgpack: bytes as bin, str as str, no maps are used by this package."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes, error: type[CryptoError], source: str) -> object:
    """Decode one msgpack object from `data`; lengths are bounded by the input size."""
    size = len(data)
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_bin_len=size,
            max_str_len=size,
            max_array_len=size,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise error(f"{source}: not a valid msgpack document ({type(exc).__name__})") from None


class Fields:
    """Type-checked access to decoded values; every failure raises `error` naming `source`."""

    def __init__(self, error: type[CryptoError], source: str) -> None:
        self.error = error
        self.source = source

    def fail(self, what: str, expected: str, found: object) -> NoReturn:
        shown = repr(found)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        raise self.error(f"{self.source}: {what}: expected {expected}, found {shown}")

    def array(self, value: object, what: str, length: int | None = None) -> list[object]:
        if type(value) is not list:
            self.fail(what, "an array", type(value).__name__)
        if length is not None and len(value) != length:
            self.fail(what, f"an array of {length} items", f"{len(value)} items")
        return value

    def binary(self, value: object, what: str, length: int) -> bytes:
        if type(value) is not bytes:
            self.fail(what, f"{length} bytes", type(value).__name__)
        if len(value) != length:
            self.fail(what, f"{length} bytes", f"{len(value)} bytes")
        return value

    def integer(self, value: object, what: str, low: int, high: int) -> int:
        if type(value) is not int:
            self.fail(what, "an integer", type(value).__name__)
        if not low <= value <= high:
            self.fail(what, f"an integer in {low}..{high}", value)
        return value

    def text(self, value: object, what: str) -> str:
        if type(value) is not str:
            self.fail(what, "a string", type(value).__name__)
        return value

    def boolean(self, value: object, what: str) -> bool:
        if type(value) is not bool:
            self.fail(what, "true or false", type(value).__name__)
        return value

    def header(self, value: object, magic: bytes, version: int, length: int) -> list[object]:
        """The outer array of a file: [magic, version, ...] with `length` items in all."""
        items = self.array(value, "document")
        if len(items) < 2 or items[0] != magic:
            self.fail("document", f"an array starting with {magic!r}", items[:1])
        if items[1] != version or type(items[1]) is not int:
            self.fail("format version", str(version), items[1])
        return self.array(items, "document", length)
