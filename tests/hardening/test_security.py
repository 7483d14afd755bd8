"""Secrets never leak (logs, metrics, error messages, Redis), session ids are unguessable and bound to their
server, and oversized headers and bodies are refused without a 5xx."""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis.asyncio as aioredis
from mcp import Client
from mcp.client.sse import sse_client

from tests.hardening.report import record
from tests.support.istiod import istiod_double
from tests.support.redis import start_redis
from tests.support.serve import serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.xdist_group("security")]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
HEADER_TOKEN, CONFIG_TOKEN, REDIS_PASSWORD = "hdr-tok-5f1c9a", "cfg-tok-77e2b0", "redis-pw-3c8d41"


async def test_tokens_and_passwords_never_leak(tmp_path: Path) -> None:
    redis = start_redis(tmp_path / "redis", password=REDIS_PASSWORD)
    try:
        with istiod_double(tokens={"only-this-one"}) as istiod:  # both tokens get 401: error paths run
            config = {"mcpServer": {"enable": True, "redis": {"address": redis.address, "password": REDIS_PASSWORD},
                                    "servers": [{"name": "ops", "path": "/ops", "type": "higress-ops", "config": {
                                        "istiodURL": istiod.url, "envoyAdminURL": "http://127.0.0.1:9",
                                        "istiodToken": CONFIG_TOKEN}}]}}
            with serving(config, tmp_path / "serve", "--log-level", "debug") as server:
                seen: list[str] = []
                async with Client(sse_client(server.url("/ops/sse"), headers={"X-Istiod-Token": HEADER_TOKEN}),
                                  mode="legacy") as client:
                    for tool, args in (("get-istiod-syncz", {}), ("get-envoy-ready", {}), ("get-istiod-proxy-status",
                                                                                           {}), ("nope", {})):
                        try:
                            result = await client.call_tool(tool, args)
                            seen += [part.text for part in result.content]  # type: ignore[union-attr]
                        except Exception as exc:  # the unknown tool: a protocol error
                            seen.append(str(exc))
                    raw = aioredis.Redis(port=redis.port, password=REDIS_PASSWORD)
                    stored = [key + (await raw.dump(key) or b"") async for key in raw.scan_iter("*")]
                    await raw.aclose()
                async with httpx.AsyncClient() as http:
                    init = await http.post(server.url("/ops"), headers={**BOTH, "X-Istiod-Token": HEADER_TOKEN},
                                           json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                                               "protocolVersion": "2025-06-18", "capabilities": {}}})
                    seen.append(init.text)
                    metrics = (await http.get(server.admin("/metrics"))).text
                    ready = (await http.get(server.admin("/readyz"))).text
                await asyncio.sleep(0.2)
                log = server.log()
            sent = [r.headers.get("authorization", "") for r in istiod.requests]
    finally:
        redis.stop()
    assert f"Bearer {HEADER_TOKEN}" in sent  # the token did its job...
    assert stored, "sessions were in Redis while the scan ran"
    for secret in (HEADER_TOKEN, CONFIG_TOKEN, REDIS_PASSWORD):
        assert secret not in log, f"{secret} in the log"
        assert secret not in metrics and secret not in ready
        assert not any(secret in text for text in seen), f"{secret} in a result or error"
        assert not any(secret.encode() in value for value in stored), f"{secret} in Redis"
    record("Security", "secrets scanned (header token, config token, Redis password)",
           f"0 hits in {len(log.splitlines())} log lines, /metrics, /readyz, {len(seen)} results/errors and "
           f"{len(stored)} Redis keys")


async def test_session_ids_are_unguessable_and_bound(tmp_path: Path) -> None:
    config = {"mcpServer": {"enable": True, "servers": [
        {"name": "a", "path": "/a", "type": "echo", "config": {}}, {"name": "b", "path": "/b", "type": "echo",
                                                                     "config": {}}]}}
    with serving(config, tmp_path) as server:
        async with httpx.AsyncClient() as http:
            async def new_id() -> str:
                reply = await http.post(server.url("/a"), headers=BOTH, json={
                    "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                                 "capabilities": {}}})
                return reply.headers["mcp-session-id"]

            ids = [await new_id() for _ in range(300)]
            foreign = await http.post(server.url("/b"), json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                      headers={**BOTH, "Mcp-Session-Id": ids[0]})
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", i) for i in ids)
    symbols = Counter("".join(ids))
    entropy = -sum(n / sum(symbols.values()) * math.log2(n / sum(symbols.values())) for n in symbols.values())
    bits = entropy * 32
    assert bits >= 180  # 192 random bits by construction; measured from the symbols' spread
    assert foreign.status_code == 404
    record("Security", "session ids", f"{len(ids)} distinct, 32 url-safe characters, ~{bits:.0f} bits measured "
                                      f"(192 by construction); an id on another server's path: 404")


async def test_oversized_headers_and_bodies_are_refused(tmp_path: Path) -> None:
    config = {"mcpServer": {"enable": True, "servers": [{"name": "a", "path": "/a", "type": "echo", "config": {}}]}}
    results: dict[str, Any] = {}
    with serving(config, tmp_path, "--body-limit", "65536") as server:
        async with httpx.AsyncClient(timeout=10) as http:
            big_header = await http.post(server.url("/a"), headers={**BOTH, "X-Istiod-Token": "t" * 100_000},
                                         json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            results["100 KB header"] = big_header.status_code
            big_body = await http.post(server.url("/a"), headers=BOTH, content=b"[" + b"1," * 40_000 + b"1]")
            results["80 KB body (limit 64 KB)"] = big_body.status_code
            async def chunks() -> Any:
                for _ in range(10):
                    yield b"x" * 10_000

            chunked = await http.post(server.url("/a"), headers=BOTH, content=chunks())  # no Content-Length
            results["100 KB chunked body"] = chunked.status_code
            alive = await http.get(server.admin("/healthz"))
    assert results == {"100 KB header": 431, "80 KB body (limit 64 KB)": 413, "100 KB chunked body": 413}
    assert alive.status_code == 200
    record("Security", "size limits", ", ".join(f"{k}: {v}" for k, v in results.items()))
