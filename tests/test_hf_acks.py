"""On a 2.4 kbit/s HF net, acknowledgements are held a few frame times and travel as runs:
a queue of small messages costs a few acknowledgement bytes each, not a frame each."""

from __future__ import annotations

from emulator.run import Emulation
from topologies.load import scenario_from_data


def hf_queue(count: int, size: int) -> Emulation:
    data = {
        "run": {"name": "hf-acks", "duration_s": 1200.0, "seed": 3},
        "nodes": [{"name": "a"}, {"name": "b", "position": [40.0, 0.0]}],
        "nets": [{"name": "hf", "bearer": "hf", "members": ["a", "b"], "loss": 0.0,
                  "jitter_s": 0.0, "bursts": False}],
        "traffic": [{"sources": ["a"], "to": "b", "size_bytes": size, "interval_s": 0.001,
                     "start_s": 30.0, "stop_s": 30.0 + count * 0.001 - 0.0005}],
    }  # fmt: skip
    em = Emulation(scenario_from_data(data, "hf-acks"))
    em.run()
    return em


def test_a_queue_on_hf_is_acknowledged_in_few_frames_and_bytes() -> None:
    em = hf_queue(60, 200)
    offered = len(em.record.offers)
    delivered = sum(1 for r in em.record.offers.values() if "b" in r.delivered)
    assert delivered == offered >= 55
    tally = em.record.links["hf"]
    ack_frames = tally.ack_bytes // 20  # a frame of one run is 20 bytes
    assert tally.ack_bytes / offered < 8  # a 20-byte frame each, before runs and holding
    assert ack_frames <= offered / 3
