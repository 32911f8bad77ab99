"""Broken configuration, key and roster files: each refused with one line saying what is wrong.

Every case asserts the whole message, so a message that grows vague fails here. The node
is started as a real process for a config mistake and a UDP port in use; the other cases
call the loaders the daemon calls.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from crypto.errors import CryptoError, KeyFileError, RosterError
from crypto.keyfile import NodeKeys, write_keyfile
from crypto.keyring import Keyring
from crypto.mission import build_mission
from crypto.plan import MissionPlan
from crypto.roster import Roster
from tawan.core.engine import EngineConfig
from tawan.node.config import ENGINE_RESERVED, ConfigError, load_config
from transports.profile import BearerProfile
from transports.tcp import TcpLink

TAWAN = Path(sys.executable).parent / "tawan"
IN_USE = os.strerror(errno.EADDRINUSE)

NODE = """
[node]
name = "alpha"
key_file = "alpha.key"
roster = "roster.tawan"
store = "alpha.db"

[api]
address = "unix:api.sock"
"""

LINK = """
[[links]]
name = "vhf"
transport = "udp"
bind = "127.0.0.1:{port}"
[links.profile]
name = "vhf"
rate_bps = 9600
delay_s = 0.05
mtu = 1200
cost = 1
[[links.peers]]
node = "bravo"
address = "127.0.0.1:9"
"""


def write_config(tmp_path: Path, engine: str = "", port: int = 0) -> Path:
    path = tmp_path / "alpha.toml"
    text = NODE + LINK.format(port=port) + ("\n[engine]\n" + textwrap.dedent(engine))
    path.write_text(text)
    return path


def mission(seed: int) -> tuple[Roster, dict[str, NodeKeys]]:
    return build_mission({"alpha": [], "bravo": []}, random.Random(seed), t0=int(time.time()))


def write_mission(directory: Path, seed: int = 1) -> tuple[Path, Path, Roster]:
    """alpha's key file and the roster, as a mission plan issues them."""
    roster, keys = mission(seed)
    key_file, roster_file = directory / "alpha.key", directory / "roster.tawan"
    write_keyfile(key_file, keys["alpha"])
    roster_file.write_bytes(roster.to_bytes())
    return key_file, roster_file, roster


def refusal(key_file: Path, roster_file: Path) -> str:
    with pytest.raises(CryptoError) as info:
        Keyring.from_files(key_file, roster_file)
    return str(info.value)


# The configuration file


def engine_refusal(tmp_path: Path, engine: str) -> str:
    path = write_config(tmp_path, engine)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    prefix = f"{path}: "
    assert message.startswith(prefix)
    return message.removeprefix(prefix)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("retransmit_ceiling = 0",
         "engine.retransmit_ceiling: expected seconds, retransmit_floor (0.2) <= "
         "retransmit_ceiling <= 3600 (the backoff grows from the floor to the ceiling; a "
         "neighbour back from an outage waits at most this long), found integer 0"),
        ("retransmit_ceiling = 0.1",
         "engine.retransmit_ceiling: expected seconds, retransmit_floor (0.2) <= "
         "retransmit_ceiling <= 3600 (the backoff grows from the floor to the ceiling; a "
         "neighbour back from an outage waits at most this long), found number 0.1"),
        ("ack_delay = 1e9",
         "engine.ack_delay: expected seconds, 0 <= ack_delay < retransmit_floor (0.2) (an "
         "acknowledgement held that long comes after the sender resent), "
         "found number 1000000000.0"),
        ("hello_interval = 1e-9",
         "engine.hello_interval: expected seconds, 0.05 <= hello_interval <= 3600 (more "
         "often only loads the bearer; less often, a lost neighbour goes unnoticed for an "
         "hour), found number 1e-09"),
        ("max_reassembly_bytes = 0",
         "engine.max_reassembly_bytes: expected an integer, max_reassembly_bytes >= 1049632 "
         "(room for the largest message: 1 MiB of payload, sealed and framed), "
         "found integer 0"),
        ("commit_interval = 30",
         "engine.commit_interval: expected seconds, 0 <= commit_interval <= 1 (a write held "
         "longer gains nothing from grouping and is redone after a crash), found integer 30"),
        # A bound on another setting names it and its value, and a default found wanting
        # is said to be the default: the file does not show it.
        ("hello_interval = 10",
         "engine.dead_interval: expected seconds, hello_interval (10) < dead_interval <= "
         "86400 (a neighbour is gone only once it missed a hello), found the default 7.0"),
        ("retransmit_ceiling = 900\nreassembly_timeout = 600",
         "engine.reassembly_timeout: expected seconds, retransmit_ceiling (900) < "
         "reassembly_timeout <= 86400 (a lost fragment is resent within the ceiling; a "
         "partial message dropped sooner never completes), found integer 600"),
        ("window = true",
         "engine.window: expected an integer, 1 <= window <= 65535 (messages in flight to "
         "one neighbour), found boolean True"),
    ],
)  # fmt: skip
def test_an_engine_setting_out_of_bounds_is_named_with_its_bound(
    tmp_path: Path, setting: str, expected: str
) -> None:
    assert engine_refusal(tmp_path, setting) == expected


