"""The node configuration file (TOML), validated once into frozen typed objects.

Everything a daemon needs from its file is checked here, before any socket or store is
opened, and every mistake raises `ConfigError` naming the file, the key
(``links[1].profile.mtu``, list indices from 0) and what was expected against what was
found. Unknown keys are errors too: a misspelt key silently falling back to its default is
the kind of mistake nobody notices until the net is down.

Node names (peers, static routes) stay names here; the runtime resolves them against the
signed roster when it starts, because the roster, not the config file, is the authority on
addresses. Each peer's endpoint on its link is kept in the one spelling the link reports it
by ("host:port", a callsign, a 5066 address), so the node can match what it hears to the
peer it configured. docs/operators.md describes every key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from tawan.contact_files import load_plan
from tawan.core.contacts import ContactPlan, ContactPlanError
from tawan.core.pace import DEFAULT_PACE, PacePolicy
from tawan.core.precedence import Precedence
from tawan.core.specs import EngineConfig, EngineConfigError
from tawan.node.client import DEFAULT_API_ADDRESS, UNIX_PREFIX
from transports.ax25 import Callsign
from transports.kiss import PORT_MAX, TncParameters
from transports.kisslink import KISS_MTU_MAX
from transports.link import format_endpoint, parse_endpoint
from transports.profile import (
    BEARER_NAME_RE,
    BEARER_NAME_RULE,
    COST_MAX,
    HELLO_MAX_S,
    MTU_MAX,
    MTU_MIN,
    RATE_MAX_BPS,
    BearerProfile,
)
from transports.s5066_codec import TTL_MAX_UNITS, TTL_UNIT_S, parse_address
from transports.serial_tty import SPEEDS

DEFAULT_STORE_MAX_BYTES: Final = 256 * 1024 * 1024
STORE_MIN_BYTES: Final = 1 << 20
SIZE_MAX_BYTES: Final = 1 << 53
"""The largest size a config may give (8 PiB): sizes go to the metrics as floats, which
hold every integer up to it exactly (and overflow on a 309-digit one)."""
DELAY_MAX_S: Final = 60.0  # one way; the slowest bearer of docs/bearers.md, Iridium SBD, ~20 s
TRANSPORTS: Final = ("udp", "tcp", "kiss", "s5066")
DURABILITIES: Final = ("process", "power")
# Set from other tables, not from [engine]:
ENGINE_RESERVED: Final = frozenset(
    {"static_routes", "planned", "planned_links", "pace", "contacts"}
)
S5066_MTU_MAX: Final = 2048
"""A general-purpose 5066 node's MTU (Ed.3 A.2.1.3); tawan's unicast is ARQ, which only such
a node carries (larger MTUs are for broadcast-only nodes)."""
MTU_LIMITS: Final = {"udp": MTU_MAX, "tcp": MTU_MAX, "kiss": KISS_MTU_MAX, "s5066": S5066_MTU_MAX}
TTL_MAX_S: Final = TTL_MAX_UNITS * TTL_UNIT_S
KISS_TIME_MAX_MS: Final = 2550  # one byte of 10 ms units
DAY_S: Final = 86400.0
_BEARER_NAME_EXPECTED: Final = f"a bearer name of {BEARER_NAME_RULE} (adverts carry it)"

Transport = Literal["udp", "tcp", "kiss", "s5066"]
Durability = Literal["process", "power"]


class ConfigError(Exception):
    """The configuration file is missing, not TOML, or holds a wrong, missing or unknown key."""


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """A neighbour on a link: its roster name and its endpoint there, the name the link
    gives it: "host:port" (udp; tcp where it listens, None where it dials in), its callsign
    (kiss, as `Callsign` spells it) or its 5066 node address (s5066, "a.b.c.d")."""

    node: str
    address: str | None


@dataclass(frozen=True, slots=True)
class KissSettings:
    """A kiss link's TNC and station: the TNC at `tnc` ("host:port") or on serial `device`."""

    callsign: str
    tnc: str | None
    device: str | None
    speed: int  # baud, serial only
    parameters: TncParameters
    broadcast: str | None
    port: int  # the TNC port (0-15) frames travel on


