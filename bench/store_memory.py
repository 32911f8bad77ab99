"""Resident memory of a node whose store is full of short messages.

One real engine (`crypto.mission.build_mission`, `Keyring`, a file-backed `Store` in a
temporary directory, durability "process", the default cap unless `--max-bytes`) takes 100-byte
ROUTINE messages for a neighbour that is down until the store refuses one; then its resident
set size is read from /proc/self/status (VmRSS; ru_maxrss gives the peak).

Two ways the neighbour is down:

- `held` (the default): it was never heard, so no route reaches it and every message is held
  in custody with no next hop (a node whose neighbour is out of range).
- `queued`: it was heard once (its hello, from its own engine), then went silent; its
  adjacency is still up, so every message waits in its transmit queue behind a full window
  (a node with a backlog in front of a link that carries nothing).

In `held` mode the bench then lets bravo be heard (its hello): a route appears and the whole
held backlog is released at once into the transmit queue for bravo. The resident set is read
again after that (`rss_mb_route_appeared`) and the peak over that step alone
(`route_peak_rss_mb`, VmHWM after resetting it through /proc/self/clear_refs), since loading
the backlog at that moment is where memory could spike.

With --tracemalloc, also prints the 10 source lines that hold the most memory at the end (it
slows the fill several times over; use a smaller --max-bytes). The last line printed is one
JSON object: rss_mb_full_store, peak_rss_mb, messages, store_bytes, mode, max_bytes, and in
`held` mode rss_mb_route_appeared, route_peak_rss_mb, queued_in_memory.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

from crypto.keyring import Keyring
from crypto.mission import build_mission
from tawan.core.engine import Engine, EngineConfig, LinkSpec, PeerSpec
from tawan.core.specs import Submission, SubmitError
from tawan.core.store import DEFAULT_MAX_BYTES, Store
from transports.profile import BearerProfile

T0 = 1_000_000
START = T0 + 10.0
PAYLOAD = random.Random(100).randbytes(100)  # incompressible: sealing compresses payloads
IP = BearerProfile(name="ip", rate_bps=2_000_000, delay_s=0.005, mtu=1400, cost=1.0)
COMMIT_EVERY = 2000


def rss_mb() -> float:
    """Resident set size now, from /proc/self/status (kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status: expected a VmRSS line, found none")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Start VmHWM (the peak resident set) again from now (Linux: clear_refs value 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def step_peak_mb() -> float:
    """The peak resident set since `reset_peak`, from /proc/self/status (kB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status: expected a VmHWM line, found none")


def build(base: Path, mode: str, max_bytes: int) -> tuple[Engine, Engine, int]:
    """The engine of "alpha" with a full-featured link to "bravo" (down), bravo's engine
    (silent), bravo's address."""
    roster, keys = build_mission({"alpha": [], "bravo": []}, random.Random(7), t0=T0)
    bravo = roster.by_name("bravo")
    alpha = roster.by_name("alpha")
    if bravo is None or alpha is None:
        raise RuntimeError("mission: expected nodes alpha and bravo")
    config = EngineConfig()

    def engine(name: str, peer: int, peer_name: str, store: Store, seed: int) -> Engine:
        link = LinkSpec("ab", IP, (PeerSpec(peer, peer_name),))
        return Engine(
            Keyring(keys[name], roster), store, config, [link], random.Random(seed), START
        )

    store = Store(base / "alpha.db", durability="process", max_bytes=max_bytes)
    node = engine("alpha", bravo.address, "bravo", store, 1)
    other = engine("bravo", alpha.address, "alpha", Store.memory(), 2)
    if mode == "queued":
        hear(node, other, bravo.address, START)
    return node, other, bravo.address


def hear(node: Engine, other: Engine, dst: int, now: float) -> None:
    """`other` says hello to `node` once: a route to it appears. `node`'s answer goes
    nowhere: `other` is silent from now on."""
    other.peer_up("ab", "alpha", now)
    for frame in other.transmit(now):
        node.receive("ab", "bravo", frame.data, now)
    node.transmit(now)
    if node.router.next_hop(dst) is None:
        raise RuntimeError("expected a route to bravo after its hello")


def fill(node: Engine, dst: int, *, report_every: int) -> int:
    """Submit until the store refuses; returns the messages accepted."""
    submission = Submission(dst, PAYLOAD, ttl=3600)
    count = 0
    started = time.perf_counter()
    now = START
    while True:
        try:
            node.submit(submission, now)
        except SubmitError:
            break
        count += 1
        if count % COMMIT_EVERY == 0:
            node.transmit(now)
            node.commit()
            while node.next_event() is not None:
                pass
        if count % report_every == 0:
            rate = count / (time.perf_counter() - started)
            print(f"  {count} messages, {rss_mb():.0f} MB resident, {rate:.0f} msg/s", flush=True)
    node.transmit(now)
    node.commit()
    while node.next_event() is not None:
        pass
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("held", "queued"), default="held")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--tracemalloc", action="store_true")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start()
    with tempfile.TemporaryDirectory(prefix="tawan-memory-") as tmp:
        before = rss_mb()
        node, other, dst = build(Path(tmp), args.mode, args.max_bytes)
        print(f"mode {args.mode}, max_bytes {args.max_bytes}: {before:.0f} MB before the engine")
        count = fill(node, dst, report_every=100_000)
        gc.collect()
        resident = rss_mb()
        store_bytes = node.store.bytes_used()
        print(f"  store full: {count} messages, {store_bytes} bytes, {resident:.0f} MB resident")
        if args.tracemalloc:
            top = tracemalloc.take_snapshot().statistics("lineno")[:10]
            for stat in top:
                print(f"  {stat}")
        result: dict[str, object] = {
            "rss_mb_full_store": round(resident, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "messages": count,
            "store_bytes": store_bytes,
            "mode": args.mode,
            "max_bytes": args.max_bytes,
        }
        if args.mode == "held":
            gc.collect()
            reset_peak()
            hear(node, other, dst, START + 1.0)  # the whole held backlog is released
            gc.collect()
            appeared = rss_mb()
            queue = node.queues.get(dst)
            in_memory = 0 if queue is None else len(queue.waiting) + len(queue.in_flight)
            print(
                f"  route appeared: {appeared:.0f} MB resident, {step_peak_mb():.0f} MB peak,"
                f" {in_memory} messages queued in memory"
            )
            result |= {
                "rss_mb_route_appeared": round(appeared, 1),
                "route_peak_rss_mb": round(step_peak_mb(), 1),
                "queued_in_memory": in_memory,
            }
        node.close()
        node.store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
