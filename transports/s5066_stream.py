"""Splits a SIS byte stream into S_primitives, whatever the TCP chunking (no I/O here).

The Raw SIS Socket carries elements back to back with no other framing (Annex F.16), so
the only way back into step after garbage is the `90 EB 00` header: bytes before one are
skipped and counted, as is an element whose body does not decode (its size is trusted, so
the next element is still found). A size above `max_size` is taken for a false header in
garbage, not waited for: otherwise a stray `90 EB 00 FF FF` would swallow 64 KiB of good
primitives.
"""

from __future__ import annotations

from transports.s5066_codec import (
    HEADER,
    HEADER_BYTES,
    Primitive,
    SisDecodeError,
    decode_body,
)

DEFAULT_MAX_SIZE = 16384
"""Larger than any element a server sends: a 4096-byte U_PDU plus headers and error lists."""


class SisDecoder:
    """Feed bytes, then take primitives until None. Counts what it had to throw away."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 1:
            raise ValueError(f"SisDecoder.max_size: expected an integer >= 1, found {max_size}")
        self._max_size = max_size
        self._buffer = bytearray()
        self._start = 0
        self.skipped_bytes = 0
        """Bytes dropped while looking for a header (garbage, or a false header)."""
        self.malformed = 0
        """Whole elements whose body did not decode."""
        self.last_error: str | None = None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next_primitive(self) -> Primitive | None:
        """The next whole primitive, or None until more bytes arrive."""
        while True:
            if not self._find_header():
                break
            head = self._start
            if len(self._buffer) - head < HEADER_BYTES:
                break
            size = int.from_bytes(self._buffer[head + 3 : head + 5], "big")
            if size == 0 or size > self._max_size:
                self.last_error = f"element size {size}, expected 1..{self._max_size}"
                self._skip(1)  # a false header: look for the next one
                continue
            end = head + HEADER_BYTES + size
            if len(self._buffer) < end:
                break
            type_code = self._buffer[head + HEADER_BYTES]
            body = bytes(self._buffer[head + HEADER_BYTES + 1 : end])
            self._start = end
            try:
                return decode_body(type_code, body)
            except SisDecodeError as exc:
                self.malformed += 1
                self.last_error = str(exc)
        del self._buffer[: self._start]  # compact once per read, not once per element
        self._start = 0
        return None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete element held; non-zero at EOF means a truncated one."""
        return len(self._buffer) - self._start

    def _find_header(self) -> bool:
        """Move to the next `90 EB 00` (or a prefix of it at the end); False if none yet."""
        at = self._buffer.find(HEADER, self._start)
        if at >= 0:
            self._skip(at - self._start)
            return True
        # Keep a tail that could be the start of a header split across reads.
        available = len(self._buffer) - self._start
        keep = next((n for n in (2, 1) if n <= available and self._buffer.endswith(HEADER[:n])), 0)
        self._skip(available - keep)
        return False

    def _skip(self, count: int) -> None:
        self.skipped_bytes += count
        self._start += count
