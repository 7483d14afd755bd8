"""A compressed soak: tool calls across 3 replicas sharing Redis, with a Redis restart and a replica SIGKILL on
the way, and clients that behave like a gateway in front (another replica on a dead connection, back off on
503, a new session on 404). Zero lost responses; no memory growth after warm-up.

CI runs a short version; HIGRESS_OPS_SOAK=1 runs 50,000 calls."""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from bench.harness import ProcStat
from tests.hardening.report import record
from tests.support.redis import start_redis
from tests.support.serve import ServeProcess, echo_config, write_config

LONG = os.environ.get("HIGRESS_OPS_SOAK") == "1"
CALLS = 50_000 if LONG else 10_000
WORKERS = 12
pytestmark = [pytest.mark.anyio, pytest.mark.timeout(3600 if LONG else 240), pytest.mark.xdist_group("soak")]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Stats:
    def __init__(self) -> None:
        self.done = 0
        self.retries = 0
        self.reinitialized = 0
        self.unavailable = 0


async def _initialize(http: httpx.AsyncClient, bases: list[str]) -> str:
    while True:
        base = random.choice(bases)
        try:
            reply = await http.post(f"{base}/e", headers=BOTH, json={
                "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                             "capabilities": {}}})
            if reply.status_code == 200:
                return reply.headers["mcp-session-id"]
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)


async def _worker(http: httpx.AsyncClient, bases: list[str], quota: int, stats: Stats, tag: int) -> None:
    session = await _initialize(http, bases)
    for n in range(quota):
        text = f"{tag}-{n}"
        while True:  # until this call's own answer arrives: nothing is lost
            base = random.choice(bases)
            try:
                reply = await http.post(f"{base}/e", headers={**BOTH, "Mcp-Session-Id": session}, json={
                    "jsonrpc": "2.0", "id": n + 1, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": text}}})
            except httpx.TransportError:  # the replica died under us: the gateway picks another
                stats.retries += 1
                await asyncio.sleep(0.02)
                continue
            if reply.status_code == 503:  # Redis is away: back off and retry
                stats.unavailable += 1
                await asyncio.sleep(0.1)
                continue
            if reply.status_code == 404:  # the restarted Redis forgot the session: open a new one
                stats.reinitialized += 1
                session = await _initialize(http, bases)
                continue
            assert reply.status_code == 200, reply.text[:200]
            body = reply.json()
            assert body["id"] == n + 1 and body["result"]["content"][0]["text"] == f"hi {text}", body
            stats.done += 1
            break


async def test_soak_across_replicas_with_redis_restart_and_a_killed_replica(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis")
    config = write_config(tmp_path / "c.yaml", echo_config(("e", "/e"), redis={"address": redis.address}))
    replicas = [ServeProcess(config, tmp_path, ("--replica-id", name, "--log-level", "warning")).start()
                for name in ("a", "b", "c")]
    stats = Stats()
    bases = [r.base for r in replicas]
    stat = {r.base: ProcStat(r.proc.pid) for r in replicas}  # type: ignore[union-attr]
    rss: dict[str, list[int]] = {base: [] for base in bases}
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=64)) as http:
            work = asyncio.gather(*(_worker(http, bases, CALLS // WORKERS, stats, i) for i in range(WORKERS)))
            task = asyncio.ensure_future(work)
            started = time.monotonic()
            events: list[str] = []
            restarted = killed = False
            while not task.done():
                await asyncio.sleep(0.2)
                progress = stats.done / CALLS
                for base in bases[:2]:
                    rss[base].append(stat[base].rss_bytes())
                if progress > 0.3 and not restarted:
                    restarted = True
                    redis.stop()
                    await asyncio.sleep(0.5)
                    redis.start()
                    events.append(f"Redis restarted at {stats.done} calls")
                if progress > 0.6 and not killed:
                    killed = True
                    replicas[2].kill()
                    bases.remove(replicas[2].base)  # the gateway's health check takes it out
                    events.append(f"replica c SIGKILLed at {stats.done} calls")
            await task
            took = time.monotonic() - started
    finally:
        for replica in replicas:
            replica.stop()
        redis.stop()
    assert stats.done == CALLS // WORKERS * WORKERS  # every call answered, each with its own answer
    growth = []
    for base in bases[:2]:
        samples = rss[base]
        warm = max(samples[len(samples) // 4: len(samples) // 2] or samples)
        growth.append((samples[-1] - warm) / 2**20)
    assert max(growth) < 10, f"RSS grew {growth} MB after warm-up"
    record("Soak", f"{'long' if LONG else 'CI'} run: tool calls across 3 replicas",
           f"{stats.done:,} answered, 0 lost, in {took:.0f} s ({stats.done / took:.0f}/s); {'; '.join(events)}")
    record("Soak", f"{'long' if LONG else 'CI'} run: recovery work by the clients",
           f"{stats.retries} retries on a dead replica, {stats.unavailable} 503s while Redis was down, "
           f"{stats.reinitialized} sessions re-initialized after Redis came back empty")
    record("Soak", f"{'long' if LONG else 'CI'} run: RSS growth after warm-up",
           ", ".join(f"{g:+.1f} MB" for g in growth) + " (replicas a, b)")
