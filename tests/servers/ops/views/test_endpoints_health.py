"""The endpoints view's HEALTH column says what the real Envoy does with each host, and `status` finds it."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def table(make_server, gw: VerdictGateway, **args) -> list[dict[str, str]]:  # structured rows: snake_case keys
    server = make_server(gw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("get-envoy-proxy-config", {"type": "endpoints", **args}, CallContext())
    assert not result.is_error, result.content
    return result.structured["rows"]


async def test_hosts_failing_active_health_checks_are_not_shown_healthy(vgw, make_server):
    rows = await table(make_server, vgw, cluster="nopanic")
    assert [(r["status"], r["health"]) for r in rows] == [("HEALTHY", "failed_active_hc")] * 2
    half = {r["endpoint"]: r["health"] for r in await table(make_server, vgw, cluster="half")}
    assert half == {f"127.0.0.1:{vgw.backends['half-good'].port}": "healthy",
                    f"127.0.0.1:{vgw.backends['half-sick'].port}": "failed_active_hc"}


async def test_status_filter_matches_the_eds_status_or_the_health(vgw, make_server):
    unhealthy = await table(make_server, vgw, status="UNHEALTHY", limit=100)
    assert {r["cluster"] for r in unhealthy} == {"panic", "nopanic", "half", "eds-unhealthy", "closed-hc",
                                                 "excluded"}
    assert {r["cluster"] for r in await table(make_server, vgw, status="failed_active_hc")} == \
        {"panic", "nopanic", "half", "closed-hc", "excluded"}
    excluded = await table(make_server, vgw, status="excluded")
    assert [(r["cluster"], r["health"]) for r in excluded] == [("excluded", "failed_active_hc,excluded")] * 2
    eds = await table(make_server, vgw, status="unhealthy", cluster="eds-unhealthy")
    assert [(r["status"], r["health"]) for r in eds] == [("UNHEALTHY", "eds_unhealthy")]


async def test_internal_and_pipe_addresses_print_as_istioctl_does(vgw, make_server):
    internal = await table(make_server, vgw, cluster="internal")
    pipe = await table(make_server, vgw, cluster="pipe")
    assert [r["endpoint"] for r in internal] == ["envoy://inner/ep-1"]
    assert [r["endpoint"] for r in pipe] == [f"unix://{vgw.envoy.workdir / 'backend.sock'}"]
