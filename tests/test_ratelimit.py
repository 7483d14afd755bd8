"""Higress's rate_limit: a fixed window per caller, shared through Redis, white_list exempt, fail-open."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx2 as httpx
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from higress_ops.config.model import McpServerConfig, RateLimit, RedisConfig
from higress_ops.ratelimit import MemoryRateLimiter, RedisRateLimiter, key, make_limiter
from tests.hardening.report import record
from tests.support.redis import RedisServer, start_redis, start_redis_cluster, start_sentinel_group
from tests.support.serve import ServeProcess, echo_config, serving, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
RULE = RateLimit(limit=3, window=2, white_list=("10.0.0.9",))


async def test_memory_window_and_white_list() -> None:
    limiter = MemoryRateLimiter(RULE)
    decisions = [await limiter.check("ops", "10.0.0.1") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 1 <= decisions[-1].retry_after <= 2
    assert (await limiter.check("ops", "10.0.0.2")).allowed  # another caller has its own window
    assert (await limiter.check("other", "10.0.0.1")).allowed  # and so does another server


async def test_used_up_looks_without_counting() -> None:
    limiter = MemoryRateLimiter(RULE)
    assert limiter.used_up("ops", "10.0.0.1") == 0  # no window yet
    for _ in range(3):
        assert limiter.used_up("ops", "10.0.0.1") == 0
        await limiter.check("ops", "10.0.0.1")
    assert 1 <= limiter.used_up("ops", "10.0.0.1") <= 2  # none left: seconds until the window resets
    assert limiter.used_up("ops", "10.0.0.1") == limiter.used_up("ops", "10.0.0.1")  # looking costs nothing
    assert limiter.used_up("ops", "10.0.0.2") == 0
    assert all([(await limiter.check("ops", "10.0.0.9")).allowed for _ in range(10)])
    await asyncio.sleep(2.1)
    assert (await limiter.check("ops", "10.0.0.1")).allowed  # the window reset


async def test_memory_limiter_stays_bounded_with_many_callers() -> None:
    limiter = MemoryRateLimiter(RateLimit(limit=5, window=3600), max_callers=100_000)
    for i in range(150_000):  # a flood of distinct addresses, all inside their window
        await limiter.check("ops", f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert len(limiter) == 100_000  # the oldest windows were forgotten, not kept
    short = MemoryRateLimiter(RateLimit(limit=5, window=1))
    for i in range(1_000):
        await short.check("ops", f"10.1.{i >> 8}.{i & 255}")
    await asyncio.sleep(1.05)
    assert (await short.check("ops", "10.200.0.1")).allowed
    assert len(short) == 1  # every finished window left as calls came in


def redis_limiter(server: RedisServer) -> RedisRateLimiter:
    return RedisRateLimiter(RULE, aioredis.Redis(host="127.0.0.1", port=server.port, socket_timeout=0.5,
                                                 socket_connect_timeout=0.5))


async def test_redis_limit_is_shared_across_replicas(redis_server: RedisServer) -> None:
    a, b = redis_limiter(redis_server), redis_limiter(redis_server)
    caller = f"10.1.{id(a) % 250}.1"
    results = [await (a if i % 2 else b).check("ops", caller) for i in range(4)]
    assert [d.allowed for d in results] == [True, True, True, False]
    raw = aioredis.Redis(port=redis_server.port)
    assert await raw.ttl(key(RULE, "ops", caller)) in (1, 2)  # Higress's key shape, expiring with the window
    await raw.aclose()
    await a.aclose()
    await b.aclose()


@pytest.mark.redis_ha
@pytest.mark.parametrize("mode", ["sentinel", "cluster"])
async def test_limit_shared_through_sentinel_and_cluster(mode: str, tmp_path: Path) -> None:
    """The limiter gets its client from the same factory as the session store, so every mode works."""
    if mode == "sentinel":
        group = start_sentinel_group(tmp_path / "s")
        redis = RedisConfig(mode="sentinel", addresses=tuple(group.sentinel_addresses), master_name=group.master_name)
        stop, server = group.stop, group.master()
    else:
        nodes = start_redis_cluster(tmp_path / "c")
        redis = RedisConfig(mode="cluster", addresses=tuple(nodes.addresses[:2]))
        stop, server = nodes.stop, nodes.node_of_slot(key_slot(key(RULE, "ops", "10.2.0.1").encode()))
    try:
        config = McpServerConfig(redis=redis, rate_limit=RULE)
        a, b = make_limiter(config), make_limiter(config)
        assert isinstance(a, RedisRateLimiter) and isinstance(b, RedisRateLimiter)
        results = [await (a if i % 2 else b).check("ops", "10.2.0.1") for i in range(4)]
        assert [d.allowed for d in results] == [True, True, True, False]
        assert server.client().ttl(key(RULE, "ops", "10.2.0.1")) in (1, 2)  # on the master owning the key
        stop()  # every Redis process gone: the limiter fails open, whatever the client raises in this mode
        started = time.monotonic()
        assert all([(await a.check("ops", "10.2.0.2")).allowed for _ in range(5)])
        assert time.monotonic() - started < 5 * 2.5  # each check bounded by one call timeout, no retry storm
        await a.aclose()
        await b.aclose()
    finally:
        stop()


async def test_redis_down_fails_open(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "r")
    limiter = redis_limiter(server)
    server.stop()
    assert all([(await limiter.check("ops", "10.0.0.1")).allowed for _ in range(5)])
    await limiter.aclose()
    record("Rate limiting", "Redis down", "fails open: 5 of 5 calls allowed, one warning logged")


async def calls(server: ServeProcess, count: int, headers: dict[str, str] | None = None) -> list[dict]:
    both = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json", **(headers or {})}
    async with httpx.AsyncClient(timeout=10) as http:
        init = await http.post(server.url("/e"), headers=both, json={
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                         "capabilities": {}}})
        session = {**both, "Mcp-Session-Id": init.headers["mcp-session-id"]}
        out = []
        for i in range(count):
            reply = await http.post(server.url("/e"), headers=session, json={
                "jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "x"}}})
            out.append(reply.json())
        return out


async def test_serve_enforces_rate_limit_with_a_retry_hint(tmp_path: Path) -> None:
    config = echo_config(("e", "/e"), rate_limit={"limit": 2, "window": 60, "white_list": ["10.9.9.9"]})
    # 127.0.0.1 plays the gateway pods: its X-Forwarded-For is believed, right-most untrusted hop first.
    with serving(config, tmp_path, "--trusted-proxy", "127.0.0.0/8") as server:
        replies = await calls(server, 3)
        assert [("result" in r) for r in replies] == [True, True, False]
        error = replies[-1]["error"]
        assert error["code"] == -32029 and "retry in" in error["message"]
        assert 1 <= error["data"]["retryAfterSeconds"] <= 60
        other = await calls(server, 2, {"X-Forwarded-For": "10.0.0.7"})  # another client behind the gateway
        assert all("result" in r for r in other)
        exempt = await calls(server, 5, {"X-Forwarded-For": "10.9.9.9, 127.0.0.2"})
        assert all("result" in r for r in exempt)
        spoofed = await calls(server, 3, {"X-Forwarded-For": "10.9.9.9, 10.0.0.8"})  # the client wrote 10.9.9.9
        assert [("result" in r) for r in spoofed] == [True, True, False]
        record("Rate limiting", "limit 2 per 60 s on one replica", f"call 3 refused: {error['message']}; another "
               "client unaffected; a white_list client made 5 of 5 calls; a white_list address written by the "
               "client left of the real hop was not believed")


async def test_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path: Path) -> None:
    config = echo_config(("e", "/e"), rate_limit={"limit": 2, "window": 60, "white_list": ["10.9.9.9"]})
    with serving(config, tmp_path) as server:
        replies = await calls(server, 3, {"X-Forwarded-For": "10.9.9.9"})
        assert [("result" in r) for r in replies] == [True, True, False]


async def test_rate_limit_holds_across_replicas(tmp_path: Path, redis_server: RedisServer) -> None:
    config = echo_config(("e", "/e"), rate_limit={"limit": 3, "window": 60},
                         redis={"address": f"127.0.0.1:{redis_server.port}"})
    path = write_config(tmp_path / "c.yaml", config)
    trust = ("--trusted-proxy", "127.0.0.1/32")
    a = ServeProcess(path, tmp_path, ("--replica-id", "a", *trust)).start()
    b = ServeProcess(path, tmp_path, ("--replica-id", "b", *trust)).start()
    try:
        caller = {"X-Forwarded-For": f"10.3.{tmp_path.stat().st_ino % 250}.1"}
        first = await calls(a, 2, caller)
        second = await calls(b, 2, caller)
        assert [("result" in r) for r in first + second] == [True, True, True, False]
        record("Rate limiting", "limit 3 per 60 s, calls spread over 2 replicas sharing Redis",
               "calls 1-3 answered, call 4 refused with -32029 and retryAfterSeconds")
    finally:
        a.stop()
        b.stop()
