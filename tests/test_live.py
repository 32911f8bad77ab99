"""The `--realtime` side: many nodes' metrics behind one endpoint, and pacing to the clock.

The collector is checked against a daemon's own `NodeMetrics` on the same engines (same
names, same figures, a `node` label more), the pacing under trio's MockClock, and the
endpoint with a real HTTP client on loopback.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import trio
import trio.testing
from harness import Net, chain
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from emulator.live import EMULATION_METRICS, EmulationMetrics, run_paced, serve_metrics
from tawan.core.precedence import Precedence
from tawan.core.snapshot import NodeSnapshot
from tawan.demo import free_port
from tawan.node.metrics import LINK_IO_FAMILIES, METRICS, NodeMetrics

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
SCRAPE_CONFIG = ROOT / "monitoring" / "prometheus.yml"
NAMES = ("alpha", "bravo", "charlie")
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def busy_net() -> Net:
    """alpha - bravo - charlie after a few messages both ways, one through a cut link."""
    net = Net(dict.fromkeys(NAMES, ()), chain(*NAMES))
    net.run(3)
    net.submit("alpha", "charlie", b"sitrep", precedence=Precedence.FLASH, ttl=600)
    net.submit("charlie", "alpha", b"ack", precedence=Precedence.ROUTINE, ttl=600)
    net.engines["bravo"].receive("alpha-bravo", "alpha", b"\x01 noise", net.now)
    net.run(2)
    net.links["bravo-charlie"].up = False
    net.submit("alpha", "charlie", b"held" * 50, precedence=Precedence.IMMEDIATE, ttl=600)
    net.run(4)  # bravo retransmits towards charlie; the message waits in its store
    return net


def snapshots_of(net: Net) -> dict[str, NodeSnapshot]:
    return {name: engine.snapshot(engine.last_time) for name, engine in net.engines.items()}


def series(registry: CollectorRegistry) -> Series:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def emulation_registry(net: Net) -> tuple[EmulationMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = EmulationMetrics(registry, lambda: snapshots_of(net))
    for name in NAMES:
        for event in net.events[name]:
            metrics.observe_event(name, event)
    return metrics, registry


# ================================================================== the collector
def test_every_node_has_the_series_a_daemon_exports_with_its_node_label() -> None:
    net = busy_net()
    _, registry = emulation_registry(net)
    got = series(registry)
    for name in NAMES:
        alone = CollectorRegistry()
        daemon = NodeMetrics(net.engines[name], alone)
        for event in net.events[name]:
            daemon.observe_event(event)
        expected = {
            (sample, tuple(sorted((*labels, ("node", name))))): value
            for (sample, labels), value in series(alone).items()
        }
        mine = {key: value for key, value in got.items() if ("node", name) in key[1]}
        assert mine == expected, name
    assert got["tawan_messages_delivered_total", (("node", "charlie"), ("precedence", "flash"))]
    latency = net.delivered("charlie")[0].latency
    key = ("tawan_delivery_latency_seconds_sum", (("node", "charlie"), ("precedence", "flash")))
    assert got[key] == latency > 0
    rejected = ("tawan_frames_rejected_total", (("node", "bravo"), ("reason", "malformed")))
    assert got[rejected] == 1
    retransmitted = (
        "tawan_link_retransmissions_total",
        (("link", "bravo-charlie"), ("node", "bravo")),
    )
    assert got[retransmitted] >= 1
    held = ("tawan_store_messages", (("node", "bravo"), ("precedence", "immediate")))
    assert got[held] == 1


def test_one_family_each_and_one_series_per_node_and_label_set() -> None:
    _, registry = emulation_registry(busy_net())
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    names = [f.name for f in families]
    assert names == [spec.name for spec in METRICS] + [name for name, _ in EMULATION_METRICS]
    for family in families:
        if family.name.startswith("tawan_emulation_"):
            assert [s.labels for s in family.samples] == [{}]
            continue
        if family.name in LINK_IO_FAMILIES:  # a daemon's sockets; emulated links have none
            assert family.samples == [], family.name
            continue
        keys = [(s.name, tuple(sorted(s.labels.items()))) for s in family.samples]
        assert len(keys) == len(set(keys)), family.name
        assert {s.labels["node"] for s in family.samples} == set(NAMES), family.name
    up = {
        (labels["node"], labels["link"])
        for (name, pairs), value in series(registry).items()
        if name == "tawan_link_up" and value == 1
        for labels in [dict(pairs)]
    }
    # bravo's resends over the cut link went unanswered, and its probe too: lost for it;
    # charlie, with nothing to send, has not missed enough hellos yet
    assert up == {("alpha", "alpha-bravo"), ("bravo", "alpha-bravo"),
                  ("charlie", "bravo-charlie")}  # fmt: skip


def test_emulation_gauges_and_a_node_gone_from_the_run() -> None:
    net = busy_net()
    views = snapshots_of(net)
    registry = CollectorRegistry()
    metrics = EmulationMetrics(registry, lambda: views)
    metrics.set_clock(42.5, 4.0)
    got = series(registry)
    assert got["tawan_emulation_virtual_time_seconds", ()] == 42.5
    assert got["tawan_emulation_speed", ()] == 4.0
    assert got["tawan_emulation_nodes", ()] == 3
    del views["bravo"]  # destroyed: its series go stale, the others stay
    got = series(registry)
    assert got["tawan_emulation_nodes", ()] == 2
    assert not any(("node", "bravo") in labels for _, labels in got)
    assert any(("node", "alpha") in labels for _, labels in got)


def test_snapshots_are_read_at_scrape_time_only() -> None:
    net = busy_net()
    reads: list[int] = []

    def snapshots() -> dict[str, NodeSnapshot]:
        reads.append(1)
        return snapshots_of(net)

    registry = CollectorRegistry()
    EmulationMetrics(registry, snapshots)
    assert reads == []  # registering describes the families without touching an engine
    before = series(registry)
    net.submit("alpha", "charlie", b"more", precedence=Precedence.ROUTINE, ttl=600)
    net.run(1)
    after = series(registry)
    assert len(reads) == 2
    key = ("tawan_messages_submitted_total", (("node", "alpha"), ("precedence", "routine")))
    assert after[key] == before[key] + 1


# ================================================================== pacing
async def test_virtual_time_follows_the_clock_in_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: list[tuple[float, float]] = []
    wall_start = trio.current_time()
    await run_paced(lambda t: steps.append((trio.current_time() - wall_start, t)),
                    start=100.0, end=130.0, speed=10.0, tick_s=0.25)  # fmt: skip
    assert len(steps) == 12  # 3 wall seconds in ticks of 0.25
    for k, (wall, virtual) in enumerate(steps, start=1):
        assert wall == pytest.approx(0.25 * k)
        assert virtual == pytest.approx(100.0 + 10.0 * wall)
    assert steps[-1][1] == 130.0  # the end exactly
    assert trio.current_time() - wall_start == pytest.approx(3.0)


async def test_a_slow_tick_is_caught_up_at_once_not_in_a_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: list[tuple[float, float]] = []
    wall_start = trio.current_time()

    def step(t: float) -> None:
        elapsed = trio.current_time() - wall_start
        steps.append((elapsed, t))
        if len(steps) == 2:
            autojump_clock.jump(0.35)  # this step took 0.35 s of wall time

    await run_paced(step, start=0.0, end=1.0, speed=1.0, tick_s=0.1)
    walls = [round(w, 6) for w, _ in steps]
    assert walls == [0.1, 0.2, 0.6, 0.7, 0.8, 0.9, 1.0]  # 0.3 to 0.5 skipped
    assert all(t == pytest.approx(w) for w, t in steps)
    assert steps[-1][1] == 1.0


async def test_an_end_off_the_tick_grid_and_an_empty_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps: list[float] = []
    await run_paced(steps.append, start=5.0, end=5.25, speed=1.0, tick_s=0.1)
    assert steps == [pytest.approx(5.1), pytest.approx(5.2), 5.25]
    for start, end, speed in ((0.1, 2.9, 0.3), (0.2, 0.9, 3.0), (0.3, 0.9, 7.0), (5.3, 13.3, 1.7)):
        steps.clear()
        await run_paced(steps.append, start=start, end=end, speed=speed, tick_s=0.1)
        assert steps[-1] == end  # not start + speed * elapsed, often another float
    steps.clear()
    await run_paced(steps.append, start=5.0, end=5.0)
    assert steps == [5.0]


async def test_pacing_refuses_nonsense() -> None:
    for kwargs, field in (
        ({"speed": 0.0}, "speed"),
        ({"speed": math.inf}, "speed"),
        ({"tick_s": -1.0}, "tick_s"),
        ({"end": -1.0}, "expected a finite end"),
    ):
        arguments = {"start": 0.0, "end": 1.0, **kwargs}
        with pytest.raises(ValueError, match=field):
            await run_paced(lambda t: None, **arguments)


# ================================================================== the endpoint
def fetch(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        body: bytes = response.read()
        return response.status, response.headers["Content-Type"], body.decode()


async def raw_request(port: int, request: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        answer = b""
        while chunk := await stream.receive_some(65536):
            answer += chunk
        return answer


async def test_the_endpoint_answers_a_real_http_get_on_loopback() -> None:
    net = busy_net()
    metrics, registry = emulation_registry(net)
    metrics.set_clock(12.0, 1.0)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_metrics, registry)
            assert isinstance(port, int) and port > 0
            status, content_type, body = await trio.to_thread.run_sync(
                fetch, f"http://127.0.0.1:{port}/metrics"
            )
            assert status == 200 and content_type.startswith("text/plain; version=")
            samples = {
                (s.name, s.labels.get("node")): s.value
                for family in text_string_to_metric_families(body)
                for s in family.samples
            }
            assert samples["tawan_emulation_virtual_time_seconds", None] == 12.0
            assert samples["tawan_inbox_messages", "charlie"] == 1
            assert samples["tawan_inbox_messages", "alpha"] == 1

            not_found = await raw_request(port, b"GET /other HTTP/1.0\r\n\r\n")
            assert not_found.startswith(b"HTTP/1.0 404 ")
            wrong = await raw_request(port, b"POST /metrics HTTP/1.0\r\n\r\n")
            assert wrong.startswith(b"HTTP/1.0 405 ")
            garbage = await raw_request(port, b"\x00\xff nonsense\r\n\r\n")
            assert garbage.startswith(b"HTTP/1.0 400 ")
            too_long = await raw_request(port, b"GET /metrics HTTP/1.0\r\nX: " + b"y" * 9000)
            assert too_long.startswith(b"HTTP/1.0 400 ")
            again = await raw_request(port, b"GET /metrics?x=1 HTTP/1.1\r\nHost: h\r\n\r\n")
            head, _, text = again.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.0 200 OK")
            assert re.search(rb"Content-Length: (\d+)", head)[1] == str(len(text)).encode()  # type: ignore[index]
            nursery.cancel_scope.cancel()


# ================================================================== the dashboard
def daemon_only(query: str) -> bool:
    """A query on figures of a daemon's sockets (LINK_IO_FAMILIES), which emulated links lack."""
    return any(re.search(rf"\b{family}(_total)?\b", query) for family in LINK_IO_FAMILIES)


