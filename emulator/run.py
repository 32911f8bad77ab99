"""The emulation: every node's real Engine, driven from one event heap in virtual time.

The engines are the objects the daemon drives (tawan.core.engine.Engine over an in-memory
SQLite store); only the driver differs. The heap holds frames in flight, one timer per
engine, fault boundaries, node events, traffic streams and sampling points. An event
touches only the engines it concerns: after an engine was called, its frames are handed to
their link models, its events recorded, and its timer re-armed from `get_timer()` (an old
heap entry for the same engine is recognised by its generation and skipped). Nothing loops
over all engines per event.

Virtual time `t` is seconds from the start of the run; an engine's clock reads
`BASE + t`.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from crypto.keyring import Keyring
from emulator.faults import FaultPlan, NodeEvent, plan_faults
from emulator.links import LinkModel, Sent, build_links
from emulator.mission import LEAD_S, MISSION_T0, seeded_mission
from emulator.record import Recorder
from emulator.reroutes import Reroutes
from emulator.traffic import Offer, Stream, streams
from tawan.core.contacts import Contact, ContactPlan
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec, Submission, SubmitError
from tawan.core.events import Event
from tawan.core.pace import PacePolicy
from tawan.core.routing import restricted_links
from tawan.core.store import Store
from topologies.scenario import Emcon, Scenario

BASE = MISSION_T0 + LEAD_S
"""An engine's clock at virtual time 0."""

# Heap entry kinds, in the order they run at one instant (then by insertion): what the
# faults make of the links and nodes first, then frames, timers, traffic, samples; a priority
# channel that becomes free goes last, to the best of every frame handed over by then.
_BOUNDARY, _NODE, _ARRIVAL, _TIMER, _STREAM, _SAMPLE, _EMCON, _GRANT = range(8)
EMCON_NOTICE_S = 1.0
"""A node is told of its emission control this long before it starts (an order, given ahead):
time for the hello that tells its neighbours to go out while it may still speak."""

SPIN_LIMIT = 10_000
"""Timer wake-ups of one engine at one instant beyond which the run stops with an error."""

FrameHook = Callable[[float, str, str, str, bytes], None]
"""Called with (t, link, sender, receiver, frame) for every frame that goes on the air,
`t` when it starts to (frames refused by the MTU, a full modem queue or EMCON are not)."""
EventHook = Callable[[str, Event, float], None]
"""Called with (node, event, t) for every event an engine emits."""


@dataclass(frozen=True, slots=True)
class Options:
    seed: int | None = None
    """None: the scenario's own seed."""
    window_s: float = 60.0
    """Results are also given per window of this many seconds."""
    engine: EngineConfig | None = None
    """None: the daemon's defaults with the scenario's `[engine]` timers."""
    store_max_bytes: int = 64 << 20


