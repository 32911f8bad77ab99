"""Prometheus metrics: read from engines driven in virtual time, served over real HTTP.

The figures are checked against the engine's own counters after real traffic through a relay,
the exposition is parsed back, and the dashboard and scrape configuration in monitoring/ are
checked against what the collector exports. With a `prometheus` binary on PATH (the Debian
package), a real server scrapes three nodes and answers every query of the dashboard.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from wsgiref.simple_server import WSGIServer

import pytest
import trio
from harness import Net, chain
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tawan.core.events import Delivered
from tawan.core.precedence import Precedence
from tawan.demo import free_port
from tawan.node.metrics import (
    LATENCY_BUCKETS,
    METRICS,
    PRECEDENCES,
    REJECTION_REASONS,
    NodeMetrics,
    OwnerGone,
    run_in_trio,
    server_address,
    start_metrics_server,
    stop_metrics_server,
)
from tawan.node.runtime import LinkIo

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "monitoring" / "grafana-dashboard.json"
SCRAPE_CONFIG = ROOT / "monitoring" / "prometheus.yml"
DOC = ROOT / "docs" / "metrics.md"
HTTP_TIMEOUT = 5.0
T = TypeVar("T")


LINK_IO = (LinkIo("a-b", {"bad-version": 7, "kernel-buffer-full": 0}, {"queue_full": 2}, 8 << 20),)
"""What a runtime's links would report: the engine-only Net has no links of its own."""


def abc() -> Net:
    net = Net({"a": [], "b": [], "c": []}, chain("a", "b", "c"))
    net.run(3)  # hellos and adverts: everyone knows the routes
    return net


def flash_a_to_c() -> Net:
    net = abc()
    net.submit("a", "c", b"x", precedence=Precedence.FLASH, ttl=600)
    net.run(3)
    return net


def attach(net: Net, name: str) -> tuple[NodeMetrics, CollectorRegistry]:
    """A node's metrics in a registry of its own, fed the events the node has emitted."""
    registry = CollectorRegistry()
    metrics = NodeMetrics(net.engines[name], registry, link_io=lambda: LINK_IO)
    for event in net.events[name]:
        metrics.observe_event(event)
    return metrics, registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


def sample_names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


# ================================================================== figures
def test_counters_follow_a_message_through_a_relay() -> None:
    net = flash_a_to_c()
    _, a = attach(net, "a")
    _, b = attach(net, "b")
    _, c = attach(net, "c")
    assert value(a, "tawan_messages_submitted_total", precedence="flash") == 1
    assert value(a, "tawan_messages_submitted_total", precedence="routine") == 0
    assert value(b, "tawan_messages_forwarded_total", precedence="flash") == 1
    assert value(c, "tawan_messages_delivered_total", precedence="flash") == 1
    assert value(c, "tawan_inbox_messages") == 1
    assert value(a, "tawan_store_messages", precedence="flash") == 0  # acknowledged: released
    assert value(a, "tawan_store_max_bytes") == 64 << 20
    assert value(c, "tawan_frames_rejected_total", reason="replay") == 0

    latency = net.delivered("c")[0].latency
    assert value(c, "tawan_delivery_latency_seconds_count", precedence="flash") == 1
    assert value(c, "tawan_delivery_latency_seconds_sum", precedence="flash") == latency
    assert value(c, "tawan_delivery_latency_seconds_bucket", precedence="flash", le="+Inf") == 1
    assert value(c, "tawan_delivery_latency_seconds_count", precedence="routine") == 0


def test_link_and_neighbour_figures_are_the_engines() -> None:
    net = flash_a_to_c()
    _, b = attach(net, "b")
    engine = net.engines["b"]
    for link in ("a-b", "b-c"):
        stats = engine.stats.links[link]
        assert value(b, "tawan_link_up", link=link) == 1
        assert value(b, "tawan_link_frames_sent_total", link=link) == stats.frames_sent > 0
        assert value(b, "tawan_link_frames_received_total", link=link) == stats.frames_received
        assert value(b, "tawan_link_sent_bytes_total", link=link) == stats.bytes_sent > 0
        assert value(b, "tawan_link_received_bytes_total", link=link) == stats.bytes_received
        assert value(b, "tawan_link_retransmissions_total", link=link) == 0
    adjacency = engine.neighbours.get(net.address("a"), "a-b")
    assert adjacency is not None and adjacency.srtt is not None
    labels = {"link": "a-b", "neighbour": "a"}
    assert value(b, "tawan_neighbour_up", **labels) == 1
    assert value(b, "tawan_neighbour_rtt_seconds", **labels) == adjacency.srtt
    assert value(b, "tawan_neighbour_loss_ratio", **labels) == 0


