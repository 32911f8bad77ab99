"""The node configuration file (TOML), validated once into frozen typed objects.

Everything a daemon needs from its file is checked here, before any socket or store is
opened, and every mistake raises `ConfigError` naming the file, the key
(``links[1].profile.mtu``, list indices from 0) and what was expected against what was
found. Unknown keys are errors too: a misspelt key silently falling back to its default is
the kind of mistake nobody notices until the net is down.

Node names (peers, static routes) stay names here; the runtime resolves them against the
signed roster when it starts, because the roster, not the config file, is the authority on
addresses. docs/operators.md describes every key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from tawan.core.specs import EngineConfig, EngineConfigError
from tawan.node.client import DEFAULT_API_ADDRESS, UNIX_PREFIX
from transports.link import format_endpoint, parse_endpoint
from transports.profile import COST_MAX, MTU_MAX, MTU_MIN, BearerProfile

DEFAULT_STORE_MAX_BYTES: Final = 256 * 1024 * 1024
STORE_MIN_BYTES: Final = 1 << 20
DELAY_MAX_S: Final = 60.0  # one way; the slowest bearer of docs/bearers.md, Iridium SBD, ~20 s
TRANSPORTS: Final = ("udp", "tcp")
DURABILITIES: Final = ("process", "power")
ENGINE_RESERVED: Final = frozenset({"static_routes", "planned", "pace"})  # not from [engine]

Transport = Literal["udp", "tcp"]
Durability = Literal["process", "power"]


class ConfigError(Exception):
    """The configuration file is missing, not TOML, or holds a wrong, missing or unknown key."""


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """A neighbour on a link: its roster name and, where it listens, its endpoint."""

    node: str
    address: str | None


@dataclass(frozen=True, slots=True)
class LinkConfig:
    name: str
    transport: Transport
    profile: BearerProfile
    peers: tuple[PeerConfig, ...]
    bind: str | None = None  # udp: the local endpoint
    listen: str | None = None  # tcp: accept connections here (None: dial only)

    @property
    def connect(self) -> tuple[str, ...]:
        """tcp: the endpoints this node dials (the peers that have an address)."""
        return tuple(p.address for p in self.peers if p.address is not None)


@dataclass(frozen=True, slots=True)
class StaticRoute:
    to: str
    via: str


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

    def number(self, key: str, low: float, high: float, *, above: bool = False) -> float:
        """A finite number in low..high; `above`: low itself refused."""
        value = self.get(key)
        if type(value) in (int, float):
            number = float(value)  # type: ignore[arg-type]  # checked just above
            if (number > low if above else number >= low) and number <= high:
                return number  # nan and inf fail the comparisons
        start = f"> {low:g} and <=" if above else f"{low:g}.."
        raise self.fail(key, f"a number {start}{'' if not above else ' '}{high:g}", value)

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
    return parse_config(data, source.absolute())


def parse_config(data: Mapping[str, object], source: Path) -> NodeConfig:
    """Validate an already parsed TOML document; `source` names it and anchors paths."""
    top = _Table(data, "", source)
    node = top.table("node")
    api = top.table("api", required=False)
    metrics = top.table("metrics", required=False)
    links = tuple(_link(t) for t in top.tables("links"))
    routing = top.table("routing", required=False)
    config = NodeConfig(
        source=source,
        name=node.string("name"),
        key_file=node.path_value("key_file"),
        roster=node.path_value("roster"),
        store=node.path_value("store"),
        durability=node.choice("durability", DURABILITIES, "process"),  # type: ignore[arg-type]
        store_max_bytes=node.integer(
            "store_max_bytes", STORE_MIN_BYTES, None, DEFAULT_STORE_MAX_BYTES
        ),
        api_address=_api_address(api),
        metrics_address=metrics.endpoint("address") if metrics.has("address") else None,
        links=links,
        static_routes=_static_routes(routing),
        engine=_engine(top.table("engine", required=False)),
    )
    for table in (node, api, metrics, routing, top):
        table.done()
    _check_links(top, links)
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
    profile = table.table("profile")
    link = LinkConfig(
        name=table.string("name"),
        transport=transport,  # type: ignore[arg-type]
        profile=BearerProfile(
            name=profile.string("name"),
            rate_bps=profile.integer("rate_bps", 1),
            delay_s=profile.number("delay_s", 0, DELAY_MAX_S),
            mtu=profile.integer("mtu", MTU_MIN, MTU_MAX),
            cost=profile.number("cost", 0, COST_MAX, above=True),
        ),
        peers=tuple(_peer(t) for t in table.tables("peers")),
        bind=table.endpoint("bind") if transport == "udp" else None,
        listen=table.endpoint("listen") if transport == "tcp" and table.has("listen") else None,
    )
    profile.done()
    table.done()
    if transport == "udp" and any(p.address is None for p in link.peers):
        missing = next(i for i, p in enumerate(link.peers) if p.address is None)
        raise table.fail(f"peers[{missing}].address", "'host:port' (udp peers need one)", None)
    if transport == "tcp" and link.listen is None and not link.connect:
        raise table.fail("listen", "'host:port', or peers with an address to dial", None)
    return link


def _peer(table: _Table) -> PeerConfig:
    peer = PeerConfig(
        node=table.string("node"),
        address=table.endpoint("address") if table.has("address") else None,
    )
    table.done()
    return peer


def _static_routes(routing: _Table) -> tuple[StaticRoute, ...]:
    routes = []
    for table in routing.tables("static"):
        routes.append(StaticRoute(to=table.string("to"), via=table.string("via")))
        table.done()
    return tuple(routes)


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
            value = float(value)  # `hello_interval = 1` means 1.0 seconds
        values[field.name] = value
    table.done()
    try:
        return EngineConfig(**values)  # type: ignore[arg-type]  # EngineConfig checks types
    except EngineConfigError as exc:
        found = table.data[exc.key] if table.has(exc.key) else _Default(exc.found)
        raise table.fail(exc.key, exc.expected, found) from None


def _check_links(top: _Table, links: tuple[LinkConfig, ...]) -> None:
    seen: set[str] = set()
    for index, link in enumerate(links):
        where = f"links[{index}]"
        if link.name in seen:
            raise top.fail(f"{where}.name", "a name no other link uses", link.name)
        seen.add(link.name)
        nodes = [p.node for p in link.peers]
        for i, node in enumerate(nodes):
            if node in nodes[:i]:
                raise top.fail(f"{where}.peers[{i}].node", "a node listed once per link", node)


def _check_routes(top: _Table, config: NodeConfig) -> None:
    neighbours = {peer.node for link in config.links for peer in link.peers}
    for index, route in enumerate(config.static_routes):
        if route.via not in neighbours:
            where = f"routing.static[{index}].via"
            raise top.fail(where, "a neighbour configured under [[links.peers]]", route.via)


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
