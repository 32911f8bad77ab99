"""The protocol core is free of I/O: importing it loads neither trio nor socket."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "tawan.core.engine",
    "tawan.core.store",
    "tawan.core.frames",
    "tawan.core.sealing",
    "transports.profile",
    "transports.model",
    "crypto.keyring",
]


def test_importing_the_core_leaves_trio_and_socket_out() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE_MODULES)
        + "print(sorted(m for m in ('trio', 'socket', 'transports.udp', 'transports.tcp') "
        "if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_node_does_load_trio() -> None:
    """The check above can fail: the trio side, imported the same way, is seen."""
    code = "import sys\nimport tawan.node.runtime\nprint('trio' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "True"


HEAVY = ("scapy", "matplotlib", "pydantic", "networkx", "emulator.run", "topologies.scenario")


def loaded_by(code: str) -> list[str]:
    probe = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    found: list[str] = json.loads(result.stdout)
    return found


def test_a_daemons_command_line_loads_no_emulator_nor_its_libraries() -> None:
    """`tawan node run` builds every family's parser; emulate and topo load theirs on use."""
    assert loaded_by("import tawan.cli\ntawan.cli.build_parser()") == []
    # The check can fail: running the emulate command's module loads them.
    assert "matplotlib" in loaded_by("import emulator.commands")