def test_a_cut_link_shows_down_with_the_message_held_and_retransmitted() -> None:
    net = abc()
    net.links["a-b"].up = False
    net.submit("a", "c", b"x" * 300, precedence=Precedence.IMMEDIATE, ttl=600)
    net.run(0.5)  # the message is in flight to b, unacknowledged
    _, a = attach(net, "a")
    stored = net.engines["a"].store.bytes_used()
    assert value(a, "tawan_store_messages", precedence="immediate") == 1
    assert value(a, "tawan_store_bytes", precedence="immediate") == stored > 0
    assert value(a, "tawan_queue_messages", precedence="immediate") == 1
    assert value(a, "tawan_link_up", link="a-b") == 1  # not yet declared dead

    net.run(10)  # past the dead interval, retransmitting all the while
    assert value(a, "tawan_link_up", link="a-b") == 0
    assert value(a, "tawan_neighbour_up", link="a-b", neighbour="b") == 0
    assert (value(a, "tawan_link_retransmissions_total", link="a-b") or 0) >= 1
    assert value(a, "tawan_store_messages", precedence="immediate") == 1


def test_every_engine_counter_reaches_its_metric() -> None:
    net = abc()
    engine = net.engines["b"]
    _, b = attach(net, "b")
    stats = engine.stats
    families = ("submitted", "delivered", "forwarded", "expired", "evicted", "refused")
    for offset, family in enumerate(families):
        for rank, precedence in enumerate(PRECEDENCES):
            getattr(stats, family)[precedence] = 10 * offset + rank + 1
    stats.rejected["replay"] = 7
    stats.rejected["some-new-reason"] = 2
    stats.duplicates, stats.receipts_received = 3, 4
    stats.link("a-b").retransmissions = 5
    for offset, family in enumerate(families):
        for rank, precedence in enumerate(PRECEDENCES):
            name = f"tawan_messages_{family}_total"
            assert value(b, name, precedence=precedence) == 10 * offset + rank + 1
    assert value(b, "tawan_frames_rejected_total", reason="replay") == 7
    assert value(b, "tawan_frames_rejected_total", reason="some-new-reason") == 2
    assert value(b, "tawan_frames_rejected_total", reason="hop-limit") == 0
    assert value(b, "tawan_duplicates_total") == 3
    assert value(b, "tawan_receipts_received_total") == 4
    assert value(b, "tawan_link_retransmissions_total", link="a-b") == 5


def test_a_rejected_frame_is_counted_by_reason() -> None:
    net = abc()
    _, b = attach(net, "b")
    net.engines["b"].receive("a-b", "a", b"\x01 not a frame from anyone", net.now)
    assert value(b, "tawan_frames_rejected_total", reason="malformed") == 1


def test_latency_buckets_hold_their_upper_bound() -> None:
    net = abc()
    metrics, registry = attach(net, "c")
    delivered = flash_a_to_c().delivered("c")[0]
    observed = [0.0, 0.05, 0.0501, 3600.0, 3600.5]
    for seconds in observed:
        metrics.observe_event(_with_latency(delivered, seconds))

    def bucket(le: str) -> float | None:
        return value(registry, "tawan_delivery_latency_seconds_bucket", precedence="flash", le=le)

    assert bucket("0.05") == 2
    assert bucket("0.1") == 3
    assert bucket("3600.0") == 4
    assert bucket("+Inf") == 5
    assert value(registry, "tawan_delivery_latency_seconds_sum", precedence="flash") == sum(
        observed
    )
    text = exposition(registry)
    bounds = re.findall(r'le="([^"]+)",precedence="flash"', text)
    assert bounds == [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]


def _with_latency(event: Delivered, seconds: float) -> Delivered:
    return Delivered(
        event.mid, event.src, event.dst, event.precedence, event.created, seconds,
        event.payload, event.signed, event.inbox_id,
    )  # fmt: skip


