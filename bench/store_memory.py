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

With --tracemalloc, also prints the 10 source lines that hold the most memory at the end (it
slows the fill several times over; use a smaller --max-bytes). The last line printed is one
JSON object: rss_mb_full_store, peak_rss_mb, messages, store_bytes, mode, max_bytes.
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


def build(base: Path, mode: str, max_bytes: int) -> tuple[Engine, int]:
    """The engine of "alpha" with a full-featured link to "bravo" (down); bravo's address."""
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
    if mode == "queued":
        other = engine("bravo", alpha.address, "alpha", Store.memory(), 2)
        other.peer_up("ab", "alpha", START)
        for frame in other.transmit(START):
            node.receive("ab", "bravo", frame.data, START)
        node.transmit(START)  # its answer goes nowhere: bravo is silent from now on
        if node.router.next_hop(bravo.address) is None:
            raise RuntimeError("queued mode: expected a route to bravo after its hello")
    return node, bravo.address


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
        node, dst = build(Path(tmp), args.mode, args.max_bytes)
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
        result = {
            "rss_mb_full_store": round(resident, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "messages": count,
            "store_bytes": store_bytes,
            "mode": args.mode,
            "max_bytes": args.max_bytes,
        }
        node.close()
        node.store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
