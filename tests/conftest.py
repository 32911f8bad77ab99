"""Shared test settings.

Under CI (the CI environment variable set), hypothesis draws the same examples every run, so
a submission passes or fails on its merits, not on the luck of the draw; locally it explores
new examples each run and remembers failures in .hypothesis/.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
