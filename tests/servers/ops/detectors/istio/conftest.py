"""`findings(detector)`: analyze for one detector over the lint world (tests/servers/ops/conftest.py), through the
server's own tool, as a client would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from tests.support.lint_world import World

TOKEN = CallContext(headers={"x-istiod-token": "good-token"})
Findings = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def findings(world: World, make_server: Callable[..., OpsServer]) -> Findings:
    server = make_server(world.gateway.admin_url, world.istiod.url)

    async def run(*detectors: str, **args: Any) -> list[dict[str, Any]]:
        result = await server.call_tool("analyze", {"detectors": list(detectors), "limit": 200, **args}, TOKEN)
        assert not result.is_error, result.content
        assert result.structured is not None
        assert result.structured["shown"] == result.structured["total"], "a page too small for the test"
        found: list[dict[str, Any]] = result.structured["findings"]
        return found

    return run