def test_the_dashboard_serves_an_emulation_as_well_as_one_daemon() -> None:
    """Every query filters on `node=~"$node"`, whose All is `.*`: it matches the emulator's
    `node` label and a daemon scraped without one alike; and every metric it uses is one the
    emulator exports too."""
    board = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in board["templating"]["list"] if v["name"] == "node"]
    assert variable["includeAll"] and variable["allValue"] == ".*"
    assert variable["current"]["value"] == "$__all"
    queries = [
        target["expr"]
        for panel in board["panels"]
        for target in panel.get("targets", [])
    ]  # fmt: skip
    assert len(queries) >= 20
    exported = {name for name, _ in series(emulation_registry(busy_net())[1])}
    for query in queries:
        for selector in re.findall(r"\btawan_[a-z0-9_]+(\{[^}]*\})?", query):
            assert selector == '{node=~"$node"}', query
        used = set(re.findall(r"\btawan_[a-z0-9_]+", query))
        if daemon_only(query):
            continue  # the panel on a daemon's sockets stays empty for an emulation
        assert used <= exported, query


# ================================================================== against a real Prometheus
PROMETHEUS = shutil.which("prometheus")


def prometheus_query(base: str, query: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    answer = json.loads(fetch(url)[2])
    assert answer["status"] == "success", (query, answer)
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


def scrape_config(target: str) -> str:
    """The commented-out emulator job of monitoring/prometheus.yml, pointed at `target`."""
    text = SCRAPE_CONFIG.read_text()
    job = re.search(r"^  # - job_name: tawan-emulator\n(?:  #.*\n?)+", text, re.MULTILINE)
    assert job is not None, "the emulator's job is missing from monitoring/prometheus.yml"
    lines = [line.replace("  # ", "  ", 1) for line in job[0].splitlines()]
    jobs = "\n".join(lines).replace("127.0.0.1:9100", target)
    return f"global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n{jobs}\n"


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed (Debian package)")
async def test_a_real_prometheus_scrapes_a_paced_run_and_answers_the_dashboard(
    tmp_path: Path,
) -> None:
    assert PROMETHEUS is not None
    net = Net(dict.fromkeys(NAMES, ()), chain(*NAMES))
    net.run(3)
    registry = CollectorRegistry()
    metrics = EmulationMetrics(registry, lambda: snapshots_of(net))
    start = net.now

    def step_until(t: float) -> None:
        for precedence in (Precedence.ROUTINE, Precedence.FLASH):
            net.submit("alpha", "charlie", b"report", precedence=precedence, ttl=600)
        net.engines["bravo"].receive("alpha-bravo", "alpha", b"\x01 noise", net.now)
        net.run(t - net.now)
        for name in NAMES:
            for event in net.events[name]:
                metrics.observe_event(name, event)
            net.events[name].clear()
        metrics.set_clock(t - start, 2.0)

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_metrics, registry)
            (tmp_path / "prometheus.yml").write_text(scrape_config(f"127.0.0.1:{port}"))
            web = f"127.0.0.1:{free_port()}"
            process = await trio.lowlevel.open_process(
                [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address={web}",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                nursery.start_soon(run_paced, step_until, start, start + 600.0, 2.0, 0.25)
                await _until_scraped(f"http://{web}", process)
                await _check_dashboard(f"http://{web}")
            finally:
                process.kill()
                await process.wait()
            nursery.cancel_scope.cancel()


async def _until_scraped(base: str, process: trio.Process) -> None:
    ready = "min(count_over_time(tawan_store_max_bytes[1m])) >= 4 and count(up == 1) == 1"
    while True:
        assert process.returncode is None, "prometheus stopped"
        try:
            if await trio.to_thread.run_sync(prometheus_query, base, ready):
                return
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError):
                raise
        await trio.sleep(0.5)


async def _check_dashboard(base: str) -> None:
    labels = await trio.to_thread.run_sync(fetch, f"{base}/api/v1/label/node/values")
    assert json.loads(labels[2])["data"] == sorted(NAMES)  # kept: honor_labels
    exported = await trio.to_thread.run_sync(fetch, f"{base}/api/v1/label/exported_node/values")
    assert json.loads(exported[2])["data"] == []
    speed = await trio.to_thread.run_sync(prometheus_query, base, "tawan_emulation_speed")
    assert [s["value"][1] for s in speed] == ["2"]  # type: ignore[index]
    board = json.loads(DASHBOARD.read_text())
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            promql = target["expr"].replace("$__rate_interval", "1m").replace("$node", ".*")
            if daemon_only(promql):
                continue
            result = await trio.to_thread.run_sync(prometheus_query, base, promql)
            assert result, f"no data for {promql}"
