"""A kernel-side screen for UDP sockets: datagrams that begin with none of a few prefixes
are dropped by the kernel before they take room in the socket's receive buffer.

Junk that spoofs a configured peer's address lands in that peer's own socket, so the peer's
genuine frames share a buffer with it. Reading and refusing junk in the node, however cheaply,
costs microseconds a datagram; a flood sends faster than that, the buffer overflows and the
kernel drops genuine frames with the junk. A classic BPF socket filter (Linux
SO_ATTACH_FILTER, no privilege needed) runs as the datagram is queued, in the sender's
context on loopback, and costs the node nothing: what it refuses never reaches the buffer.

The program is the simplest that does the job: for each prefix in turn, compare its bytes
one by one (a mismatch jumps to the next prefix), accept on a full match, drop after the last.
Junk usually fails at the first byte of every prefix: two instructions a prefix. A datagram
shorter than a prefix fails it (a load past the end ends the program with a drop).

Where the platform has no socket filters, `attach_prefix_filter` says so and does nothing:
the node's own screen still refuses the same junk, only later and at its own cost.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
import sys
from collections.abc import Collection
from typing import Final

SO_ATTACH_FILTER: Final = 26  # Linux, asm-generic/socket.h
SO_DETACH_FILTER: Final = 27
MAX_INSTRUCTIONS: Final = 4096  # BPF_MAXINSNS
UDP_HEADER_BYTES: Final = 8
"""A UDP socket's filter sees the datagram from its UDP header: the payload starts at 8."""

_LD_B_ABS: Final = 0x30  # BPF_LD | BPF_B | BPF_ABS: A = byte at k
_JEQ_K: Final = 0x15  # BPF_JMP | BPF_JEQ | BPF_K: A == k ? jt : jf
_RET_K: Final = 0x06  # BPF_RET | BPF_K: keep k bytes (0: drop)
_ACCEPT: Final = 0xFFFF_FFFF  # the whole datagram
_INSTRUCTION: Final = struct.Struct("=HBBI")  # struct sock_filter
_PROGRAM: Final = struct.Struct("@HP")  # struct sock_fprog: length, pointer


def prefix_program(prefixes: Collection[bytes]) -> bytes:
    """The filter, as the kernel's struct sock_filter array, accepting datagrams whose
    payload begins with one of `prefixes` (each 1..127 bytes; at least one)."""
    ordered = sorted(set(prefixes))
    if not ordered:
        raise ValueError("prefix_program: expected at least one prefix, found none")
    code: list[bytes] = []
    for prefix in ordered:
        if not 1 <= len(prefix) <= 127:  # a jump offset is one byte: 2 per compared byte
            raise ValueError(
                f"prefix_program: expected prefixes of 1..127 bytes, found {len(prefix)}"
            )
        block = 2 * len(prefix) + 1  # load and compare each byte, then accept
        for i, value in enumerate(prefix):
            at = 2 * i
            code.append(_INSTRUCTION.pack(_LD_B_ABS, 0, 0, UDP_HEADER_BYTES + i))
            code.append(_INSTRUCTION.pack(_JEQ_K, 0, block - at - 2, value))
        code.append(_INSTRUCTION.pack(_RET_K, 0, 0, _ACCEPT))
    code.append(_INSTRUCTION.pack(_RET_K, 0, 0, 0))
    if len(code) > MAX_INSTRUCTIONS:
        raise ValueError(
            f"prefix_program: expected at most {MAX_INSTRUCTIONS} instructions, "
            f"found {len(code)} for {len(ordered)} prefixes"
        )
    return b"".join(code)


def attach_prefix_filter(sock: socket.socket, prefixes: Collection[bytes]) -> bool:
    """Attach the prefix filter to `sock`, replacing any earlier one; False where the
    platform cannot (the caller's own screen then does all the work)."""
    if not sys.platform.startswith("linux"):
        return False
    program = prefix_program(prefixes)
    code = ctypes.create_string_buffer(program, len(program))
    fprog = _PROGRAM.pack(len(program) // _INSTRUCTION.size, ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies it
    except OSError:
        return False
    return True


def detach_filter(sock: socket.socket) -> None:
    """Take the filter off `sock`, if it has one."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):  # ENOENT: there was none
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
