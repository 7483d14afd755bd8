"""In-process tier: every resource a client can grow is bounded, and over a bound the answer is a clear 4xx
(or a JSON-RPC error), never a 5xx: session counts, initialize state, batches, calls in flight, nesting
depth, argument size, the 2026-07-28 envelope's params, and store outages that reveal nothing internal."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support.asgi import BOTH, INIT, echo_block, in_process, rpc, stateless
from tests.support.procs import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
V2025_03 = {**INIT, "params": {**INIT["params"], "protocolVersion": "2025-03-26"}}


async def test_initialize_state_is_capped() -> None:
    async with in_process() as client:
        big = {**INIT, "params": {**INIT["params"], "capabilities": {"experimental": {"x": "y" * 20_000}}}}
        reply = await client.http.post("/e", json=big, headers=BOTH)
        assert reply.status_code == 200 and "mcp-session-id" not in reply.headers
        assert reply.json()["error"]["code"] == -32602 and "16384-byte limit" in reply.json()["error"]["message"]


async def test_sessions_per_identity_and_per_replica() -> None:
    async with in_process(max_sessions_per_identity=3, max_sessions=5) as client:
        ids = [await client.initialize() for _ in range(3)]
        over = await client.http.post("/e", json=INIT, headers=BOTH)
        assert over.status_code == 429 and over.headers["retry-after"] == "30"
        assert "maximum of 3 open sessions" in over.json()["error"]["message"]
        assert (await client.http.delete("/e", headers={"Mcp-Session-Id": ids[0]})).status_code == 200
        await client.initialize()  # a freed slot is usable again
        other = {"X-Forwarded-For": "ignored"}  # not a trusted proxy: still the same address
        assert (await client.http.post("/e", json=INIT, headers={**BOTH, **other})).status_code == 429
    async with in_process(max_sessions=2) as client:
        for _ in range(2):
            await client.initialize()
        full = await client.http.post("/e", json=INIT, headers=BOTH)
        assert full.status_code == 503 and full.headers["retry-after"] == "30"
        assert "maximum number of sessions" in full.json()["error"]["message"]


async def test_batches_only_on_2025_03_26_and_bounded() -> None:
    async with in_process(max_batch=4) as client:
        modern = await client.initialize()
        batch = [rpc("ping", id=i) for i in range(2)]
        refused = await client.http.post("/e", json=batch, headers={**BOTH, "Mcp-Session-Id": modern})
        assert refused.status_code == 400 and "only allowed by protocol 2025-03-26" in refused.text
        old = (await client.http.post("/e", json=V2025_03, headers=BOTH)).headers["mcp-session-id"]
        ok = await client.http.post("/e", json=batch, headers={**BOTH, "Mcp-Session-Id": old})
        assert ok.status_code == 200 and [r["id"] for r in ok.json()] == [0, 1]
        too_many = await client.http.post("/e", json=[rpc("ping", id=i) for i in range(5)],
                                          headers={**BOTH, "Mcp-Session-Id": old})
        assert too_many.status_code == 400 and "over the limit of 4" in too_many.text
        from higress_ops.sessions.base import SessionRecord

        for version, status in (("2024-11-05", 400), ("2025-03-26", 202)):  # legacy SSE sessions too
            sid = f"legacy-{version}"
            await client.host.store.create(SessionRecord(id=sid, server="e", transport="sse",
                                                         protocol_version=version, principal="none:anonymous"))
            reply = await client.http.post(f"/e?sessionId={sid}", json=batch,
                                           headers={"Content-Type": "application/json"})
            assert reply.status_code == status, reply.text


async def test_parallel_calls_queue_first_come_first_served_then_are_refused() -> None:
    async with in_process(max_inflight=2, max_queued=2) as client:
        sid = (await client.http.post("/e", json=V2025_03, headers=BOTH)).headers["mcp-session-id"]
        calls = [rpc("tools/call", id=i, name="sleep", arguments={"seconds": 0.3}) for i in range(5)]
        started = time.monotonic()
        reply = await client.http.post("/e", json=calls, headers={**BOTH, "Mcp-Session-Id": sid})
        elapsed = time.monotonic() - started
        assert reply.status_code == 200
        answers = {r["id"]: r for r in reply.json()}
        assert [i for i, r in answers.items() if "result" in r] == [0, 1, 2, 3]  # two ran, two waited their turn
        refused = answers[4]["error"]
        assert refused["code"] == -32029 and refused["data"] == {"retryAfterSeconds": 1}
        assert "runs 2 and has 2 waiting" in refused["message"]
        assert elapsed >= 0.6  # the two queued calls ran after the first two, not beside them
        other = await client.initialize()  # another session is not affected
        calls = [client.http.post("/e", json=rpc("tools/call", name="sleep", arguments={"seconds": 0.1}),
                                  headers={**BOTH, "Mcp-Session-Id": other}) for _ in range(2)]
        assert all("result" in r.json() for r in await asyncio.gather(*calls))
        assert client.host.servers["e"].core.slots.running_for(sid) == 0  # every slot was given back


async def test_queued_calls_are_bounded_in_bytes_and_cancellable() -> None:
    async with in_process(max_inflight=1, max_queued=8, max_queued_bytes=40_000) as client:
        sid = (await client.http.post("/e", json=V2025_03, headers=BOTH)).headers["mcp-session-id"]
        calls = [rpc("tools/call", id=0, name="sleep", arguments={"seconds": 0.5})] + [
            rpc("tools/call", id=i, name="echo", arguments={"text": "x" * 15_000}) for i in range(1, 5)]
        reply = await client.http.post("/e", json=calls, headers={**BOTH, "Mcp-Session-Id": sid})
        answers = {r["id"]: r for r in reply.json()}
        assert [i for i, r in answers.items() if "error" in r] == [3, 4]  # two 15 KB calls fit in 40 KB, not four
        core = client.host.servers["e"].core
        slow = client.http.post("/e", json=[rpc("tools/call", id=10, name="sleep", arguments={"seconds": 0.5}),
                                            rpc("tools/call", id=11, name="sleep", arguments={"seconds": 0.5})],
                                headers={**BOTH, "Mcp-Session-Id": sid})
        pending = asyncio.ensure_future(slow)
        while core.slots.waiting_for(sid) == 0:
            await asyncio.sleep(0.01)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 11}}
        assert (await client.http.post("/e", json=cancel, headers={**BOTH, "Mcp-Session-Id": sid})).status_code == 202
        answers = {r["id"]: r for r in (await pending).json()}
        assert answers[11]["error"]["code"] == -32800 and "result" in answers[10]  # cancelled while it waited
        assert (core.slots.running_for(sid), core.slots.waiting_for(sid)) == (0, 0)


async def test_2026_calls_count_against_their_identity() -> None:
    async with in_process(max_inflight=1, max_queued=1) as client:
        body, headers = stateless("tools/call", name="sleep", arguments={"seconds": 0.3})
        replies = await asyncio.gather(*(client.http.post("/e", json=body, headers=headers) for _ in range(3)))
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [200, 200, 429]  # one ran, one waited, one was refused: no session, same address
        refused = next(r for r in replies if r.status_code == 429)
        assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == -32029


@pytest.mark.parametrize("depth", [65, 1_000, 200_000])
async def test_deep_nesting_is_a_parse_error(depth: int) -> None:
    async with in_process() as client:
        sid = await client.initialize()
        body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":' + \
            b"[" * depth + b"]" * depth + b"}}}"
        reply = await client.http.post("/e", content=body, headers={**BOTH, "Mcp-Session-Id": sid})
        assert reply.status_code == 400 and reply.json()["error"]["code"] == -32700


async def test_tool_arguments_are_capped_before_validation() -> None:
    async with in_process() as client:
        sid = await client.initialize()
        reply = await client.http.post("/e", json=rpc("tools/call", name="echo", arguments={"text": "x" * 70_000}),
                                       headers={**BOTH, "Mcp-Session-Id": sid})
        assert reply.status_code == 200 and reply.json()["error"]["code"] == -32602
        assert "over 65536 bytes" in reply.json()["error"]["message"]


@pytest.mark.parametrize("method", ["tools/list", "tools/call"])
@pytest.mark.parametrize("params", ["a string", [1, 2], None, 7])
async def test_2026_params_that_are_not_an_object_are_4xx(params: Any, method: str) -> None:
    async with in_process() as client:
        body, headers = stateless(method)
        body["params"] = params
        reply = await client.http.post("/e", json=body, headers=headers)
        assert 400 <= reply.status_code < 500 and "error" in reply.json()


async def test_store_outage_tells_the_client_nothing_internal() -> None:
    port = free_port()  # nothing listens: Redis is down
    async with in_process(echo_block(redis={"address": f"127.0.0.1:{port}"})) as client:
        reply = await client.http.post("/e", json=INIT, headers=BOTH)
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        text = reply.text
        assert "session store is unavailable" in text
        assert str(port) not in text and "127.0.0.1" not in text and client.host.replica_id not in text
