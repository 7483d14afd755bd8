"""The per-step span table bench P1 reads: steps charged in code-path order, off by default, and served only on the
admin port of a `serve --spans`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client

from higress_ops import spans
from tests.support.envoy import Envoy
from tests.support.serve import ServeProcess, serving

pytestmark = [pytest.mark.timeout(90)]


@pytest.fixture
def on() -> Iterator[None]:
    spans.table()  # start from nothing
    spans.enable()
    try:
        yield
    finally:
        spans.enable(False)
        spans.table()


def test_off_records_nothing() -> None:
    spans.begin()
    spans.mark("gate")
    spans.end()
    assert spans.table() == {"enabled": False, "steps": []}


def test_each_step_is_charged_the_time_since_the_mark_before(on: None) -> None:
    for _ in range(3):
        spans.begin()
        spans.mark("fast")
        asyncio.run(asyncio.sleep(0.02))
        spans.mark("slow")
        spans.mark("fast")  # a step met twice in a request is summed
        spans.end()
    rows = {row["step"]: row for row in spans.table()["steps"]}
    assert [row for row in rows] == ["fast", "slow", "total"]
    assert all(row["n"] == 3 for row in rows.values())
    assert rows["slow"]["median_us"] >= 20_000 > rows["fast"]["median_us"]
    assert rows["total"]["median_us"] >= rows["slow"]["median_us"] + rows["fast"]["median_us"] - 1
    assert spans.table()["steps"] == []  # a GET of the table starts the totals again


def test_a_mark_outside_a_request_is_dropped(on: None) -> None:
    spans.mark("stray")
    spans.end()
    assert spans.table()["steps"] == []


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    envoy = Envoy({"static_resources": {}}, tmp_path_factory.mktemp("spans-envoy")).start()
    try:
        yield envoy
    finally:
        envoy.stop()


def ops_config(envoy: Envoy) -> dict[str, object]:
    return {"mcpServer": {"enable": True, "servers": [
        {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
         "config": {"istiodURL": "http://127.0.0.1:9", "envoyAdminURL": envoy.admin_url}}]}}


async def call_ready(server: ServeProcess, times: int) -> None:
    async with Client(server.url("/higress-ops"), mode="legacy") as client:
        for _ in range(times):
            assert (await client.call_tool("get-envoy-ready", {})).is_error is False


@pytest.mark.anyio
async def test_serve_spans_tables_every_step_of_a_tool_call(envoy: Envoy, tmp_path: Path) -> None:
    with serving(ops_config(envoy), tmp_path, "--spans") as server:
        httpx.get(server.admin("/spans"), timeout=10)  # drop the start-up requests
        await call_ready(server, 5)
        table = httpx.get(server.admin("/spans"), timeout=10).json()
        assert httpx.get(server.url("/spans"), timeout=10).status_code == 404  # never on the MCP port
    steps = [row["step"] for row in table["steps"]]
    for step in ("gate", "read", "parse", "session", "validate", "call-setup", "target", "prepare", "upstream",
                 "shape", "tool", "respond", "send", "log+metrics"):
        assert step in steps, (step, steps)
    assert steps.index("gate") < steps.index("session") < steps.index("upstream") < steps.index("send")
    rows = {row["step"]: row for row in table["steps"]}
    assert rows["upstream"]["n"] == 5  # one per tool call; the handshake requests have no upstream step
    assert rows["total"]["median_us"] > rows["upstream"]["median_us"] > 0


@pytest.mark.anyio
async def test_without_spans_there_is_no_table(envoy: Envoy, tmp_path: Path) -> None:
    with serving(ops_config(envoy), tmp_path) as server:
        await call_ready(server, 1)
        assert httpx.get(server.admin("/spans"), timeout=10).status_code == 404
