"""End-to-end: made-up `pod` names cannot make a real `serve` list pods on every call. Two real Envoys as gateway
pods behind the API-server double, whose pod list takes a set time; 40 calls naming unknown pods at once, and
another client's call to a real pod beside them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from higress_ops.servers.ops.targets import LIST_TTL
from tests.hardening.report import record
from tests.support.fleet import gateway_fleet
from tests.support.serve import serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
           "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "get-envoy-ready"}


def ready_call(pod: str) -> dict[str, Any]:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get-envoy-ready", "arguments": {"pod": pod}, "_meta": meta}}


def from_address(source: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source), timeout=60,
                             limits=httpx.Limits(max_connections=64))


async def test_unknown_pod_names_share_one_listing(tmp_path: Path) -> None:
    with gateway_fleet(tmp_path / "fleet") as fleet:
        config = {"mcpServer": {"enable": True, "servers": [{"name": "ops", "path": "/ops", "type": "higress-ops",
                                                             "config": fleet.config("portforward")}]}}
        with serving(config, tmp_path / "serve", "--log-level", "warning",
                     env={"KUBECONFIG": str(fleet.kubeconfig)}) as server:
            fleet.api.store.delay = 0.2  # each pod list: a loaded API server
            async with from_address("127.0.0.3") as victim, from_address("127.0.0.2") as attacker:
                async def call(pod: str, http: httpx.AsyncClient = victim) -> tuple[float, str]:
                    started = time.perf_counter()
                    reply = await http.post(server.url("/ops"), json=ready_call(pod), headers=HEADERS)
                    return time.perf_counter() - started, reply.json()["result"]["content"][0]["text"]

                await call("gw-a")  # warm: the port-forward to gw-a is open
                await asyncio.sleep(LIST_TTL + 0.1)  # the listing is stale: the next call lists once
                baseline, text = await call("gw-a")
                assert "LIVE" in text
                await asyncio.sleep(LIST_TTL + 0.1)
                lists = fleet.api.pod_lists
                flood = [asyncio.ensure_future(call(f"made-up-{i}", attacker)) for i in range(40)]
                while fleet.api.pod_lists == lists:  # the flood has started a listing
                    await asyncio.sleep(0.005)
                attacked, text = await call("gw-a")
                answers = await asyncio.gather(*flood)
                listed = fleet.api.pod_lists - lists
    assert "LIVE" in text and all("pod made-up-" in t and "list-gateway-pods" in t for _, t in answers)
    assert listed <= 2, listed  # one listing per second at most, whatever the names (before: one per call)
    assert attacked < 3 * baseline, (attacked, baseline)  # 0.1 s -> 5.6 s before
    record("Gateway pods", "40 concurrent calls naming unknown pods, pod list taking 200 ms",
           f"{listed} pod list(s) for all of them; another client's call took {attacked * 1000:.0f} ms "
           f"(alone, listing once: {baseline * 1000:.0f} ms; before: 40 lists in a row, 0.1 s -> 5.6 s)")
