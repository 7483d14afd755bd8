"""The official MCP SDK client, in each of its modes, against a real `higress-ops serve`."""

from __future__ import annotations

import time

import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def exercise(client: Client) -> None:
    tools = await client.list_tools()
    assert [tool.name for tool in tools.tools] == ["echo", "whoami", "sleep", "fail"]
    result = await client.call_tool("echo", {"text": "over the wire"})
    assert result.is_error is False and result.content[0].text == "hi over the wire"  # type: ignore[union-attr]
    failed = await client.call_tool("fail", {})
    assert failed.is_error is True


async def test_legacy_sse(server: ServeProcess) -> None:
    async with Client(sse_client(server.url("/a/sse")), mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        await exercise(client)


async def test_streamable_http(server: ServeProcess) -> None:
    async with Client(server.url("/a"), mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        await exercise(client)


async def test_stateless_2026(server: ServeProcess) -> None:
    async with Client(server.url("/a"), mode="2026-07-28") as client:
        assert client.protocol_version == "2026-07-28"
        await exercise(client)


async def test_auto_mode_settles_without_the_discover_stall(server: ServeProcess) -> None:
    started = time.monotonic()
    async with Client(server.url("/b")) as client:
        await exercise(client)
        assert client.protocol_version == "2026-07-28"
    assert time.monotonic() - started < 3  # the SDK waits 10 s on a server that never answers discover


async def test_auto_mode_over_legacy_sse_falls_back_at_once(server: ServeProcess) -> None:
    started = time.monotonic()
    async with Client(sse_client(server.url("/b/sse"))) as client:
        await exercise(client)
        assert client.protocol_version == "2025-11-25"
    assert time.monotonic() - started < 3


async def test_headers_reach_the_tool_on_every_transport(server: ServeProcess) -> None:
    headers = {"X-Istiod-Token": "token-123"}
    async with Client(sse_client(server.url("/a/sse"), headers=headers), mode="legacy") as client:
        result = await client.call_tool("whoami", {})
        assert result.content[0].text == "token-123"  # type: ignore[union-attr]
    async with create_mcp_http_client(headers=headers) as http, \
            Client(streamable_http_client(server.url("/a"), http_client=http), mode="legacy") as client:
        result = await client.call_tool("whoami", {})
        assert result.content[0].text == "token-123"  # type: ignore[union-attr]


async def test_invalid_arguments_are_a_protocol_error(server: ServeProcess) -> None:
    async with Client(server.url("/a"), mode="legacy") as client:
        with pytest.raises(Exception, match="Invalid arguments for tool echo"):
            await client.call_tool("echo", {"text": 5})
        with pytest.raises(Exception, match="Unknown tool"):
            await client.call_tool("nope", {})
