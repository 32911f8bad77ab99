"""The node daemon: config, keys, store and links assembled, served until a signal.

`run_node(path)` is `tawan node run`: it refuses to start, with one line on stderr and exit
status 2, when the configuration, the key file or the roster is wrong; otherwise it serves
until SIGTERM or SIGINT, then stops cleanly (engine state and store committed and closed).
SIGHUP reloads the roster file, refusing (and logging) one that is older, of another mission
or badly signed. docs/operators.md is the operator's view of all this.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import trio
from prometheus_client.registry import CollectorRegistry

from crypto.errors import CryptoError
from crypto.keyring import Keyring
from crypto.roster import NodeEntry, Roster, load_roster
from tawan.core.contact_routing import address_of, plan_for_engine
from tawan.core.contacts import ContactPlan, ContactPlanError
from tawan.core.engine import Engine, LinkSpec, PeerSpec
from tawan.core.store import Store, StoreError
from tawan.node.api import listener_address, open_listeners, serve_api
from tawan.node.config import ConfigError, LinkConfig, NodeConfig, load_config
from tawan.node.metrics import (
    NodeMetrics,
    run_in_trio,
    server_address,
    start_metrics_server,
    stop_metrics_server,
)
from tawan.node.runtime import Clock, Runtime, kv
from transports.kisslink import KissLink
from transports.link import Link
from transports.s5066 import S5066Link
from transports.tcp import TcpLink
from transports.udp import UdpLink

EXIT_STARTUP = 2  # configuration, keys or roster refused: fix the files, do not retry
EXIT_RUNTIME = 1  # the node started but could not carry on (e.g. a port already in use)

log = logging.getLogger("tawan.node")


@dataclass
class Node:
    """Everything one running node owns; `close()` releases it in the right order."""

    config: NodeConfig
    keyring: Keyring
    store: Store
    engine: Engine
    links: dict[str, Link]
    runtime: Runtime
    store_lock: int  # a file descriptor holding the store's lock file
    metrics: MetricsEndpoint | None = None

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
        self.engine.close()
        self.store.close()
        os.close(self.store_lock)


@dataclass
class MetricsEndpoint:
    """The node's Prometheus endpoint: scrapes read the engine on the trio thread."""

    exporter: NodeMetrics
    server: WSGIServer
    thread: threading.Thread

    @classmethod
    def start(cls, node: Node, address: str) -> MetricsEndpoint:
        """Call from the node's trio thread; OSError naming the address if it is taken."""
        registry = CollectorRegistry()
        exporter = NodeMetrics(
            node.engine, registry, run_in_owner=run_in_trio(), link_io=node.runtime.link_io
        )
        server, thread = start_metrics_server(registry, address)
        node.runtime.observers.append(exporter.observe_event)
        log.info(kv(event="metrics_listening", address=server_address(server)))
        return cls(exporter, server, thread)

    def close(self) -> None:
        stop_metrics_server(self.server, self.thread)
        self.exporter.close()


def resolve_address(roster: Roster, config: NodeConfig, where: str, name: str) -> int:
    """The roster address of node or group `name`; a ConfigError naming `where` if none."""
    entry = roster.by_name(name)
    if entry is None:
        raise ConfigError(
            f"{config.source}: {where}: expected a node or group of the roster "
            f"{config.roster}, found {name!r}"
        )
    return entry.address


def engine_contacts(config: NodeConfig, roster: Roster, t0: float) -> ContactPlan | None:
    """The configured contact plan as the engine takes it: nodes by roster address (a name
    in the file is a roster name or an address), times on the node's clock (the plan's 0
    at `[contacts] epoch`, else at the mission's start `t0`)."""
    if config.contacts is None:
        return None

    def resolve(name: str) -> int | None:
        entry = roster.by_name(name)
        if entry is None:
            return address_of(name)
        return entry.address if isinstance(entry, NodeEntry) else None  # not a group

    epoch = t0 if config.contacts.epoch is None else config.contacts.epoch
    try:
        return plan_for_engine(config.contacts.plan, resolve, epoch)
    except ContactPlanError as exc:
        raise ConfigError(
            f"{config.source}: contacts.plan: {config.contacts.path}: {exc} "
            f"(roster {config.roster})"
        ) from None


