"""The node configuration file: a good one loads into typed objects, every mistake is named."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tawan.core.engine import EngineConfig
from tawan.node.config import ConfigError, load_config

EXAMPLES = Path(__file__).parent.parent / "examples"

GOOD = """
[node]
name = "relay"
key_file = "keys/relay.key"
roster = "/etc/tawan/roster.tawan"
store = "relay.db"
durability = "process"
store_max_bytes = 10_000_000

[api]
address = "127.0.0.1:7471"

[metrics]
address = "127.0.0.1:9471"

[[links]]
name = "vhf"
transport = "udp"
bind = "0.0.0.0:7001"
[links.profile]
name = "vhf"
rate_bps = 9600
delay_s = 0.05
mtu = 1200
cost = 10
[[links.peers]]
node = "alpha"
address = "10.0.0.1:7001"

[[links]]
name = "wan"
transport = "tcp"
listen = "[::1]:7002"
[links.profile]
name = "ip"
rate_bps = 10_000_000
delay_s = 0
mtu = 1400
cost = 1.5
[[links.peers]]
node = "charlie"

[routing]
static = [{ to = "hq", via = "charlie" }]

[engine]
hello_interval = 1
max_hops = 8
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text(textwrap.dedent(text))
    return path


def edited(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


def test_good_config_loads_into_typed_objects(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.name == "relay"
    assert config.key_file == tmp_path / "keys/relay.key"  # relative to the file's folder
    assert config.roster == Path("/etc/tawan/roster.tawan")
    assert config.store == tmp_path / "relay.db"
    assert (config.durability, config.store_max_bytes) == ("process", 10_000_000)
    assert config.api_address == "127.0.0.1:7471"
    assert config.metrics_address == "127.0.0.1:9471"
    vhf, wan = config.links
    assert (vhf.transport, vhf.bind, vhf.listen) == ("udp", "0.0.0.0:7001", None)
    assert vhf.profile.mtu == 1200
    assert vhf.profile.delay_s == 0.05
    assert [(p.node, p.address) for p in vhf.peers] == [("alpha", "10.0.0.1:7001")]
    assert (wan.transport, wan.listen, wan.connect) == ("tcp", "[::1]:7002", ())
    assert wan.profile.cost == 1.5
    assert [(r.to, r.via) for r in config.static_routes] == [("hq", "charlie")]
    assert config.engine.hello_interval == 1.0
    assert config.engine.max_hops == 8
    assert config.engine.dead_interval == EngineConfig().dead_interval


def test_minimal_config_takes_defaults(tmp_path: Path) -> None:
    minimal = """
        [node]
        name = "a"
        key_file = "a.key"
        roster = "roster.tawan"
        store = "a.db"
    """
    config = load_config(write(tmp_path, minimal))
    assert config.durability == "process"
    assert config.api_address == "127.0.0.1:7470"
    assert config.metrics_address is None
    assert config.links == ()
    assert config.engine == EngineConfig()


def test_unix_api_address_resolves_against_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, edited('"127.0.0.1:7471"', '"unix:run/api.sock"')))
    assert config.api_address == f"unix:{tmp_path}/run/api.sock"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # wrong types and ranges, each naming the key with its dotted path
        ("mtu = 1200", "mtu = 70000", "links[0].profile.mtu: expected an integer 128..65507, "
         "found integer 70000"),
        ("mtu = 1200", 'mtu = "1200"', "links[0].profile.mtu: expected an integer"),
        ("mtu = 1200", "mtu = true", "links[0].profile.mtu: expected an integer 128..65507, "
         "found boolean True"),
        ("cost = 1.5", "cost = 0", "links[1].profile.cost: expected a number > 0 and <= 13107, "
         "found integer 0"),
        ("cost = 1.5", "cost = 1e6", "links[1].profile.cost: expected a number > 0 and <= 13107"),
        ("delay_s = 0\n", "delay_s = -1\n", "links[1].profile.delay_s: expected a number 0..60"),
        ("delay_s = 0\n", "delay_s = nan\n", "links[1].profile.delay_s: expected a number 0..60"),
        ("delay_s = 0\n", "delay_s = 61\n", "links[1].profile.delay_s: expected a number 0..60"),
        ("rate_bps = 9600", "rate_bps = 0", "links[0].profile.rate_bps: expected an integer >= 1"),
        ('transport = "udp"', 'transport = "sctp"', "links[0].transport: expected one of 'udp', "
         "'tcp', found string 'sctp'"),
        ('durability = "process"', 'durability = "disk"', "node.durability: expected one of"),
        ("store_max_bytes = 10_000_000", "store_max_bytes = 10", "node.store_max_bytes"),
        ('name = "relay"', "name = 7", "node.name: expected a non-empty string, found integer 7"),
        ('name = "relay"', 'name = ""', "node.name: expected a non-empty string"),
        ('bind = "0.0.0.0:7001"', 'bind = "0.0.0.0"', "links[0].bind: expected 'host:port'"),
        ('bind = "0.0.0.0:7001"', 'bind = "0.0.0.0:99999"', "links[0].bind: expected 'host:port'"),
        ('address = "10.0.0.1:7001"', 'address = "::1:7001"', "links[0].peers[0].address"),
        ("hello_interval = 1", 'hello_interval = "1s"', "engine.hello_interval: "
         "expected seconds, 0.05 <= hello_interval <= 3600"),
        ("max_hops = 8", "max_hops = 1.5", "engine.max_hops: expected an integer, "
         "1 <= max_hops <= 255"),
        ("max_hops = 8", "max_hops = 0", "engine.max_hops: expected an integer, "
         "1 <= max_hops <= 255 (the hop count is one byte on the wire), found integer 0"),
        # missing keys
        ('key_file = "keys/relay.key"\n', "", "node.key_file: expected a non-empty string, "
         "found nothing"),
        ('bind = "0.0.0.0:7001"\n', "", "links[0].bind: expected 'host:port'"),
        ("mtu = 1200\n", "", "links[0].profile.mtu: expected an integer 128..65507, "
         "found nothing"),
        ('listen = "[::1]:7002"\n', "", "links[1].listen: expected 'host:port', or peers"),
        ('address = "10.0.0.1:7001"\n', "", "links[0].peers[0].address: expected 'host:port' "
         "(udp peers need one)"),
        # unknown keys, at every level
        ('store = "relay.db"', 'store = "relay.db"\nstroe = "x"', "node.stroe: unknown key"),
        ("mtu = 1200", "mtu = 1200\nmtus = 1", "links[0].profile.mtus: unknown key"),
        ('node = "alpha"', 'node = "alpha"\nport = 1', "links[0].peers[0].port: unknown key"),
        ("max_hops = 8", "max_hop = 8", "engine.max_hop: unknown key"),
        ("max_hops = 8", "static_routes = 1", "engine.static_routes: unknown key"),
        ("[routing]", "[logging]\nlevel = 1\n[routing]", "logging: unknown key"),
        ('to = "hq", via', 'to = "hq", by = "x", via', "routing.static[0].by: unknown key"),
        # wrong shapes
        ('static = [{ to = "hq", via = "charlie" }]', "static = [1]", "routing.static: "
         "expected an array of tables"),
        # loopback only for the unauthenticated API
        ('"127.0.0.1:7471"', '"0.0.0.0:7471"', "api.address: expected a loopback address"),
        ('"127.0.0.1:7471"', '"unix:"', "api.address: expected 'unix:/path/to/socket'"),
        # consistency across entries
        ('name = "wan"', 'name = "vhf"', "links[1].name: expected a name no other link uses"),
        ('node = "charlie"', 'node = "charlie"\n[[links.peers]]\nnode = "charlie"',
         "links[1].peers[1].node: expected a node listed once per link"),
        ('via = "charlie"', 'via = "bravo"', "routing.static[0].via: expected a neighbour "
         "configured under [[links.peers]], found string 'bravo'"),
    ],
)  # fmt: skip
def test_each_mistake_names_file_key_expected_and_found(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, edited(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_table_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "api = 3\n" + GOOD.replace('[api]\naddress = "127.0.0.1:7471"', ""))
    with pytest.raises(ConfigError, match=r"node\.toml: api: expected a table, found integer 3"):
        load_config(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: cannot read \(No such file"):
        load_config(tmp_path / "nowhere.toml")


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"node\.toml: not valid TOML: .*line 3"):
        load_config(write(tmp_path, "[node]\nname = 'a'\nname = 'b'\n"))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_bytes(b"[node]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    # A folder where the file should be: unreadable as a file even for root.
    path = tmp_path / "node.toml"
    path.mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(path)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("node-*.toml")), ids=lambda p: p.name)
def test_examples_load(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem.removeprefix("node-")
    assert config.links
