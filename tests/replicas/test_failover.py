"""Redis failures under running `higress-ops serve` replicas: a Sentinel or Cluster master SIGKILLed while a
legacy SSE session's POSTs flow, and a Cluster resharded under live SDK sessions behind the front Envoy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from redis.crc import key_slot

from tests.hardening.report import record
from tests.replicas.cluster import (
    INITIALIZE,
    PATH,
    STREAMABLE_HEADERS,
    echo_call,
    make_cluster,
    next_message,
    rpc,
    sse_events,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.redis_ha]


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
            ready: set[tuple[int, str]] = set()
            recovered = None
            call = 100
            while recovered is None:
                assert time.monotonic() - killed < 30, f"no delivery 30 s after the kill: {statuses}"
                call += 1
                started = time.monotonic()
                reply = await http.post(on_b, json=rpc("tools/call", echo_call(f"c{call}"), id=call))
                assert time.monotonic() - started < 6, "a POST hung"
                statuses.add(reply.status_code)
                if recovered is None:  # /readyz reflects the outage while it lasts, without leaving the Service
                    answer = await http.get(f"{b.admin_url}/readyz")
                    ready.add((answer.status_code, answer.json()["store"].split(":")[0]))
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
            assert (200, "degraded") in ready and {status for status, _ in ready} == {200}, \
                f"/readyz never showed the outage, or failed: {ready}"
            cluster.redis.wait_recovered(master)
            for i in range(5):
                reply = await http.post(f"{b.url}{PATH}", json=rpc("tools/call", echo_call(f"s{i}"), id=300 + i),
                                        headers=session)
                assert reply.status_code == 200 and f"hi s{i}" in reply.text
            deadline = time.monotonic() + 10
            while not a.ready() or not b.ready():
                assert time.monotonic() < deadline, "a replica is not ready after the promotion"
                await asyncio.sleep(0.1)
        assert a.alive and b.alive
        if recovered is not None:
            record("Redis high availability", f"{mode}: serve replicas, SIGKILL master -> legacy SSE POSTs answered "
                   "again (s)", f"{recovered:.2f}")
    finally:
        cluster.stop()


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
            try:
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
            finally:  # the calls end before the clients close, so a failure above is the one reported
                stop.set()
                await asyncio.gather(*drivers)
        assert wrong == []
        assert all(counts[name] - before[name] > 20 for name in counts), (before, counts)
        record("Redis high availability", "Cluster reshard under SDK sessions via serve replicas: calls / failed",
               f"{sum(counts.values())} / 0 while {len(sources)} shard(s) moved in {took:.1f}s")
    finally:
        cluster.stop()