def test_minus_one_and_zero_get_the_same_message(tmp_path: Path) -> None:
    # They used to differ: -1 failed the loader's own ">= 0" check, 0 the engine's "> 0".
    negative = engine_refusal(tmp_path, "hello_interval = -1")
    zero = engine_refusal(tmp_path, "hello_interval = 0")
    assert negative.removesuffix("found integer -1") == zero.removesuffix("found integer 0")
    assert negative != zero
    assert zero.startswith("engine.hello_interval: expected seconds, 0.05 <= hello_interval")


@pytest.mark.parametrize(
    "field", [f.name for f in dataclasses.fields(EngineConfig) if f.name not in ENGINE_RESERVED]
)
@pytest.mark.parametrize("wrong", ["-1", "1e12", '"soon"', "nan"])
def test_every_engine_setting_is_bounded(tmp_path: Path, field: str, wrong: str) -> None:
    if field == "strict_states" and wrong != '"soon"':
        wrong = "1"  # a number where a boolean belongs
    message = engine_refusal(tmp_path, f"{field} = {wrong}")
    assert message.startswith(f"engine.{field}: expected ")
    assert "\n" not in message


def test_the_defaults_are_within_their_own_bounds(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path)).engine == EngineConfig()


def test_a_node_refuses_to_start_on_a_bad_setting(tmp_path: Path) -> None:
    write_mission(tmp_path)
    config = write_config(tmp_path, "hello_interval = 0")
    result = run_node(config)
    assert result.returncode == 2
    assert result.stderr == (
        f"tawan node: {config}: engine.hello_interval: expected seconds, 0.05 <= "
        "hello_interval <= 3600 (more often only loads the bearer; less often, a lost "
        "neighbour goes unnoticed for an hour), found integer 0\n"
    )


# Key files and rosters


@pytest.mark.parametrize("keep", [1, 5, 13, 100, -1])
def test_a_truncated_key_file_says_truncated(tmp_path: Path, keep: int) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    data = key_file.read_bytes()[:keep]
    key_file.write_bytes(data)
    where = "in its header" if 0 < keep < 13 else "before its last field"
    assert refusal(key_file, roster_file) == (
        f"{key_file}: truncated: this tawan key file ends after {len(data)} bytes, {where}"
    )


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"hello world\n", "b'hello world\\n'"),
        (bytes(random.Random(7).randrange(0x80) for _ in range(238)), None),
        (b"\x93\x01\x02\x03", "b'\\x93\\x01\\x02\\x03'"),  # msgpack, but no tawan file
    ],
    ids=["text", "random", "msgpack"],
)
def test_garbage_is_not_a_tawan_key_file(
    tmp_path: Path, content: bytes, found: str | None
) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    key_file.write_bytes(content)
    shown = found if found is not None else repr(content[:16])
    assert refusal(key_file, roster_file) == (
        f"{key_file}: not a tawan key file: expected it to begin with b'tawan-node', found {shown}"
    )


def test_a_roster_where_the_key_file_belongs_is_named(tmp_path: Path) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    key_file.write_bytes(roster_file.read_bytes())
    assert refusal(key_file, roster_file) == (
        f"{key_file}: not a tawan key file: expected it to begin with b'tawan-node', "
        "found b'tawan-roster' (another kind of tawan file)"
    )


