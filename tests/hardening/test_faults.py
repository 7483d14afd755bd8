"""Upstream faults with real processes: each gives a clear isError result within timeoutSeconds, and other
sessions keep their latency meanwhile."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.hardening.report import record
from tests.support.envoy import Envoy
from tests.support.istiod import Fault, IstiodDouble, istiod_double
from tests.support.serve import ServeProcess, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.xdist_group("faults")]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TIMEOUT = 1.0


class Session:
    def __init__(self, http: httpx.AsyncClient, url: str, sid: str) -> None:
        self.http, self.url, self.headers = http, url, {**BOTH, "Mcp-Session-Id": sid, "X-Istiod-Token": "good-token"}

    @classmethod
    async def open(cls, http: httpx.AsyncClient, url: str) -> Session:
        reply = await http.post(url, headers=BOTH, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}}})
        return cls(http, url, reply.headers["mcp-session-id"])

    async def call(self, tool: str, **args: Any) -> dict[str, Any]:
        reply = await self.http.post(self.url, headers=self.headers, json={
            "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": args}})
        assert reply.status_code == 200, reply.text[:300]
        return reply.json()["result"]


def ops_config(istiod_url: str, envoy_url: str) -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "servers": [{"name": "ops", "path": "/ops", "type": "higress-ops", "config": {
        "istiodURL": istiod_url, "envoyAdminURL": envoy_url, "timeoutSeconds": TIMEOUT}}]}}


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    proc = Envoy({"node": {"id": "faults", "cluster": "faults"}}, tmp_path_factory.mktemp("envoy")).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def istiod() -> Iterator[IstiodDouble]:
    with istiod_double() as double:
        yield double


@pytest.fixture(scope="module")
def server(envoy: Envoy, istiod: IstiodDouble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with serving(ops_config(istiod.url, envoy.admin_url), tmp_path_factory.mktemp("faults")) as process:
        yield process


async def _bystander(session: Session, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        result = await session.call("get-envoy-ready")
        latencies.append(time.perf_counter() - started)
        assert result["isError"] is False


FAULTS: list[tuple[str, Fault, str]] = [
    ("HTTP 500", Fault(status=500), "answered HTTP 500"),
    ("401 without a valid token", Fault(status=401), "kubectl create token"),
    ("slower than timeoutSeconds", Fault(delay=TIMEOUT + 1.5), "did not answer"),
    ("invalid JSON", Fault(body=b'{"not": json'), "invalid JSON"),
    ("connection closed mid-body", Fault(close_mid_body=True), "closed the connection"),
]


@pytest.mark.parametrize(("label", "fault", "message"), FAULTS, ids=[f[0] for f in FAULTS])
async def test_istiod_fault_is_a_clear_error_in_time(server: ServeProcess, istiod: IstiodDouble, label: str,
                                                     fault: Fault, message: str) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        victim, other = await Session.open(http, server.url("/ops")), await Session.open(http, server.url("/ops"))
        baseline: list[float] = []
        for _ in range(20):
            started = time.perf_counter()
            await other.call("get-envoy-ready")
            baseline.append(time.perf_counter() - started)
        istiod.faults["/debug/syncz"] = fault
        try:
            stop, during = asyncio.Event(), []
            bystander = asyncio.create_task(_bystander(other, stop, during))
            started = time.perf_counter()
            result = await victim.call("get-istiod-syncz")
            took = time.perf_counter() - started
            stop.set()
            await bystander
        finally:
            istiod.faults.clear()
    text = result["content"][0]["text"]
    assert result["isError"] is True and message in text, text
    assert took < TIMEOUT + 1.0
    assert "good-token" not in text
    p50, worst = statistics.median(baseline) * 1000, max(during) * 1000 if during else 0.0
    record("Upstream faults", f"istiod {label}: error after", f"{took * 1000:.0f} ms (timeoutSeconds {TIMEOUT:g})")
    record("Upstream faults", f"istiod {label}: other session", f"p50 {p50:.1f} ms before, worst {worst:.1f} ms "
                                                                 f"during ({len(during)} calls)")
    assert worst < 500


async def test_a_20_mb_answer_is_cut_to_the_budget(server: ServeProcess, istiod: IstiodDouble) -> None:
    huge = json.dumps([{"proxy": f"gw-{i}.ns", "cluster_sent": "x" * 180} for i in range(100_000)]).encode()
    assert len(huge) > 20_000_000
    istiod.faults["/debug/syncz"] = Fault(body=huge)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            session = await Session.open(http, server.url("/ops"))
            started = time.perf_counter()
            result = await session.call("get-istiod-syncz")
            took = time.perf_counter() - started
    finally:
        istiod.faults.clear()
    assert result["isError"] is False
    body = sum(len(part["text"].encode()) for part in result["content"][:-1])
    assert body <= 65536 and "of 100,000 items" in result["content"][-1]["text"]
    record("Upstream faults", "istiod 20 MB answer", f"cut to {body:,} bytes in {took * 1000:.0f} ms")


async def test_envoy_killed_mid_call(tmp_path: Path, istiod: IstiodDouble) -> None:
    own = Envoy({"node": {"id": "doomed", "cluster": "doomed"}}, tmp_path / "envoy").start()
    with serving(ops_config(istiod.url, own.admin_url), tmp_path / "serve") as server:
        async with httpx.AsyncClient(timeout=30) as http:
            session = await Session.open(http, server.url("/ops"))
            assert (await session.call("get-envoy-server-info"))["isError"] is False
            calls = [asyncio.create_task(session.call("get-envoy-stats")) for _ in range(5)]
            await asyncio.sleep(0.005)
            own.kill()
            started = time.perf_counter()
            results = await asyncio.gather(*calls)
            after = await session.call("get-envoy-server-info")
            took = time.perf_counter() - started
    assert all(r["isError"] is False or "Envoy admin" in r["content"][0]["text"] for r in results)
    assert after["isError"] is True and "unreachable" in after["content"][0]["text"]
    assert took < TIMEOUT + 1.0
    record("Upstream faults", "Envoy killed mid-call", f"in-flight calls answered or failed cleanly; next call: "
                                                       f"'unreachable' after {took * 1000:.0f} ms")


async def test_many_slow_istiod_calls_never_queue_envoy_calls(server: ServeProcess, istiod: IstiodDouble) -> None:
    istiod.faults["/debug/syncz"] = Fault(delay=TIMEOUT + 0.5)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            sessions = [await Session.open(http, server.url("/ops")) for _ in range(9)]
            slow = [asyncio.create_task(s.call("get-istiod-syncz")) for s in sessions[:8]]  # istiod's whole pool
            await asyncio.sleep(0.1)
            started = time.perf_counter()
            ready = await sessions[8].call("get-envoy-ready")
            took = time.perf_counter() - started
            results = await asyncio.gather(*slow)
    finally:
        istiod.faults.clear()
    assert ready["isError"] is False and took < 0.5
    odd = [r for r in results if not (r["isError"] and "did not answer" in r["content"][0]["text"])]
    assert not odd, odd
    record("Upstream faults", "8 concurrent istiod calls slower than the timeout",
           f"an Envoy call meanwhile took {took * 1000:.0f} ms (one connection pool per upstream)")
