"""P3: a legacy SSE stream on replica A, POSTs on replica B through Redis, against POSTs on A itself: the p99
latency Redis adds to delivery, with 200 sessions' streams open on A. Measured twice in one run: through one
redis-server (PUBLISH/SUBSCRIBE) and through a 3-master Redis Cluster (SPUBLISH/SSUBSCRIBE, one connection
per shard), each against its own same-replica baseline."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.harness import percentile
from tests.support.redis import start_redis, start_redis_cluster
from tests.support.serve import ServeProcess, write_config


async def _reader(lines: AsyncIterator[str], inbox: asyncio.Queue[Any]) -> None:
    async for line in lines:
        if line.startswith("data: ") and line[6:7] == "{":
            inbox.put_nowait(json.loads(line[6:]).get("id"))


async def _measure(a: str, b: str, sessions: int, calls: int) -> dict[str, list[float]]:
    """Open every stream on A first (so A's hub multiplexes them all), then time calls one at a time,
    across the sessions, alternating same-replica and cross-replica POSTs: delivery, not CPU queueing."""
    out: dict[str, list[float]] = {"same": [], "cross": []}
    limits = httpx.Limits(max_connections=sessions + 20, max_keepalive_connections=sessions + 20)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http, AsyncExitStack() as stack:
        opened: list[tuple[str, asyncio.Queue[Any]]] = []
        readers: list[asyncio.Task[None]] = []
        for _ in range(sessions):
            response = await stack.enter_async_context(http.stream("GET", f"{a}/echo/sse"))
            lines = response.aiter_lines()
            assert await anext(lines) == "event: endpoint"
            endpoint = (await anext(lines))[len("data: "):]
            inbox: asyncio.Queue[Any] = asyncio.Queue()
            readers.append(asyncio.create_task(_reader(lines, inbox)))
            opened.append((endpoint, inbox))
        for i in range(calls * 2):
            endpoint, inbox = opened[i % sessions]
            side, base = ("same", a) if (i // sessions + i) % 2 == 0 else ("cross", b)
            message = {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": str(i)}}}
            started = time.perf_counter()
            assert (await http.post(base + endpoint, json=message)).status_code == 202
            while await asyncio.wait_for(inbox.get(), 10) != i:
                pass
            out[side].append(time.perf_counter() - started)
        for reader in readers:
            reader.cancel()
    return out


def run(workdir: Path, scale: str) -> dict[str, Any]:
    sessions, calls = {"smoke": (5, 10), "quick": (20, 60)}.get(scale, (200, 1000))
    return {"P3": _run_on("single", workdir / "single", sessions, calls),
            "P3_cluster": _run_on("cluster", workdir / "cluster", sessions, calls)}


def _run_on(mode: str, workdir: Path, sessions: int, calls: int) -> dict[str, Any]:
    if mode == "cluster":
        nodes = start_redis_cluster(workdir / "redis")
        redis_block: dict[str, Any] = {"cluster": {"addresses": nodes.addresses[:3]}}
        stop = nodes.stop
    else:
        server = start_redis(workdir / "redis")
        redis_block, stop = {"address": server.address}, server.stop
    config = write_config(workdir / "higress.yaml", {"mcpServer": {
        "enable": True, "redis": redis_block,
        "servers": [{"name": "echo", "path": "/echo", "type": "echo", "config": {}}]}})
    replicas: list[ServeProcess] = []
    try:
        for name in ("a", "b"):
            replicas.append(ServeProcess(config, workdir, ("--replica-id", name, "--log-level", "warning")).start())
        samples = asyncio.run(_measure(replicas[0].base, replicas[1].base, sessions, calls))
    finally:
        for replica in replicas:
            replica.stop()
        stop()
    same, cross = samples["same"], samples["cross"]
    added = (percentile(cross, 0.99) - percentile(same, 0.99)) * 1000
    return {"redis": mode, "sessions": sessions, "calls_per_side": len(same),
            "same_p50_ms": percentile(same, 0.5) * 1000, "same_p99_ms": percentile(same, 0.99) * 1000,
            "cross_p50_ms": percentile(cross, 0.5) * 1000, "cross_p99_ms": percentile(cross, 0.99) * 1000,
            "added_p99_ms": added, "target": "added_p99_ms <= 5", "met": added <= 5}
