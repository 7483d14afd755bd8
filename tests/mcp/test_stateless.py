"""The 2026-07-28 envelope checks, in the SDK's order, with the HTTP status each error maps to."""

from __future__ import annotations

from typing import Any

import pytest

from higress_ops.mcp import jsonrpc, stateless
from higress_ops.mcp.versions import STATELESS
from higress_ops.servers.base import CallContext
from tests.mcp.test_core import make_core

pytestmark = pytest.mark.anyio

META = {stateless.VERSION_META: STATELESS, stateless.CAPABILITIES_META: {}}


def message(method: str, params: dict[str, Any] | None = None, meta: dict[str, Any] | None = META) -> dict[str, Any]:
    body: dict[str, Any] = dict(params or {})
    if meta is not None:
        body["_meta"] = meta
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": body}


def headers(method: str, name: str | None = None, version: str = STATELESS) -> dict[str, str]:
    out = {"mcp-protocol-version": version, "mcp-method": method}
    if name is not None:
        out["mcp-name"] = name
    return out


async def test_tool_call_through_the_envelope() -> None:
    status, body = await stateless.handle(make_core(), message("tools/call", {"name": "echo", "arguments":
                                                                              {"text": "a"}}),
                                          headers("tools/call", "echo"), CallContext())
    assert status == 200 and body is not None
    assert body["result"]["content"][0]["text"] == "hi a" and body["result"]["resultType"] == "complete"


async def test_list_results_carry_cache_hints() -> None:
    status, body = await stateless.handle(make_core(), message("tools/list"), headers("tools/list"), CallContext())
    assert status == 200 and body is not None
    assert body["result"]["ttlMs"] >= 0 and body["result"]["cacheScope"] in ("public", "private")


@pytest.mark.parametrize(("msg", "hdrs", "status", "code"), [
    (message("tools/list", meta=None), headers("tools/list"), 400, jsonrpc.INVALID_PARAMS),
    (message("tools/list", meta={stateless.VERSION_META: STATELESS}), headers("tools/list"), 400,
     jsonrpc.INVALID_PARAMS),
    (message("tools/list"), headers("tools/call"), 400, jsonrpc.HEADER_MISMATCH),
    (message("tools/list"), {"mcp-method": "tools/list"}, 400, jsonrpc.HEADER_MISMATCH),
    (message("tools/call", {"name": "echo", "arguments": {"text": "a"}}), headers("tools/call", "fail"), 400,
     jsonrpc.HEADER_MISMATCH),
    (message("tools/list", meta={stateless.VERSION_META: "2099-01-01", stateless.CAPABILITIES_META: {}}),
     headers("tools/list", version="2099-01-01"), 400, jsonrpc.UNSUPPORTED_PROTOCOL_VERSION),
    (message("prompts/list"), headers("prompts/list"), 404, jsonrpc.METHOD_NOT_FOUND),
    (message("initialize"), headers("initialize"), 404, jsonrpc.METHOD_NOT_FOUND),
    ([message("ping")], headers("ping"), 400, jsonrpc.INVALID_REQUEST),
    ({"jsonrpc": "1.0", "id": 1, "method": "ping"}, headers("ping"), 400, jsonrpc.INVALID_REQUEST),
])
async def test_envelope_errors(msg: Any, hdrs: dict[str, str], status: int, code: int) -> None:
    got_status, body = await stateless.handle(make_core(), msg, hdrs, CallContext())
    assert (got_status, body and body["error"]["code"]) == (status, code)


async def test_unsupported_version_names_what_we_speak() -> None:
    msg = message("ping", meta={stateless.VERSION_META: "2099-01-01", stateless.CAPABILITIES_META: {}})
    _, body = await stateless.handle(make_core(), msg, headers("ping", version="2099-01-01"), CallContext())
    assert body is not None
    assert STATELESS in body["error"]["data"]["supported"] and body["error"]["data"]["requested"] == "2099-01-01"


async def test_notifications_are_acknowledged() -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    assert await stateless.handle(make_core(), note, headers("x"), CallContext()) == (202, None)
    status, _ = await stateless.handle(make_core(), note, headers("x", version="2099-01-01"), CallContext())
    assert status == 400


def test_is_stateless() -> None:
    assert stateless.is_stateless({"mcp-protocol-version": STATELESS}, {})
    assert stateless.is_stateless({}, {"method": "server/discover"})
    assert not stateless.is_stateless({"mcp-protocol-version": "2025-06-18"}, {"method": "ping"})
