"""The node configuration file: a good one loads into typed objects, every mistake is named."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest
from harness import seeded_mission

from tawan.core.engine import EngineConfig
from tawan.core.precedence import Precedence
from tawan.node.config import ConfigError, load_config
from tawan.node.daemon import link_specs
from transports.kiss import TncParameters

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


def test_pace_policy_from_its_table(tmp_path: Path) -> None:
    text = edited("[routing]", '[pace]\nROUTINE = ["fibre", "vhf"]\n[pace.largest]\n'
                  'hf = 2048\nvhf = 16000\n[routing]')  # fmt: skip
    pace = load_config(write(tmp_path, text)).engine.pace
    assert pace.bearers == {Precedence.ROUTINE: frozenset({"fibre", "vhf"})}
    assert pace.largest == {"hf": 2048, "vhf": 16000}
    assert not pace.allows("hf", Precedence.ROUTINE, 100)
    assert pace.allows("hf", Precedence.FLASH, 2048) and not pace.allows(
        "hf", Precedence.FLASH, 2049
    )


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
        ("rate_bps = 9600", "rate_bps = 0", "links[0].profile.rate_bps: expected an integer "
         "1..1000000000000"),
        ("rate_bps = 9600", "rate_bps = " + "9" * 400, "links[0].profile.rate_bps: expected an "
         "integer 1..1000000000000, found integer 999"),
        ("delay_s = 0.05", "delay_s = " + "9" * 400, "links[0].profile.delay_s: expected a "
         "number 0..60, found integer 999"),
        ("cost = 10", "cost = " + "9" * 400, "links[0].profile.cost: expected a number > 0"),
        ('name = "vhf"\nrate', 'name = "VHF"\nrate', "links[0].profile.name: expected a bearer "
         "name of 1 to 32 of a-z, 0-9 and -, beginning with a letter or digit (adverts carry "
         "it), found string 'VHF'"),
        ('name = "vhf"\nrate', f'name = "{"v" * 33}"\nrate', "links[0].profile.name: expected "
         "a bearer name"),
        ('transport = "udp"', 'transport = "sctp"', "links[0].transport: expected one of 'udp', "
         "'tcp', 'kiss', 's5066', found string 'sctp'"),
        ('durability = "process"', 'durability = "disk"', "node.durability: expected one of"),
        ("store_max_bytes = 10_000_000", "store_max_bytes = 10", "node.store_max_bytes"),
        ("store_max_bytes = 10_000_000", "store_max_bytes = " + "9" * 400,
         "node.store_max_bytes: expected an integer 1048576..9007199254740992, found integer"),
        ("[routing]", "[pace.largest]\nhf = " + "9" * 400 + "\n[routing]", "pace.largest.hf: "
         "expected an integer 1..9007199254740992"),
        ('name = "relay"', "name = 7", "node.name: expected a non-empty string, found integer 7"),
        ('name = "relay"', 'name = ""', "node.name: expected a non-empty string"),
        ('bind = "0.0.0.0:7001"', 'bind = "0.0.0.0"', "links[0].bind: expected 'host:port'"),
        ('bind = "0.0.0.0:7001"', 'bind = "0.0.0.0:99999"', "links[0].bind: expected 'host:port'"),
        ('address = "10.0.0.1:7001"', 'address = "::1:7001"', "links[0].peers[0].address"),
        ("hello_interval = 1", 'hello_interval = "1s"', "engine.hello_interval: "
         "expected seconds, 0.05 <= hello_interval <= 3600"),
        ("hello_interval = 1", "hello_interval = " + "9" * 400, "engine.hello_interval: "
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
        ("[routing]", '[pace]\nROUTINE = "vhf"\n[routing]', "pace.ROUTINE: expected an array of "
         "bearer names, found string 'vhf'"),
        ("[routing]", "[pace]\nRUSH = []\n[routing]", "pace.RUSH: unknown key"),
        ("[routing]", "[pace.largest]\nhf = 0\n[routing]", "pace.largest.hf: expected an "
         "integer 1..9007199254740992, found integer 0"),
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
        ('node = "alpha"', 'node = "relay"', "links[0].peers[0].node: expected a node other "
         "than this one, found string 'relay'"),
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


def test_an_integer_too_long_for_python_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, edited("max_hops = 8", "max_hops = " + "9" * 5000))
    with pytest.raises(ConfigError, match=r"node\.toml: not valid TOML: an integer of over"):
        load_config(path)


@pytest.mark.parametrize(
    "nested", ["[" * 100_000 + "]" * 100_000, "{a=" * 3000 + "1" + "}" * 3000], ids=["[", "{"]
)
def test_nesting_too_deep_is_named(tmp_path: Path, nested: str) -> None:
    path = write(tmp_path, edited("[routing]", f"deep = {nested}\n[routing]"))
    with pytest.raises(ConfigError, match=r"node\.toml: not valid TOML: .* nested too deeply"):
        load_config(path)


def test_a_group_as_a_link_peer_is_named(tmp_path: Path) -> None:
    roster, _ = seeded_mission({"relay": [], "alpha": ["platoons"], "charlie": []}, 1)
    config = load_config(write(tmp_path, edited('node = "alpha"', 'node = "platoons"')))
    with pytest.raises(ConfigError, match=r"links\[0\]\.peers\[0\]\.node: expected a node "
                       r"of the roster .*, found the group 'platoons'"):  # fmt: skip
        link_specs(config, roster)
    specs = link_specs(load_config(write(tmp_path, GOOD)), roster)
    alpha = roster.by_name("alpha")
    assert alpha is not None and [p.node for p in specs[0].peers] == [alpha.address]


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


# -- radio links: kiss (VHF/UHF TNC) and s5066 (HF, STANAG 5066 SIS) -----------------------

DOCS = Path(__file__).parent.parent / "docs"

NODE_HEADER = """
[node]
name = "relay"
key_file = "relay.key"
roster = "roster.tawan"
store = "relay.db"
"""

RADIO = (
    NODE_HEADER
    + """