class Emulation:
    """One run of a scenario; `run()` to the end, or `step_until(t)` piece by piece."""

    def __init__(self, scenario: Scenario, options: Options | None = None) -> None:
        self.options = options or Options()
        self.scenario = scenario
        self.seed = scenario.run.seed if self.options.seed is None else self.options.seed
        self.duration = scenario.run.duration_s
        self.engine_config = self.options.engine or scenario.engine.config()
        self.now = 0.0
        names = {node.name: list(node.groups) for node in scenario.nodes}
        self.roster, self.keys = seeded_mission(names, self.seed)
        self.addresses = {name: k.address for name, k in self.keys.items()}
        self.links: dict[str, LinkModel] = build_links(scenario, self.seed)
        self.plan: FaultPlan = plan_faults(scenario, self.links)
        self.stores = {
            name: Store.memory(max_bytes=self.options.store_max_bytes) for name in names
        }
        self._specs = {name: self._link_specs(name) for name in names}
        self._mission_knowledge()
        self.engines: dict[str, Engine] = {}
        self.alive: dict[str, bool] = {}
        self.destroyed: set[str] = set()
        self._armed: dict[str, float | None] = {}
        self._generation: dict[str, int] = dict.fromkeys(names, 0)
        self._woken: dict[str, tuple[float | None, int]] = {}
        self._restarts: dict[str, int] = dict.fromkeys(names, 0)
        self.record = Recorder(self)
        self.frame_hooks: list[FrameHook] = []
        self.event_hooks: list[EventHook] = []
        self._heap: list[tuple[float, int, int, object]] = []
        self._granting: set[str] = set()  # priority channels with a _GRANT entry on the heap
        self._order = itertools.count()
        self._streams: list[Stream] = streams(scenario, self.seed)
        self._payloads = random.Random(f"{self.seed}/payloads").randbytes(1 << 21)
        self._payload_at = 0
        self.events_handled = 0
        self.engine_s = 0.0  # wall seconds spent inside Engine calls (benchmarks read it)
        self.reroutes = Reroutes(self.links, self.addresses, lambda: self.engines, self.alive)
        carrier_down = [s.link for s in self.plan.apply(0.0) if not s.up]
        self._silenced: dict[str, frozenset[str]] = {}  # EMCON: node -> its quiet links
        for name in names:
            self._start_engine(name)
        self._emission_control(0.0)
        for link in carrier_down:  # a wired link cut from the start: both ends know
            self._carrier(link, up=False)
        self.reroutes.boundary(0.0)
        for index, boundary in enumerate(self.plan.boundaries):
            if boundary > 0:
                self._push(boundary, _BOUNDARY, index)
        for event in self.plan.node_events:
            self._push(event.time, _NODE, event)
        for fault in scenario.faults:
            if isinstance(fault, Emcon) and fault.at_s > 0:
                self._push(max(0.0, fault.at_s - EMCON_NOTICE_S), _EMCON, None)
        for index, stream in enumerate(self._streams):
            if not stream.done:
                self._push(stream.next_at, _STREAM, index)
        self._push(0.0, _SAMPLE, 0)

    # ------------------------------------------------------------------ building
    def _mission_knowledge(self) -> None:
        """What every node is given before deployment, if the scenario asks for it: the
        signal plan and the contact plan."""
        scenario = self.scenario
        if scenario.engine.planned and not self.engine_config.planned:
            planned = signal_plan(self.links.values(), self.addresses)
            links = planned_links(self.links.values(), self.addresses, self.engine_config.pace)
            self.engine_config = dataclasses.replace(
                self.engine_config, planned=planned, planned_links=links
            )
        if scenario.engine.contacts and self.engine_config.contacts is None:
            contacts = contact_plan(scenario, self.links, self.addresses)
            self.engine_config = dataclasses.replace(self.engine_config, contacts=contacts)

    def _link_specs(self, name: str) -> list[LinkSpec]:
        specs = []
        for model in self.links.values():
            if name not in model.members:
                continue
            peers = tuple(PeerSpec(self.addresses[p], p) for p in model.peers_of(name))
            specs.append(LinkSpec(model.name, model.bearer.profile(), peers))
        return specs

    def _start_engine(self, name: str) -> None:
        keyring = Keyring(self.keys[name], self.roster)
        rng = random.Random(f"{self.seed}/engine/{name}/{self._restarts[name]}")
        started = time.perf_counter()
        engine = Engine(
            keyring, self.stores[name], self.engine_config, self._specs[name], rng,
            BASE + self.now,
        )  # fmt: skip
        self.engine_s += time.perf_counter() - started
        self.engines[name] = engine
        self.alive[name] = True
        self._armed[name] = None
        self._after(name, engine)

    def _push(self, t: float, kind: int, item: object) -> None:
        heapq.heappush(self._heap, (t, kind, next(self._order), item))

    # ------------------------------------------------------------------ running
    def run(self, progress: Callable[[float], None] | None = None) -> None:
        """Run to the scenario's end; `progress(t)` is called about once per window."""
        self.step_until(self.duration, progress)

    def step_until(self, until: float, progress: Callable[[float], None] | None = None) -> None:
        """Handle every event up to virtual time `until` (at most the run's end)."""
        until = min(until, self.duration)
        heap = self._heap
        while heap and heap[0][0] <= until:
            t, kind, _, item = heapq.heappop(heap)
            if kind == _TIMER and item[1] != self._generation[item[0]]:  # type: ignore[index]
                continue  # an engine's old timer, re-armed since: not an event
            self.now = t
            self.events_handled += 1
            if kind == _ARRIVAL:
                self._arrive(item)  # type: ignore[arg-type]
            elif kind == _TIMER:
                self._timer(item)  # type: ignore[arg-type]
            elif kind == _STREAM:
                self._fire(item)  # type: ignore[arg-type]
            elif kind == _BOUNDARY:
                self._boundary(t)
            elif kind == _NODE:
                self._node_event(item)  # type: ignore[arg-type]
            elif kind == _EMCON:
                self._emission_control(t)
            elif kind == _GRANT:
                self._grant(item)  # type: ignore[arg-type]
            else:
                self.record.sample(t)
                if progress is not None:
                    progress(t)
                nxt = t + self.options.window_s
                if nxt < self.duration:
                    self._push(nxt, _SAMPLE, 0)
        self.now = max(self.now, until)

    def _arrive(self, item: tuple[str, str, str, bytes]) -> None:
        receiver, link, sender, data = item
        if not self.alive[receiver]:
            return
        engine = self.engines[receiver]
        started = time.perf_counter()
        engine.receive(link, sender, data, BASE + self.now)
        self.engine_s += time.perf_counter() - started
        self._after(receiver, engine)

    def _timer(self, item: tuple[str, int]) -> None:
        name, _ = item
        if not self.alive[name]:
            return
        self._armed[name] = None
        self._check_progress(name)
        engine = self.engines[name]
        started = time.perf_counter()
        engine.handle_timer(BASE + self.now)
        self.engine_s += time.perf_counter() - started
        self._after(name, engine)

    def _check_progress(self, name: str) -> None:
        """An engine woken again and again at one instant would hold the run there for
        ever: a bug to report, not to wait out."""
        at, count = self._woken.get(name, (None, 0))
        count = count + 1 if at == self.now else 1
        self._woken[name] = (self.now, count)
        if count > SPIN_LIMIT:
            raise RuntimeError(
                f"node {name}: its engine asked to be woken at t={self.now} more than "
                f"{SPIN_LIMIT} times without moving on (get_timer() stays at or before now)"
            )

    def _after(self, name: str, engine: Engine) -> None:
        """What an engine wants once it was called: frames out, events in, its timer."""
        now = BASE + self.now
        started = time.perf_counter()
        sends = engine.transmit(now)
        events = []
        while (event := engine.next_event()) is not None:
            events.append(event)
        self.engine_s += time.perf_counter() - started
        busy: dict[str, float] = {}
        for tx in sends:
            end = self._carry(name, tx.link, tx.peer, tx.data, tx.precedence, tx.also)
            if end > busy.get(tx.link, self.now):
                busy[tx.link] = end
        started = time.perf_counter()
        for link, end in busy.items():  # the radio's queue, as its modem reports it
            engine.link_busy(link, BASE + end)
        deadline = engine.get_timer()
        self.engine_s += time.perf_counter() - started
        for event in events:
            self._on_event(name, event)
        self.reroutes.after(name, self.now)
        self._arm(name, deadline)

    def _arm(self, name: str, deadline: float | None) -> None:
        armed = None if deadline is None else max(deadline - BASE, self.now)
        if armed != self._armed[name]:
            self._armed[name] = armed
            self._generation[name] += 1
            if armed is not None:
                self._push(armed, _TIMER, (name, self._generation[name]))

    def _carry(
        self, sender: str, link: str, receiver: str, data: bytes, precedence: int,
        also: tuple[str, ...] = (),
    ) -> float:  # fmt: skip
        """Put one frame on `link`, for `receiver` and those `also` named; returns when its
        last bit leaves the sender, or on a priority channel it waits for, when it would if
        nothing of higher precedence came first (what the radio reports: `LinkModel.send`)."""
        model = self.links[link]
        sent = model.send(
            sender, receiver, len(data), self.now, precedence, (sender, receiver, data, also)
        )
        if sent.waiting:
            if link not in self._granting:
                self._granting.add(link)
                self._push(max(self.now, model.next_grant or self.now), _GRANT, link)
            end = sent.end
            for member, later in model.take_pushed_back().items():
                if member == sender:
                    end = max(end, later)
                else:
                    self._pushed_back(member, link, later)
            return end
        self._on_air(model, sender, receiver, data, sent, also)
        return sent.end

    def _pushed_back(self, name: str, link: str, end: float) -> None:
        """A frame of higher precedence took the channel ahead of `name`'s: its radio tells
        it when its queue will now have drained."""
        if not self.alive[name]:
            return
        engine = self.engines[name]
        started = time.perf_counter()
        engine.link_busy(link, BASE + end)
        deadline = engine.get_timer()
        self.engine_s += time.perf_counter() - started
        self._arm(name, deadline)

    def _grant(self, link: str) -> None:
        """A priority channel is free: the best frame waiting there goes on the air."""
        model = self.links[link]
        granted = model.grant(self.now)
        if granted is not None:
            tag, sent = granted
            sender, receiver, data, also = cast(tuple[str, str, bytes, tuple[str, ...]], tag)
            self._on_air(model, sender, receiver, data, sent, also)
        upcoming = model.next_grant
        if upcoming is None:
            self._granting.discard(link)
        else:
            self._push(max(self.now, upcoming), _GRANT, link)

    def _on_air(
        self, model: LinkModel, sender: str, receiver: str, data: bytes, sent: Sent,
        also: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        """Record a frame whose fate is known, and its arrival, if any: at `receiver`, and
        at each of `also` that hears the same air time (`LinkModel.heard`)."""
        link = model.name
        self.record.frame(model, sender, receiver, data, sent)
        if sent.end > sent.start:  # it went on the air (maybe to be lost), at sent.start
            for hook in self.frame_hooks:
                hook(sent.start, link, sender, receiver, data)
        if sent.arrival is not None:
            self._push(sent.arrival, _ARRIVAL, (receiver, link, sender, data))
        for other in also:
            heard = model.heard(sender, other, sent)
            self.record.heard(model, sender, other, data, heard)
            if heard.arrival is not None:
                self._push(heard.arrival, _ARRIVAL, (other, link, sender, data))

    def _on_event(self, name: str, event: Event) -> None:
        self.record.event(name, event, self.now)
        for hook in self.event_hooks:
            hook(name, event, self.now)

    # ------------------------------------------------------------------ traffic
    def _fire(self, index: int) -> None:
        stream = self._streams[index]
        for offer in stream.fire():
            self.offer(offer)
        if not stream.done:
            self._push(stream.next_at, _STREAM, index)

    def offer(self, offer: Offer) -> None:
        """Submit one message at its source now (a source that is down offers nothing)."""
        if not self.alive[offer.source]:
            self.record.source_down[offer.precedence] += 1
            return
        group = offer.destination.removeprefix("group:")
        is_group = group != offer.destination
        entry = self.roster.group_named(group) if is_group else None
        if is_group:
            assert entry is not None  # the loader checked the group names
            members = [self.roster.node_at(a) for a in self.roster.members(entry.address)]
            dsts = [m.name for m in members if m is not None and m.name != offer.source]
            dst = entry.address
        else:
            dsts, dst = [offer.destination], self.addresses[offer.destination]
        payload = self._payload(offer.size)
        engine = self.engines[offer.source]
        submission = Submission(dst, payload, offer.precedence, offer.ttl_s, offer.receipt)
        started = time.perf_counter()
        try:
            mid = engine.submit(submission, BASE + self.now)
        except SubmitError as exc:
            self.record.refused(offer, str(exc), self.now)
        else:
            self.record.offered(mid, offer, dsts, self.now)
        finally:
            self.engine_s += time.perf_counter() - started
        self._after(offer.source, engine)

    def _payload(self, size: int) -> bytes:
        pool = self._payloads
        if self._payload_at + size > len(pool):
            self._payload_at = 0
        start = self._payload_at
        self._payload_at += size
        return pool[start : start + size]

    # ------------------------------------------------------------------ faults
    def _boundary(self, t: float) -> None:
        self.reroutes.boundary(t)  # before the ends are told: who routed over it then
        for signal in self.plan.apply(t):
            self._carrier(signal.link, up=signal.up)
        self._emission_control(t)

    def _emission_control(self, t: float) -> None:
        """Tell each engine on which links it is under EMCON at `t` or will be within
        EMCON_NOTICE_S (the fault plan's silenced members): the engine itself then keeps
        off them, as a node ordered to would. Called at every boundary, and EMCON_NOTICE_S
        before each EMCON starts."""
        quiet: dict[str, set[str]] = {name: set() for name in self.engines}
        for name, model in self.links.items():
            now, soon = model.state_at(t).silenced, model.state_at(t + EMCON_NOTICE_S).silenced
            for member in now | soon:
                quiet[member].add(name)
        for node, links in quiet.items():
            if frozenset(links) != self._silenced.get(node, frozenset()):
                self._silenced[node] = frozenset(links)
                self._silence(node)

    def _silence(self, node: str) -> None:
        if not self.alive[node]:
            return
        engine = self.engines[node]
        started = time.perf_counter()
        engine.silence(self._silenced.get(node, frozenset()), BASE + self.now)
        self.engine_s += time.perf_counter() - started
        self._after(node, engine)

    def _carrier(self, link: str, *, up: bool, only: str | None = None) -> None:
        """A wired link's carrier came or went: its live ends (or just `only`) are told."""
        model = self.links[link]
        now = BASE + self.now
        for end in model.members:
            if not self.alive[end] or only not in (None, end):
                continue
            engine = self.engines[end]
            started = time.perf_counter()
            for peer in model.peers_of(end):
                if up:
                    engine.peer_up(model.name, peer, now)
                else:
                    engine.peer_down(model.name, peer, now)
            self.engine_s += time.perf_counter() - started
            self._after(end, engine)

    def _node_event(self, event: NodeEvent) -> None:
        if event.kind == "revive":
            self.revive(event.node)
        else:
            self.crash(event.node, destroy=event.kind == "destroy")

    def crash(self, name: str, *, destroy: bool = False) -> None:
        """`name` stops now: what its store had not committed is lost (the store itself
        survives, for `revive`); destroyed, it never comes back."""
        if destroy:
            self.destroyed.add(name)
        if not self.alive[name]:
            return
        self.alive[name] = False
        self._generation[name] += 1  # its armed timer is void
        self.stores[name].rollback()
        self.record.node_down(name, "destroy" if destroy else "crash", self.now)
        self.reroutes.node_down(name, self.now)

    def revive(self, name: str) -> None:
        """`name` runs again on its surviving store, as a restarted daemon would."""
        if self.alive[name] or name in self.destroyed:
            return
        self._restarts[name] += 1
        self._start_engine(name)
        self.record.node_up(name, self.now)
        for link, model in self.links.items():  # a carrier lost while it was down
            if name in model.members and not self.plan.carrier(link):
                self._carrier(link, up=False, only=name)
        if self._silenced.get(name):
            self._silence(name)  # still under EMCON

    def close(self) -> None:
        for store in self.stores.values():
            store.close()


def signal_plan(
    links: Iterable[LinkModel], addresses: Mapping[str, int]
) -> dict[int, dict[int, int]]:
    """The planned network as the engines take it: every two members of a link or net
    neighbours, at the cost of the cheapest bearer between them (as `Adjacency.cost` with
    no loss measured)."""
    plan: dict[int, dict[int, int]] = {address: {} for address in addresses.values()}
    for model in links:
        cost = max(1, round(model.bearer.cost))
        for name in model.members:
            mine = plan[addresses[name]]
            for peer in model.peers_of(name):
                other = addresses[peer]
                mine[other] = min(mine.get(other, cost), cost)
    return plan


def planned_links(
    links: Iterable[LinkModel], addresses: Mapping[str, int], pace: PacePolicy
) -> dict[int, dict[int, dict[str, int]]]:
    """The signal plan's links by bearer as the engines' adverts list theirs
    (`routing.restricted_links`, under the PACE policy), at the costs `signal_plan` gives
    them."""
    found: dict[int, dict[int, dict[str, int]]] = {}
    for model in links:
        cost, bearer = max(1, round(model.bearer.cost)), model.bearer.profile().name
        for name in model.members:
            mine = found.setdefault(addresses[name], {})
            for peer in model.peers_of(name):
                by_bearer = mine.setdefault(addresses[peer], {})
                by_bearer[bearer] = min(by_bearer.get(bearer, cost), cost)
    return {node: restricted_links(mine, pace.restricts) for node, mine in found.items()}


def contact_plan(
    scenario: Scenario, links: Mapping[str, LinkModel], addresses: Mapping[str, int]
) -> ContactPlan:
    """The scenario's links and nets as the contact plan every engine is given (mission
    knowledge, like the signal plan): each link or net one contact per direction between
    every two members that hear each other, in each of its `available` windows, or over the
    whole run when it has none; rate, delay and bearer from its bearer as overridden. Times
    on the engines' clock. Faults are not in it: they are what the plan does not know."""
    windows = {Scenario.link_name(link): link.available for link in scenario.links}
    windows |= {net.name: net.available for net in scenario.nets}
    found: dict[Contact, None] = {}  # ordered, and one contact for two identical links
    for name, model in links.items():
        spans = windows.get(name) or ((0.0, scenario.run.duration_s),)
        for sender in model.members:
            for receiver in model.peers_of(sender):
                for start, end in spans:
                    contact = Contact(
                        BASE + start, BASE + end, str(addresses[sender]),
                        str(addresses[receiver]), model.bearer.rate_bps,
                        model.bearer.delay_s, bearer=model.bearer.name,
                    )  # fmt: skip
                    found[contact] = None
    return ContactPlan.of(found)
