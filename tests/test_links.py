"""emulator/links.py: point-to-point links and shared radio nets, by hand and by counting.

Exact times where the model is deterministic (air time, queueing, the shared channel, MTU,
the queue bound, range, handover gaps); rates against closed forms where it draws (the
Gilbert-Elliott chain); and the property runs rely on: the same seed gives the same frames,
and conditions do not shift the random stream.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emulator.links import Conditions, LinkModel, LinkState, Sent, build_links
from topologies.bearers import Bearer, GilbertElliott
from topologies.scenario import Scenario

# 9,600 bit/s: a 1000-byte frame is 8000 bits, 0.8333 s on the air
SLOW = Bearer("slow", "radio", "vhf", 9_600, 0.05, 1400, 1.0, queue_bytes=100_000)
AIR_1000 = 8000 / 9600


def p2p(bearer: Bearer = SLOW, seed: int = 1) -> LinkModel:
    return LinkModel("ab", bearer, ("a", "b"), {"a": (0, 0), "b": (1, 0)}, random.Random(seed))


def net(
    bearer: Bearer = SLOW, positions: dict[str, tuple[float, float]] | None = None, seed: int = 1
) -> LinkModel:
    positions = positions or {"a": (0, 0), "b": (1, 0), "c": (2, 0), "d": (3, 0)}
    shared = replace(bearer, shared=True)
    return LinkModel("net", shared, tuple(positions), positions, random.Random(seed), shared=True)


def scenario(**extra: object) -> Scenario:
    base: dict[str, object] = {
        "run": {"duration_s": 100},
        "nodes": [{"name": n, "position": (i * 10.0, 0.0)} for i, n in enumerate("abcd")],
    }
    return Scenario.model_validate(base | extra)


def test_a_1000_byte_frame_on_9600_bits_arrives_after_its_air_time_plus_the_delay() -> None:
    sent = p2p().send("a", "b", 1000, now=10.0)
    assert sent.arrival == pytest.approx(10.0 + AIR_1000 + 0.05)
    assert sent.start == 10.0
    assert sent.end == pytest.approx(10 + AIR_1000)
    assert sent.dropped is None
    # the same through build_links and a scenario's overrides (fibre: no loss, no jitter)
    links = build_links(
        scenario(
            links=[{"a": "a", "b": "b", "bearer": "fibre", "rate_bps": 9600, "delay_s": 0.25}]
        ),
        seed=1,
    )
    assert links["a-b-fibre"].send("b", "a", 1000, 0.0).arrival == pytest.approx(0.8333333 + 0.25)


def test_one_senders_frames_queue_behind_each_other_and_the_other_direction_is_free() -> None:
    link = p2p()
    arrivals = [link.send("a", "b", 1000, 0.0).arrival for _ in range(3)]
    assert arrivals == [pytest.approx(k * AIR_1000 + 0.05) for k in (1, 2, 3)]
    assert link.send("b", "a", 1000, 0.0).arrival == pytest.approx(AIR_1000 + 0.05)  # full duplex
    assert link.send("a", "b", 1000, 10.0).start == 10.0  # idle meanwhile: starts when sent


def test_the_queue_bound_drops_what_does_not_fit_and_frees_as_frames_go_on_the_air() -> None:
    link = p2p(replace(SLOW, queue_bytes=2500))
    first, second, third, fourth = (link.send("a", "b", 1000, 0.0) for _ in range(4))
    assert first.dropped is second.dropped is third.dropped is None  # first on the air at once
    assert fourth == Sent(None, 0.0, 0.0, "queue")
    # at 0.9 s the second frame is on the air: only the third waits
    assert link.send("a", "b", 1000, 0.9).dropped is None
    assert link.send("a", "b", 1000, 0.9).dropped == "queue"
    assert link.stats["a"].dropped["queue"] == 2
    assert link.stats["a"].frames == 4
    assert link.send("b", "a", 1000, 0.9).dropped is None  # each sender has its own queue


def test_a_frame_over_the_mtu_is_refused_without_air_time() -> None:
    link = p2p(replace(SLOW, mtu=500))
    assert link.send("a", "b", 501, 3.0) == Sent(None, 3.0, 3.0, "mtu")
    assert link.send("a", "b", 500, 3.0).start == 3.0  # the refused one took no air time
    assert link.stats["a"].dropped["mtu"] == 1
    assert link.stats["a"].air_s == pytest.approx(500 * 8 / 9600)


def test_sending_to_a_non_member_or_to_oneself_is_an_error() -> None:
    link = p2p()
    with pytest.raises(ValueError, match="'x'"):
        link.send("x", "b", 10, 0.0)
    with pytest.raises(ValueError, match="'a'"):
        link.send("a", "a", 10, 0.0)


def _losses(chain: GilbertElliott, frames: int, seed: int) -> list[bool]:
    link = p2p(replace(SLOW, rate_bps=10_000_000, bursts=chain), seed)
    return [link.send("a", "b", 100, i * 0.01).dropped == "lost" for i in range(frames)]


def test_gilbert_elliott_loss_rate_matches_the_closed_form() -> None:
    # mean loss = p/(p+r) * loss_bad + r/(p+r) * loss_good = 1/6 * 0.8 + 5/6 * 0.05 = 0.175.
    # Losses are correlated: the variance of the mean is inflated by (1+l)/(1-l), l = 1-p-r
    # = 0.7, about 5.7x the Bernoulli one; over 200,000 frames the standard deviation is
    # sqrt(0.175 * 0.825 / 2e5 * 5.7) ~ 0.0020 plus the in-state noise; 0.01 is 5 sd.
    chain = GilbertElliott(p=0.05, r=0.25, loss_good=0.05, loss_bad=0.8)
    lost = _losses(chain, 200_000, seed=7)
    assert chain.mean_loss == pytest.approx(0.175)
    assert sum(lost) / len(lost) == pytest.approx(chain.mean_loss, abs=0.01)


def test_gilbert_elliott_mean_burst_length_is_one_over_r() -> None:
    # loss_bad 1 and loss_good 0: a burst of losses is a stay in the bad state, geometric
    # with mean 1/r = 4 and sd sqrt(1-r)/r ~ 3.5. About 200,000 * 1/6 * 0.25 ~ 8,300 bursts:
    # the mean's sd is ~ 0.038; 0.2 is over 5 sd.
    chain = GilbertElliott(p=0.05, r=0.25)
    lost = _losses(chain, 200_000, seed=11)
    bursts, run = [], 0
    for frame_lost in lost:
        if frame_lost:
            run += 1
        elif run:
            bursts.append(run)
            run = 0
    assert sum(bursts) / len(bursts) == pytest.approx(1 / chain.r, abs=0.2)
    assert len(bursts) > 7_000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"),
            st.sampled_from("abcd"),
            st.integers(1, 1400),
            st.floats(0, 2.0),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_a_shared_net_never_has_two_frames_on_the_air(
    sends: list[tuple[str, str, int, float]],
) -> None:
    channel = net(replace(SLOW, queue_bytes=3000, loss=0.3))
    now, on_air = 0.0, []
    for sender, receiver, size, wait in sends:
        now += wait
        if sender == receiver:
            continue
        sent = channel.send(sender, receiver, size, now)
        assert sent.start >= now
        if sent.end > sent.start:
            on_air.append((sent.start, sent.end))
    # in the order sent (FIFO): each frame starts after the one before it has ended
    for (_, end), (start, _) in itertools.pairwise(on_air):
        assert start >= end


def test_frames_of_different_members_wait_for_the_channel_in_order() -> None:
    channel = net()
    first = channel.send("a", "b", 1000, 0.0)
    second = channel.send("c", "d", 1000, 0.1)
    third = channel.send("b", "a", 1000, 0.2)
    assert second.start == pytest.approx(first.end)
    assert third.start == pytest.approx(second.end)


def test_a_member_out_of_range_does_not_hear_but_the_channel_is_still_busy() -> None:
    positions = {"a": (0.0, 0.0), "b": (10.0, 0.0), "c": (25.0, 0.0)}
    channel = net(replace(SLOW, range_km=15.0), positions)
    assert channel.heard_by("a") == ("b",)
    assert channel.heard_by("b") == ("a", "c")
    assert channel.peers_of("c") == ("b",)
    far = channel.send("a", "c", 1000, 0.0)
    assert far.dropped == "range"
    assert far.end == pytest.approx(AIR_1000)  # it went on the air all the same
    near = channel.send("a", "b", 1000, 0.0)
    assert near.dropped is None
    assert near.start == pytest.approx(far.end)


def test_down_frames_take_their_air_time_and_silenced_ones_none() -> None:
    link = p2p()
    link.set_state(LinkState(Conditions(up=False)))
    down = link.send("a", "b", 1000, 0.0)
    assert down.dropped == "down"
    assert down.end == pytest.approx(AIR_1000)
    link.set_state(LinkState(silenced=frozenset({"a"})))
    assert link.send("a", "b", 1000, 5.0) == Sent(None, 5.0, 5.0, "silenced")
    assert link.send("b", "a", 1000, 5.0).dropped is None  # receive only: b still reaches a
    link.set_state(LinkState(down_nodes=frozenset({"b"})))
    assert link.send("a", "b", 1000, 9.0).dropped == "down"
    assert link.send("b", "a", 1000, 9.0).dropped == "down"


def test_conditions_of_one_direction_apply_to_it_alone() -> None:
    channel = net()
    slow = Conditions(rate_factor=0.5, extra_delay_s=1.0)
    channel.set_state(LinkState(directions={"a": {"b": slow}}))
    ab = channel.send("a", "b", 1000, 0.0)
    assert ab.end == pytest.approx(2 * AIR_1000)
    assert ab.arrival == pytest.approx(2 * AIR_1000 + 1.05)
    assert channel.send("a", "c", 1000, 10.0).arrival == pytest.approx(10 + AIR_1000 + 0.05)


def test_conditions_combine() -> None:
    both = Conditions(0.5, 0.1, 0.2).combine(Conditions(0.5, 0.3, 0.5, up=False))
    assert (both.rate_factor, both.up) == (0.25, False)
    assert both.extra_delay_s == pytest.approx(0.4)
    assert both.loss == pytest.approx(0.6)


def test_frames_whose_air_time_overlaps_a_leo_handover_gap_are_lost() -> None:
    leo = p2p(replace(SLOW, rate_bps=8000, handover_period_s=15.0, handover_gap_s=0.1))
    assert leo.send("a", "b", 100, 14.85).dropped is None  # [14.85, 14.95): clear of the gap
    assert leo.send("a", "b", 100, 15.0).dropped == "down"
    assert leo.send("a", "b", 100, 15.1).dropped is None
    assert leo.send("a", "b", 100, 29.95).dropped == "down"  # [29.95, 30.05) overlaps [30, 30.1)
    assert leo.send("b", "a", 100, 0.0).dropped is None  # no gap at t=0


def test_the_same_seed_gives_the_same_frames_and_conditions_do_not_shift_the_draws() -> None:
    lossy = replace(SLOW, jitter_s=0.5, loss=0.2, bursts=GilbertElliott(0.1, 0.3))

    def run(seed: int, jammed: bool) -> list[Sent]:
        channel = net(lossy, seed=seed)
        out = []
        for i in range(300):
            if i == 100:
                channel.set_state(LinkState(Conditions(loss=0.5 if jammed else 0.0)))
            out.append(channel.send("abcd"[i % 4], "abcd"[(i + 1) % 4], 100, i * 1.0))
        return out

    assert run(3, False) == run(3, False)
    assert run(3, False) != run(4, False)
    clear, jammed = run(3, False), run(3, True)
    both = [(x, y) for x, y in zip(clear, jammed, strict=True) if x.arrival and y.arrival]
    assert len(both) > 50
    assert all(x == y for x, y in both)  # same jitter on every frame both delivered
    assert sum(1 for x in jammed if x.dropped) > sum(1 for x in clear if x.dropped)


def test_build_links_applies_overrides_and_names_bad_entries() -> None:
    links = build_links(
        scenario(
            links=[
                {"a": "a", "b": "b", "bearer": "vhf", "name": "ab", "mtu": 1400, "range_km": 5}
            ],
            nets=[{"name": "coy", "bearer": "uhf", "members": ["a", "b", "c"]}],
        ),
        seed=1,
    )
    assert links["ab"].bearer.mtu == 1400
    assert not links["ab"].shared
    assert links["ab"].peers_of("a") == ()  # 10 km apart, 5 km reach
    assert links["coy"].shared
    assert links["coy"].heard_by("b") == ("a", "c")  # 10 km each, uhf reaches 10 km
    with pytest.raises(ValueError, match="'zz'"):
        build_links(scenario(links=[{"a": "a", "b": "zz", "bearer": "vhf"}]), seed=1)
    with pytest.raises(ValueError, match="unknown bearer"):
        build_links(scenario(links=[{"a": "a", "b": "b", "bearer": "laser"}]), seed=1)


# ---------------------------------------------------------------------- priority access
PRIO = replace(SLOW, priority_access=True)
ROUTINE, PRIORITY, IMMEDIATE, FLASH = 0, 1, 2, 3


def drain(channel: LinkModel) -> list[tuple[object, Sent]]:
    """Every waiting frame as the channel grants it, each when the channel is free."""
    granted = []
    while (at := channel.next_grant) is not None:
        result = channel.grant(at)
        assert result is not None
        granted.append(result)
    return granted


def test_a_flash_handed_over_last_takes_the_free_channel_before_earlier_routine() -> None:
    channel = net(PRIO)
    on_air = channel.send("a", "b", 1000, 0.0, ROUTINE, "a1")
    assert not on_air.waiting and on_air.start == 0.0  # an idle channel: on the air at once
    first = channel.send("b", "a", 1000, 0.1, ROUTINE, "b1")
    second = channel.send("c", "a", 1000, 0.2, ROUTINE, "c1")
    flash = channel.send("d", "a", 1000, 0.3, FLASH, "d1")
    assert first.waiting and second.waiting and flash.waiting
    assert first.arrival is None and first.dropped is None
    # what each radio reports: its end if nothing of higher precedence comes first
    assert first.end == pytest.approx(2 * AIR_1000)
    assert second.end == pytest.approx(3 * AIR_1000)
    assert flash.end == pytest.approx(2 * AIR_1000)
    # the FLASH put both ROUTINE frames one frame later
    assert channel.take_pushed_back() == {
        "b": pytest.approx(3 * AIR_1000), "c": pytest.approx(4 * AIR_1000)
    }  # fmt: skip
    assert channel.take_pushed_back() == {}
    granted = drain(channel)
    assert [tag for tag, _ in granted] == ["d1", "b1", "c1"]
    starts = [sent.start for _, sent in granted]
    assert starts == pytest.approx([AIR_1000, 2 * AIR_1000, 3 * AIR_1000])
    # the frame on the air was not cut: the FLASH starts when it has ended
    assert granted[0][1].start == pytest.approx(on_air.end)
    assert [sent.end for _, sent in granted] == pytest.approx(
        [flash.end, 3 * AIR_1000, 4 * AIR_1000]
    )
    assert all(sent.arrival == pytest.approx(sent.end + SLOW.delay_s) for _, sent in granted)


def test_frames_of_one_precedence_take_the_channel_in_the_order_handed_over() -> None:
    channel = net(PRIO)
    channel.send("a", "b", 1000, 0.0, ROUTINE, "on air")
    handed = [("c", IMMEDIATE, "c1"), ("b", IMMEDIATE, "b1"), ("d", PRIORITY, "d1"),
              ("a", IMMEDIATE, "a2"), ("d", IMMEDIATE, "d2"), ("b", PRIORITY, "b2")]  # fmt: skip
    for i, (sender, precedence, tag) in enumerate(handed):
        receiver = "a" if sender != "a" else "b"
        assert channel.send(sender, receiver, 200, 0.1 + i * 0.01, precedence, tag).waiting
    assert [tag for tag, _ in drain(channel)] == ["c1", "b1", "a2", "d2", "d1", "b2"]


def test_a_frame_handed_over_while_one_is_on_the_air_waits_and_the_air_is_never_shared() -> None:
    channel = net(PRIO)
    low = channel.send("a", "b", 1000, 0.0, ROUTINE, "low")
    urgent = channel.send("b", "a", 100, 0.5, FLASH, "urgent")  # mid-air: it waits
    assert urgent.waiting
    ((tag, sent),) = drain(channel)
    assert tag == "urgent" and sent.start == pytest.approx(low.end)
    # a frame handed over once the channel is free and nothing waits goes at once
    later = channel.send("c", "d", 100, 5.0, ROUTINE, "later")
    assert not later.waiting and later.start == 5.0


def test_a_point_to_point_link_keeps_each_senders_frames_in_order_whatever_the_precedence() -> (
    None
):
    link = LinkModel(
        "ab", PRIO, ("a", "b"), {"a": (0, 0), "b": (1, 0)}, random.Random(1)
    )  # a bearer with priority access, used point to point: no channel to arbitrate
    first = link.send("a", "b", 1000, 0.0, ROUTINE)
    flash = link.send("a", "b", 1000, 0.1, FLASH)
    assert not flash.waiting and flash.start == pytest.approx(first.end)
    assert link.next_grant is None


def test_a_net_without_priority_access_serves_the_channel_in_the_order_sent() -> None:
    channel = net(SLOW)
    channel.send("a", "b", 1000, 0.0, ROUTINE)
    routine = channel.send("b", "a", 1000, 0.1, ROUTINE)
    flash = channel.send("c", "a", 1000, 0.2, FLASH)
    assert not routine.waiting and not flash.waiting
    assert flash.start == pytest.approx(routine.end)


def test_waiting_frames_count_in_their_senders_queue_until_they_get_the_channel() -> None:
    channel = net(replace(PRIO, queue_bytes=2500))
    channel.send("a", "b", 1000, 0.0, ROUTINE)  # on the air at once: not in the queue
    assert channel.send("b", "a", 1000, 0.1, ROUTINE).waiting
    assert channel.send("b", "a", 1000, 0.1, ROUTINE).waiting
    assert channel.send("b", "a", 1000, 0.1, FLASH).dropped == "queue"
    at = channel.next_grant
    assert at is not None
    channel.grant(at)  # one of b's two is on the air: room again
    assert channel.send("b", "a", 1000, at, FLASH).waiting


def test_a_waiting_frame_is_judged_by_the_conditions_when_it_gets_the_channel() -> None:
    channel = net(PRIO)
    channel.set_schedule(
        [(0.0, LinkState()), (0.5, LinkState(silenced=frozenset({"b"}))), (5.0, LinkState())]
    )
    channel.send("a", "b", 1000, 0.0, ROUTINE)
    assert channel.send("b", "a", 1000, 0.1, FLASH, "quiet").waiting  # b silenced at 0.5
    assert channel.send("c", "a", 1000, 0.2, ROUTINE, "next").waiting
    (quiet, silenced), (nxt, sent) = drain(channel)
    assert (quiet, silenced.dropped) == ("quiet", "silenced")
    assert silenced.start == silenced.end == pytest.approx(AIR_1000)
    assert nxt == "next" and sent.start == pytest.approx(AIR_1000)  # no air time lost


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from("abcd"),
            st.sampled_from("abcd"),
            st.integers(1, 1400),
            st.floats(0, 0.5),
            st.integers(0, 4),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_a_priority_net_grants_the_best_waiting_frame_and_never_overlaps(
    sends: list[tuple[str, str, int, float, int]],
) -> None:
    channel = net(replace(PRIO, queue_bytes=3000, loss=0.3))
    now, on_air = 0.0, []
    waiting: dict[int, tuple[int, int]] = {}  # tag: (precedence, tag)
    order = itertools.count()

    def grant_until(t: float) -> None:
        while (at := channel.next_grant) is not None and at <= t:
            best = max(waiting.values(), key=lambda w: (w[0], -w[1]))
            result = channel.grant(at)
            assert result is not None
            tag, sent = result
            assert isinstance(tag, int)
            assert waiting.pop(tag) == best  # the highest precedence, first handed over
            assert sent.start == at
            if sent.end > sent.start:
                on_air.append((sent.start, sent.end))

    for sender, receiver, size, wait, precedence in sends:
        now += wait
        grant_until(now)
        if sender == receiver:
            continue
        tag = next(order)
        sent = channel.send(sender, receiver, size, now, precedence, tag)
        if sent.waiting:
            waiting[tag] = (precedence, tag)
        elif sent.end > sent.start:
            assert sent.start == now
            on_air.append((sent.start, sent.end))
    grant_until(float("inf"))
    assert not waiting
    on_air.sort()
    for (_, end), (start, _) in itertools.pairwise(on_air):
        assert start >= end - 1e-9


# ---------------------------------------------------------------------------- NET frames
def test_a_frame_for_several_members_takes_the_air_once_and_each_hears_it() -> None:
    positions = {"a": (0.0, 0.0), "b": (10.0, 0.0), "c": (12.0, 0.0), "d": (25.0, 0.0)}
    channel = net(replace(SLOW, range_km=15.0), positions)
    channel.set_state(LinkState(down_nodes=frozenset({"c"})))
    first = channel.send("a", "b", 1000, 0.0)
    assert first.dropped is None
    b_stats = channel.stats["a"]
    assert (b_stats.frames, b_stats.bytes) == (1, 1000)  # the frame's, counted once
    c, d = channel.heard("a", "c", first), channel.heard("a", "d", first)
    assert (c.dropped, d.dropped) == ("down", "range")
    assert channel.stats["a"].frames == 1
    # the channel is busy for one air time only: the next frame starts at its end
    after = channel.send("b", "a", 100, 0.0)
    assert after.start == pytest.approx(AIR_1000)


def test_every_member_in_range_hears_the_same_air_time() -> None:
    channel = net()
    first = channel.send("a", "b", 1000, 0.0)
    others = [channel.heard("a", m, first) for m in ("c", "d")]
    assert all(o.dropped is None and (o.start, o.end) == (first.start, first.end) for o in others)
    assert all(o.arrival is not None and o.arrival >= first.end for o in others)


def test_a_frame_that_never_took_the_air_reaches_no_further_member() -> None:
    channel = net()
    too_big = channel.send("a", "b", 5000, 0.0)
    assert too_big.dropped == "mtu"
    assert channel.heard("a", "c", too_big).dropped == "mtu"