[[links]]
name = "vhf"
transport = "kiss"
tnc = "127.0.0.1:8001"
callsign = "N0CALL-1"
txdelay_ms = 300
persistence = 63
slot_ms = 100
txtail_ms = 30
full_duplex = false
broadcast = "TAWAN"
kiss_port = 1
[links.profile]
name = "vhf-1200"
rate_bps = 1200
delay_s = 0.5
mtu = 256
cost = 20
[[links.peers]]
node = "alpha"
callsign = "N0CALL-2"
[[links.peers]]
node = "bravo"
callsign = "N0CALL"

[[links]]
name = "serial"
transport = "kiss"
device = "/dev/ttyUSB0"
speed = 19200
callsign = "RELAY"
[links.profile]
name = "uhf-9600"
rate_bps = 9600
delay_s = 0.1
mtu = 1000
cost = 10
[[links.peers]]
node = "alpha"
callsign = "ALPHA-15"

[[links]]
name = "hf"
transport = "s5066"
server = "10.0.0.5:5066"
sap = 14
rank = 4
priority = 9
ttl_s = 1200
broadcast_retx = 2
peer_retry_s = 60
groups = { net = "group:0.0.0.100", all = 200 }
[links.profile]
name = "hf-4539"
rate_bps = 9600
delay_s = 2
mtu = 2048
cost = 50
[[links.peers]]
node = "hq"
address = "0.0.0.2"
[[links.peers]]
node = "charlie"
address = 3
"""
)


def radio_edited(old: str, new: str) -> str:
    assert old in RADIO, old
    return RADIO.replace(old, new, 1)


def test_radio_links_load_into_typed_settings(tmp_path: Path) -> None:
    vhf, serial, hf = load_config(write(tmp_path, RADIO)).links
    assert vhf.transport == "kiss" and vhf.kiss is not None and vhf.s5066 is None
    assert (vhf.kiss.callsign, vhf.kiss.tnc, vhf.kiss.device) == (
        "N0CALL-1",
        "127.0.0.1:8001",
        None,
    )
    assert vhf.kiss.parameters == TncParameters(
        txdelay_ms=300, persistence=63, slot_ms=100, txtail_ms=30, full_duplex=False
    )
    assert (vhf.kiss.broadcast, vhf.kiss.port) == ("TAWAN", 1)
    # A peer's endpoint is its callsign as the link spells it: what KissLink reports.
    assert [(p.node, p.address) for p in vhf.peers] == [("alpha", "N0CALL-2"), ("bravo", "N0CALL")]
    assert serial.kiss is not None
    assert (serial.kiss.tnc, serial.kiss.device, serial.kiss.speed) == (
        None,
        "/dev/ttyUSB0",
        19200,
    )
    assert serial.kiss.parameters == TncParameters()  # unset: the TNC keeps its own
    assert (serial.kiss.broadcast, serial.kiss.port) == (None, 0)
    assert serial.profile.mtu == 1000
    assert hf.transport == "s5066" and hf.s5066 is not None and hf.kiss is None
    settings = hf.s5066
    assert (settings.server, settings.sap, settings.rank, settings.priority) == (
        "10.0.0.5:5066", 14, 4, 9,
    )  # fmt: skip
    assert (settings.ttl_s, settings.broadcast_retx, settings.peer_retry_s) == (1200.0, 2, 60.0)
    assert dict(settings.groups) == {"net": "group:0.0.0.100", "all": "group:0.0.0.200"}
    # A 5066 address in its one spelling, whether written dotted or as an integer.
    assert [(p.node, p.address) for p in hf.peers] == [("hq", "0.0.0.2"), ("charlie", "0.0.0.3")]


def test_radio_links_take_defaults(tmp_path: Path) -> None:
    text = (
        NODE_HEADER
        + """
        [[links]]
        name = "hf"
        transport = "s5066"
        server = "127.0.0.1:5066"
        profile = { name = "hf", rate_bps = 2400, delay_s = 2, mtu = 2048, cost = 50 }
        [[links]]
        name = "vhf"
        transport = "kiss"
        tnc = "127.0.0.1:8001"
        callsign = "N0CALL-1"
        profile = { name = "vhf", rate_bps = 1200, delay_s = 0.5, mtu = 256, cost = 20 }
    """
    )
    hf, vhf = load_config(write(tmp_path, textwrap.dedent(text))).links
    assert hf.s5066 is not None and vhf.kiss is not None
    assert (hf.s5066.sap, hf.s5066.rank, hf.s5066.priority) == (13, 5, 7)
    assert (hf.s5066.ttl_s, hf.s5066.broadcast_retx, hf.s5066.peer_retry_s) == (600.0, 1, 120.0)
    assert dict(hf.s5066.groups) == {}
    assert hf.peers == vhf.peers == ()
    assert (vhf.kiss.speed, vhf.kiss.port, vhf.kiss.broadcast) == (9600, 0, None)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # kiss: the TNC
        ('tnc = "127.0.0.1:8001"\n', "", "links[0].tnc: expected 'host:port' of a KISS TNC, "
         "or device (a serial one), found nothing"),
        ('tnc = "127.0.0.1:8001"', 'tnc = "127.0.0.1:8001"\ndevice = "/dev/ttyS0"',
         "links[0].device: expected no device when tnc is set (one TNC per link), "
         "found string '/dev/ttyS0'"),
        ('tnc = "127.0.0.1:8001"', 'tnc = "localhost"', "links[0].tnc: expected 'host:port'"),
        ('tnc = "127.0.0.1:8001"', 'tnc = "127.0.0.1:8001"\nspeed = 9600',
         "links[0].speed: expected no speed with tnc (it is a serial device's baud rate), "
         "found integer 9600"),
        ("speed = 19200", "speed = 14400", "links[1].speed: expected one of 1200, 2400, 4800, "
         "9600, 19200, 38400, 57600, 115200, 230400 (baud), found integer 14400"),
        ('device = "/dev/ttyUSB0"', 'device = ""', "links[1].device: expected a non-empty string"),
        # kiss: the station and its peers
        ('callsign = "N0CALL-1"', 'callsign = "n0call-1"', "links[0].callsign: expected a "
         "callsign CALL or CALL-SSID (1-6 upper-case letters or digits, SSID 1..15), "
         "found string 'n0call-1'"),
        ('callsign = "N0CALL-1"\n', "", "links[0].callsign: expected a callsign"),
        ('callsign = "N0CALL-2"', 'callsign = "N0CALL-16"', "links[0].peers[0].callsign: "
         "expected a callsign"),
        ('callsign = "N0CALL-2"', 'callsign = "N0CALL-0"', "links[0].peers[0].callsign: "
         "expected a callsign"),  # SSID 0 is spelt "N0CALL": one station, one name
        ('callsign = "N0CALL"', 'callsign = "N0CALL-2"', "links[0].peers[1].callsign: expected "
         "a callsign no other station uses (peers[0] is 'N0CALL-2'), found string 'N0CALL-2'"),
        ('callsign = "N0CALL"', 'callsign = "N0CALL-1"', "links[0].peers[1].callsign: expected "
         "a callsign no other station uses (this node's callsign is 'N0CALL-1')"),
        ('callsign = "N0CALL"', 'callsign = "TAWAN"', "links[0].peers[1].callsign: expected "
         "a callsign no other station uses (the broadcast alias is 'TAWAN')"),
        ('broadcast = "TAWAN"', 'broadcast = "N0CALL-1"', "links[0].broadcast: expected an "
         "alias other than this node's callsign"),
        ('broadcast = "TAWAN"', 'broadcast = "TAWAN-NET"', "links[0].broadcast: expected a "
         "callsign"),
        ('callsign = "N0CALL-2"', 'address = "10.0.0.1:7001"', "links[0].peers[0].callsign: "
         "expected a callsign"),
        ('callsign = "ALPHA-15"', 'callsign = "ALPHA-15"\naddress = "1.2.3.4:5"',
         "links[1].peers[0].address: unknown key"),
        # kiss: channel-access parameters and port
        ("txdelay_ms = 300", "txdelay_ms = 305", "links[0].txdelay_ms: expected a multiple of "
         "10 ms in 0..2550 (one byte of 10 ms units), found integer 305"),
        ("slot_ms = 100", "slot_ms = 2560", "links[0].slot_ms: expected a multiple of 10 ms"),
        ("txtail_ms = 30", "txtail_ms = 30.0", "links[0].txtail_ms: expected a multiple of 10"),
        ("persistence = 63", "persistence = 256", "links[0].persistence: expected an integer "
         "0..255, found integer 256"),
        ("full_duplex = false", "full_duplex = 0", "links[0].full_duplex: expected true or "
         "false, found integer 0"),
        ("kiss_port = 1", "kiss_port = 16", "links[0].kiss_port: expected an integer 0..15"),
        # kiss: keys of other transports, and the MTU a KISS TNC holds
        ("kiss_port = 1", 'kiss_port = 1\nbind = "0.0.0.0:1"', "links[0].bind: unknown key"),
        ("kiss_port = 1", 'kiss_port = 1\nsap = 13', "links[0].sap: unknown key"),
        ("mtu = 1000", "mtu = 1001", "links[1].profile.mtu: expected an integer 128..1000, "
         "found integer 1001"),
        # s5066
        ('server = "10.0.0.5:5066"\n', "", "links[2].server: expected 'host:port'"),
        ("sap = 14", "sap = 16", "links[2].sap: expected an integer 0..15, found integer 16"),
        ("rank = 4", "rank = 15", "links[2].rank: expected an integer 0..14, found integer 15"),
        ("priority = 9", "priority = -1", "links[2].priority: expected an integer 0..15"),
        ("broadcast_retx = 2", "broadcast_retx = 16", "links[2].broadcast_retx: expected an "
         "integer 0..15"),
        ("ttl_s = 1200", "ttl_s = 1", "links[2].ttl_s: expected 0 (the server's longest) or "
         "seconds 2..1296000 (sent in 2 s units), found integer 1"),
        ("ttl_s = 1200", "ttl_s = 2000000", "links[2].ttl_s: expected 0 (the server's longest)"),
        ("ttl_s = 1200", "ttl_s = nan", "links[2].ttl_s: expected 0"),
        ("ttl_s = 1200", "ttl_s = true", "links[2].ttl_s: expected 0"),
        ("peer_retry_s = 60", "peer_retry_s = 0", "links[2].peer_retry_s: expected a number "
         "> 0 and <= 86400, found integer 0"),
        ('address = "0.0.0.2"', 'address = "16.0.0.2"', "links[2].peers[0].address: expected "
         "a 5066 node address 'a.b.c.d' (at most 15.255.255.255) or an integer, "
         "found string '16.0.0.2'"),
        ('address = "0.0.0.2"', 'address = "10.0.0.1:7001"', "links[2].peers[0].address: "
         "expected a 5066 node address"),
        ('address = "0.0.0.2"', 'address = "group:0.0.0.2"', "links[2].peers[0].address: "
         "expected a node address (groups go under groups), found string 'group:0.0.0.2'"),
        ('address = "0.0.0.2"\n', "", "links[2].peers[0].address: expected a 5066 node "
         "address 'a.b.c.d' (at most 15.255.255.255) or an integer, found nothing"),
        ("address = 3", 'address = "0.0.0.2"', "links[2].peers[1].address: expected an address "
         "no other station uses (peers[0] is '0.0.0.2')"),
        ("address = 3", 'address = 3\ncallsign = "N0CALL-3"', "links[2].peers[1].callsign: "
         "unknown key"),
        ('all = 200', 'all = "x"', "links[2].groups.all: expected a 5066 group address"),
        ('all = 200', '"0.0.0.2" = 200', "links[2].groups.0.0.0.2: expected a group name no "
         "peer address uses"),
        ("mtu = 2048", "mtu = 4096", "links[2].profile.mtu: expected an integer 128..2048"),
        ("peer_retry_s = 60", 'peer_retry_s = 60\ncallsign = "X"',
         "links[2].callsign: unknown key"),
    ],
)  # fmt: skip
def test_each_radio_mistake_names_the_key(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, radio_edited(old, new))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def radio_link_keys() -> set[str]:
    """Every key of a kiss or s5066 link table, from RADIO, which sets them all."""
    links = tomllib.loads(RADIO)["links"]
    keys = {key for link in links for key in link if key not in ("profile", "peers")}
    keys |= {key for link in links for peer in link["peers"] for key in peer}
    return keys | {"device", "speed", "tnc"}


def test_every_radio_key_is_documented_for_operators() -> None:
    documented = (DOCS / "operators.md").read_text()
    missing = sorted(key for key in radio_link_keys() if f"`{key}`" not in documented)
    assert missing == []


def bearer_snippets() -> list[str]:
    """The node-config snippets of docs/transports.md's "Which link for which bearer"."""
    text = (DOCS / "transports.md").read_text()
    section = text.split("## Which link for which bearer", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.DOTALL)


def test_the_bearer_snippets_of_the_docs_load(tmp_path: Path) -> None:
    snippets = bearer_snippets()
    transports = []
    for snippet in snippets:
        config = load_config(write(tmp_path, NODE_HEADER + snippet))
        transports += [link.transport for link in config.links]
    assert {"kiss", "s5066"} <= set(transports)