def link_specs(config: NodeConfig, roster: Roster) -> list[LinkSpec]:
    specs = []
    for i, link in enumerate(config.links):
        peers = tuple(
            PeerSpec(_neighbour(roster, config, f"links[{i}].peers[{j}].node", p.node), p.address)
            for j, p in enumerate(link.peers)
        )
        specs.append(LinkSpec(link.name, link.profile, peers))
    return specs


def _neighbour(roster: Roster, config: NodeConfig, where: str, name: str) -> int:
    """A link peer's roster address: a node (a group has no station to talk to)."""
    address = resolve_address(roster, config, where, name)
    if not isinstance(roster.by_name(name), NodeEntry):
        raise ConfigError(
            f"{config.source}: {where}: expected a node of the roster {config.roster}, "
            f"found the group {name!r} (a link's peers are stations; a group's members are "
            "reached through them)"
        )
    return address


def static_routes(config: NodeConfig, roster: Roster) -> dict[int, int]:
    routes = {}
    for i, route in enumerate(config.static_routes):
        to = resolve_address(roster, config, f"routing.static[{i}].to", route.to)
        routes[to] = resolve_address(roster, config, f"routing.static[{i}].via", route.via)
    return routes


def make_link(link: LinkConfig) -> Link:
    """The link of `link`. Its peers are named by their configured endpoints, the names
    `link_specs` gives the engine, so what a link reports matches the peer configured."""
    peers = [p.address for p in link.peers if p.address is not None]
    if link.kiss is not None:
        kiss = link.kiss
        return KissLink(
            link.name, link.profile, callsign=kiss.callsign, peers=peers, tnc=kiss.tnc,
            device=kiss.device, speed=kiss.speed, parameters=kiss.parameters,
            broadcast=kiss.broadcast, port=kiss.port,
        )  # fmt: skip
    if link.s5066 is not None:
        hf = link.s5066
        return S5066Link(
            link.name, link.profile, hf.server, {address: address for address in peers},
            groups=hf.groups, sap=hf.sap, rank=hf.rank, priority=hf.priority, ttl_s=hf.ttl_s,
            broadcast_retx=hf.broadcast_retx, peer_retry_s=hf.peer_retry_s,
        )  # fmt: skip
    if link.transport == "udp":
        return UdpLink(link.name, link.profile, link.bind or "", peers)
    return TcpLink(link.name, link.profile, link.listen, peers)


def open_node(config: NodeConfig, clock: Clock = time.time) -> Node:
    """Load keys, check names against the roster, open the store; nothing listens yet."""
    keyring = Keyring.from_files(config.key_file, config.roster)
    if keyring.name != config.name:
        raise ConfigError(
            f"{config.source}: node.name: expected {keyring.name!r} (the node of key file "
            f"{config.key_file}), found {config.name!r}"
        )
    engine_config = dataclasses.replace(
        config.engine, static_routes=static_routes(config, keyring.roster),
        contacts=engine_contacts(config, keyring.roster, keyring.t0),
    )  # fmt: skip
    specs = link_specs(config, keyring.roster)
    try:
        links = {link.name: make_link(link) for link in config.links}
    except ValueError as exc:  # the config checks every bound; this is the backstop
        raise ConfigError(f"{config.source}: {exc}") from None
    lock = lock_store(config.store)
    try:
        store = Store(config.store, durability=config.durability, max_bytes=config.store_max_bytes)
    except BaseException:
        os.close(lock)
        raise
    key_state = _key_state(keyring)  # before the engine ratchets the keys to today
    try:
        engine = Engine(keyring, store, engine_config, specs, random.Random(), clock())
    except BaseException:
        store.close()
        os.close(lock)
        raise
    runtime = Runtime(engine, store, links, clock=clock)
    runtime.after_timer = key_saver(keyring, config.key_file, key_state)
    runtime.after_timer()  # roots erased at start-up leave the disk now, not an epoch later
    return Node(config, keyring, store, engine, links, runtime, lock)


