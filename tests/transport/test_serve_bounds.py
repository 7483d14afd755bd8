"""End-to-end: per-client bounds of a real `serve --auth none`. One address's sessions do not use up another's
quota (the trusted-proxy rules decide who the client is), and a session's parallel tool calls beyond
--max-inflight wait their turn instead of failing, on every transport, with the official SDK client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.hardening.report import record
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(echo_config(("e", "/e")), tmp_path_factory.mktemp("bounds"), "--max-sessions-per-identity", "5",
                 "--max-inflight", "2", "--trusted-proxy", "127.0.0.9/32", "--log-level", "warning") as running:
        yield running


def from_address(source: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=source), timeout=30)


async def test_anonymous_session_quotas_are_per_client_address(server: ServeProcess) -> None:
    async with from_address("127.0.0.2") as greedy, from_address("127.0.0.3") as other, \
            from_address("127.0.0.9") as proxy:
        opened = [await greedy.post(server.url("/e"), json=INIT, headers=BOTH) for _ in range(5)]
        assert all(r.status_code == 200 for r in opened)
        over = await greedy.post(server.url("/e"), json=INIT, headers=BOTH)
        assert over.status_code == 429 and over.headers["retry-after"] == "30"
        assert "client address 127.0.0.2 already has the maximum of 5" in over.text
        assert (await other.post(server.url("/e"), json=INIT, headers=BOTH)).status_code == 200  # locked out before
        async with other.stream("GET", server.url("/e/sse"), headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200  # a legacy stream counts against the same address quota
        # Behind a trusted proxy the client is the right-most X-Forwarded-For hop the proxy did not add.
        for _ in range(5):
            behind = await proxy.post(server.url("/e"), json=INIT, headers={**BOTH, "X-Forwarded-For": "10.1.1.1"})
            assert behind.status_code == 200
        assert (await proxy.post(server.url("/e"), json=INIT, headers={
            **BOTH, "X-Forwarded-For": "10.1.1.1"})).status_code == 429
        assert (await proxy.post(server.url("/e"), json=INIT, headers={
            **BOTH, "X-Forwarded-For": "10.1.1.1, 10.2.2.2"})).status_code == 200  # a made-up left hop changes nothing
    record("Session quotas", "--auth none, --max-sessions-per-identity 5, one address opening sessions",
           "its 6th: 429 naming the address; another address (and another client behind a trusted proxy) still "
           "opened sessions (before: every anonymous client shared one quota)")


async def test_parallel_calls_wait_their_turn_on_every_transport(server: ServeProcess) -> None:
    clients: list[tuple[str, Any]] = [
        ("legacy SSE", Client(sse_client(server.url("/e/sse")), mode="legacy")),
        ("streamable", Client(streamable_http_client(server.url("/e")), mode="legacy")),
        ("2026-07-28", Client(streamable_http_client(server.url("/e")), mode="2026-07-28"))]
    for name, client in clients:
        async with client:
            results = await asyncio.gather(*(client.call_tool("sleep", {"seconds": 0.3}) for _ in range(6)))
            assert all(not r.is_error for r in results), name  # 6 calls, --max-inflight 2: 4 waited, none failed
    record("Session quotas", "6 parallel tool calls with --max-inflight 2 (SDK client, each transport)",
           "all answered: 2 ran at once, 4 waited their turn (before: 4 errors)")


async def test_calls_past_the_queue_are_refused_with_retry_after(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path, "--max-inflight", "1", "--max-queued-calls", "2") as server:
        async with httpx.AsyncClient(timeout=30) as http:
            meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {}}
            body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "sleep", "arguments": {"seconds": 0.5}, "_meta": meta}}
            headers = {**BOTH, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "sleep"}
            replies = await asyncio.gather(*(http.post(server.url("/e"), json=body, headers=headers)
                                             for _ in range(5)))
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 200, 200, 429, 429], statuses  # one ran, two waited, two were past the queue
    refused = [r for r in replies if r.status_code == 429]
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["code"] == -32029 for r in refused)
