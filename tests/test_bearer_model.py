"""transports/model.py: the sans-I/O bearer model, by hand and by counting.

Exact arrival times where the model is deterministic (rate, delay, serialisation per
sender, MTU, down), rates within a few standard deviations where it draws (loss,
duplicates, jitter), and the property the harness and the emulator rely on: the same seed
gives the same arrivals, and the random stream does not depend on the settings.
"""

from __future__ import annotations

import random
import subprocess
import sys

import pytest

from transports.model import BearerModel
from transports.profile import BearerProfile

# 8,000 bit/s: a 100-byte frame takes exactly 0.1 s on the air
SLOW = BearerProfile(name="slow", rate_bps=8000, delay_s=0.25, mtu=200, cost=1.0)


def model(*, loss: float = 0.0, jitter_s: float = 0.0, up: bool = True) -> BearerModel:
    return BearerModel(SLOW, random.Random(1), loss=loss, jitter_s=jitter_s, up=up)


def test_a_frame_arrives_after_its_air_time_and_the_delay() -> None:
    bearer = model()
    assert bearer.send("a", 100, now=10.0) == [pytest.approx(10.0 + 0.1 + 0.25)]
    assert bearer.send("a", 0, now=20.0) == [pytest.approx(20.25)]


def test_one_senders_frames_queue_behind_each_other() -> None:
    bearer = model()
    arrivals = [bearer.send("a", 100, now=0.0)[0] for _ in range(3)]
    assert arrivals == [pytest.approx(0.35), pytest.approx(0.45), pytest.approx(0.55)]
    # the transmitter went idle meanwhile: the next frame starts when it is sent
    assert bearer.send("a", 100, now=5.0) == [pytest.approx(5.35)]


def test_each_sender_has_its_own_transmitter() -> None:
    bearer = model()
    assert bearer.send("a", 100, now=0.0) == [pytest.approx(0.35)]
    assert bearer.send("b", 100, now=0.0) == [pytest.approx(0.35)]  # full duplex
    assert bearer.send("a", 100, now=0.0) == [pytest.approx(0.45)]


def test_a_frame_over_the_mtu_is_refused_without_air_time_or_draws() -> None:
    bearer, twin = model(loss=0.5, jitter_s=0.1), model(loss=0.5, jitter_s=0.1)
    assert bearer.send("a", SLOW.mtu + 1, now=0.0) == []
    assert [bearer.send("a", SLOW.mtu, now=0.0) for _ in range(20)] == [
        twin.send("a", SLOW.mtu, now=0.0) for _ in range(20)
    ]


def test_a_down_link_swallows_frames_but_they_take_their_air_time() -> None:
    bearer = model(up=False)
    assert bearer.send("a", 100, now=0.0) == []
    bearer.up = True
    assert bearer.send("a", 100, now=0.0) == [pytest.approx(0.45)]  # behind the lost one


def test_loss_and_duplicates_happen_at_their_rates() -> None:
    bearer = BearerModel(SLOW, random.Random(7), loss=0.3, duplicate=0.2)
    copies = [len(bearer.send("a", 10, now=float(i))) for i in range(10_000)]
    # 10,000 frames: a standard deviation is under 0.005 for either rate
    assert copies.count(0) / 10_000 == pytest.approx(0.3, abs=0.02)
    delivered = 10_000 - copies.count(0)
    assert copies.count(2) / delivered == pytest.approx(0.2, abs=0.02)
    assert set(copies) == {0, 1, 2}


def test_jitter_spreads_each_copy_over_its_range_and_reorders() -> None:
    bearer = BearerModel(SLOW, random.Random(3), jitter_s=0.5)
    extra = [bearer.send("a", 0, now=float(i))[0] - i - SLOW.delay_s for i in range(2000)]
    assert min(extra) >= 0 and max(extra) <= 0.5
    assert min(extra) < 0.01 and max(extra) > 0.49  # uniform over the whole range
    assert sum(extra) / len(extra) == pytest.approx(0.25, abs=0.02)
    back_to_back = BearerModel(SLOW, random.Random(3), jitter_s=0.5)
    arrivals = [back_to_back.send("a", 10, now=0.0)[0] for _ in range(50)]
    assert arrivals != sorted(arrivals)  # later frames overtake earlier ones


def test_a_duplicate_has_its_own_jitter() -> None:
    bearer = BearerModel(SLOW, random.Random(5), duplicate=1.0, jitter_s=0.5)
    pairs = [bearer.send("a", 0, now=0.0) for _ in range(20)]
    assert all(len(pair) == 2 and pair == sorted(pair) for pair in pairs)
    assert all(pair[0] != pair[1] for pair in pairs)


def test_same_seed_same_arrivals_and_the_seed_matters() -> None:
    def run(seed: int) -> list[list[float]]:
        bearer = BearerModel(SLOW, random.Random(seed), loss=0.2, duplicate=0.1, jitter_s=0.3)
        return [bearer.send("ab"[i % 2], 50 + i, now=i * 0.01) for i in range(500)]

    assert run(11) == run(11)
    assert run(11) != run(12)


def test_the_random_stream_does_not_depend_on_the_settings() -> None:
    """Two runs that differ only in loss: every frame both deliver arrives at the same time,
    so a scenario can be compared with its lossless twin frame by frame."""
    lossy = BearerModel(SLOW, random.Random(9), loss=0.4, jitter_s=0.2)
    clean = BearerModel(SLOW, random.Random(9), jitter_s=0.2)
    both = 0
    for i in range(1000):
        got, reference = lossy.send("a", 20, now=i * 0.1), clean.send("a", 20, now=i * 0.1)
        assert got in ([], reference)
        both += bool(got)
    assert 500 < both < 700


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("loss", 1.5, "loss: expected a chance in 0..1, found 1.5"),
        ("loss", float("nan"), "loss: expected a chance in 0..1, found nan"),
        ("duplicate", -0.1, "duplicate: expected a chance in 0..1, found -0.1"),
        ("duplicate", True, "duplicate: expected a chance in 0..1, found True"),
        ("jitter_s", -1, "jitter_s: expected seconds >= 0, found -1"),
        ("jitter_s", float("inf"), "jitter_s: expected seconds >= 0, found inf"),
        ("up", 1, "up: expected True or False, found 1"),
    ],
)
def test_conditions_are_checked_when_built_and_when_changed(
    name: str, value: object, expected: str
) -> None:
    with pytest.raises(ValueError, match=f"^BearerModel.{expected}$"):
        BearerModel(SLOW, random.Random(1), **{name: value})  # type: ignore[arg-type]
    bearer = model()
    with pytest.raises(ValueError, match=f"^BearerModel.{expected}$"):
        setattr(bearer, name, value)


def test_a_negative_size_is_the_callers_mistake() -> None:
    with pytest.raises(ValueError, match="expected a size >= 0, found -1"):
        model().send("a", -1, now=0.0)


def test_the_model_loads_without_trio() -> None:
    code = "import sys, transports.model\nprint('trio' in sys.modules)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
