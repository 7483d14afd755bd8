"""/metrics as Prometheus scrapes it from a real `serve`: upstream latency and errors by upstream and catalog path,
process_* series, build_info, and no `_created` series."""

from __future__ import annotations

import platform
from collections.abc import Iterator

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from prometheus_client.parser import text_string_to_metric_families

from higress_ops import __version__
from tests.support.envoy import Envoy
from tests.support.istiod import istiod_double
from tests.support.serve import ServeProcess, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    workdir = tmp_path_factory.mktemp("metrics")
    envoy = Envoy({"static_resources": {}}, workdir / "envoy").start()
    try:
        with istiod_double() as istiod:
            config = {"mcpServer": {"enable": True, "servers": [
                {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
                 "config": {"istiodURL": istiod.url, "envoyAdminURL": envoy.admin_url}}]}}
            with serving(config, workdir / "serve") as process:
                yield process
    finally:
        envoy.stop()


def scrape(server: ServeProcess) -> tuple[str, Samples]:
    text = httpx.get(server.admin("/metrics"), timeout=10).text
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def client_for(server: ServeProcess, transport: str) -> Client:
    if transport == "legacy-sse":
        return Client(sse_client(server.url("/higress-ops/sse")), mode="legacy")
    return Client(server.url("/higress-ops"), mode="legacy" if transport == "streamable" else "2026-07-28")


@pytest.mark.parametrize("transport", ["streamable", "legacy-sse", "2026-07-28"])
async def test_upstream_latency_and_errors_by_upstream_and_path(server: ServeProcess, transport: str) -> None:
    _, before = scrape(server)
    async with client_for(server, transport) as client:
        assert (await client.call_tool("get-envoy-ready", {})).is_error is False
        assert (await client.call_tool("get-envoy-ready", {})).is_error is False
        assert (await client.call_tool("get-istiod-syncz", {})).is_error is True  # no token: istiod's 401
        missing = await client.call_tool("get-envoy-config-dump", {"resource": "dynamic_nothing"})
        assert missing.is_error is True  # Envoy's 404 for an unknown field
    _, after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    envoy_ready = {"upstream": "envoy", "path": "/ready"}
    assert delta("higress_ops_upstream_request_seconds_count", **envoy_ready) == 2
    assert delta("higress_ops_upstream_request_seconds_sum", **envoy_ready) > 0
    assert delta("higress_ops_upstream_request_seconds_bucket", **envoy_ready, le="+Inf") == 2
    assert value(after, "higress_ops_upstream_errors_total", **envoy_ready, reason="http_503") == 0
    assert delta("higress_ops_upstream_errors_total", upstream="istiod", path="/debug/syncz", reason="http_401") == 1
    assert delta("higress_ops_upstream_errors_total", upstream="envoy", path="/config_dump", reason="http_404") == 1
    paths = {dict(labels)["path"] for name, labels in after if name.startswith("higress_ops_upstream_")}
    assert paths == {"/ready", "/debug/syncz", "/config_dump"}, "the query string is never part of a label"


def test_process_series_and_build_info_without_created(server: ServeProcess) -> None:
    text, samples = scrape(server)
    assert value(samples, "higress_ops_build_info", version=__version__, python=platform.python_version()) == 1
    assert value(samples, "process_resident_memory_bytes") > 1 << 20
    assert ("process_cpu_seconds_total", frozenset()) in samples
    assert any(name == "python_info" and ("version", platform.python_version()) in labels for name, labels in samples)
    assert "_created" not in text
    assert "higress_ops_requests_total" in text

