"""Every README tool with its parameters, through the official SDK client, on every transport, against a real
`higress-ops serve` in front of a real Envoy and the istiod double."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client

from tests.support.sdk_clients import TRANSPORTS
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("get-istiod-configz", {}, "VirtualService"),
    ("get-istiod-endpointz", {}, "httpbin.default.svc.cluster.local"),
    ("get-istiod-clusters", {}, "Kubernetes"),
    ("get-istiod-registryz", {}, "httpbin.default.svc.cluster.local"),
    ("get-istiod-syncz", {"namespace": "higress-system"}, "higress-gateway"),
    ("get-istiod-metrics", {}, "pilot_xds_pushes"),
    ("get-istiod-version", {}, "1.27.0"),
    ("get-istiod-debug-vars", {}, "/debug/push_status"),
    ("get-envoy-config-dump", {"resource": "listeners"}, "ListenersConfigDump"),
    ("get-envoy-config-dump", {"resource": "dynamic_active_clusters", "name_regex": ".*httpbin.*",
                               "mask": "cluster.name", "include_eds": False}, "httpbin"),
    ("get-envoy-listeners", {"format": "json"}, "listener_statuses"),
    ("get-envoy-clusters", {"format": "text"}, "::health_flags::"),
    ("get-envoy-stats", {"filter": "cluster.*", "format": "json", "usedonly": True, "type": "Counters"}, "stats"),
    ("get-envoy-stats", {"format": "prometheus", "filter": "server"}, "# TYPE"),
    ("get-envoy-runtime", {}, "higress.test.flag"),
    ("get-envoy-memory", {}, "allocated"),
    ("get-envoy-server-info", {}, "LIVE"),
    ("get-envoy-ready", {}, "LIVE"),
    ("get-envoy-hot-restart-version", {}, ""),
    ("get-envoy-certs", {}, "httpbin.example.com"),
    ("get-envoy-proxy-config", {"type": "clusters"}, "SERVICE FQDN"),
    ("check-certs", {"days": 30}, "expiring.example.com"),
    ("get-envoy-proxy-config", {"type": "ecds"}, "ECDS NAME"),
    ("find-route", {"host": "httpbin.example.com", "path": "/get"}, "verdict: 200 routed"),
    ("get-gateway-health", {}, "Gateway health: Envoy LIVE"),
    ("describe-cluster", {"cluster": "outbound|8000||httpbin.default.svc.cluster.local"},
     "Service default/httpbin (httpbin.default.svc.cluster.local, from istiod)"),
    ("what-changed", {}, "no namespace (kubernetes.namespaces is empty)"),
    ("analyze", {"severity": "error"}, "analyze: "),
]


async def _all_results(client: Client) -> AsyncIterator[tuple[str, Any, str]]:
    for name, args, expect in CALLS:
        yield name, await client.call_tool(name, args), expect


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_every_tool_on_every_transport(server: ServeProcess, transport: str) -> None:
    async with TRANSPORTS[transport](server) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert len(tools) == 29  # 18 README tools, 9 views, list- and compare-gateway-pods
        assert tools["get-envoy-certs"].annotations is not None
        assert tools["get-envoy-certs"].annotations.read_only_hint is True
        async for name, result, expect in _all_results(client):
            text = "".join(part.text for part in result.content)  # type: ignore[union-attr]
            assert result.is_error is False, f"{name}: {text[:300]}"
            assert expect in text, f"{name}: {expect!r} not in {text[:300]}"
        certs = await client.call_tool("get-envoy-certs", {})
        assert certs.structured_content is not None and certs.structured_content["certificates"]
        assert json.loads(certs.content[0].text) == certs.structured_content  # type: ignore[union-attr]


async def test_without_a_token_istiod_tools_explain_themselves(server: ServeProcess) -> None:
    async with Client(server.url("/higress-ops"), mode="legacy") as client:
        result = await client.call_tool("get-istiod-syncz", {})
        assert result.is_error is True
        assert "kubectl create token" in result.content[0].text  # type: ignore[union-attr]
        bad = await client.call_tool("get-envoy-stats", {"filter": "("})
        assert bad.is_error is True and "regular expression" in bad.content[0].text  # type: ignore[union-attr]
