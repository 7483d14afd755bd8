"""Shared fixtures: real redis-server and Envoy processes, per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis import RedisServer, start_redis

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Figures measured by this run go to build/reliability/ (once, not per xdist worker); docs/ stays as it is."""
    if hasattr(session.config, "workerinput"):
        return
    from tests.hardening.report import render

    render()