# ================================================================== one registry, many nodes
def test_node_label_puts_many_engines_behind_one_registry() -> None:
    net = flash_a_to_c()
    registry = CollectorRegistry()
    for name in ("a", "b", "c"):
        NodeMetrics(net.engines[name], registry, node_label=f"node-{name}")
    assert value(registry, "tawan_messages_submitted_total", node="node-a", precedence="flash")
    assert value(registry, "tawan_messages_delivered_total", node="node-c", precedence="flash")
    assert value(registry, "tawan_link_up", node="node-b", link="b-c") == 1

    families = [f.name for f in text_string_to_metric_families(exposition(registry))]
    assert len(families) == len(set(families)) == len(METRICS)  # each family once
    for family in text_string_to_metric_families(exposition(registry)):
        assert all(s.labels["node"].startswith("node-") for s in family.samples)
        nodes = {s.labels["node"] for s in family.samples}
        assert nodes in ({"node-a", "node-b", "node-c"}, set()), family.name


def test_a_registry_refuses_mixed_or_repeated_node_labels() -> None:
    net = abc()
    labelled, plain = CollectorRegistry(), CollectorRegistry()
    NodeMetrics(net.engines["a"], labelled, node_label="a")
    NodeMetrics(net.engines["a"], plain)
    with pytest.raises(ValueError, match="already in this registry"):
        NodeMetrics(net.engines["b"], labelled, node_label="a")
    with pytest.raises(ValueError, match="cannot mix"):
        NodeMetrics(net.engines["b"], labelled)
    with pytest.raises(ValueError, match="cannot mix"):
        NodeMetrics(net.engines["b"], plain, node_label="b")
    with pytest.raises(ValueError, match="already in this registry"):
        NodeMetrics(net.engines["b"], plain)
    with pytest.raises(ValueError, match="node_label"):
        NodeMetrics(net.engines["b"], CollectorRegistry(), node_label="")


def test_a_closed_node_leaves_and_a_restarted_engine_is_read_afresh() -> None:
    net = flash_a_to_c()
    registry = CollectorRegistry()
    c = NodeMetrics(net.engines["c"], registry, node_label="c")
    b = NodeMetrics(net.engines["b"], registry, node_label="b")
    c.close()
    assert value(registry, "tawan_inbox_messages", node="c") is None
    NodeMetrics(net.engines["c"], registry, node_label="c")  # the label is free again
    assert value(registry, "tawan_inbox_messages", node="c") == 1

    assert value(registry, "tawan_messages_forwarded_total", node="b", precedence="flash") == 1
    net.restart("b")
    b.engine = net.engines["b"]
    assert value(registry, "tawan_messages_forwarded_total", node="b", precedence="flash") == 0


def test_a_node_whose_owner_has_stopped_is_left_out() -> None:
    net = abc()
    registry = CollectorRegistry()

    def gone(read: Callable[[], T], /) -> T:
        raise OwnerGone("stopped")

    NodeMetrics(net.engines["a"], registry, node_label="a", run_in_owner=gone)
    NodeMetrics(net.engines["b"], registry, node_label="b")
    assert value(registry, "tawan_inbox_messages", node="a") is None
    assert value(registry, "tawan_inbox_messages", node="b") == 0


# ================================================================== names
def test_names_follow_prometheus_conventions() -> None:
    _, registry = attach(flash_a_to_c(), "b")
    families = list(text_string_to_metric_families(exposition(registry)))
    assert {f.name for f in families} == {spec.name for spec in METRICS}
    allowed_labels = {"precedence", "reason", "link", "neighbour", "le"}
    for family in families:
        assert re.fullmatch(r"tawan_[a-z][a-z0-9_]*[a-z]", family.name), family.name
        assert family.samples, family.name
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            else:
                assert not sample.name.endswith("_total"), sample.name
            assert set(sample.labels) <= allowed_labels, sample.name
    for spec in METRICS:
        for unit in ("bytes", "seconds", "ratio"):
            if unit in spec.name.split("_"):
                assert spec.name.endswith(f"_{unit}") and spec.unit == unit, spec.name


def test_rejection_reasons_and_precedences_are_bounded_label_values() -> None:
    _, registry = attach(abc(), "a")
    text = exposition(registry)
    reasons = set(re.findall(r'tawan_frames_rejected_total\{reason="([^"]+)"\}', text))
    assert reasons == set(REJECTION_REASONS)
    precedences = set(re.findall(r'tawan_store_messages\{precedence="([^"]+)"\}', text))
    assert precedences == {p.name.lower() for p in Precedence} == set(PRECEDENCES)


