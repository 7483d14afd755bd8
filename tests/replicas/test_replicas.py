"""Several `higress-ops serve` replicas behind a real round-robin Envoy, sharing one Redis deployment: the
scenarios run on a single redis-server, a Sentinel group and a Redis Cluster (faults per mode: test_failover.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from mcp import Client
from mcp.client.sse import sse_client

from tests.replicas.backends import MODES
from tests.replicas.cluster import (
    INITIALIZE,
    PATH,
    STREAMABLE_HEADERS,
    Cluster,
    echo_call,
    make_cluster,
    next_message,
    rpc,
    sse_events,
)
from tests.replicas.front import requests_per_replica
from tests.support.asgi import stateless

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


SECRET = "replicas-share-this-secret"  # mcpServer.redis.secret: in every mode, what Redis holds is sealed


def higress_open(sealed: bytes) -> bytes:
    """Higress mcp-session's Crypto.Decrypt, step by step: base64, then a 12-byte nonce, then AES-256-GCM
    (ciphertext || tag) under SHA-256(secret), no associated data."""
    raw = base64.b64decode(sealed, validate=True)
    return AESGCM(hashlib.sha256(SECRET.encode()).digest()).decrypt(raw[:12], raw[12:], None)


@pytest.fixture(scope="module", params=MODES)
def shared_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path_factory.mktemp(f"replicas-{request.param}"), 3, request.param, SECRET)
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path, 2)
    yield cluster
    cluster.stop()


async def published(watcher: Any, timeout: float) -> Any:
    """The next message published on the watched channel, or None after `timeout` (confirmations skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await watcher.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message is not None:
            return message
    return None


async def test_legacy_sse_on_a_with_every_post_on_b(shared_cluster: Cluster) -> None:
    a, b = shared_cluster.replicas[:2]
    backend = shared_cluster.redis
    r = backend.client()
    async with httpx.AsyncClient(timeout=10) as http, \
            http.stream("GET", f"{a.url}{PATH}/sse", headers={"Accept": "text/event-stream"}) as stream:
        assert stream.status_code == 200
        events = sse_events(stream)
        kind, endpoint = await asyncio.wait_for(anext(events), 5)
        assert kind == "endpoint"
        target = httpx.URL(endpoint)
        session_id = target.params["sessionId"]
        on_b = f"{b.url}{target.path}?{target.query.decode()}"

        before = backend.publishes()
        reply = await http.post(on_b, json=rpc("initialize", INITIALIZE, id=1))
        assert reply.status_code == 202
        init = await next_message(events)
        assert init["id"] == 1 and "protocolVersion" in init["result"]
        assert (await http.post(on_b, json=rpc("notifications/initialized"))).status_code == 202
        for i in range(2, 32):
            assert (await http.post(on_b, json=rpc("tools/call", echo_call(f"m{i}"), id=i))).status_code == 202
            answer = await next_message(events)
            assert answer["id"] == i
            assert answer["result"]["content"][0]["text"] == f"hi m{i}"
        assert backend.publishes() >= before + 31  # every answer crossed from b to a through Redis

        record = await r.hgetall(backend.key(session_id))  # sealed: nothing readable without the secret
        assert set(record) == {b"record", b"owner"}
        assert a.replica_id.encode() not in record[b"owner"] and b"replica-test" not in record[b"record"]
        opened = json.loads(higress_open(record[b"record"]))
        assert opened["protocol_version"] == init["result"]["protocolVersion"]
        assert opened["stream_replica"] == a.replica_id and opened["client_info"]["name"] == "replica-test"

        # A POST landing on the stream's own replica skips Redis.
        on_a = f"{a.url}{target.path}?{target.query.decode()}"
        if backend.nodes is None:
            # Watch the session's own channel: PUBLISH counts would include Sentinel's hello messages.
            watcher = r.pubsub()
            await watcher.subscribe(f"mcp-server-sse:{session_id}")
            assert (await http.post(on_b, json=rpc("tools/call", echo_call("remote"), id=98))).status_code == 202
            assert (await next_message(events))["result"]["content"][0]["text"] == "hi remote"
            seen = await published(watcher, 2)  # the watcher does see what crosses, sealed
            assert seen is not None and b"hi remote" not in seen["data"]
            assert higress_open(seen["data"]).startswith(b"event: message\ndata: ")
            assert b"hi remote" in higress_open(seen["data"])
            assert (await http.post(on_a, json=rpc("tools/call", echo_call("local"), id=99))).status_code == 202
            assert (await next_message(events))["result"]["content"][0]["text"] == "hi local"
            assert await published(watcher, 0.3) is None
            await watcher.aclose()
        else:  # SPUBLISH: no Sentinel here, the count is exact
            before = backend.publishes()
            assert (await http.post(on_a, json=rpc("tools/call", echo_call("local"), id=99))).status_code == 202
            assert (await next_message(events))["result"]["content"][0]["text"] == "hi local"
            assert backend.publishes() == before

        unknown = f"{b.url}{PATH}?sessionId=not-a-session"
        assert (await http.post(unknown, json=rpc("ping", id=1))).status_code == 404
    await r.aclose()


async def test_sdk_sse_and_streamable_through_round_robin(shared_cluster: Cluster) -> None:
    token = "tok-must-not-reach-redis"
    before = requests_per_replica(shared_cluster.envoy)
    failures = 0
    r = shared_cluster.redis.client()
    stored: list[bytes] = []  # what Redis holds while the sessions are open: never the token
    async with Client(sse_client(f"{shared_cluster.front}/sse", headers={"X-Istiod-Token": token}),
                      mode="legacy") as client:
        for i in range(100):
            result = await client.call_tool("echo", {"text": f"sse{i}"})
            failures += result.is_error or result.content[0].text != f"hi sse{i}"
        stored += [await r.dump(key) or b"" async for key in r.scan_iter("*")]
    async with Client(shared_cluster.front, mode="legacy") as client:
        for i in range(100):
            result = await client.call_tool("echo", {"text": f"stream{i}"})
            failures += result.is_error or result.content[0].text != f"hi stream{i}"
        stored += [await r.dump(key) or b"" async for key in r.scan_iter("*")]
    await r.aclose()
    assert failures == 0
    after = requests_per_replica(shared_cluster.envoy)
    served = {port: after[port] - before.get(port, 0) for port in after}
    assert all(count >= 50 for count in served.values()), served  # round robin really spread the calls
    assert len(stored) >= 2 and not any(token.encode() in value for value in stored)


async def test_streamable_session_outlives_its_replica(own_cluster: Cluster) -> None:
    a, b = own_cluster.replicas
    async with httpx.AsyncClient(timeout=10) as http:
        init = await http.post(f"{a.url}{PATH}", json=rpc("initialize", INITIALIZE, id=1), headers=STREAMABLE_HEADERS)
        assert init.status_code == 200, init.text
        session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18",
                   **STREAMABLE_HEADERS}
        done = await http.post(f"{a.url}{PATH}", json=rpc("notifications/initialized"), headers=session)
        assert done.status_code == 202
        a.kill()
        for i in range(10):
            reply = await http.post(f"{b.url}{PATH}", json=rpc("tools/call", echo_call(f"after{i}"), id=10 + i),
                                    headers=session)
            assert reply.status_code == 200, reply.text
            assert f"hi after{i}" in reply.text
    # and through the front proxy, which skips the dead replica
    async with Client(own_cluster.front, mode="legacy") as client:
        assert (await client.call_tool("echo", {"text": "front"})).content[0].text == "hi front"


