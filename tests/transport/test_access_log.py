"""In-process tier: the access log records each JSON-RPC outcome and who asked, never a credential."""

from __future__ import annotations

import logging

import pytest

from tests.support.asgi import BOTH, in_process, rpc, stateless

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [record.__dict__ for record in caplog.records if record.name == "higress_ops.access"]


async def test_outcome_error_code_tool_and_identity(caplog: pytest.LogCaptureFixture) -> None:
    async with in_process() as client:
        sid = await client.initialize()
        headers = {**BOTH, "Mcp-Session-Id": sid, "X-Istiod-Token": "never-logged"}
        with caplog.at_level(logging.INFO, logger="higress_ops.access"):
            await client.http.post("/e", json=rpc("tools/call", name="echo", arguments={"text": "x"}), headers=headers)
            await client.http.post("/e", json=rpc("tools/call", name="fail", arguments={}), headers=headers)
            await client.http.post("/e", json=rpc("tools/call", name="nope", arguments={}), headers=headers)
            body, base = stateless("tools/call", name="fail", arguments={})
            await client.http.post("/e", json=body, headers=base)
    logged = [(line["tool"], line.get("outcome"), line.get("error_code"), line["identity"], line["status"])
              for line in lines(caplog)]
    assert logged == [("echo", "ok", None, "anonymous", 200), ("fail", "tool_error", None, "anonymous", 200),
                      ("nope", "rpc_error", -32602, "anonymous", 200), ("fail", "tool_error", None, "anonymous", 200)]
    assert "never-logged" not in caplog.text
