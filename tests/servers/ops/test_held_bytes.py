"""Upstream answers held in memory are bounded: 2026-07-28 calls (no session) count against their identity's
--max-inflight and wait their turn, and every call's upstream bytes count against the process's
--max-upstream-bytes, cut while they stream. A real `serve` against a real Envoy with a 4.4 MB config dump
(2,000 clusters), memory read from /proc while the calls run.

Envoy's admin builds one dump at a time (0.3 s each here), which paces an attacker; the attacker's best case is
an upstream that hands the same bytes out at once, so the first test serves Envoy's own dump from a static
file server (`python -m http.server`, with Content-Length), the second reads Envoy itself (chunked)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.hardening.report import record
from tests.support.envoy import Envoy
from tests.support.gateway import big_gateway
from tests.support.procs import free_port, port_open, rss_kb, stop, wait_until
from tests.support.serve import serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240), pytest.mark.xdist_group("big-dump")]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def envoy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    with big_gateway(tmp_path_factory.mktemp("big"), 2000) as running:
        yield running


@pytest.fixture(scope="module")
def fast_dump(envoy: Envoy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Envoy's own config dump, served as fast as loopback goes; yields the base URL."""
    folder = tmp_path_factory.mktemp("dump")
    (folder / "config_dump").write_bytes(httpx.get(f"{envoy.admin_url}/config_dump", timeout=60).content)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(folder),
                             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: port_open(port), 30, "http.server", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def ops(envoy_url: str) -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "servers": [{"name": "ops", "path": "/ops", "type": "higress-ops", "config": {
        "istiodURL": "http://127.0.0.1:9", "envoyAdminURL": envoy_url, "timeoutSeconds": 30}}]}}


def dump_call(id: int) -> tuple[dict[str, Any], dict[str, str]]:
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    body = {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "get-envoy-config-dump", "arguments": {}, "_meta": meta}}
    return body, {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
                  "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "get-envoy-config-dump"}


class Peak:
    """The highest RSS of a process while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kb, self._stop = pid, rss_kb(pid), threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.kb = max(self.kb, rss_kb(self.pid))

    def __enter__(self) -> Peak:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def calls(base: str, count: int, source: str = "127.0.0.1") -> list[dict[str, Any]]:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(transport=transport, timeout=120, limits=httpx.Limits(max_connections=64)) as http:
        async def one(i: int) -> dict[str, Any]:
            body, headers = dump_call(i)
            reply = await http.post(base + "/ops", json=body, headers=headers)
            assert reply.status_code in (200, 429), reply.text[:300]
            return dict(reply.json())
        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_stateless_calls_wait_their_turn_and_hold_little(fast_dump: str, tmp_path: Path) -> None:
    with serving(ops(fast_dump), tmp_path, "--max-inflight", "2", "--log-level", "warning") as server:
        assert server.proc is not None
        await calls(server.base, 2)  # warm: the shaper processes, the connection pool
        before = rss_kb(server.proc.pid)
        with Peak(server.proc.pid) as peak:
            answers = await calls(server.base, 30)
        growth = (peak.kb - before) / 1024
    assert all("result" in a and not a["result"]["isError"] for a in answers)  # all 30 answered, in turn
    assert growth < 60, growth  # when stateless calls were not counted, all 30 dumps were held at once
    record("Memory under hostile clients", "30 concurrent 2026-07-28 calls of a 4.4 MB config dump, "
           "--max-inflight 2", f"all answered (2 at a time, the rest queued); peak RSS grew {growth:.0f} MB "
           "(limit 60 MB)")


async def test_upstream_bytes_are_bounded_for_the_process(envoy: Envoy, tmp_path: Path) -> None:
    """Several addresses, each within its own --max-inflight: together they would hold 8 dumps; the process
    budget (6 MiB, one dump) cuts the others as they stream, and says to retry."""
    with serving(ops(envoy.admin_url), tmp_path, "--max-upstream-bytes", str(6 * MB),
                 "--log-level", "warning") as server:
        assert server.proc is not None
        await calls(server.base, 1)
        before = rss_kb(server.proc.pid)
        with Peak(server.proc.pid) as peak:
            answers = [a for batch in await asyncio.gather(*(calls(server.base, 2, f"127.0.0.{n}")
                                                             for n in range(2, 6))) for a in batch]
        growth = (peak.kb - before) / 1024
        texts = [a["result"]["content"][0]["text"] for a in answers]
        busy = [t for t in texts if "already holding 6 MiB of upstream answers" in t]
        assert busy and len(busy) < len(texts), texts[:2]  # some read, the rest told to retry
        assert all("retry in a few seconds" in t for t in busy)
        again = await calls(server.base, 1)  # the budget is given back when calls end
        assert again[0]["result"]["isError"] is False
    assert growth < 60, growth
    record("Memory under hostile clients", "8 concurrent config-dump calls (4.4 MB each) from 4 addresses, "
           "--max-upstream-bytes 6 MiB", f"{len(texts) - len(busy)} read, {len(busy)} cut while streaming "
           f"('retry in a few seconds'); peak RSS grew {growth:.0f} MB")
