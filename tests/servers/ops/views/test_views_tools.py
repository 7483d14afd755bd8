"""The view tools end to end: real Envoy, a small istiod stand-in over HTTP, budgets and bad input."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.upstream import Upstreams
from higress_ops.servers.ops.views import certs, routes
from higress_ops.servers.ops.views.compare import compare
from higress_ops.servers.ops.views.find_route import find_route
from higress_ops.servers.ops.views.matching import Request
from higress_ops.servers.ops.views.paging import structured_rows
from higress_ops.servers.ops.views.proxy_status import rows as status_rows
from higress_ops.servers.ops.views.source import http_source
from higress_ops.servers.ops.views.tools import TOOLS as VIEW_TOOLS
from tests.support import istio_envoy as ie
from tests.support.procs import free_port

TOOLS = {t.spec.name: t for t in VIEW_TOOLS}


@pytest.fixture
async def src_of() -> AsyncIterator[Callable[..., Upstreams]]:
    """Upstreams over URLs, closed after the test (their pools live on the test's event loop)."""
    made: list[Upstreams] = []

    def make(*args: Any, **kwargs: Any) -> Upstreams:
        made.append(http_source(*args, **kwargs))
        return made[-1]

    yield make
    for source in made:
        await source.aclose()


CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
SYNCZ = [
    {"proxy": "gw-a.higress-system", "cluster_id": "Kubernetes", "istio_version": "1.27.0",
     "cluster_sent": "n1", "cluster_acked": "n1", "listener_sent": "n2", "listener_acked": "n2",
     "endpoint_sent": "n3", "endpoint_acked": "n3", "route_sent": "n4", "route_acked": "n4"},
    {"proxy": "gw-b.higress-system", "cluster_id": "Kubernetes", "istio_version": "1.27.0",
     "cluster_sent": "n5", "cluster_acked": "n4", "listener_sent": "n2",
     "resources": {CDS: {"sent": "n5", "acked": "n4", "lastError": "cluster outbound|80||x: bad lb policy"}}},
]


@pytest.fixture(scope="module")
def istiod(gateway) -> Iterator[str]:
    """Serves syncz and a config dump for one proxy (the gateway's own dump, one cluster removed)."""
    envoy_dump = requests.get(f"{gateway.admin_url}/config_dump", timeout=5).json()
    istiod_dump = json.loads(json.dumps(envoy_dump))
    for cfg in istiod_dump["configs"]:
        if cfg["@type"].endswith("ClustersConfigDump"):
            cfg["dynamic_active_clusters"] = [c for c in cfg["dynamic_active_clusters"]
                                              if "wild" not in c["cluster"]["name"]]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("authorization") != "Bearer good":
                self.send_response(401)
                self.end_headers()
                return
            body: Any = SYNCZ if self.path.startswith("/debug/syncz") else istiod_dump
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CTX = CallContext(headers={"x-istiod-token": "good"})


@pytest.mark.anyio
async def test_proxy_config_tool_pages_and_filters(gateway, istiod, src_of):
    src = src_of(gateway.admin_url, istiod)
    res = await TOOLS["get-envoy-proxy-config"].run({"type": "clusters", "limit": 3}, src, CTX)
    assert not res.is_error
    text = res.content[0]["text"]
    assert text.startswith("SERVICE FQDN") and "[rows 1-3 of 10; next page: offset=3]" in text
    res = await TOOLS["get-envoy-proxy-config"].run({"type": "clusters", "output": "json", "subset": "v1"}, src, CTX)
    names = [c["name"] for c in json.loads(res.content[0]["text"])]
    assert names == ["outbound|9080|v1|reviews.bookinfo.svc.cluster.local"]
    res = await TOOLS["get-envoy-proxy-config"].run({"type": "all"}, src, CTX)
    assert all(f"--- {k} ---" in res.content[0]["text"] for k in ("clusters", "listeners", "routes", "secrets"))
    sections = dict(part.split(" ---\n", 1) for part in res.content[0]["text"].split("--- ")[1:])
    first = {k: [line.split()[0] for line in v.strip().splitlines()] for k, v in sections.items()}
    prefix = {"clusters": "cluster/", "listeners": "listener/", "routes": "route/", "secrets": "secret/",
              "endpoints": "endpoint/"}
    for kind, cells in first.items():  # istioctl proxy-config all: NAME first, as <type>/<name>
        assert cells[0] == "NAME" and len(cells) > 1 and all(c.startswith(prefix[kind]) for c in cells[1:]), kind
    assert f"cluster/{ie.REVIEWS_V1}" in first["clusters"] and "listener/0.0.0.0_80" in first["listeners"]
    assert f"endpoint/127.0.0.1:{gateway.ups['reviews-v1'].port}" in first["endpoints"]


@pytest.mark.anyio
async def test_a_routes_page_is_those_rows_of_the_whole_table(gateway, istiod, src_of):
    """The routes view makes only its page's rows: they are the table's, and the total is the table's."""
    table = routes.table(requests.get(f"{gateway.admin_url}/config_dump", timeout=5).json())
    assert len(table.rows) > 3
    res = await TOOLS["get-envoy-proxy-config"].run({"type": "routes", "offset": 1, "limit": 2},
                                                    src_of(gateway.admin_url, istiod), CTX)
    assert res.structured == {"rows": structured_rows(table.rows[1:3]), "total": len(table.rows)}
    footer = f"[rows 2-3 of {len(table.rows)}; next page: offset=3]\n"
    assert res.content[0]["text"] == table.render(table.rows[1:3]) + footer


@pytest.mark.anyio
async def test_outputs_stay_within_the_budget(gateway, istiod, src_of):
    src = src_of(gateway.admin_url, istiod, max_bytes=1500)
    res = await TOOLS["get-envoy-proxy-config"].run({"type": "routes", "limit": 1000}, src, CTX)
    text = res.content[0]["text"]
    assert len(text.encode()) <= 1500 and "maxResponseBytes 1500" in text
    res = await TOOLS["get-istiod-config-dump"].run({"proxyID": "gw-a.higress-system"}, src, CTX)
    assert len(res.content[0]["text"].encode()) <= 1500 and "cut to the 1,500-byte budget" in res.content[-1]["text"]
    json.loads(res.content[0]["text"])  # cut at item boundaries: still JSON


@pytest.mark.anyio
async def test_proxy_status_puts_unsynced_first_and_shows_nacks(gateway, istiod, src_of):
    res = await TOOLS["get-istiod-proxy-status"].run({}, src_of(gateway.admin_url, istiod), CTX)
    lines = res.content[0]["text"].splitlines()
    assert lines[0].split() == ["NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION"]
    assert lines[1].startswith("gw-b") and "ERROR" in lines[1] and "STALE (Never Acknowledged)" in lines[1]
    assert lines[2].startswith("gw-a") and lines[2].count("SYNCED") == 4 and "NOT SENT" in lines[2]
    assert "gw-b.higress-system CDS: cluster outbound|80||x: bad lb policy" in res.content[0]["text"]


def test_proxy_status_rules():
    [row] = status_rows([{"proxy": "p", "cluster_sent": "a", "cluster_acked": "b"}])
    assert (row["CDS"], row["LDS"], row["synced"]) == ("STALE", "NOT SENT", False)


@pytest.mark.anyio
async def test_compare_finds_the_cluster_istiod_does_not_have(gateway, istiod, src_of):
    res = await TOOLS["get-istiod-config-dump"].run({"proxyID": "gw-a.higress-system", "compare": True},
                                                    src_of(gateway.admin_url, istiod), CTX)
    text = res.content[0]["text"]
    assert "Listeners Match" in text and "Routes Match" in text
    assert "Clusters Don't Match" in text
    assert "only in envoy (stale): outbound|80||wild.default.svc.cluster.local" in text


def test_compare_reports_content_differences():
    dump = {"configs": [{"@type": "x.ClustersConfigDump", "dynamic_active_clusters": [
        {"cluster": {"name": "a", "type": "EDS"}, "last_updated": "t1"}]}]}
    other = {"configs": [{"@type": "x.ClustersConfigDump", "dynamic_active_clusters": [
        {"cluster": {"name": "a", "type": "STATIC"}, "last_updated": "t2"}]}]}
    assert compare(dump, dump)["clusters"]["match"]
    assert compare(dump, other)["clusters"]["differ"] == ["a"]


@pytest.mark.anyio
async def test_check_certs_warns_about_the_expiring_certificate(gateway, istiod, src_of):
    res = await TOOLS["check-certs"].run({"days": 30}, src_of(gateway.admin_url, istiod), CTX)
    warnings = res.structured["warnings"]
    assert len(warnings) == 1 and "CN=expiring.example.com" in warnings[0]
    res = await TOOLS["check-certs"].run({"days": 5}, src_of(gateway.admin_url, istiod), CTX)
    assert res.structured["warnings"] == [] and "No certificate expires within 5 days" in res.content[0]["text"]


@pytest.mark.anyio
async def test_bad_input_and_upstream_failures_are_tool_errors(gateway, istiod, src_of):
    src = src_of(gateway.admin_url, istiod)
    for name, args in [("get-envoy-proxy-config", {"type": "pods"}), ("get-envoy-proxy-config", {"port": -1}),
                       ("find-route", {"host": ""}), ("find-route", {"host": "a", "path": "x"}),
                       ("get-istiod-config-dump", {"proxyID": "a&push=true"})]:
        res = await TOOLS[name].run(args, src, CTX)
        assert res.is_error, (name, args)
    res = await TOOLS["get-istiod-proxy-status"].run({}, src, CallContext(headers={"x-istiod-token": "bad"}))
    assert res.is_error and "401" in res.content[0]["text"] and "bad" not in res.content[0]["text"].split("401")[1]
    down = src_of(f"http://127.0.0.1:{free_port()}", istiod, timeout=2)
    res = await TOOLS["find-route"].run({"host": "x"}, down, CTX)
    assert res.is_error and "unreachable" in res.content[0]["text"]


class Recording:
    """A Source that passes every call to the real one and keeps the Envoy paths and parameters asked for."""

    def __init__(self, inner: Upstreams) -> None:
        self.inner, self.max_bytes, self.asked = inner, inner.max_bytes, []
        self.namespace, self.kube_namespaces = inner.namespace, inner.kube_namespaces

    async def envoy_json(self, path: str, params: Any = None, ctx: CallContext | None = None) -> Any:
        self.asked.append((path, dict(params or {})))
        return await self.inner.envoy_json(path, params, ctx)

    async def istiod_json(self, path: str, params: Any, ctx: CallContext) -> Any:
        return await self.inner.istiod_json(path, params, ctx)

    async def istiod_json_each(self, path: str, params: Any, ctx: CallContext) -> Any:
        return await self.inner.istiod_json_each(path, params, ctx)

    async def kube_list(self, kind: str, namespace: str, labels: str = "", fields: str = "") -> Any:
        return await self.inner.kube_list(kind, namespace, labels, fields)

    async def kube_get(self, kind: str, namespace: str, name: str) -> Any:
        return await self.inner.kube_get(kind, namespace, name)


@pytest.mark.anyio
async def test_find_route_and_check_certs_fetch_only_their_sections_and_answer_the_same(gateway, istiod, src_of):
    full = requests.get(f"{gateway.admin_url}/config_dump", timeout=5).json()
    clusters_json = requests.get(f"{gateway.admin_url}/clusters?format=json", timeout=5).json()
    src = Recording(src_of(gateway.admin_url, istiod))
    res = await TOOLS["find-route"].run({"host": "httpbin.example.com", "path": "/get", "port": gateway.http_port},
                                        src, CTX)
    assert res.structured == find_route(full, clusters_json, Request("httpbin.example.com", "/get"),
                                        port=gateway.http_port)
    certs_json = requests.get(f"{gateway.admin_url}/certs", timeout=5).json()
    res = await TOOLS["check-certs"].run({"days": 30}, src, CTX)
    assert res.structured["rows"] == structured_rows(certs.table(certs_json, full, 30).rows)
    dumps = [params for path, params in src.asked if path == "/config_dump"]
    assert dumps and all("mask" in params or "name_regex" in params for params in dumps)  # never the whole dump
