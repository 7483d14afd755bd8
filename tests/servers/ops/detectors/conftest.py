"""How to ask the views about the fault gateway (tests/support/fault_envoy.py; the `fgw` fixture, one per test
module, is in tests/servers/ops/conftest.py)."""

from __future__ import annotations

from typing import Any

from higress_ops.servers.base import CallContext
from tests.support.fault_envoy import FaultGateway

TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


async def find_route(server: Any, gw: FaultGateway, path: str, host: str = "shop.example.com",
                     listener: str = "http", ctx: CallContext = TOKEN, **args: Any) -> tuple[str, str, dict[str, Any]]:
    """(status, reason) of find-route's verdict line for the request, and the text with the structured answer."""
    result = await server.call_tool("find-route", {"host": host, "path": path, "port": gw.ports[listener], **args},
                                    ctx)
    text = result.content[0]["text"]
    _, status, reason = text.rstrip("\n").splitlines()[-1].split(" ", 2)
    return status, reason, {"text": text, **(result.structured or {})}


def findings(answer: dict[str, Any], detector: str) -> list[dict[str, Any]]:
    return [f for m in answer["matches"] for f in m.get("findings", []) if f["detector"] == detector]


async def health_section(server: Any, detector: str, ctx: CallContext = TOKEN) -> dict[str, Any]:
    result = await server.call_tool("get-gateway-health", {}, ctx)
    assert not result.is_error, result.content
    [sec] = [s for s in result.structured["sections"] if s.get("detector") == detector]
    return {**sec, "text": result.content[0]["text"]}