def test_an_empty_key_file(tmp_path: Path) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    key_file.write_bytes(b"")
    assert refusal(key_file, roster_file) == (
        f"{key_file}: empty: expected a tawan key file, found 0 bytes"
    )


def test_a_truncated_roster_says_truncated(tmp_path: Path) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    roster_file.write_bytes(roster_file.read_bytes()[:1000])
    with pytest.raises(RosterError) as info:
        Keyring.from_files(key_file, roster_file)
    assert str(info.value) == (
        f"{roster_file}: truncated: this tawan roster file ends after 1000 bytes, "
        "before its last field"
    )


def test_a_roster_of_another_mission_names_the_roster(tmp_path: Path) -> None:
    # The key file pins the mission and its authority: a roster that disagrees is the file
    # out of place, whichever was copied last.
    key_file, roster_file, ours = write_mission(tmp_path)
    theirs, _ = mission(seed=2)
    roster_file.write_bytes(theirs.to_bytes())
    with pytest.raises(RosterError) as info:
        Keyring.from_files(key_file, roster_file)
    assert str(info.value) == (
        f"{roster_file}: mission: expected {ours.mission_id.hex()} (that of key file "
        f"{key_file}), found {theirs.mission_id.hex()}: a roster of another mission"
    )


def test_a_roster_older_than_the_node_names_the_roster(tmp_path: Path) -> None:
    rng = random.Random(3)
    plan = MissionPlan.new(rng.randbytes, t0=int(time.time()), epoch_seconds=3600, grace_epochs=24)
    plan.add_node("bravo", (), rng.randbytes)
    before_alpha = plan.roster()
    plan.add_node("alpha", (), rng.randbytes)
    key_file, roster_file = tmp_path / "alpha.key", tmp_path / "roster.tawan"
    write_keyfile(key_file, plan.keys["alpha"])
    roster_file.write_bytes(before_alpha.to_bytes())
    address = plan.keys["alpha"].address
    with pytest.raises(RosterError) as info:
        Keyring.from_files(key_file, roster_file)
    assert str(info.value) == (
        f"{roster_file}: node at address {address}: expected 'alpha' (the node of key file "
        f"{key_file}), found no node there: a roster older than the key file?"
    )


def test_keys_not_those_of_the_roster_entry_name_the_key_file(tmp_path: Path) -> None:
    key_file, roster_file, _ = write_mission(tmp_path)
    _, same_names = build_mission(
        {"alpha": [], "bravo": []}, random.Random(1), t0=int(time.time())
    )  # the same mission drawn again: same ids and keys ...
    other = dataclasses.replace(same_names["alpha"], ed25519_private=bytes(32))  # ... but one
    write_keyfile(key_file, other)
    with pytest.raises(KeyFileError) as info:
        Keyring.from_files(key_file, roster_file)
    assert str(info.value) == (
        f"{key_file}: keys of 'alpha': expected those of its entry in the roster "
        f"{roster_file}, found others (a key file issued again since?)"
    )


# Ports


def test_a_udp_port_in_use_names_the_address(tmp_path: Path) -> None:
    write_mission(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        result = run_node(write_config(tmp_path, port=port))
    assert result.returncode == 1
    assert result.stderr == f"tawan node: link vhf: UDP bind 127.0.0.1:{port}: {IN_USE}\n"


async def test_a_tcp_port_in_use_names_the_address() -> None:
    profile = BearerProfile("ip", 1_000_000, 0.0, 1400, 1.0)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        link = TcpLink("wan", profile, f"127.0.0.1:{port}", [])
        async with trio.open_nursery() as nursery:
            with pytest.raises(OSError) as info:
                await nursery.start(link.run)
    assert str(info.value) == f"[Errno {errno.EADDRINUSE}] TCP listen 127.0.0.1:{port}: {IN_USE}"


def run_node(config: Path) -> subprocess.CompletedProcess[str]:
    command = [str(TAWAN), "node", "run", "--config", str(config), "--log-level", "warning"]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, cwd=config.parent
    )
