"""The in-process tier: the real ASGI app and Host, driven through httpx's ASGITransport, no sockets.

Fast enough for the many transport x auth x error combinations; the real-process tests (tests/support/serve.py)
stay the end-to-end tier. The MCP port is 8080 and the admin port 8081, told apart by the URL's port as a
real socket's local port would be. Endless SSE streams cannot be read this way: those stay end-to-end.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx

from higress_ops.auth import Authenticator
from higress_ops.config.loader import load_text
from higress_ops.host import Host, HostSettings
from higress_ops.registry import default_registry
from higress_ops.transport.app import App

MCP = "http://127.0.0.1:8080"
ADMIN = "http://127.0.0.1:8081"
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def rpc(method: str, id: int | None = 1, **params: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
    if id is not None:
        message["id"] = id
    return message


def stateless(method: str, id: int = 1, **params: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request and its headers."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    headers = {**BOTH, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": method}
    if "name" in params:
        headers["Mcp-Name"] = params["name"]
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": {**params, "_meta": meta}}, headers


@dataclass
class InProcess:
    host: Host
    http: httpx.AsyncClient

    async def initialize(self, headers: dict[str, str] | None = None, path: str = "/e") -> str:
        reply = await self.http.post(path, json=INIT, headers={**BOTH, **(headers or {})})
        assert reply.status_code == 200, reply.text
        return reply.headers["mcp-session-id"]


def echo_block(**block: Any) -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "sse_path_suffix": "/sse",
                          "servers": [{"name": "e", "path": "/e", "type": "echo", "config": {"greeting": "hi"}}],
                          **block}}


@asynccontextmanager
async def in_process(config: dict[str, Any] | None = None, *, auth: Authenticator | None = None,
                     **settings: Any) -> AsyncIterator[InProcess]:
    host = Host(load_text(json.dumps(config or echo_block())), registry=default_registry(),
                settings=HostSettings(admin_port=8081, **settings), auth=auth)
    await host.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=App(host)), base_url=MCP, timeout=10) as http:
            yield InProcess(host, http)
    finally:
        await host.aclose()
