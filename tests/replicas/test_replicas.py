"""Several `higress-ops serve` replicas behind a real round-robin Envoy, sharing one Redis deployment: a single
redis-server, a Sentinel group or a Redis Cluster. The scenarios run on each; the faults fit each mode."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from redis.crc import key_slot

from tests.hardening.report import record
from tests.replicas.backends import MODES, Backend, start_backend
from tests.replicas.cluster import (
    INITIALIZE,
    PATH,
    Replica,
    echo_call,
    rpc,
    sse_events,
    start_replicas,
    write_config,
)
from tests.replicas.front import front_proxy, requests_per_replica
from tests.support.envoy import Envoy

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@dataclass
class Cluster:
    redis: Backend
    replicas: list[Replica]
    envoy: Envoy
    front_port: int

    @property
    def front(self) -> str:
        return f"http://127.0.0.1:{self.front_port}{PATH}"

    def stop(self) -> None:
        self.envoy.stop()
        for replica in self.replicas:
            replica.stop()
        self.redis.stop()


def make_cluster(workdir: Path, replicas: int, mode: str = "single") -> Cluster:
    redis = start_backend(mode, workdir)
    started: list[Replica] = []
    try:
        config = write_config(workdir / "higress.yaml", redis.redis_block())
        started = start_replicas(replicas, config, workdir)
        envoy, port = front_proxy([r.port for r in started], workdir / "envoy")
    except Exception:
        for replica in started:
            replica.stop()
        redis.stop()
        raise
    return Cluster(redis, started, envoy, port)


@pytest.fixture(scope="module", params=MODES)
def shared_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path_factory.mktemp(f"replicas-{request.param}"), 3, request.param)
    yield cluster
    cluster.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = make_cluster(tmp_path, 2)
    yield cluster
    cluster.stop()


async def next_message(events: AsyncIterator[tuple[str, str]], timeout: float = 5) -> dict[str, Any]:
    while True:
        kind, data = await asyncio.wait_for(anext(events), timeout)
        if kind == "message":
            message = json.loads(data)
            if message.get("method") == "ping" and "id" in message:  # a server ping, not ours
                continue
            return message


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

        record = await r.hgetall(backend.key(session_id))
        assert record[b"owner"] == a.replica_id.encode()
        assert json.loads(record[b"record"])["protocol_version"] == init["result"]["protocolVersion"]

        # A POST landing on the stream's own replica skips Redis.
        on_a = f"{a.url}{target.path}?{target.query.decode()}"
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
        ready = await http.get(f"{b.admin_url}/readyz")
        assert ready.status_code == 503
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


@pytest.mark.redis_ha
@pytest.mark.parametrize("mode", ["sentinel", "cluster"])
async def test_master_killed_mid_run(mode: str, tmp_path: Path) -> None:
    """SIGKILL the master holding a legacy SSE session's record and channel while its POSTs flow through the
    other replica: every POST is 202 (its answer arrives on the stream) or a clear 503, the stream survives,
    a streamable session carries on, and both replicas are ready again after the promotion."""
    cluster = make_cluster(tmp_path, 2, mode)
    a, b = cluster.replicas
    try:
        async with httpx.AsyncClient(timeout=10) as http, \
                http.stream("GET", f"{a.url}{PATH}/sse", headers={"Accept": "text/event-stream"}) as stream:
            events = sse_events(stream)
            _, endpoint = await asyncio.wait_for(anext(events), 5)
            target = httpx.URL(endpoint)
            on_b = f"{b.url}{target.path}?{target.query.decode()}"
            assert (await http.post(on_b, json=rpc("initialize", INITIALIZE, id=1))).status_code == 202
            await next_message(events)
            assert (await http.post(on_b, json=rpc("notifications/initialized"))).status_code == 202
            init = await http.post(f"{b.url}{PATH}", json=rpc("initialize", INITIALIZE, id=1),
                                   headers=STREAMABLE_HEADERS)
            session = {"Mcp-Session-Id": init.headers["mcp-session-id"], "MCP-Protocol-Version": "2025-06-18",
                       **STREAMABLE_HEADERS}
            assert (await http.post(f"{a.url}{PATH}", json=rpc("notifications/initialized"),
                                    headers=session)).status_code == 202

            master = cluster.redis.master_of(target.params["sessionId"])
            await asyncio.sleep(0.3)  # let the records reach the replicas
            master.kill()
            killed = time.monotonic()
            accepted: list[int] = []
            statuses: set[int] = set()
            ready: set[int] = set()
            recovered = None
            call = 100
            while recovered is None:
                assert time.monotonic() - killed < 30, f"no delivery 30 s after the kill: {statuses}"
                call += 1
                started = time.monotonic()
                reply = await http.post(on_b, json=rpc("tools/call", echo_call(f"c{call}"), id=call))
                assert time.monotonic() - started < 6, "a POST hung"
                statuses.add(reply.status_code)
                if recovered is None:  # /readyz reflects the outage while it lasts
                    ready.add((await http.get(f"{b.url}/readyz")).status_code)
                if reply.status_code == 503:
                    assert "unavailable" in reply.text.lower()
                    await asyncio.sleep(0.05)
                    continue
                assert reply.status_code == 202, reply.text
                accepted.append(call)
                answer = await next_message(events, timeout=10)  # nothing accepted is silently lost
                assert answer["id"] == call and answer["result"]["content"][0]["text"] == f"hi c{call}"
                if 503 in statuses or len(accepted) > 3:
                    recovered = time.monotonic() - killed if 503 in statuses else None
                if len(accepted) > 200:
                    break
            assert 503 in ready, f"/readyz never showed the outage: {ready}"
            cluster.redis.wait_recovered(master)
            for i in range(5):
                reply = await http.post(f"{b.url}{PATH}", json=rpc("tools/call", echo_call(f"s{i}"), id=300 + i),
                                        headers=session)
                assert reply.status_code == 200 and f"hi s{i}" in reply.text
            deadline = time.monotonic() + 10
            while (await http.get(f"{a.url}/readyz")).status_code != 200 or \
                    (await http.get(f"{b.url}/readyz")).status_code != 200:
                assert time.monotonic() < deadline, "a replica is not ready after the promotion"
                await asyncio.sleep(0.1)
        assert a.alive and b.alive
        if recovered is not None:
            record("Redis high availability", f"{mode}: serve replicas, SIGKILL master -> legacy SSE POSTs answered "
                   "again (s)", f"{recovered:.2f}")
    finally:
        cluster.stop()


@pytest.mark.redis_ha
async def test_cluster_reshard_under_live_sdk_sessions(tmp_path: Path) -> None:
    """`redis-cli --cluster reshard` moves every slot of the masters holding a legacy SSE and a streamable
    session while the SDK clients call through the round-robin front: no call fails, no answer is lost."""
    cluster = make_cluster(tmp_path, 2, "cluster")
    nodes = cluster.redis.nodes
    assert nodes is not None
    counts = {"sse": 0, "streamable": 0}
    wrong: list[str] = []
    stop = asyncio.Event()

    async def drive(name: str, client: Client) -> None:
        while not stop.is_set():
            counts[name] += 1
            text = f"{name}{counts[name]}"
            result = await client.call_tool("echo", {"text": text})
            if result.is_error or result.content[0].text != f"hi {text}":
                wrong.append(f"{text}: {result.content[0].text}")

    try:
        async with Client(sse_client(f"{cluster.front}/sse"), mode="legacy") as sse, \
                Client(cluster.front, mode="legacy") as streamable:
            drivers = [asyncio.create_task(drive("sse", sse)), asyncio.create_task(drive("streamable", streamable))]
            await asyncio.sleep(0.5)
            r = cluster.redis.client()
            keys = [key async for key in r.scan_iter(match="higress-ops:session:*")]
            await r.aclose()
            assert len(keys) == 2, keys
            holding = {nodes.node_of_slot(key_slot(k)).port for k in keys}
            sources = [s for s in nodes.masters() if s.port in holding]
            target = next(s for s in nodes.masters() if s.port not in holding)
            before = dict(counts)
            started = time.monotonic()
            for source in sources:  # every slot it serves, so the sessions' slots surely move
                await asyncio.to_thread(nodes.move_slots, source, target, nodes.slot_count(source))
            took = time.monotonic() - started
            assert {nodes.node_of_slot(key_slot(k)).port for k in keys} == {target.port}  # they moved
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.gather(*drivers)
        assert wrong == []
        assert all(counts[name] - before[name] > 20 for name in counts), (before, counts)
        record("Redis high availability", "Cluster reshard under SDK sessions via serve replicas: calls / failed",
               f"{sum(counts.values())} / 0 while {len(sources)} shard(s) moved in {took:.1f}s")
    finally:
        cluster.stop()
