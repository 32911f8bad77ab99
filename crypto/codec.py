"""Strict msgpack decoding of untrusted bytes into checked Python values.

Every decoder in this package goes through `unpack` and a `Fields` reader, so malformed
input raises only the caller's chosen `CryptoError` subclass, never a msgpack or type error.
"""

from __future__ import annotations

from typing import NoReturn

import msgpack

from crypto.errors import CryptoError

_MAX_LENGTH = 0xFFFF_FFFF  # the largest length msgpack can declare


def pack(obj: object) -> bytes:
    """Canonical msgpack: bytes as bin, str as str, no maps are used by this package."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(
    data: bytes, error: type[CryptoError], source: str, kind: str = "msgpack document"
) -> object:
    """Decode one msgpack object from `data`. Data that ends early is "truncated", as a
    file cut short in a copy is: a bytes or text field running past the end says so too.
    Array lengths are bounded by the input size (an array is allocated when declared)."""
    size = len(data)
    unpacker = msgpack.Unpacker(
        raw=False,
        use_list=True,
        strict_map_key=True,
        max_buffer_size=max(size, 1),
        max_bin_len=_MAX_LENGTH,  # only ever sliced from the data: no allocation to bound
        max_str_len=_MAX_LENGTH,
        max_array_len=size,
        max_map_len=0,
        max_ext_len=0,
    )
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except msgpack.OutOfData:
        raise error(
            f"{source}: truncated: this {kind} ends after {size} bytes, before its last field"
        ) from None
    except Exception as exc:  # msgpack raises several unrelated types on bad input
        raise error(f"{source}: not a valid {kind} ({type(exc).__name__})") from None
    extra = size - unpacker.tell()
    if extra:
        raise error(f"{source}: not a valid {kind} ({extra} bytes after its end)")
    return value


def unpack_file(
    data: bytes, error: type[CryptoError], source: str, magic: bytes, kind: str
) -> object:
    """Decode a file that begins ``[magic, ...``: other data is "not a <kind>", a file cut
    short is "truncated", each said before any field is read."""
    if not data:
        raise error(f"{source}: empty: expected a {kind}, found 0 bytes")
    start = _array_header_bytes(data[0])
    header = pack(magic)
    found = data[start : start + len(header)] if start is not None else b""
    if start is not None and len(found) < len(header) and header.startswith(found):
        raise error(
            f"{source}: truncated: this {kind} ends after {len(data)} bytes, in its header"
        )
    if start is None or found != header:
        raise error(
            f"{source}: not a {kind}: expected it to begin with {magic!r}, found {_begins(data)}"
        )
    return unpack(data, error, source, kind)


def _array_header_bytes(first: int) -> int | None:
    """Bytes of a msgpack array header that starts with byte `first`; None: not an array."""
    if 0x90 <= first <= 0x9F:
        return 1
    return {0xDC: 3, 0xDD: 5}.get(first)


def _begins(data: bytes) -> str:
    """What data that is not the file expected begins with: another file's magic, if any."""
    unpacker = msgpack.Unpacker(max_buffer_size=len(data), max_bin_len=64, max_str_len=64)
    unpacker.feed(data)
    try:
        unpacker.read_array_header()
        first = unpacker.unpack()
    except Exception:  # not msgpack at all: show the bytes
        first = None
    if isinstance(first, bytes) and first.startswith(b"tawan-"):
        return f"{first!r} (another kind of tawan file)"
    return repr(data[:16])


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
