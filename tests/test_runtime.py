"""The trio driver: real engines and stores, links made of memory, virtual time.

Every test runs under trio's MockClock with autojump, and the runtime's clock is
`trio.current_time`, so timers fire in virtual time and no test waits on a real sleep.
"""

from __future__ import annotations

import logging
import random
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trio.testing

from crypto.keyfile import load_keyfile
from crypto.keyring import Keyring
from crypto.mission import build_mission
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec
from tawan.core.events import AdvertTooLarge
from tawan.core.frames import MessageId
from tawan.core.precedence import Precedence
from tawan.core.specs import Submission
from tawan.core.store import Store
from tawan.node.daemon import key_saver
from tawan.node.runtime import THROTTLE_SECONDS, Pulse, Runtime, Throttle, format_mid, kv
from transports.link import FrameReceived, Link, PeerUnavailable, PeerUp
from transports.profile import BearerProfile

ROSTER, KEYS = build_mission(
    {"alpha": ["ops"], "bravo": ["ops"], "charlie": []}, random.Random(7), t0=0
)
PROFILE = BearerProfile(name="pipe", rate_bps=1_000_000, delay_s=0.01, mtu=1400, cost=1.0)


def address(name: str) -> int:
    entry = ROSTER.by_name(name)
    assert entry is not None
    return entry.address


class PipeLink(Link):
    """One end of an in-memory link: what this end sends arrives at `other` after `delay`."""

    def __init__(self, name: str, me: str, profile: BearerProfile = PROFILE) -> None:
        super().__init__(name, profile)
        self.me = me
        self.other: PipeLink | None = None
        self.refuse = False
        self.running = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self._claim_run()
        self._local_address = self.me
        self.running = True
        try:
            task_status.started()
            assert self.other is not None
            await self._emit(PeerUp(self.other.me))
            await trio.sleep_forever()
        finally:
            self.running = False
            self._event_send.close()

    async def send(self, peer: str, frame: bytes, *, precedence: int = 0) -> None:
        self._check_frame(frame)
        other = self.other
        if self.refuse or other is None or not other.running or peer != other.me:
            raise PeerUnavailable(self.name, peer, "pipe closed")
        self._count_sent(frame)
        await trio.sleep(self.profile.delay_s)
        await other._emit(FrameReceived(self.me, frame))


def pipe(a: str, b: str, profile: BearerProfile = PROFILE) -> tuple[PipeLink, PipeLink]:
    end_a, end_b = PipeLink(f"{a}-{b}", a, profile), PipeLink(f"{a}-{b}", b, profile)
    end_a.other, end_b.other = end_b, end_a
    return end_a, end_b


def make_runtime(name: str, links: dict[str, tuple[PipeLink, str]]) -> Runtime:
    """A node `name` whose links lead to the named neighbours; call inside trio."""
    specs = [
        LinkSpec(link_name, link.profile, (PeerSpec(address(neighbour), neighbour),))
        for link_name, (link, neighbour) in links.items()
    ]
    store = Store.memory()
    keyring = Keyring(KEYS[name], ROSTER)
    engine = Engine(keyring, store, EngineConfig(), specs, random.Random(1), trio.current_time())
    pipes: dict[str, Link] = {link_name: link for link_name, (link, _) in links.items()}
    return Runtime(engine, store, pipes, clock=trio.current_time)


@dataclass
class Pair:
    alpha: Runtime
    bravo: Runtime
    link_a: PipeLink
    link_b: PipeLink