def lock_store(store: Path) -> int:
    """Hold `STORE.lock` for the life of the process: two nodes on one store would each take
    custody of the same messages. The kernel drops the lock when the process dies."""
    path = store.with_name(store.name + ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open the store's lock file ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(f"{store}: in use by another node process (locked)") from None
    return fd


def _key_state(keyring: Keyring) -> tuple[int, int, int]:
    """What, when it changes, means roots were erased: the oldest epoch kept, the roster
    version and the revocations applied (a revoked peer's root goes)."""
    return keyring.oldest_epoch, keyring.roster.version, len(keyring.revocations)


def key_saver(
    keyring: Keyring, path: Path, saved: tuple[int, int, int] | None = None
) -> Callable[[], None]:
    """Rewrite the key file when the keyring erased roots (an epoch passed, a peer was
    revoked), so they leave the disk too."""
    last = _key_state(keyring) if saved is None else saved

    def save_if_erased() -> None:
        nonlocal last
        now = _key_state(keyring)
        if now == last:
            return
        last = now  # one attempt per change: a failure must not spin
        try:
            keyring.save(path)
        except (OSError, CryptoError) as exc:
            log.warning(kv(event="keys_save_failed", file=path, detail=str(exc)))
            return
        log.info(kv(event="keys_saved", oldest_epoch=now[0], roster_version=now[1]))

    return save_if_erased


def reload_roster(node: Node) -> None:
    """SIGHUP: adopt the roster file if it is a valid successor; log and keep it otherwise."""
    path = node.config.roster
    try:
        roster = load_roster(path, known=node.keyring.base_roster)
        if roster.version == node.keyring.base_roster.version:
            log.info(kv(event="roster_unchanged", version=roster.version, file=path))
            return
        node.runtime.update_roster(roster)
    except CryptoError as exc:
        log.warning(kv(event="roster_refused", file=path, detail=str(exc)))


async def serve(
    node: Node, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Run the node until SIGTERM or SIGINT."""
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    with trio.open_signal_receiver(*signals) as received:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.runtime.run)
            try:
                listeners = await open_listeners(node.config.api_address)
            except OSError as exc:
                message = f"api.address {node.config.api_address}: {exc.strerror or exc}"
                raise OSError(exc.errno, message) from exc
            await nursery.start(serve_api, node.runtime, listeners)
            if node.config.metrics_address is not None:
                node.metrics = MetricsEndpoint.start(node, node.config.metrics_address)
            log.info(
                kv(event="node_started", node=node.config.name, address=node.keyring.address,
                   api=listener_address(listeners[0]), links=",".join(node.links))
            )  # fmt: skip
            task_status.started()
            async for signum in received:
                if signum == signal.SIGHUP:
                    reload_roster(node)
                    continue
                log.info(kv(event="stopping", signal=signal.Signals(signum).name))
                nursery.cancel_scope.cancel()
                break


def run_node(config_path: str | Path, *, log_level: str = "INFO") -> int:
    """`tawan node run`: the process exit status."""
    logging.basicConfig(
        level=log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        node = open_node(load_config(config_path))
    except (ConfigError, CryptoError, StoreError) as exc:
        print(f"tawan node: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    status = 0
    try:
        try:
            trio.run(serve, node)
        except* OSError as group:
            print(f"tawan node: {_first(group)}", file=sys.stderr)
            status = EXIT_RUNTIME
    finally:
        node.close()
        log.info(kv(event="stopped", node=node.config.name))
    return status


def _first(group: BaseExceptionGroup[OSError]) -> str:
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    return found.strerror or str(found) if isinstance(found, OSError) else str(found)
