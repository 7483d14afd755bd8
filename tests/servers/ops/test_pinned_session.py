"""A session's Envoy is fixed at initialize and kept in its Redis record: two `serve` replicas, two real Envoys
as pods behind the API-server double's port-forward, one session whose calls land on either replica."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.replicas.cluster import INITIALIZE, rpc
from tests.support.fleet import gateway_fleet
from tests.support.redis import RedisServer
from tests.support.serve import ServeProcess, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]
PATH = "/higress-ops"
STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def node_id_call(id: int) -> dict[str, Any]:
    return rpc("tools/call", {"name": "get-envoy-config-dump", "arguments": {"mask": "bootstrap.node.id"}}, id=id)


async def start_session(http: httpx.AsyncClient, base: str) -> dict[str, str]:
    init = await http.post(base + PATH, json=rpc("initialize", INITIALIZE, id=1), headers=STREAMABLE_HEADERS)
    assert init.status_code == 200, init.text
    session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18",
               **STREAMABLE_HEADERS}
    assert (await http.post(base + PATH, json=rpc("notifications/initialized"), headers=session)).status_code == 202
    return session


async def test_a_session_keeps_reading_its_pod_on_every_replica(tmp_path: Path, redis_server: RedisServer) -> None:
    with gateway_fleet(tmp_path / "fleet") as fleet:
        config = {"mcpServer": {
            "enable": True, "redis": {"address": redis_server.address},
            "servers": [{"name": "ops", "path": PATH, "type": "higress-ops",
                         "config": fleet.config("portforward")}]}}
        path = write_config(tmp_path / "higress.yaml", config)
        env = {"KUBECONFIG": str(fleet.kubeconfig)}
        replicas = [ServeProcess(path, tmp_path / name, ("--replica-id", name), env).start() for name in "ab"]
        try:
            a, b = (replica.base for replica in replicas)
            async with httpx.AsyncClient(timeout=20) as http:
                pinned = await start_session(http, a)  # the first ready pod: gw-a
                fleet.api.set_ready("gw-a", False)  # from now on a new session gets gw-b
                time.sleep(2.5)  # the replicas reuse a pod listing for 2 s
                fresh = await start_session(http, b)
                for i, base in enumerate((a, b, a, b)):
                    reply = await http.post(base + PATH, json=node_id_call(10 + i), headers=pinned)
                    assert reply.status_code == 200, reply.text
                    assert "gw-a.higress-system" in reply.text and "[answered by pod gw-a]" in reply.text
                    other = await http.post(base + PATH, json=node_id_call(20 + i), headers=fresh)
                    assert "gw-b.higress-system" in other.text and "[answered by pod gw-b]" in other.text
                named = await http.post(b + PATH, headers=pinned, json=rpc("tools/call", {
                    "name": "get-envoy-ready", "arguments": {"pod": "gw-b"}}, id=99))
                assert "LIVE" in named.text and "[answered by pod gw-b]" in named.text  # `pod` wins over the pin
        finally:
            for replica in replicas:
                replica.stop()
