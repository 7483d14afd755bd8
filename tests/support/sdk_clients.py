"""The official SDK client on each MCP transport, against a `higress-ops serve` process, with the istiod
token header the ops tools forward."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.serve import ServeProcess

HEADERS = {"X-Istiod-Token": "good-token"}


def legacy_sse(server: ServeProcess, path: str = "/higress-ops") -> AbstractAsyncContextManager[Client]:
    return Client(sse_client(server.url(f"{path}/sse"), headers=HEADERS), mode="legacy")


class _WithHttp:
    def __init__(self, server: ServeProcess, mode: str, path: str = "/higress-ops") -> None:
        self.server, self.mode, self.path = server, mode, path

    async def __aenter__(self) -> Client:
        self.http = await create_mcp_http_client(headers=HEADERS).__aenter__()
        self.client = Client(streamable_http_client(self.server.url(self.path), http_client=self.http),
                             mode=self.mode)  # type: ignore[arg-type]
        return await self.client.__aenter__()

    async def __aexit__(self, *exc: Any) -> None:
        await self.client.__aexit__(*exc)
        await self.http.__aexit__(*exc)


TRANSPORTS: dict[str, Callable[[ServeProcess], AbstractAsyncContextManager[Client]]] = {
    "legacy-sse": legacy_sse,
    "streamable": lambda server: _WithHttp(server, "legacy"),
    "2026-07-28": lambda server: _WithHttp(server, "2026-07-28"),
}
