"""A fake STANAG 5066 subnetwork: one SIS socket per HF node, all on 127.0.0.1 port 0.

Each node (an int address) listens on its own port, as each HF node runs its own server;
clients bound on different nodes reach each other through the in-process "air", which
delivers at once and loses nothing unless told to. What it checks and does, as a server
would (Ed.3 Annex A): one BIND per connection, unique SAPs per node (BIND_REJECTED 3),
txmode 0 or a rank above `max_rank` refused, MTU enforced (REJECTED 4), CONFIRM carrying
the first `confirm_prefix` bytes, REJECTED 1/2/3 for TTL expiry, unbound SAP or an
unreachable node, KEEP_ALIVE echoed. Tests inject the rest: DATA_FLOW_OFF/ON,
UNBIND_INDICATION, SUBNET_AVAILABILITY, management and unknown primitives, the Rockwell
4-byte pad, writes split at given offsets or several primitives in one write. Every byte
each way is kept in `transcripts`, for a pcap.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import trio

from transports.s5066_codec import (
    Address,
    BindAccepted,
    BindRejected,
    BindRejectReason,
    BindRequest,
    Confirm,
    DataFlowOff,
    DataFlowOn,
    KeepAlive,
    Primitive,
    RejectReason,
    TxMode,
    UnbindIndication,
    UnbindReason,
    UnbindRequest,
    UnidataConfirm,
    UnidataIndication,
    UnidataRejected,
    UnidataRequest,
    encode,
)
from transports.s5066_stream import SisDecoder


@dataclass
class Transcript:
    """One client connection's bytes in the order seen: (from_client, data) chunks."""

    node: int
    client_port: int
    server_port: int
    chunks: list[tuple[bool, bytes]] = field(default_factory=list)


@dataclass(eq=False)
class _Client:
    node: int
    stream: trio.SocketStream
    transcript: Transcript
    sap: int | None = None
    rank: int = 0
    flow_on: bool = True
    keepalive_answer: trio.Event | None = None
    write_lock: trio.Lock = field(default_factory=trio.Lock)
    received: list[Primitive] = field(default_factory=list)