async def test_redis_killed_and_restarted_mid_run(own_cluster: Cluster) -> None:
    a, b = own_cluster.replicas
    async with httpx.AsyncClient(timeout=10) as http, \
            http.stream("GET", f"{a.url}{PATH}/sse", headers={"Accept": "text/event-stream"}) as stream:
        events = sse_events(stream)
        _, endpoint = await asyncio.wait_for(anext(events), 5)
        target = httpx.URL(endpoint)
        on_a = f"{a.url}{target.path}?{target.query.decode()}"
        on_b = f"{b.url}{target.path}?{target.query.decode()}"
        assert (await http.post(on_b, json=rpc("initialize", INITIALIZE, id=1))).status_code == 202
        await next_message(events)
        assert (await http.post(on_b, json=rpc("notifications/initialized"))).status_code == 202

        assert own_cluster.redis.single is not None
        own_cluster.redis.single.kill()
        started = time.monotonic()
        fresh = await http.post(f"{b.url}{PATH}", json=rpc("initialize", INITIALIZE, id=1), headers=STREAMABLE_HEADERS)
        assert fresh.status_code == 503 and "unavailable" in fresh.text.lower()
        cross = await http.post(on_b, json=rpc("tools/call", echo_call("x"), id=2))
        assert cross.status_code == 503 and "unavailable" in cross.text.lower()
        assert time.monotonic() - started < 3  # clear errors, fast
        # The stream and its POSTs on one replica keep working.
        assert (await http.post(on_a, json=rpc("tools/call", echo_call("during"), id=3))).status_code == 202
        assert (await next_message(events))["result"]["content"][0]["text"] == "hi during"
        # Readiness stays up, so Kubernetes keeps both replicas in the Service: Redis is shared, an unready answer
        # would empty it. What needs no session is served: 2026-07-28 tools/list and tools/call; liveness too.
        for replica in (a, b):
            ready = await http.get(f"{replica.admin_url}/readyz")
            assert ready.status_code == 200 and ready.json()["store"].startswith("degraded"), ready.text
            assert (await http.get(f"{replica.admin_url}/healthz")).status_code == 200
            body, headers = stateless("tools/list")
            listed = await http.post(f"{replica.url}{PATH}", json=body, headers=headers)
            assert listed.status_code == 200 and "echo" in [t["name"] for t in listed.json()["result"]["tools"]]
            body, headers = stateless("tools/call", **echo_call("stateless"))
            called = await http.post(f"{replica.url}{PATH}", json=body, headers=headers)
            assert called.status_code == 200 and called.json()["result"]["content"][0]["text"] == "hi stateless"
        assert a.alive and b.alive

        own_cluster.redis.single.start()
        back = time.monotonic()
        while True:
            reply = await http.post(on_b, json=rpc("tools/call", echo_call("after"), id=4))
            if reply.status_code == 202:
                break
            assert time.monotonic() - back < 2, f"not serving 2 s after Redis returned: {reply.status_code}"
            await asyncio.sleep(0.05)
        assert (await next_message(events))["result"]["content"][0]["text"] == "hi after"
        fresh = await http.post(f"{b.url}{PATH}", json=rpc("initialize", INITIALIZE, id=1), headers=STREAMABLE_HEADERS)
        assert fresh.status_code == 200
    assert a.alive and b.alive
