"""STANAG 5066 link: HF radios reached as a client of a 5066 server's SIS socket (TCP 5066).

One TCP connection to the node's subnetwork server, one SAP bound on it (SAP 13 by default:
13-15 are free for any client in Ed.3 Table F-1; rank 5). The server's BIND_ACCEPTED gives
the MTU, which caps the profile's. Unicast frames go ARQ with node delivery confirmation;
frames to a group address go non-ARQ, repeated `broadcast_retx` times by the server.
CONFIRM and REJECTED answers are matched to frames and turned into PeerUp / PeerDown by
`transports.s5066_peers.PeerBook` (the rule is written there). DATA_FLOW_OFF makes `send`
wait until DATA_FLOW_ON. KEEP_ALIVE is answered at once. UNBIND_INDICATION or a closed
socket puts every peer down; the link then reconnects and binds again with backoff,
forever (a BIND refused with "SAP already allocated" is retried too: a server may hold the
SAP of a dead socket until it notices).

Peers are configured: names (what the node uses) mapped to 5066 addresses. A U_PDU from an
address that is no configured peer is dropped and counted, as the UDP link does with
unconfigured senders. A slow consumer of `events` stops the reading, as on TCP.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import trio

from transports.link import (
    DEFAULT_EVENT_BUFFER,
    DROP_CLOSED,
    FrameReceived,
    Link,
    LinkEvent,
    PeerUnavailable,
    parse_endpoint,
)
from transports.profile import MTU_MIN, BearerProfile
from transports.s5066_codec import (
    TTL_MAX_UNITS,
    TTL_UNIT_S,
    Address,
    BindAccepted,
    BindRejected,
    BindRequest,
    Confirm,
    DataFlowOff,
    DataFlowOn,
    KeepAlive,
    OtherPrimitive,
    Primitive,
    ServiceType,
    SubnetAvailability,
    TxMode,
    UnbindIndication,
    UnbindRequest,
    UnidataConfirm,
    UnidataIndication,
    UnidataRejected,
    UnidataRequest,
    encode,
    parse_address,
)
from transports.s5066_peers import PeerBook
from transports.s5066_stream import SisDecoder
from transports.tcp import Backoff

_log = logging.getLogger("tawan.transports.s5066")

_READ_SIZE = 65536

DROP_UNKNOWN_SOURCE = "unknown_source"
DROP_WRONG_SAP = "wrong_sap"
DROP_WITH_ERRORS = "with_errors"


class _SessionEnded(Exception):
    """The server closed, unbound us, or stopped answering; the text says which."""


_LOST = (
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    PeerUnavailable,
    _SessionEnded,
)
"""How a session ends: the socket failed or closed, or the server unbound us."""


@dataclass(eq=False)
class _Session:
    """One bound connection; gone (and `closed`) as soon as the connection is."""

    stream: trio.SocketStream
    decoder: SisDecoder
    flow_on: bool = True
    flow_changed: trio.Event = field(default_factory=trio.Event)
    send_lock: trio.Lock = field(default_factory=trio.Lock)  # UNIDATA in order, flow honoured
    write_lock: trio.Lock = field(default_factory=trio.Lock)  # whole primitives on the socket
    closed: bool = False

    def set_flow(self, on: bool) -> None:
        self.flow_on = on
        self.flow_changed.set()
        self.flow_changed = trio.Event()


class S5066Link(Link):
    """A SIS client link; see the module docstring. `peers` and `groups` map peer names to
    5066 addresses (an int or "a.b.c.d")."""

    DROP_REASONS = (DROP_CLOSED, DROP_UNKNOWN_SOURCE, DROP_WRONG_SAP, DROP_WITH_ERRORS)

    def __init__(
        self,
        name: str,
        profile: BearerProfile,
        server: str,
        peers: Mapping[str, str | int],
        *,
        groups: Mapping[str, str | int] | None = None,
        sap: int = 13,
        rank: int = 5,
        priority: int = 7,
        ttl_s: float = 600.0,
        broadcast_retx: int = 1,
        peer_retry_s: float = 120.0,
        rng: random.Random | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        event_buffer: int = DEFAULT_EVENT_BUFFER,
    ) -> None:
        super().__init__(name, profile, event_buffer=event_buffer)
        where = f"link {name}"
        self._server = parse_endpoint(server, f"{where}: server")
        _check(where, "sap", sap, 0, 15)
        _check(where, "rank", rank, 0, 14)  # 15 is for clients that may manage the node
        _check(where, "priority", priority, 0, 15)
        _check(where, "broadcast_retx", broadcast_retx, 0, 15)
        ttl_units = round(ttl_s / TTL_UNIT_S)
        if not (ttl_s == 0 or 1 <= ttl_units <= TTL_MAX_UNITS):
            raise ValueError(
                f"{where}: ttl_s: expected 0 (server default) or 2..{TTL_MAX_UNITS * 2} s, "
                f"found {ttl_s}"
            )
        unicast = _addresses(where, "peers", peers, group=False)
        multicast = _addresses(where, "groups", groups or {}, group=True)
        _check_distinct(where, unicast, multicast)
        self._configured = profile
        self._sap, self._rank, self._priority = sap, rank, priority
        self._ttl_units = ttl_units
        self._unicast_mode = ServiceType(TxMode.ARQ, Confirm.NODE)
        self._group_mode = ServiceType(TxMode.NON_ARQ, Confirm.NONE, min_retx=broadcast_retx)
        self._rng = rng if rng is not None else random.Random()
        Backoff(self._rng, backoff_initial, backoff_max)  # validate now, not at first failure
        self._backoff = (backoff_initial, backoff_max)
        self._connect_timeout = connect_timeout
        # A confirm can take as long as the TTL (HF ARQ); 0 means the server's maximum.
        answer_within = ttl_units * TTL_UNIT_S + 60.0 if ttl_units else 86_400.0
        self._book = PeerBook(
            unicast, multicast, retry_after=peer_retry_s, answer_within=answer_within
        )
        self._book_changed = trio.Event()
        self._session: _Session | None = None
        self.server_mtu: int | None = None
        self.binds = 0
        self.bind_rejections: Counter[str] = Counter()
        self.unbinds: Counter[str] = Counter()
        self.flow_offs = 0
        self.keepalives_answered = 0
        self.ignored_primitives: Counter[str] = Counter()
        self.padded_indications = 0

    # -- what the node sees ---------------------------------------------------------------

    @property
    def peers_up(self) -> frozenset[str]:
        return self._book.up

    @property
    def book(self) -> PeerBook:
        """Answer matching and its counters (confirmed, rejected by reason, unanswered)."""
        return self._book

    @property
    def flow_on(self) -> bool:
        return self._session is not None and self._session.flow_on

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        try:
            task_status.started()  # dial-only: nothing to bind locally
            await self._connect_forever()
        finally:
            self._session = None
            self._event_send.close()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        self._check_frame(frame)
        session = self._session
        if session is None:
            raise PeerUnavailable(self.name, peer, "not bound to the SIS server")
        address = self._book.address_of(peer)
        if address is None:
            raise PeerUnavailable(self.name, peer, "not a configured 5066 peer")
        if not self._book.is_up(peer):
            raise PeerUnavailable(self.name, peer, "the subnetwork rejected frames to it")
        data = bytes(frame)
        mode = self._group_mode if address.group else self._unicast_mode
        priority = self.priority_for(precedence)
        request = UnidataRequest(priority, self._sap, address, mode, self._ttl_units, data)
        async with session.send_lock:
            while not session.flow_on and not session.closed:
                await session.flow_changed.wait()  # DATA_FLOW_OFF: the server would drop it
            if session.closed:
                raise PeerUnavailable(self.name, peer, "SIS session ended while flow was off")
            if not address.group:
                self._book.sent(peer, data, trio.current_time())  # before a fast answer
            await self._write(session, encode(request), peer)
        self._count_sent(data)

    def priority_for(self, precedence: int) -> int:
        """The U_PDU priority (0-15, served high first) of a frame of `precedence`: the
        configured `priority` for ROUTINE, one more per level above it (PRIORITY 8, ...
        OVERRIDE 11 from the default 7), at most 15. Other clients of the server keep their
        place beside the configured value; among tawan's own frames the more urgent goes
        first."""
        return max(0, min(15, self._priority + precedence))

    # -- connection and bind --------------------------------------------------------------

    async def _connect_forever(self) -> None:
        backoff = Backoff(self._rng, *self._backoff)
        host, port = self._server
        while True:
            started = trio.current_time()
            try:
                await self._session_once(host, port)
            except _LOST as exc:
                _log.info("link %s: SIS session to %s:%d ended: %s", self.name, host, port, exc)
            if trio.current_time() - started >= self._backoff[1]:
                backoff.reset()  # a session that held was no flapping server
            await trio.sleep(backoff.next_delay())

    async def _session_once(self, host: str, port: int) -> None:
        stream: trio.SocketStream | None = None
        with trio.move_on_after(self._connect_timeout):
            stream = await trio.open_tcp_stream(host, port)
        if stream is None:
            raise _SessionEnded(f"connect timed out after {self._connect_timeout} s")
        try:
            session = _Session(stream, SisDecoder())
            accepted = await self._bind(session)
            if accepted is not None:
                await self._serve(session, accepted)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(0.5):
                await trio.aclose_forcefully(stream)

    async def _bind(self, session: _Session) -> BindAccepted | None:
        """BIND and wait for the answer; None (after logging why) if the server refused."""
        request = BindRequest(self._sap, self._rank, self._unicast_mode)
        await session.stream.send_all(encode(request))
        with trio.move_on_after(self._connect_timeout):
            while True:
                primitive = await self._next_primitive(session)
                if isinstance(primitive, BindAccepted):
                    return self._accepted(primitive)
                if isinstance(primitive, BindRejected):
                    self.bind_rejections[primitive.reason.name] += 1
                    _log.warning(
                        "link %s: BIND of SAP %d refused: %s",
                        self.name,
                        self._sap,
                        primitive.reason.name,
                    )
                    return None
                self._ignore(primitive)
        raise _SessionEnded(f"no answer to BIND within {self._connect_timeout} s")

    def _accepted(self, accepted: BindAccepted) -> BindAccepted | None:
        self.server_mtu = accepted.mtu
        mtu = min(self._configured.mtu, accepted.mtu)
        if mtu < MTU_MIN:
            _log.error(
                "link %s: server MTU %d, expected at least %d for tawan frames; retrying",
                self.name,
                accepted.mtu,
                MTU_MIN,
            )
            return None
        if accepted.mtu < self._configured.mtu:
            _log.warning(
                "link %s: server MTU %d is below the profile's %d: frames above it are refused",
                self.name,
                accepted.mtu,
                self._configured.mtu,
            )
        self.profile = dataclasses.replace(self._configured, mtu=mtu)
        self.binds += 1
        return accepted

    async def _serve(self, session: _Session, accepted: BindAccepted) -> None:
        _log.info("link %s: bound SAP %d, server MTU %d", self.name, self._sap, accepted.mtu)
        self._session = session
        try:
            await self._emit_all(self._book.bound())
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._retry_peers)
                try:
                    reason = await self._read_until_end(session)
                finally:
                    nursery.cancel_scope.cancel()
            raise _SessionEnded(reason)  # outside the nursery: no exception group
        finally:
            self._session = None
            session.closed = True
            session.set_flow(session.flow_on)  # wake senders waiting for DATA_FLOW_ON
            down = self._book.unbound()
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(0.5),
                contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            ):
                await session.stream.send_all(encode(UnbindRequest()))
            for event in down:
                with contextlib.suppress(trio.WouldBlock, trio.BrokenResourceError):
                    self._event_send.send_nowait(event)  # not awaited: we may be cancelled

    # -- reading --------------------------------------------------------------------------

    async def _next_primitive(self, session: _Session) -> Primitive:
        while True:
            primitive = session.decoder.next_primitive()
            if primitive is not None:
                return primitive
            data = await session.stream.receive_some(_READ_SIZE)
            if not data:
                left = session.decoder.buffered
                raise _SessionEnded(f"closed by the server ({left} bytes of a primitive left)")
            session.decoder.feed(data)

    async def _read_until_end(self, session: _Session) -> str:
        try:
            await self._read(session)
        except _LOST as exc:
            return str(exc) or type(exc).__name__
        return "reader stopped"  # not reached: _read returns only by raising

    async def _read(self, session: _Session) -> None:
        while True:
            primitive = await self._next_primitive(session)
            now = trio.current_time()
            match primitive:
                case UnidataIndication():
                    await self._indication(primitive)
                case UnidataConfirm():
                    await self._emit_all(
                        self._book.confirmed_to(primitive.dest, primitive.data, now)
                    )
                case UnidataRejected():
                    _log.info("link %s: %s rejected: %s", self.name, primitive.dest,
                              primitive.reason.name)  # fmt: skip
                    events = self._book.rejected_to(
                        primitive.dest, primitive.reason, primitive.data, now
                    )
                    self._book_changed.set()
                    await self._emit_all(events)
                case KeepAlive():
                    await self._keepalive_received(session)
                case DataFlowOff():
                    self.flow_offs += 1
                    session.set_flow(False)
                case DataFlowOn():
                    session.set_flow(True)
                case UnbindIndication():
                    self.unbinds[primitive.reason.name] += 1
                    raise _SessionEnded(f"UNBIND_INDICATION {primitive.reason.name}")
                case _:
                    self._ignore(primitive)

    async def _indication(self, indication: UnidataIndication) -> None:
        if indication.padded:
            self.padded_indications += 1
        if indication.errors:
            self._count_drop(DROP_WITH_ERRORS)  # tawan checks whole frames; a damaged one fails
            return
        if indication.dest_sap != self._sap:
            self._count_drop(DROP_WRONG_SAP)
            return
        peer = self._book.name_of(indication.source)
        if peer is None:
            self._count_drop(DROP_UNKNOWN_SOURCE)
            return
        await self._emit_all(self._book.heard_from(peer))
        # Counted first: a consumer woken by the event may read the counters before we resume.
        self._count_received(indication.data)
        if not await self._emit(FrameReceived(peer, indication.data)):
            self.frames_received -= 1  # nobody listens: a drop, counted by _emit, not a frame
            self.bytes_received -= len(indication.data)

    def _ignore(self, primitive: Primitive) -> None:
        """Management, hard links, availability, unknown types: tolerated, counted."""
        if isinstance(primitive, OtherPrimitive):
            self.ignored_primitives[primitive.name] += 1
        elif isinstance(primitive, SubnetAvailability):
            self.ignored_primitives["SUBNET_AVAILABILITY"] += 1
        else:
            self.ignored_primitives[type(primitive).__name__] += 1

    # -- keep-alive, peer retries ---------------------------------------------------------

    async def _keepalive_received(self, session: _Session) -> None:
        """Answered at once (A.2.1.17 allows 10 s). This client never sends keep-alives of
        its own, so every KEEP_ALIVE it gets is a question, never an answer to echo back."""
        await self._write(session, encode(KeepAlive()), None)
        self.keepalives_answered += 1

    async def _retry_peers(self) -> None:
        while True:
            deadline = self._book.next_retry()
            with trio.move_on_at(deadline if deadline is not None else float("inf")):
                await self._book_changed.wait()
                self._book_changed = trio.Event()
                continue
            await self._emit_all(self._book.retry_due(trio.current_time()))

    # -- helpers --------------------------------------------------------------------------

    async def _write(self, session: _Session, data: bytes, peer: str | None) -> None:
        try:
            async with session.write_lock:
                await session.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(session.stream)  # the reader may not notice soon
            raise PeerUnavailable(self.name, peer or "server", f"connection lost: {exc}") from exc

    async def _emit_all(self, events: Sequence[LinkEvent]) -> None:
        for event in events:
            await self._emit(event)


def _check(where: str, what: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{where}: {what}: expected an integer in {low}..{high}, found {value!r}")


def _addresses(
    where: str, what: str, table: Mapping[str, str | int], *, group: bool
) -> dict[str, Address]:
    out = {}
    for name, text in table.items():
        if not name:
            raise ValueError(f"{where}: {what}: expected non-empty peer names, found {name!r}")
        try:
            address = parse_address(text, group=group)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: {what}[{name!r}]: {exc}") from None
        if address.group != group:
            kind = "a group" if group else "a node"
            raise ValueError(f"{where}: {what}[{name!r}]: expected {kind} address, found {text!r}")
        out[name] = address
    return out


def _check_distinct(
    where: str, unicast: Mapping[str, Address], multicast: Mapping[str, Address]
) -> None:
    both = sorted(set(unicast) & set(multicast))
    if both:
        raise ValueError(f"{where}: expected peer and group names to differ, found {both}")
    seen: dict[int, str] = {}
    for name, address in unicast.items():
        if address.value in seen:
            raise ValueError(
                f"{where}: peers {seen[address.value]!r} and {name!r}: expected distinct "
                f"5066 addresses, found {address} twice"
            )
        seen[address.value] = name