class FakeSisServer:
    """Run with `await nursery.start(server.run)`; then `endpoint(node)` for each node."""

    def __init__(
        self,
        nodes: Sequence[int],
        *,
        mtu: int = 2048,
        confirm_prefix: int = 100,
        max_rank: int = 14,
        rockwell: bool = False,
        chunk: int | None = None,
        sap_release_delay: float = 0.0,
    ) -> None:
        self.nodes = tuple(nodes)
        self.mtu = mtu
        self.confirm_prefix = confirm_prefix
        self.max_rank = max_rank
        self.rockwell = rockwell
        """Pad every UNIDATA_INDICATION with 4 zero bytes after the size, as Rockwell did."""
        self.chunk = chunk
        """Write every primitive in pieces of at most this many bytes."""
        self.sap_release_delay = sap_release_delay
        """How long a SAP stays allocated after its socket died without UNBIND_REQUEST."""
        self.unreachable: set[int] = set()
        """Nodes that do not answer over the air: REJECTED 3 to their senders."""
        self.ttl_expires: set[int] = set()
        """Nodes whose traffic always outlives its TTL: REJECTED 1."""
        self.delivered = 0
        self.dropped_while_off = 0
        self.bind_requests: list[tuple[int, BindRequest]] = []
        self.counts: Counter[str] = Counter()
        self.transcripts: list[Transcript] = []
        self._ports: dict[int, int] = {}
        self._saps: dict[int, dict[int, _Client]] = {node: {} for node in self.nodes}
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None

    # -- set-up ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for node in self.nodes:
                listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                self._ports[node] = listeners[0].socket.getsockname()[1]
                handler = self._handler(node)
                nursery.start_soon(trio.serve_listeners, handler, listeners)
            task_status.started()

    def endpoint(self, node: int) -> str:
        return f"127.0.0.1:{self._ports[node]}"

    def client(self, node: int, sap: int) -> _Client | None:
        return self._saps[node].get(sap)

    async def wait_bound(self, node: int, sap: int) -> _Client:
        while (client := self.client(node, sap)) is None:
            await self._wait_change()
        return client

    async def wait_unbound(self, node: int, sap: int) -> None:
        while self.client(node, sap) is not None:
            await self._wait_change()

    # -- what tests inject ----------------------------------------------------------------

    async def send(self, node: int, sap: int, *primitives: Primitive) -> None:
        await self.inject(node, sap, b"".join(encode(p) for p in primitives))

    async def inject(self, node: int, sap: int, data: bytes, split_at: Sequence[int] = ()) -> None:
        """Write raw bytes to the client on (node, sap), cut at `split_at` offsets."""
        client = await self.wait_bound(node, sap)
        await self._write(client, data, split_at)

    async def data_flow(self, node: int, sap: int, on: bool) -> None:
        client = await self.wait_bound(node, sap)
        client.flow_on = on
        await self._write(client, encode(DataFlowOn() if on else DataFlowOff()))

    async def unbind(self, node: int, sap: int, reason: UnbindReason) -> None:
        """UNBIND_INDICATION then close, as a server pre-empting or timing out a client."""
        client = await self.wait_bound(node, sap)
        await self._write(client, encode(UnbindIndication(reason)))
        self._release(client)
        await client.stream.aclose()

    async def cut(self, node: int, sap: int) -> None:
        """Close the client's socket without an UNBIND, as a network fault would; the SAP
        stays allocated for `sap_release_delay` seconds."""
        client = await self.wait_bound(node, sap)
        await client.stream.aclose()

    async def keep_alive(self, node: int, sap: int, within: float = 10.0) -> bool:
        """Send a KEEP_ALIVE; True if the client echoed it `within` seconds."""
        client = await self.wait_bound(node, sap)
        answer = client.keepalive_answer = trio.Event()
        await self._write(client, encode(KeepAlive()))
        with trio.move_on_after(within):
            await answer.wait()
        return answer.is_set()

    # -- serving --------------------------------------------------------------------------

    def _handler(self, node: int) -> Callable[[trio.SocketStream], Awaitable[None]]:
        async def handle(stream: trio.SocketStream) -> None:
            await self._serve(node, stream)

        return handle

    async def _serve(self, node: int, stream: trio.SocketStream) -> None:
        ports = stream.socket.getpeername()[1], stream.socket.getsockname()[1]
        transcript = Transcript(node, *ports)
        self.transcripts.append(transcript)
        client = _Client(node, stream, transcript)
        decoder = SisDecoder()
        clean = False
        try:
            while True:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                if not data:
                    break
                transcript.chunks.append((True, data))
                decoder.feed(data)
                while (primitive := decoder.next_primitive()) is not None:
                    client.received.append(primitive)
                    self.counts[type(primitive).__name__] += 1
                    if isinstance(primitive, UnbindRequest):
                        clean = True
                    await self._on(client, primitive)
        finally:
            self.counts["malformed"] += decoder.malformed
            if clean or self.sap_release_delay == 0:
                self._release(client)
            else:
                self._release_later(client)
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _on(self, client: _Client, primitive: Primitive) -> None:
        match primitive:
            case BindRequest():
                await self._bind(client, primitive)
            case UnbindRequest():
                self._release(client)
            case UnidataRequest():
                if client.sap is None:
                    self.counts["unidata_unbound"] += 1
                elif not client.flow_on:
                    self.dropped_while_off += 1  # A.2.1.14: the server may drop it silently
                else:
                    await self._route(client, primitive)
            case KeepAlive():
                if client.keepalive_answer is not None:
                    client.keepalive_answer.set()
                    client.keepalive_answer = None
                else:
                    await self._write(client, encode(KeepAlive()))
            case _:
                pass

    async def _bind(self, client: _Client, request: BindRequest) -> None:
        self.bind_requests.append((client.node, request))
        reason = None
        if client.sap is not None or request.rank > self.max_rank:
            reason = BindRejectReason.NOT_ENOUGH_RESOURCES  # no better code exists
        elif request.service.txmode == TxMode.DEFAULT:
            reason = BindRejectReason.NOT_ENOUGH_RESOURCES
        elif request.sap in self._saps[client.node]:
            reason = BindRejectReason.SAP_ALREADY_ALLOCATED
        if reason is not None:
            await self._write(client, encode(BindRejected(reason)))
            return
        client.sap, client.rank = request.sap, request.rank
        self._saps[client.node][request.sap] = client
        self._notify()
        await self._write(client, encode(BindAccepted(request.sap, self.mtu)))

    async def _route(self, sender: _Client, request: UnidataRequest) -> None:
        assert sender.sap is not None
        reason = self._refusal(request)
        if reason is not None:
            await self._answer(sender, request, reason)
            return
        targets = self._targets(sender.node, request)
        if not request.dest.group and not targets:
            await self._answer(sender, request, RejectReason.DESTINATION_SAP_NOT_BOUND)
            return
        for target in targets:
            indication = UnidataIndication(
                priority=request.priority,
                dest_sap=request.dest_sap,
                dest=request.dest,
                txmode=TxMode.NON_ARQ if request.dest.group else TxMode.ARQ,
                source_sap=sender.sap,
                source=Address(sender.node),
                data=request.data,
                padded=self.rockwell,
            )
            await self._write(target, encode(indication))
            self.delivered += 1
        if request.mode.confirm != Confirm.NONE:
            await self._answer(sender, request, None)

    def _refusal(self, request: UnidataRequest) -> RejectReason | None:
        if len(request.data) > self.mtu:
            return RejectReason.UPDU_LARGER_THAN_MTU
        if request.mode.txmode == TxMode.DEFAULT:
            return RejectReason.TX_MODE_NOT_SPECIFIED
        if request.dest.group:
            return None
        node = request.dest.value
        if node not in self._saps or node in self.unreachable:
            return RejectReason.DESTINATION_NODE_NOT_RESPONDING
        if node in self.ttl_expires:
            return RejectReason.TTL_EXPIRED
        return None

    def _targets(self, source: int, request: UnidataRequest) -> list[_Client]:
        if not request.dest.group:
            target = self._saps[request.dest.value].get(request.dest_sap)
            return [] if target is None else [target]
        return [
            saps[request.dest_sap]
            for node, saps in self._saps.items()
            if node != source and node not in self.unreachable and request.dest_sap in saps
        ]

    async def _answer(
        self, sender: _Client, request: UnidataRequest, reason: RejectReason | None
    ) -> None:
        prefix = request.data[: self.confirm_prefix]
        answer: Primitive = (
            UnidataConfirm(request.dest_sap, request.dest, prefix)
            if reason is None
            else UnidataRejected(reason, request.dest_sap, request.dest, prefix)
        )
        await self._write(sender, encode(answer))

    async def _write(self, client: _Client, data: bytes, split_at: Sequence[int] = ()) -> None:
        cuts = list(split_at)
        if self.chunk is not None and not cuts:
            cuts = list(range(self.chunk, len(data), self.chunk))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        try:
            async with client.write_lock:
                for index, piece in enumerate(pieces):
                    if index:
                        await trio.sleep(0.002)  # let the client read the pieces one by one
                    client.transcript.chunks.append((False, piece))
                    await client.stream.send_all(piece)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.counts["write_failed"] += 1

    def _release(self, client: _Client) -> None:
        if client.sap is not None and self._saps[client.node].get(client.sap) is client:
            del self._saps[client.node][client.sap]
            self._notify()
        client.sap = None

    def _release_later(self, client: _Client) -> None:
        """A server notices a dead socket late: keep its SAP a while."""
        if client.sap is None or self._nursery is None:
            self._release(client)
            return

        async def later() -> None:
            await trio.sleep(self.sap_release_delay)
            self._release(client)

        self._nursery.start_soon(later)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_change(self) -> None:
        await self._changed.wait()