# ================================================================== the HTTP endpoint
def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response:  # noqa: S310 (loopback)
        body: bytes = response.read()
        return body.decode()


async def test_the_endpoint_is_scraped_over_http_while_trio_owns_the_engine() -> None:
    net = flash_a_to_c()
    registry = CollectorRegistry()
    metrics = NodeMetrics(net.engines["c"], registry, run_in_owner=run_in_trio())
    for event in net.events["c"]:
        metrics.observe_event(event)
    server, thread = start_metrics_server(registry, "127.0.0.1:0")
    try:
        address = server_address(server)
        assert re.fullmatch(r"127\.0\.0\.1:\d+", address) and not address.endswith(":0")
        # The store's SQLite connection refuses other threads: this read had to hop to trio.
        text = await trio.to_thread.run_sync(scrape, f"http://{address}/metrics")
    finally:
        stop_metrics_server(server, thread)
    assert not thread.is_alive()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples["tawan_messages_delivered_total", (("precedence", "flash"),)] == 1
    assert samples["tawan_inbox_messages", ()] == 1
    assert samples["tawan_delivery_latency_seconds_count", (("precedence", "flash"),)] == 1


async def test_run_in_trio_reads_directly_on_the_trio_thread() -> None:
    run = run_in_trio()
    assert run(threading.get_ident) == threading.get_ident()
    other = await trio.to_thread.run_sync(run, threading.get_ident)
    assert other == threading.get_ident()  # run from a worker thread, read on trio's


def test_the_server_address_is_checked_and_a_taken_port_named() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match=r"metrics\.address"):
        start_metrics_server(registry, "localhost")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=re.escape(f"metrics.address 127.0.0.1:{port}")):
            start_metrics_server(registry, f"127.0.0.1:{port}")


