"""`lint(detectors...)`: analyze over the shop scenario (a real Envoy, istiod and the API, consistent; its doubles
put back after each test by `shop_ops`), through the server's own tool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer

Lint = Callable[..., Awaitable[list[dict[str, Any]]]]


@pytest.fixture
def lint(shop_ops: OpsServer) -> Lint:
    async def run(*detectors: str) -> list[dict[str, Any]]:
        result = await shop_ops.call_tool("analyze", {"detectors": list(detectors), "limit": 200}, CallContext())
        assert not result.is_error, result.content
        assert result.structured is not None and result.structured["shown"] == result.structured["total"]
        assert result.structured["not_checked"] == {}, result.structured["not_checked"]
        found: list[dict[str, Any]] = result.structured["findings"]
        return found

    return run
