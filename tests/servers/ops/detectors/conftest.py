"""The fault gateway (tests/support/fault_envoy.py), one per test module, and how to ask the views about it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from higress_ops.servers.base import CallContext
from tests.support.fault_envoy import FaultGateway, fault_gateway

TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


@pytest.fixture(scope="module")
def fgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultGateway]:
    with fault_gateway(tmp_path_factory.mktemp("faults")) as gw:
        yield gw


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
