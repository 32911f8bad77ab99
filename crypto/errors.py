"""Typed errors of the crypto package; each message names the input and what was wrong."""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every error raised by the crypto package."""


class MissionError(CryptoError):
    """The caller asked for something the mission plan does not allow (bad name, duplicate)."""


class KeyFileError(CryptoError):
    """A node or authority key file is unsafe (permissions), malformed, or of another mission."""


class RosterError(CryptoError):
    """A roster is malformed, badly signed, of another mission, or older than the known one."""


class PairSetupError(CryptoError):
    """An on-air pair setup is malformed, forged, or from a node that cannot pair."""


class RevocationError(CryptoError):
    """A revocation notice is malformed, not canonical, of another mission, or forged."""