# ================================================================== monitoring/ and docs/
def dashboard_queries() -> Iterator[str]:
    board = json.loads(DASHBOARD.read_text())

    def walk(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("expr", "definition") and isinstance(item, str):
                    yield item
                else:
                    yield from walk(item)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(board)


def test_the_dashboard_uses_only_metrics_the_collector_exports() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["panels"]
    queries = list(dashboard_queries())
    assert len(queries) >= 20
    used = {name for q in queries for name in re.findall(r"\btawan_[a-z0-9_]+", q)}
    exported = sample_names(exposition(attach(flash_a_to_c(), "b")[1]))
    assert used <= exported, sorted(used - exported)
    assert any("histogram_quantile" in q for q in queries)
    families = {spec.name for spec in METRICS}
    unused = {f for f in families if not any(n.startswith(f) for n in used)}
    assert not unused, f"metrics on no panel: {sorted(unused)}"


def test_every_panel_of_the_dashboard_has_an_id_of_its_own() -> None:
    def panels(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for panel in node.get("panels", []):
            yield panel
            yield from panels(panel)

    ids = Counter(panel["id"] for panel in panels(json.loads(DASHBOARD.read_text())))
    assert ids and not [i for i, n in ids.items() if n > 1], ids  # Grafana keys panels by id


def test_the_scrape_config_names_three_nodes_on_loopback() -> None:
    text = SCRAPE_CONFIG.read_text()
    targets = re.findall(r'^\s*- targets: \["([^"]+)"\]', text, re.MULTILINE)
    assert targets == ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"]
    assert re.findall(r"^\s+node: (\w+)", text, re.MULTILINE) == ["alpha", "bravo", "charlie"]


def test_the_docs_describe_every_metric_and_label() -> None:
    doc = DOC.read_text()
    for spec in METRICS:
        shown = f"{spec.name}_total" if spec.kind == "counter" else spec.name
        assert f"`{shown}`" in doc, shown
        for label in spec.labels:
            assert f"`{label}`" in doc, label
    for reason in REJECTION_REASONS:
        assert f"`{reason}`" in doc, reason


# ================================================================== against the real tools
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NOT_INSTALLED = "not installed (Debian package prometheus)"


@pytest.mark.slow
@pytest.mark.skipif(PROMTOOL is None, reason=f"promtool {NOT_INSTALLED}")
def test_promtool_accepts_the_config_and_the_exposition() -> None:
    assert PROMTOOL is not None
    promtool = PROMTOOL
    checked = subprocess.run(
        [promtool, "check", "config", str(SCRAPE_CONFIG)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = exposition(attach(flash_a_to_c(), "b")[1])
    linted = subprocess.run(
        [promtool, "check", "metrics"],
        input=text, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert linted.returncode == 0, linted.stdout + linted.stderr


def prometheus_query(base: str, query: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    answer = json.loads(scrape(url))
    assert answer["status"] == "success", (query, answer)
    result: list[dict[str, object]] = answer["data"]["result"]
    return result


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason=f"prometheus {NOT_INSTALLED}")
async def test_a_real_prometheus_scrapes_three_nodes_and_answers_the_dashboard(
    tmp_path: Path,
) -> None:
    assert PROMETHEUS is not None
    prometheus = PROMETHEUS
    names = ("alpha", "bravo", "charlie")
    net = Net(dict.fromkeys(names, ()), chain(*names))
    net.run(3)
    owner = run_in_trio()
    nodes: dict[str, NodeMetrics] = {}
    servers: list[tuple[WSGIServer, threading.Thread]] = []
    config = SCRAPE_CONFIG.read_text()
    config = config.replace("scrape_interval: 5s", "scrape_interval: 1s")
    config = config.replace("scrape_timeout: 4s", "scrape_timeout: 1s")
    log = tmp_path / "prometheus.log"
    try:
        for index, name in enumerate(names):
            registry = CollectorRegistry()
            nodes[name] = NodeMetrics(
                net.engines[name], registry, run_in_owner=owner, link_io=lambda: LINK_IO
            )
            servers.append(start_metrics_server(registry, "127.0.0.1:0"))
            config = config.replace(f"127.0.0.1:910{index + 1}", server_address(servers[-1][0]))
        (tmp_path / "prometheus.yml").write_text(config)
        web = f"127.0.0.1:{free_port()}"
        with log.open("wb") as log_file:
            process = await trio.lowlevel.open_process(
                [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address={web}",
                 "--log.level=warn"],
                stdout=subprocess.DEVNULL, stderr=log_file,
            )  # fmt: skip
        try:
            await _traffic_until_scraped(net, nodes, f"http://{web}", process, log)
            await _check_dashboard_queries(f"http://{web}")
        finally:
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()
            process.kill()
            await process.wait()
    finally:
        for server, thread in servers:
            stop_metrics_server(server, thread)


async def _traffic_until_scraped(
    net: Net, nodes: dict[str, NodeMetrics], base: str, process: trio.Process, log: Path
) -> None:
    """Messages and a bad frame every round, until Prometheus holds a few scrapes of each."""
    ready = "min(count_over_time(tawan_store_max_bytes[1m])) >= 4 and count(up == 1) == 3"
    with trio.fail_after(60):
        while True:
            for precedence in (Precedence.ROUTINE, Precedence.FLASH):
                net.submit("alpha", "charlie", b"report", precedence=precedence, ttl=600)
            net.engines["bravo"].receive("alpha-bravo", "alpha", b"\x01 noise", net.now)
            net.run(1)
            for name, metrics in nodes.items():
                for event in net.events[name]:
                    metrics.observe_event(event)
                net.events[name].clear()
            assert process.returncode is None, f"prometheus stopped: {log.read_text()}"
            try:
                scraped = await trio.to_thread.run_sync(prometheus_query, base, ready)
            except urllib.error.URLError as exc:
                if isinstance(exc, urllib.error.HTTPError):
                    raise
                scraped = []  # not listening yet
            if scraped:
                return
            await trio.sleep(0.5)


async def _check_dashboard_queries(base: str) -> None:
    nodes = await trio.to_thread.run_sync(scrape, f"{base}/api/v1/label/node/values")
    assert json.loads(nodes)["data"] == ["alpha", "bravo", "charlie"]
    for query in dashboard_queries():
        promql = query.replace("$__rate_interval", "1m").replace("$node", ".*")
        if promql.startswith("label_values("):
            continue  # a Grafana function, answered above by the label values API
        result = await trio.to_thread.run_sync(prometheus_query, base, promql)
        assert result, f"no data for {promql}"
