"""Identities, the mission roster, and end-to-end and hop-by-hop keys.

A leaf package: it imports nothing from tawan/ or transports/. docs/keys.md describes the
mission plan, the file formats and what a captured node reveals.
"""
