"""The lint world (tests/support/lint_world.py) running: its real Envoy and the istiod double holding what istiod
says about it, shared by this package's tests; `findings(detector)` runs analyze for one detector through the
server's own tool, as a client would."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from tests.support.istiod import IstiodDouble, istiod_double
from tests.support.lint_world import CLUSTERS, HOST, LintGateway, istiod_state, lint_gateway

TOKEN = CallContext(headers={"x-istiod-token": "good-token"})
Findings = Callable[..., Awaitable[list[dict[str, Any]]]]


@dataclass
class World:
    gateway: LintGateway
    istiod: IstiodDouble


def _tls_errors(admin_url: str) -> bool:
    stats = requests.get(f"{admin_url}/stats?filter=ssl.connection_error", timeout=5).text
    return all(f"cluster.{CLUSTERS[name]}.ssl.connection_error: 0" not in stats and CLUSTERS[name] in stats
               for name in ("orders", "catalog"))


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with lint_gateway(tmp_path_factory.mktemp("lint")) as gw:
        for path in ("/orders", "/catalog"):  # TLS towards plain-HTTP backends: the handshake fails
            status = requests.get(f"http://127.0.0.1:{gw.http_port}{path}", headers={"host": HOST}, timeout=10)
            assert status.status_code == 503, (path, status.text)
        deadline = time.monotonic() + 10
        while not _tls_errors(gw.admin_url) and time.monotonic() < deadline:
            time.sleep(0.1)
        with istiod_double(state=istiod_state(gw.ports)) as istiod:
            yield World(gw, istiod)


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
