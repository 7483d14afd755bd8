"""P5: the routes view of a gateway with thousands of clusters and routes (a ~10 MB config dump) against a
bare requests.get + json.loads of that dump, while a concurrent ping must stay responsive."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.harness import McpSession, ops_serve, percentile, timed, timed_with_pings
from tests.support.gateway import big_gateway


def run(workdir: Path, scale: str) -> dict[str, Any]:
    clusters, rounds = {"smoke": (100, 1), "quick": (500, 3)}.get(scale, (6000, 5))
    with big_gateway(workdir / "envoy", clusters) as envoy, ops_serve(workdir / "ops", envoy.admin_url) as ops:
        dump_bytes = len(requests.get(f"{envoy.admin_url}/config_dump", timeout=60).content)
        session = McpSession(ops.base, "/higress-ops")
        pinger = McpSession(ops.base, "/higress-ops")
        http = requests.Session()
        view = {"type": "routes", "limit": 50}
        baseline: list[float] = []
        ours: list[float] = []
        pings: list[float] = []

        def with_pings(call: Callable[[], Any], into: list[float]) -> None:
            into.append(timed_with_pings(call, pinger, pings))

        session.call("get-envoy-proxy-config", view)  # warm
        for _ in range(rounds):
            baseline.append(timed(lambda: http.get(f"{envoy.admin_url}/config_dump", timeout=60).json()))
            with_pings(lambda: session.call("get-envoy-proxy-config", view), ours)
        view_pings, pings[:] = list(pings), []
        raw: list[float] = []
        for _ in range(max(1, rounds // 2)):  # the raw dump tool: parse and cut a whole dump, in the shaper process
            with_pings(lambda: session.call("get-envoy-config-dump"), raw)
        raw_pings, pings[:] = list(pings), []
        routed: list[float] = []  # find-route: the listeners and routes sections, and /clusters
        for _ in range(max(1, rounds // 2)):
            with_pings(lambda: session.call("find-route", {"host": "example.com", "path": "/svc-00042/x"}), routed)
        routed_pings, pings[:] = list(pings), view_pings
        # get-gateway-health against its main input alone: a bare GET + parse of /clusters?format=json.
        clusters_json: list[float] = []
        health: list[float] = []
        for _ in range(max(1, rounds // 2)):
            clusters_json.append(timed(lambda: http.get(f"{envoy.admin_url}/clusters?format=json", timeout=60).json()))
            health.append(timed(lambda: session.call("get-gateway-health")))
        health_bytes = len(json.loads(session.call("get-gateway-health"))["result"]["content"][0]["text"].encode())
    ratio = statistics.median(ours) / statistics.median(baseline)
    ping_p99 = percentile(pings, 0.99) * 1000
    return {"P5": {"clusters_and_routes": clusters, "dump_mb": dump_bytes / 2**20,
                   "baseline_median_ms": statistics.median(baseline) * 1000,
                   "higress_ops_median_ms": statistics.median(ours) * 1000, "ratio": ratio,
                   "concurrent_ping_p99_ms": ping_p99, "pings": len(pings),
                   "raw_dump_median_ms": statistics.median(raw) * 1000,
                   "raw_dump_concurrent_ping_p99_ms": percentile(raw_pings, 0.99) * 1000,
                   "find_route_median_ms": statistics.median(routed) * 1000,
                   "find_route_concurrent_ping_p99_ms": percentile(routed_pings, 0.99) * 1000,
                   "gateway_health_median_ms": statistics.median(health) * 1000,
                   "gateway_health_vs_clusters_json_get": statistics.median(health) / statistics.median(clusters_json),
                   "gateway_health_response_bytes": health_bytes,
                   "target": "ratio <= 1.5 and ping p99 <= 50 ms", "met": ratio <= 1.5 and ping_p99 <= 50}}