@asynccontextmanager
async def running_pair(profile: BearerProfile = PROFILE) -> AsyncIterator[Pair]:
    """alpha and bravo, running and neighbours, for the duration of the block."""
    link_a, link_b = pipe("alpha", "bravo", profile)
    pair = Pair(
        make_runtime("alpha", {link_a.name: (link_a, "bravo")}),
        make_runtime("bravo", {link_b.name: (link_b, "alpha")}),
        link_a,
        link_b,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(pair.alpha.run)
        await nursery.start(pair.bravo.run)
        yield pair
        nursery.cancel_scope.cancel()


async def wait_inbox(runtime: Runtime, count: int) -> None:
    with trio.fail_after(60):
        while runtime.store.inbox_count() < count:
            await runtime.inbox_changed.wait()


def send(runtime: Runtime, to: str, text: str, precedence: Precedence) -> MessageId:
    return runtime.submit(Submission(address(to), text.encode(), precedence, 600))


def test_kv_quotes_what_needs_quoting() -> None:
    line = kv(event="x", detail='bad "frame" here', empty="", n=3)
    assert line == 'event=x detail="bad \\"frame\\" here" empty="" n=3'


def test_format_mid() -> None:
    assert format_mid((3, 1, 42)) == "3.1.42"


async def test_pulse_wakes_every_waiter_once(autojump_clock: trio.abc.Clock) -> None:
    pulse = Pulse()
    woken: list[int] = []

    async def waiter(n: int) -> None:
        await pulse.wait()
        woken.append(n)

    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(waiter, n)
        await trio.testing.wait_all_tasks_blocked()
        pulse.fire()
    assert sorted(woken) == [0, 1, 2]


async def test_message_of_every_precedence_is_delivered_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with running_pair() as pair:
        for precedence in Precedence:
            send(pair.alpha, "bravo", f"hello {precedence.name}", precedence)
        await wait_inbox(pair.bravo, len(Precedence))
        await trio.sleep(30)  # retransmission timers run out; nothing is delivered twice
        entries = pair.bravo.store.inbox()
    assert sorted(e.payload.decode() for e in entries) == sorted(
        f"hello {p.name}" for p in Precedence
    )
    assert pair.alpha.store.message_count() == 0  # custody handed over and acknowledged


async def test_flash_overtakes_a_megabyte_of_routine_at_64_kbit(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The real runtime, paced at 64 kbit/s: FLASH goes at the next fragment boundary."""
    slow = BearerProfile(name="vhf", rate_bps=64_000, delay_s=0.02, mtu=1400, cost=1.0)
    arrived: dict[bytes, float] = {}
    async with running_pair(slow) as pair:
        await trio.sleep(3)  # neighbours meet
        big = bytes(random.Random(3).randbytes(1 << 20))  # incompressible
        pair.alpha.submit(Submission(address("bravo"), big, Precedence.ROUTINE, 3600))
        await trio.sleep(10)
        flash_sent = trio.current_time()
        send(pair.alpha, "bravo", "FLASH: contact", Precedence.FLASH)
        with trio.fail_after(600):
            while len(arrived) < 2:
                await pair.bravo.inbox_changed.wait()
                for entry in pair.bravo.store.inbox():
                    arrived.setdefault(entry.payload[:16], trio.current_time())
    flash_latency = arrived[b"FLASH: contact"] - flash_sent
    routine_done = arrived[big[:16]] - flash_sent
    assert flash_latency < 1.0
    assert routine_done > 100  # 1 MiB at 64 kbit/s: over two minutes on the air


async def test_group_message_is_delivered(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tawan.node")  # deliveries are traced at DEBUG
    async with running_pair() as pair:
        send(pair.alpha, "ops", "to the group", Precedence.FLASH)
        await wait_inbox(pair.bravo, 1)
    (entry,) = pair.bravo.store.inbox()
    assert (entry.dst, entry.payload) == (address("ops"), b"to the group")
    lines = [r.getMessage() for r in caplog.records]
    assert any(
        line.startswith("event=neighbour_up link=alpha-bravo neighbour=bravo") for line in lines
    )
    assert any("event=delivered" in line and "precedence=flash" in line for line in lines)


async def test_timer_drives_hellos_without_any_input(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair:
        await trio.sleep(60)
        hellos = pair.link_a.frames_sent
    interval = EngineConfig().hello_interval
    assert 60 / interval * 0.8 <= hellos <= 60 / interval * 1.5


async def test_send_failures_are_counted_not_raised(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tawan.node")
    async with running_pair() as pair:
        pair.link_a.refuse = True
        send(pair.alpha, "bravo", "held back", Precedence.ROUTINE)
        await trio.sleep(30)
        assert pair.alpha.send_failures["alpha-bravo/peer_unavailable"] > 0
        assert pair.alpha.status()["send_failures"] == dict(pair.alpha.send_failures)
        pair.link_a.refuse = False  # the engine retransmits once the link works again
        await wait_inbox(pair.bravo, 1)
    assert any("reason=peer_unavailable" in r.getMessage() for r in caplog.records)


async def test_an_advert_too_large_for_a_link_is_a_warning_throttled(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tawan.node")
    async with running_pair() as pair:
        event = AdvertTooLarge("alpha-bravo", pair.alpha.engine.me, 540, 512)
        for _ in range(3):  # each advert finds the link too small again: one line
            pair.alpha._report(event)
        await trio.sleep(THROTTLE_SECONDS + 1)
        pair.alpha._report(event)
    lines = [r for r in caplog.records if "event=advert_too_large" in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.WARNING] * 2
    assert lines[0].getMessage() == (
        "event=advert_too_large link=alpha-bravo origin=alpha size=540 mtu=512 sent=no skipped=0"
    )
    assert lines[1].getMessage().endswith("skipped=2")


async def test_rejected_frames_are_logged_with_their_reason_throttled(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tawan.node")
    async with running_pair() as pair:
        for _ in range(50):  # a flood of forged frames costs one line, not fifty
            await pair.link_b._emit(FrameReceived("alpha", b"\x13garbage"))
        await trio.sleep(THROTTLE_SECONDS + 1)
        await pair.link_b._emit(FrameReceived("alpha", b"\x13garbage"))
        await trio.sleep(1)
    rejected = [r.getMessage() for r in caplog.records if "event=frame_rejected" in r.getMessage()]
    assert len(rejected) == 2
    assert rejected[0].startswith("event=frame_rejected link=alpha-bravo peer=alpha reason=")
    assert rejected[0].endswith("skipped=0")
    assert rejected[1].endswith("skipped=49")
    assert sum(pair.bravo.engine.stats.rejected.values()) == 51  # every one is counted


def test_throttle_counts_what_it_skips() -> None:
    throttle = Throttle(interval=10)
    assert throttle.allow("a", 0.0) == 0
    assert throttle.allow("a", 5.0) is None
    assert throttle.allow("b", 5.0) == 0
    assert throttle.allow("a", 9.9) is None
    assert throttle.allow("a", 10.0) == 2


async def test_roster_update_reaches_engine_and_names(autojump_clock: trio.abc.Clock) -> None:
    async with running_pair() as pair:
        pair.alpha.update_roster(ROSTER)  # the same version: accepted as a no-op
        assert pair.alpha.name_of(address("charlie")) == "charlie"
        assert pair.alpha.name_of(9999) == "9999"


def test_key_file_is_rewritten_once_an_epoch_is_erased(tmp_path: Path) -> None:
    roster, keys = build_mission({"alpha": [], "bravo": []}, random.Random(3), t0=0,
                                 epoch_seconds=60, grace_epochs=1)  # fmt: skip
    keyring = Keyring(keys["alpha"], roster)
    path = tmp_path / "alpha.key"
    save = key_saver(keyring, path)
    save()
    assert not path.exists()  # nothing erased, nothing written
    keyring.advance(5)
    save()
    assert load_keyfile(path, roster).pair_roots[0].epoch == 4
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_key_file_save_failure_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keyring = Keyring(KEYS["alpha"], ROSTER)
    save = key_saver(keyring, tmp_path / "missing-folder" / "alpha.key")
    keyring.advance(30)
    save()
    assert any("event=keys_save_failed" in r.getMessage() for r in caplog.records)
