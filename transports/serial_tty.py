"""A serial device (or pty slave) as a trio Stream, in raw mode, without pyserial.

A tty left in cooked mode eats binary bytes (a pty passed 256 bytes as none at all), so the
line is put in raw mode: no echo, no line editing, no CR/LF translation, 8 data bits, and
modem-control lines ignored (CLOCAL), since a TNC on a 3-wire cable raises no carrier.
"""

from __future__ import annotations

import os
import termios
import tty

import trio

_SPEEDS = {
    1200: termios.B1200,
    2400: termios.B2400,
    4800: termios.B4800,
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
}
SPEEDS = tuple(_SPEEDS)

_ISPEED, _OSPEED, _CFLAG = 4, 5, 2


def check_speed(speed: int, where: str = "speed") -> None:
    if speed not in _SPEEDS:
        raise ValueError(f"{where}: expected one of {list(SPEEDS)} baud, found {speed!r}")


def open_tty_stream(path: str, speed: int = 9600) -> trio.lowlevel.FdStream:
    """Open `path` read-write in raw mode at `speed` baud; OSError if it cannot be opened
    or is no terminal (/dev/null, a file: termios refuses it, ENOTTY).

    The stream owns the descriptor and closes it with itself.
    """
    check_speed(speed)
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        tty.setraw(fd)
        attributes = termios.tcgetattr(fd)
        attributes[_ISPEED] = attributes[_OSPEED] = _SPEEDS[speed]
        attributes[_CFLAG] |= termios.CLOCAL | termios.CREAD
        termios.tcsetattr(fd, termios.TCSANOW, attributes)
    except termios.error as exc:
        os.close(fd)
        number, text = exc.args if len(exc.args) == 2 else (None, str(exc))
        raise OSError(number, f"not a serial device ({text})", path) from None
    except BaseException:
        os.close(fd)
        raise
    return trio.lowlevel.FdStream(fd)
