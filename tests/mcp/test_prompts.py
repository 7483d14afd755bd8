"""prompts/list and prompts/get in the MCP core: the ops server's playbooks, their errors, and a tools-only
server that has none."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from higress_ops.config.model import ServerEntry
from higress_ops.mcp import stateless
from higress_ops.mcp.core import McpCore
from higress_ops.mcp.jsonrpc import HEADER_MISMATCH, INVALID_PARAMS, METHOD_NOT_FOUND
from higress_ops.mcp.versions import STATELESS
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from higress_ops.sessions.base import SessionRecord
from tests.mcp.test_core import make_core, record, request
from tests.mcp.test_stateless import headers, message

pytestmark = pytest.mark.anyio
PLAYBOOKS = ["diagnose-404", "diagnose-503", "check-cert-expiry", "check-config-sync", "gateway-health"]


@pytest.fixture
async def ops_core() -> AsyncIterator[McpCore]:
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops", config={
        "istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9"}))
    yield McpCore(server)
    await server.aclose()


async def call(core: McpCore, method: str, params: dict[str, Any] | None = None,
               rec: SessionRecord | None = None) -> dict[str, Any]:
    reply = await core.handle(request(method, params), rec or record(), CallContext())
    assert reply is not None
    return reply


async def test_list_names_every_playbook_with_its_arguments(ops_core: McpCore) -> None:
    assert ops_core.capabilities["prompts"] == {"listChanged": False}
    prompts = (await call(ops_core, "prompts/list"))["result"]["prompts"]
    assert [p["name"] for p in prompts] == PLAYBOOKS
    by_name = {p["name"]: p for p in prompts}
    assert {a["name"]: a["required"] for a in by_name["diagnose-404"]["arguments"]} == {
        "host": True, "path": False, "method": False, "port": False}
    assert by_name["gateway-health"]["arguments"] == []


async def test_get_fills_in_the_request_and_names_tools_that_exist(ops_core: McpCore) -> None:
    tools = set(ops_core.tool_names())
    for name in PLAYBOOKS:
        args = {"host": "api.example.com", "path": "/v1/orders"} if name.startswith("diagnose") else {}
        result = (await call(ops_core, "prompts/get", {"name": name, "arguments": args}))["result"]
        [message] = result["messages"]
        assert message["role"] == "user" and result["description"]
        text = message["content"]["text"]
        named = set(re.findall(r"`([a-z][a-z-]+)`", text))
        assert named and named <= tools, named - tools
    text = (await call(ops_core, "prompts/get", {"name": "diagnose-503", "arguments": {
        "host": "api.example.com", "path": "/pay", "method": "post", "port": "8080"}}))["result"]["messages"][0]
    assert "POST api.example.com/pay" in text["content"]["text"]
    assert "host='api.example.com' path='/pay' method='POST' port=8080" in text["content"]["text"]


@pytest.mark.parametrize(("params", "says"), [
    ({"name": "diagnose-404"}, "needs the argument 'host'"),
    ({"name": "diagnose-404", "arguments": {"host": "a", "colour": "red"}}, "unknown: colour"),
    ({"name": "diagnose-404", "arguments": {"host": 7}}, "object of strings"),
    ({"name": "nope"}, "Unknown prompt: 'nope'"),
    ({}, "needs params.name"),
])
async def test_bad_requests_are_invalid_params(ops_core: McpCore, params: dict[str, Any], says: str) -> None:
    error = (await call(ops_core, "prompts/get", params))["error"]
    assert error["code"] == INVALID_PARAMS and says in error["message"]


async def test_stateless_list_carries_caching_hints(ops_core: McpCore) -> None:
    rec = SessionRecord(id="", server="ops", transport="streamable", protocol_version=STATELESS, initialized=True)
    result = (await call(ops_core, "prompts/list", rec=rec))["result"]
    assert result["resultType"] == "complete" and result["ttlMs"] > 0 and result["cacheScope"] == "public"


async def test_a_server_without_prompts_has_no_prompt_methods() -> None:
    core = make_core()
    assert "prompts" not in core.capabilities
    assert (await call(core, "prompts/list"))["error"]["code"] == METHOD_NOT_FOUND


async def test_prompts_get_through_the_stateless_envelope(ops_core: McpCore) -> None:
    args = {"name": "diagnose-404", "arguments": {"host": "a.example.com"}}
    status, body = await stateless.handle(ops_core, message("prompts/get", args),
                                          headers("prompts/get", "diagnose-404"), CallContext())
    assert status == 200 and body is not None and body["result"]["resultType"] == "complete"
    assert "a.example.com" in body["result"]["messages"][0]["content"]["text"]
    status, body = await stateless.handle(ops_core, message("prompts/get", args),
                                          headers("prompts/get", "diagnose-503"), CallContext())
    assert status == 400 and body is not None and body["error"]["code"] == HEADER_MISMATCH


@settings(deadline=None, derandomize=True, max_examples=300, database=None,
          suppress_health_check=list(HealthCheck))
@given(params=st.fixed_dictionaries({}, optional={
    "name": st.sampled_from([*PLAYBOOKS, "", "nope"]) | st.text(max_size=8) | st.integers(),
    "arguments": st.dictionaries(st.sampled_from(["host", "path", "method", "port", "days", "namespace", "x"]),
                                 st.text(max_size=600) | st.integers() | st.none(), max_size=4)
    | st.none() | st.integers()}))
def test_any_prompts_get_is_a_result_or_invalid_params(params: dict[str, Any]) -> None:
    async def run() -> dict[str, Any]:
        server = OpsServer(ServerEntry(name="ops", path="/o", type="higress-ops", config={
            "istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9"}))
        try:
            return await call(McpCore(server), "prompts/get", params)
        finally:
            await server.aclose()

    reply = asyncio.run(run())
    if "error" in reply:
        assert reply["error"]["code"] == INVALID_PARAMS and reply["error"]["message"]
    else:
        assert reply["result"]["messages"][0]["content"]["text"]
