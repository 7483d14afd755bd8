"""The MCP core against the real `echo` server type, without any transport."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from echo_plugin import EchoServer

from higress_ops.config.model import ServerEntry
from higress_ops.mcp import jsonrpc
from higress_ops.mcp.core import McpCore
from higress_ops.mcp.versions import LATEST_SESSION, STATELESS
from higress_ops.servers.base import CallContext
from higress_ops.sessions.base import SessionRecord

pytestmark = pytest.mark.anyio


def make_core(observed: list[tuple[str, str]] | None = None) -> McpCore:
    entry = ServerEntry(name="echo-1", path="/echo", type="echo",
                        config={"greeting": "hi", "description": "Echo for tests"})
    on_call = (lambda tool, seconds, outcome: observed.append((tool, outcome))) if observed is not None else None
    return McpCore(EchoServer(entry), on_tool_call=on_call)


def record(transport: str = "streamable", sid: str = "s1") -> SessionRecord:
    return SessionRecord(id=sid, server="echo-1", transport=transport)  # type: ignore[arg-type]


def request(method: str, params: dict[str, Any] | None = None, id: int | str = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params is not None else {})}


async def test_initialize_negotiates_and_fills_the_record() -> None:
    core, rec = make_core(), record()
    reply = await core.handle(request("initialize", {"protocolVersion": "2025-03-26", "capabilities": {},
                                                     "clientInfo": {"name": "c", "version": "1", "x": "y"}}),
                              rec, CallContext())
    assert reply is not None
    result = reply["result"]
    assert result["protocolVersion"] == "2025-03-26"
    assert result["serverInfo"] == {"name": "echo-1", "version": "0.1.0"}
    assert result["instructions"] == "Echo for tests"
    assert "tools" in result["capabilities"]
    assert rec.protocol_version == "2025-03-26" and rec.client_info == {"name": "c", "version": "1"}
    assert await core.handle({"jsonrpc": "2.0", "method": "notifications/initialized"}, rec, CallContext()) is None
    assert rec.initialized


async def test_unknown_version_gets_the_latest() -> None:
    rec = record()
    reply = await make_core().handle(request("initialize", {"protocolVersion": "1999-01-01", "capabilities": {}}),
                                     rec, CallContext())
    assert reply is not None and reply["result"]["protocolVersion"] == LATEST_SESSION


async def test_initialize_without_version_is_invalid_params() -> None:
    reply = await make_core().handle(request("initialize", {}), record(), CallContext())
    assert reply is not None and reply["error"]["code"] == jsonrpc.INVALID_PARAMS


async def test_tools_list_is_stable_and_complete() -> None:
    core = make_core()
    first = await core.handle(request("tools/list"), record(), CallContext())
    second = await core.handle(request("tools/list", id=2), record(), CallContext())
    assert first is not None and second is not None
    names = [tool["name"] for tool in first["result"]["tools"]]
    assert names == ["echo", "whoami", "sleep", "fail"]
    assert first["result"] == second["result"]
    assert "resultType" not in first["result"]  # only the 2026 envelope carries it


async def test_tool_call_and_arguments_validation() -> None:
    observed: list[tuple[str, str]] = []
    core = make_core(observed)
    ok = await core.handle(request("tools/call", {"name": "echo", "arguments": {"text": "x"}}), record(),
                           CallContext())
    assert ok is not None and ok["result"]["content"][0]["text"] == "hi x" and ok["result"]["isError"] is False
    assert ok["result"]["structuredContent"] == {"text": "x"}
    bad = await core.handle(request("tools/call", {"name": "echo", "arguments": {"text": 3}}), record(),
                            CallContext())
    assert bad is not None and bad["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert "echo" in bad["error"]["message"] and "/text" in bad["error"]["message"]
    extra = await core.handle(request("tools/call", {"name": "echo", "arguments": {"text": "x", "y": 1}}),
                              record(), CallContext())
    assert extra is not None and "y" in extra["error"]["message"]
    assert observed == [("echo", "ok"), ("echo", "invalid"), ("echo", "invalid")]


async def test_unknown_tool_and_failing_tool() -> None:
    core = make_core()
    unknown = await core.handle(request("tools/call", {"name": "nope"}), record(), CallContext())
    assert unknown is not None and unknown["error"]["code"] == jsonrpc.INVALID_PARAMS
    assert "nope" in unknown["error"]["message"]
    failed = await core.handle(request("tools/call", {"name": "fail"}), record(), CallContext())
    assert failed is not None and failed["result"]["isError"] is True


async def test_unknown_method_and_ping() -> None:
    core = make_core()
    missing = await core.handle(request("resources/list"), record(), CallContext())
    assert missing is not None and missing["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    pong = await core.handle(request("ping", id="p"), record(), CallContext())
    assert pong == {"jsonrpc": "2.0", "id": "p", "result": {}}


async def test_headers_reach_the_tool() -> None:
    reply = await make_core().handle(request("tools/call", {"name": "whoami"}), record(),
                                     CallContext(headers={"x-istiod-token": "tok"}))
    assert reply is not None and reply["result"]["content"][0]["text"] == "tok"


async def test_set_level_sends_log_notifications_at_or_above_it() -> None:
    core, rec = make_core(), record()
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    bad = await core.handle(request("logging/setLevel", {"level": "loud"}), rec, CallContext())
    assert bad is not None and bad["error"]["code"] == jsonrpc.INVALID_PARAMS
    await core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 0.01}}), rec,
                      CallContext(), send)
    assert sent == []  # no level set: nothing sent
    await core.handle(request("logging/setLevel", {"level": "info"}), rec, CallContext())
    assert rec.log_level == "info"
    await core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 0.01}}), rec,
                      CallContext(), send)
    assert [m["method"] for m in sent] == ["notifications/message"]
    assert sent[0]["params"]["level"] == "info" and sent[0]["params"]["logger"] == "echo-1"
    await core.handle(request("logging/setLevel", {"level": "error"}), rec, CallContext())
    await core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 0.01}}), rec,
                      CallContext(), send)
    assert len(sent) == 1


async def test_cancellation_notification_cancels_the_call() -> None:
    observed: list[tuple[str, str]] = []
    core, rec = make_core(observed), record()
    call = asyncio.create_task(core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 30}},
                                                   id=7), rec, CallContext()))
    await asyncio.sleep(0.05)
    await core.handle({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}, rec,
                      CallContext())
    reply = await asyncio.wait_for(call, 2)
    assert reply is not None and reply["error"]["code"] == jsonrpc.REQUEST_CANCELLED
    assert observed == [("sleep", "cancelled")]


async def test_cancellation_is_per_session() -> None:
    core = make_core()
    call = asyncio.create_task(core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 0.3}},
                                                   id=7), record(sid="a"), CallContext()))
    await asyncio.sleep(0.05)
    await core.handle({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}},
                      record(sid="b"), CallContext())
    reply = await asyncio.wait_for(call, 2)
    assert reply is not None and reply["result"]["isError"] is False


async def test_aclose_cancels_in_flight_calls() -> None:
    core = make_core()
    call = asyncio.create_task(core.handle(request("tools/call", {"name": "sleep", "arguments": {"seconds": 30}}),
                                           record(), CallContext()))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(core.aclose(), 2)
    reply = await asyncio.wait_for(call, 2)
    assert reply is not None and reply["error"]["code"] == jsonrpc.REQUEST_CANCELLED


async def test_discover_is_refused_on_legacy_sse_and_answered_statelessly() -> None:
    core = make_core()
    legacy = await core.handle(request("server/discover"), record("sse"), CallContext())
    assert legacy is not None and legacy["error"]["code"] == jsonrpc.METHOD_NOT_FOUND
    rec = SessionRecord(id="", server="echo-1", transport="streamable", protocol_version=STATELESS)
    modern = await core.handle(request("server/discover"), rec, CallContext())
    assert modern is not None
    result = modern["result"]
    assert STATELESS in result["supportedVersions"] and result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "echo-1"
    init = await core.handle(request("initialize", {"protocolVersion": STATELESS, "capabilities": {}}), rec,
                             CallContext())
    assert init is not None and init["error"]["code"] == jsonrpc.METHOD_NOT_FOUND


async def test_responses_from_the_client_are_dropped() -> None:
    assert await make_core().handle({"jsonrpc": "2.0", "id": 3, "result": {}}, record(), CallContext()) is None