@dataclass(frozen=True, slots=True)
class S5066Settings:
    """An s5066 link's SIS server and the client's bind and delivery settings."""

    server: str
    sap: int
    rank: int
    priority: int
    ttl_s: float
    broadcast_retx: int
    peer_retry_s: float
    groups: Mapping[str, str]  # name -> group address ("group:a.b.c.d")


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str
    transport: Transport
    profile: BearerProfile
    peers: tuple[PeerConfig, ...]
    bind: str | None = None  # udp: the local endpoint
    listen: str | None = None  # tcp: accept connections here (None: dial only)
    kiss: KissSettings | None = None
    s5066: S5066Settings | None = None

    @property
    def connect(self) -> tuple[str, ...]:
        """tcp: the endpoints this node dials (the peers that have an address)."""
        return tuple(p.address for p in self.peers if p.address is not None)


@dataclass(frozen=True, slots=True)
class StaticRoute:
    to: str
    via: str


@dataclass(frozen=True, slots=True)
class ContactsConfig:
    """[contacts]: the contact plan read from `plan`, its nodes still named as in the file
    (the daemon resolves them against the roster), and `epoch`, the POSIX time at which the
    plan's clock reads 0 (None: the mission's start)."""

    path: Path
    plan: ContactPlan
    epoch: float | None


@dataclass(frozen=True, slots=True)
class NodeConfig:
    source: Path
    name: str
    key_file: Path
    roster: Path
    store: Path
    durability: Durability
    store_max_bytes: int
    api_address: str  # "host:port" on a loopback address, or "unix:/path"
    metrics_address: str | None
    links: tuple[LinkConfig, ...]
    static_routes: tuple[StaticRoute, ...]
    engine: EngineConfig
    contacts: ContactsConfig | None = None


