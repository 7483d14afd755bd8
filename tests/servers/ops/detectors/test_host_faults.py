"""Host-side classes on the verdict gateway (tests/support/verdict_envoy.py): active health checks failing,
connect failures, route timeouts and outlier ejection, each after the real request went through Envoy."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]


async def ask(make_server, vgw: VerdictGateway, path: str) -> tuple[str, dict]:
    server = make_server(vgw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("find-route", {"host": "app.example.com", "path": path,
                                                   "port": vgw.ports["plain"]}, CallContext())
    text = result.content[0]["text"]
    return text.rstrip("\n").splitlines()[-1], {"text": text, **(result.structured or {})}


def found(answer: dict, detector: str) -> list[dict]:
    return [f for m in answer["matches"] for f in m.get("findings", []) if f["detector"] == detector]


async def test_failing_health_checks_show_the_check_its_counters_and_the_panic_threshold(vgw, make_server):
    assert vgw.send("plain", "app.example.com", "/nopanic") == 503
    last, answer = await ask(make_server, vgw, "/nopanic")
    assert last == "verdict: 503 no_healthy_upstream"
    [f] = found(answer, "health-check")
    assert f["message"] == "2/2 host(s) fail the active health check"
    assert "check: HTTP GET /healthz expecting 200 (default); interval 1s, timeout 1s, unhealthy after 1 " \
           "failure(s), healthy after 1 success(es)" in f["evidence"]
    assert any(e.startswith("counters: ") and "failure " in e for e in f["evidence"])
    assert "no host passes and the panic threshold is 0%: Envoy answers 503 (UH)" in f["evidence"]
    assert vgw.send("plain", "app.example.com", "/panic") == 200
    last, answer = await ask(make_server, vgw, "/panic")
    [f] = found(answer, "health-check")
    assert last == "verdict: 200 panic_mode" and f["severity"] == "warning"
    assert any("below the panic threshold 50% (default): Envoy sends to every host" in e for e in f["evidence"])


async def test_connect_failures_name_the_endpoint(vgw, make_server):
    assert vgw.send("plain", "app.example.com", "/closed") == 503
    last, answer = await ask(make_server, vgw, "/closed")
    assert last == "verdict: 503 upstream_connect_failure"
    [f] = found(answer, "connect-failure")
    assert any(e.startswith(f"127.0.0.1:{vgw.closed_port}: connect failures ") for e in f["evidence"])


async def test_a_route_timeout_is_named_with_its_value_not_the_endpoints(vgw, make_server):
    assert vgw.send("plain", "app.example.com", "/slow") == 504
    last, answer = await ask(make_server, vgw, "/slow")
    assert last == "verdict: 504 route_timeout"
    m = answer["matches"][0]
    assert "route timeout 0.300s on every host tried" in m["verdict"] and "127.0.0.1" not in m["verdict"]
    server = make_server(vgw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("get-gateway-health", {}, CallContext())
    [sec] = [s for s in result.structured["sections"] if s.get("detector") == "route-timeout"]
    assert any(line.startswith("[error] cluster slow: ") for line in sec["shown"])


async def test_ejected_hosts_with_the_detection_settings_and_panic(vgw, make_server):
    for _ in range(2):
        assert vgw.send("plain", "app.example.com", "/outlier") == 503
    last, answer = await ask(make_server, vgw, "/outlier")
    assert last == "verdict: 503 upstream_5xx"  # the host's own 503: the ejection is not what answers
    [f] = found(answer, "outlier-ejection")
    assert f["message"].startswith("outlier detection ejected 1/1 host(s)")
    assert "settings: consecutive_5xx 1, interval 10s (default), base_ejection_time 300s, max_ejection_time 300s " \
           "(default), max_ejection_percent 100" in f["evidence"]
    assert any(e.startswith("panic mode (0/1 healthy, threshold 50%): Envoy still sends to the ejected hosts")
               for e in f["evidence"])
