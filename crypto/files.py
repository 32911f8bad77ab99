"""Atomic writes and permission-checked reads of key and roster files.

A key file is never visible half-written or with loose permissions: it is written to a
temporary file created 0600, flushed to disk, then renamed over the old one, and the
directory is synced so the rename survives a power loss.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from crypto.errors import KeyFileError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
MAX_FILE_BYTES = 64 * 1024 * 1024


def write_atomic(path: Path, data: bytes, mode: int = PRIVATE_MODE) -> None:
    """Replace `path` with `data`; the file never exists with wider permissions than `mode`."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PRIVATE_MODE)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temp, path)
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_private(path: Path) -> bytes:
    """Read a secret file, refusing one that group or others may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot open key file ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: expected a regular key file")
        loose = stat.S_IMODE(info.st_mode) & 0o077
        if loose:
            raise KeyFileError(
                f"{path}: key file mode is {stat.S_IMODE(info.st_mode):04o}, expected 0600 "
                "(group and others must have no access; run chmod 600)"
            )
        return _read_bounded(fd, path, info.st_size)
    finally:
        os.close(fd)


def read_public(path: Path, error: type[Exception]) -> bytes:
    """Read a file that need not be secret (the roster), bounded in size."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return data


def _read_bounded(fd: int, path: Path, size: int) -> bytes:
    if size > MAX_FILE_BYTES:
        raise KeyFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    chunks = []
    remaining = MAX_FILE_BYTES + 1
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    if remaining <= 0:
        raise KeyFileError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return b"".join(chunks)