class _Table:
    """One TOML table being read: typed getters that know the key's dotted path."""

    def __init__(self, data: Mapping[str, object], where: str, source: Path) -> None:
        self.data = data
        self.where = where
        self.source = source
        self.used: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, expected: str, found: object) -> ConfigError:
        return ConfigError(
            f"{self.source}: {self.path(key)}: expected {expected}, found {_describe(found)}"
        )

    def get(self, key: str) -> object:
        self.used.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def string(self, key: str, default: str | None = None) -> str:
        value = self.get(key)
        if value is None and default is not None:
            return default
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string", value)
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str | None = None) -> str:
        value = self.get(key)
        if value is None and default is not None:
            return default
        if value not in choices:
            raise self.fail(key, "one of " + ", ".join(repr(c) for c in choices), value)
        return str(value)

    def integer(
        self, key: str, low: int, high: int | None = None, default: int | None = None
    ) -> int:
        value = self.get(key)
        if value is None and default is not None:
            return default
        if type(value) is int and value >= low and (high is None or value <= high):
            return value
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise self.fail(key, f"an integer {span}", value)

    def number(
        self, key: str, low: float, high: float, *, above: bool = False,
        default: float | None = None,
    ) -> float:  # fmt: skip
        """A finite number in low..high; `above`: low itself refused."""
        value = self.get(key)
        if value is None and default is not None:
            return default
        if type(value) in (int, float):
            number = _as_float(value)  # type: ignore[arg-type]  # checked just above
            if (number > low if above else number >= low) and number <= high:
                return number  # nan and inf fail the comparisons
        start = f"> {low:g} and <=" if above else f"{low:g}.."
        raise self.fail(key, f"a number {start}{'' if not above else ' '}{high:g}", value)

    def name(self, key: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.get(key)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.fail(key, expected, value)
        return value

    def boolean(self, key: str) -> bool | None:
        value = self.get(key)
        if value is None or type(value) is bool:
            return value
        raise self.fail(key, "true or false", value)

    def path_value(self, key: str) -> Path:
        path = Path(self.string(key)).expanduser()
        return path if path.is_absolute() else self.source.parent / path

    def endpoint(self, key: str, *, loopback: bool = False) -> str:
        text = self.get(key)
        expected = "'host:port' (IPv6 in brackets)"
        if not isinstance(text, str):
            raise self.fail(key, expected, text)
        try:
            host, port = parse_endpoint(text, self.path(key))
        except ValueError:
            raise self.fail(key, expected, text) from None
        if loopback and not _is_loopback(host):
            raise self.fail(key, "a loopback address such as 127.0.0.1:7470", text)
        return format_endpoint(host, port)

    def table(self, key: str, *, required: bool = True) -> _Table:
        value = self.get(key)
        if value is None and not required:
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return _Table(value, self.path(key), self.source)

    def tables(self, key: str) -> list[_Table]:
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(key, "an array of tables", value)
        return [_Table(v, f"{self.path(key)}[{i}]", self.source) for i, v in enumerate(value)]

    def done(self) -> None:
        """Refuse keys nobody asked for."""
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise ConfigError(
                f"{self.source}: {self.path(unknown[0])}: unknown key "
                f"(expected one of: {', '.join(sorted(self.used))})"
            )


def load_config(path: str | Path) -> NodeConfig:
    """Read and validate a node configuration file."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not valid TOML: expected UTF-8 text") from None
    except ValueError:  # an integer of more than sys.get_int_max_str_digits() digits
        too_long = f"an integer of over {sys.get_int_max_str_digits()} digits"
        raise ConfigError(f"{source}: not valid TOML: {too_long}") from None
    except RecursionError:
        too_deep = "arrays or tables nested too deeply"
        raise ConfigError(f"{source}: not valid TOML: {too_deep}") from None
    return parse_config(data, source.absolute())


def parse_config(data: Mapping[str, object], source: Path) -> NodeConfig:
    """Validate an already parsed TOML document; `source` names it and anchors paths."""
    top = _Table(data, "", source)
    node = top.table("node")
    api = top.table("api", required=False)
    metrics = top.table("metrics", required=False)
    links = tuple(_link(t) for t in top.tables("links"))
    routing = top.table("routing", required=False)
    contacts = top.table("contacts", required=False)
    config = NodeConfig(
        source=source,
        name=node.string("name"),
        key_file=node.path_value("key_file"),
        roster=node.path_value("roster"),
        store=node.path_value("store"),
        durability=node.choice("durability", DURABILITIES, "process"),  # type: ignore[arg-type]
        store_max_bytes=node.integer(
            "store_max_bytes", STORE_MIN_BYTES, SIZE_MAX_BYTES, DEFAULT_STORE_MAX_BYTES
        ),
        api_address=_api_address(api),
        metrics_address=metrics.endpoint("address") if metrics.has("address") else None,
        links=links,
        static_routes=_static_routes(routing),
        engine=dataclasses.replace(
            _engine(top.table("engine", required=False)),
            pace=_pace(top.table("pace", required=False)),
        ),
        contacts=_contacts(contacts) if contacts.data else None,
    )
    for table in (node, api, metrics, routing, contacts, top):
        table.done()
    _check_links(top, config)
    _check_routes(top, config)
    return config


def _api_address(api: _Table) -> str:
    if not api.has("address"):
        return DEFAULT_API_ADDRESS
    text = api.string("address")
    if text.startswith(UNIX_PREFIX):
        if not text[len(UNIX_PREFIX) :].strip():
            raise api.fail("address", "'unix:/path/to/socket'", text)
        unix = Path(text[len(UNIX_PREFIX) :]).expanduser()
        return UNIX_PREFIX + str(unix if unix.is_absolute() else api.source.parent / unix)
    return api.endpoint("address", loopback=True)


def _link(table: _Table) -> LinkConfig:
    transport = table.choice("transport", TRANSPORTS)
    name = table.string("name")
    profile = table.table("profile")
    link = LinkConfig(
        name=name,
        transport=transport,  # type: ignore[arg-type]
        profile=BearerProfile(
            name=profile.name("name", BEARER_NAME_RE, _BEARER_NAME_EXPECTED),
            rate_bps=profile.integer("rate_bps", 1, RATE_MAX_BPS),
            delay_s=profile.number("delay_s", 0, DELAY_MAX_S),
            mtu=profile.integer("mtu", MTU_MIN, MTU_LIMITS[transport]),
            cost=profile.number("cost", 0, COST_MAX, above=True),
            hello_s=profile.number("hello_s", 0, HELLO_MAX_S, default=0.0),
        ),
        peers=tuple(_peer(t, transport) for t in table.tables("peers")),
        bind=table.endpoint("bind") if transport == "udp" else None,
        listen=table.endpoint("listen") if transport == "tcp" and table.has("listen") else None,
        kiss=_kiss(table) if transport == "kiss" else None,
        s5066=_s5066(table) if transport == "s5066" else None,
    )
    profile.done()
    table.done()
    if transport == "udp" and any(p.address is None for p in link.peers):
        missing = next(i for i, p in enumerate(link.peers) if p.address is None)
        raise table.fail(f"peers[{missing}].address", "'host:port' (udp peers need one)", None)
    if transport == "tcp" and link.listen is None and not link.connect:
        raise table.fail("listen", "'host:port', or peers with an address to dial", None)
    _check_radio_names(table, link)
    return link


def _peer(table: _Table, transport: str) -> PeerConfig:
    node = table.string("node")
    if transport == "kiss":
        address: str | None = _callsign(table, "callsign")
    elif transport == "s5066":
        address = _node_address(table, "address")
    else:
        address = table.endpoint("address") if table.has("address") else None
    table.done()
    return PeerConfig(node=node, address=address)


def _kiss(table: _Table) -> KissSettings:
    """The TNC (TCP or serial, exactly one), the station, the channel-access parameters."""
    if not table.has("tnc") and not table.has("device"):
        raise table.fail("tnc", "'host:port' of a KISS TNC, or device (a serial one)", None)
    if table.has("tnc") and table.has("device"):
        raise table.fail("device", "no device when tnc is set (one TNC per link)",
                         table.get("device"))  # fmt: skip
    device = table.string("device") if table.has("device") else None
    speed = table.get("speed")
    if device is None and speed is not None:
        raise table.fail("speed", "no speed with tnc (it is a serial device's baud rate)", speed)
    if speed is not None and (type(speed) is not int or speed not in SPEEDS):
        raise table.fail("speed", "one of " + ", ".join(map(str, SPEEDS)) + " (baud)", speed)
    persistence = table.integer("persistence", 0, 255) if table.has("persistence") else None
    return KissSettings(
        callsign=_callsign(table, "callsign"),
        tnc=table.endpoint("tnc") if device is None else None,
        device=device,
        speed=9600 if speed is None else speed,
        parameters=TncParameters(
            txdelay_ms=_tens_of_ms(table, "txdelay_ms"),
            persistence=persistence,
            slot_ms=_tens_of_ms(table, "slot_ms"),
            txtail_ms=_tens_of_ms(table, "txtail_ms"),
            full_duplex=table.boolean("full_duplex"),
        ),
        broadcast=_callsign(table, "broadcast") if table.has("broadcast") else None,
        port=table.integer("kiss_port", 0, PORT_MAX, 0),
    )


def _s5066(table: _Table) -> S5066Settings:
    groups = table.table("groups", required=False)
    settings = S5066Settings(
        server=table.endpoint("server"),
        sap=table.integer("sap", 0, 15, 13),
        rank=table.integer("rank", 0, 14, 5),
        priority=table.integer("priority", 0, 15, 7),
        ttl_s=_ttl_s(table),
        broadcast_retx=table.integer("broadcast_retx", 0, 15, 1),
        peer_retry_s=table.number("peer_retry_s", 0, DAY_S, above=True, default=120.0),
        groups={name: _node_address(groups, name, group=True) for name in list(groups.data)},
    )
    groups.done()
    return settings


def _ttl_s(table: _Table) -> float:
    value = table.get("ttl_s")
    if value is None:
        return 600.0
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (value == 0 or 2 <= value <= TTL_MAX_S)  # nan and inf fail
    ):
        return float(value)
    expected = f"0 (the server's longest) or seconds 2..{TTL_MAX_S:.0f} (sent in 2 s units)"
    raise table.fail("ttl_s", expected, value)


def _callsign(table: _Table, key: str) -> str:
    """A callsign in its one spelling: the one the link names the station by."""
    value = table.get(key)
    try:
        return str(Callsign.parse(value, key))  # type: ignore[arg-type]  # parse checks it
    except ValueError:
        expected = "a callsign CALL or CALL-SSID (1-6 upper-case letters or digits, SSID 1..15)"
        raise table.fail(key, expected, value) from None


def _node_address(table: _Table, key: str, *, group: bool = False) -> str:
    """A 5066 address as the link names it ("a.b.c.d", "group:a.b.c.d")."""
    value = table.get(key)
    kind = "group" if group else "node"
    expected = f"a 5066 {kind} address 'a.b.c.d' (at most 15.255.255.255) or an integer"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise table.fail(key, expected, value)
    try:
        address = parse_address(value, group=group)
    except ValueError:
        raise table.fail(key, expected, value) from None
    if address.group != group:
        raise table.fail(key, "a node address (groups go under groups)", value)
    return str(address)


def _tens_of_ms(table: _Table, key: str) -> int | None:
    value = table.get(key)
    if value is None:
        return None
    if type(value) is int and 0 <= value <= KISS_TIME_MAX_MS and value % 10 == 0:
        return value
    expected = f"a multiple of 10 ms in 0..{KISS_TIME_MAX_MS} (one byte of 10 ms units)"
    raise table.fail(key, expected, value)


def _check_radio_names(table: _Table, link: LinkConfig) -> None:
    """One station, one name: a callsign or 5066 address names one peer of the link, never
    this node itself or the broadcast alias, and no group goes by a peer's name."""
    taken: dict[str, str] = {}
    if link.kiss is not None:
        taken[link.kiss.callsign] = "this node's callsign"
        broadcast = link.kiss.broadcast
        if broadcast is not None:
            if broadcast in taken:
                raise table.fail("broadcast", "an alias other than this node's callsign",
                                 broadcast)  # fmt: skip
            taken[broadcast] = "the broadcast alias"
    elif link.s5066 is None:
        return
    key = "callsign" if link.kiss is not None else "address"
    for index, peer in enumerate(link.peers):
        endpoint = peer.address or ""  # never None on a radio link (_peer)
        if endpoint in taken:
            article = "a" if key == "callsign" else "an"
            expected = f"{article} {key} no other station uses ({taken[endpoint]} is {endpoint!r})"
            raise table.fail(f"peers[{index}].{key}", expected, endpoint)
        taken[endpoint] = f"peers[{index}]"
    for name in link.s5066.groups if link.s5066 is not None else ():
        if name in taken:
            raise table.fail(f"groups.{name}", "a group name no peer address uses", name)


def _static_routes(routing: _Table) -> tuple[StaticRoute, ...]:
    routes = []
    for table in routing.tables("static"):
        routes.append(StaticRoute(to=table.string("to"), via=table.string("via")))
        table.done()
    return tuple(routes)


def _pace(table: _Table) -> PacePolicy:
    """[pace]: per precedence name (FLASH = ["satcom", "hf"]) the bearers it may use, by
    the link profiles' names; [pace.largest]: per bearer the largest message, in bytes."""
    bearers: dict[Precedence, frozenset[str]] = {}
    for precedence in Precedence:
        if not table.has(precedence.name):
            continue
        names = table.get(precedence.name)
        if type(names) is not list or not all(type(n) is str and n for n in names):
            raise table.fail(precedence.name, "an array of bearer names", names)
        bearers[precedence] = frozenset(names)  # checked above
    largest = dict(DEFAULT_PACE.largest)
    if table.has("largest"):
        sizes = table.table("largest")
        for bearer in sizes.data:
            largest[bearer] = sizes.integer(bearer, 1, SIZE_MAX_BYTES)
        sizes.done()
    table.done()
    return PacePolicy(bearers, largest)


def _contacts(table: _Table) -> ContactsConfig:
    """[contacts]: `plan`, a contact plan file (ION, HDTN or ours, by its suffix:
    docs/contacts.md), read and checked now; `epoch`, optional."""
    path = table.path_value("plan")
    epoch = table.number("epoch", 0, 1e11) if table.has("epoch") else None
    try:
        plan = load_plan(path)
    except OSError as exc:
        found = f"{path} ({exc.strerror})"
        raise table.fail("plan", "a readable contact plan file", found) from None
    except ContactPlanError as exc:
        raise ConfigError(f"{table.source}: {table.path('plan')}: {exc}") from None
    return ContactsConfig(path, plan, epoch)


def _engine(table: _Table) -> EngineConfig:
    """[engine] sets the scalar tunables of EngineConfig, which checks every bound itself:
    one place for the bounds, and one message for `-1` and `0` alike."""
    defaults = EngineConfig()
    values: dict[str, object] = {}
    for field in dataclasses.fields(EngineConfig):
        if field.name in ENGINE_RESERVED or not table.has(field.name):
            continue
        value = table.get(field.name)
        if type(value) is int and type(getattr(defaults, field.name)) is float:
            value = _as_float(value)  # `hello_interval = 1` means 1.0 seconds
        values[field.name] = value
    table.done()
    try:
        return EngineConfig(**values)  # type: ignore[arg-type]  # EngineConfig checks types
    except EngineConfigError as exc:
        found = table.data[exc.key] if table.has(exc.key) else _Default(exc.found)
        raise table.fail(exc.key, exc.expected, found) from None


def _check_links(top: _Table, config: NodeConfig) -> None:
    seen: set[str] = set()
    for index, link in enumerate(config.links):
        where = f"links[{index}]"
        if link.name in seen:
            raise top.fail(f"{where}.name", "a name no other link uses", link.name)
        seen.add(link.name)
        nodes = [p.node for p in link.peers]
        for i, node in enumerate(nodes):
            if node in nodes[:i]:
                raise top.fail(f"{where}.peers[{i}].node", "a node listed once per link", node)
            if node == config.name:
                raise top.fail(f"{where}.peers[{i}].node", "a node other than this one", node)


def _check_routes(top: _Table, config: NodeConfig) -> None:
    neighbours = {peer.node for link in config.links for peer in link.peers}
    for index, route in enumerate(config.static_routes):
        if route.via not in neighbours:
            where = f"routing.static[{index}].via"
            raise top.fail(where, "a neighbour configured under [[links.peers]]", route.via)


def _as_float(value: float) -> float:
    """`value` as a float; an integer too large for one is infinite, which every bound
    refuses (float() raises OverflowError past about 1.8e308)."""
    try:
        return float(value)
    except OverflowError:
        return float("inf")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class _Default:
    """A default value found wanting against a value set in the file."""

    value: object


def _describe(value: object) -> str:
    if isinstance(value, _Default):
        return f"the default {value.value!r}"
    if value is None:
        return "nothing"
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    kinds |= {list: "array", dict: "table"}
    kind = kinds.get(type(value), type(value).__name__)
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return f"{kind} {shown}"
