"""RedisSessionStore against real redis-server processes: records, TTL, cross-replica frames, outages."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from higress_ops.config.model import RedisConfig, SecretRef
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.sessions.redis import REDELIVERY_WINDOW, RedisSessionStore, RedisSettingsError, parse_address
from tests.sessions.stores import frame, new_record, next_frame, open_store
from tests.support.redis import RedisServer, start_redis

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@asynccontextmanager
async def store(address: str, replica: str, ttl: float = 30, **config: object) -> AsyncIterator[RedisSessionStore]:
    password = config.pop("resolved_password", None)
    async with open_store(RedisConfig(address=address, **config), replica, ttl, password=password) as s:  # type: ignore[arg-type]
        yield s


@asynccontextmanager
async def raw(port: int, db: int = 0, password: str | None = None) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(host="127.0.0.1", port=port, db=db, password=password)
    try:
        yield client
    finally:
        await client.aclose()


async def test_record_round_trip_save_delete(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "a") as a, store(redis_server.address, "b") as b:
        record = new_record("rt-1", stream_replica="a")
        await a.create(record)
        seen = await b.get("rt-1")  # another replica reads what this one wrote
        assert seen is not None
        assert (seen.server, seen.transport, seen.protocol_version, seen.stream_replica) == (
            "higress-ops-mcp-server", "sse", "2024-11-05", "a")
        assert seen.client_info == {"name": "inspector", "version": "1.0", "extra": {}}
        assert seen.created == pytest.approx(record.created)
        seen.initialized, seen.log_level = True, "debug"
        await b.save(seen)
        again = await a.get("rt-1")
        assert again is not None and again.initialized and again.log_level == "debug"
        with pytest.raises(ValueError, match="already exists"):
            await a.create(new_record("rt-1"))
        await a.delete("rt-1")
        assert await b.get("rt-1") is None
        await b.save(seen)  # a late save must not resurrect a deleted session
        assert await a.get("rt-1") is None


async def test_unknown_and_malformed_ids_are_unknown(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "a") as a:
        for bad in ["", "x" * 300, "has space", "new\nline", "ünï"]:
            assert await a.get(bad) is None
        assert await a.get("never-created") is None


async def test_ttl_refreshed_by_get_then_expires(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "a", ttl=0.6) as a, raw(redis_server.port) as r:
        await a.create(new_record("ttl-1"))
        for _ in range(5):  # 1.25 s of use, twice the TTL: each get keeps it alive
            await asyncio.sleep(0.25)
            seen = await a.get("ttl-1")
            assert seen is not None
            assert seen.last_seen == pytest.approx(time.time(), abs=0.2)
            assert 400 < await r.pttl("higress-ops:session:ttl-1") <= 600
        await asyncio.sleep(0.8)
        assert await a.get("ttl-1") is None
        assert await r.exists("higress-ops:session:ttl-1") == 0


async def test_frames_cross_replicas_and_higress_publishes_reach_the_stream(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "a") as a, store(redis_server.address, "b") as b, \
            raw(redis_server.port) as r:
        async with a.open_stream("x-1") as stream:
            assert await b.deliver("x-1", frame({"id": 1})) is True
            assert await next_frame(stream) == frame({"id": 1})
            # What Higress's mcp-session filter publishes for a POST it handled.
            higress = b'event: message\ndata: {"jsonrpc":"2.0","id":2,"result":{}}\n\n'
            assert await r.publish("mcp-server-sse:x-1", higress) == 1
            assert await next_frame(stream) == higress
            for i in range(20):  # order is kept
                await b.deliver("x-1", frame({"id": 100 + i}))
            assert [await next_frame(stream) for _ in range(20)] == [frame({"id": 100 + i}) for i in range(20)]
        assert await b.deliver("x-1", frame({"id": 3})) is False  # nobody holds it any more
        assert await r.pubsub_numsub("mcp-server-sse:x-1") == [(b"mcp-server-sse:x-1", 0)]


async def test_one_pubsub_connection_for_many_sessions(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "many") as a, raw(redis_server.port) as r:
        async with AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(a.open_stream(f"m-{i}")) for i in range(50)]
            clients = [c for c in await r.client_list() if c.get("name") == "higress-ops:many"]
            subscribed = [c for c in clients if int(c["sub"]) > 0]
            assert len(subscribed) == 1, clients
            assert int(subscribed[0]["sub"]) == 50
            numsub = dict(await r.pubsub_numsub(*[f"mcp-server-sse:m-{i}" for i in range(50)]))
            assert set(numsub.values()) == {1}
            await r.publish("mcp-server-sse:m-37", b"event: message\ndata: 37\n\n")
            assert await next_frame(streams[37]) == b"event: message\ndata: 37\n\n"
        await asyncio.sleep(0.1)
        assert dict(await r.pubsub_numsub("mcp-server-sse:m-0")) == {b"mcp-server-sse:m-0": 0}


async def publishes(r: aioredis.Redis) -> int:
    stats = await r.info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


async def test_local_delivery_skips_redis(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "a") as a, store(redis_server.address, "b") as b, \
            raw(redis_server.port) as r, a.open_stream("local-1") as stream:
        before = await publishes(r)
        for i in range(10):
            assert await a.deliver("local-1", frame({"id": i})) is True
        assert [await next_frame(stream) for _ in range(10)] == [frame({"id": i}) for i in range(10)]
        assert await publishes(r) == before  # no PUBLISH for a stream held here
        assert await b.deliver("local-1", frame({"id": 99})) is True
        assert await publishes(r) == before + 1  # another replica's frame does go through Redis
        assert await next_frame(stream) == frame({"id": 99})


async def test_redis_killed_and_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="higress_ops.sessions")
    server = start_redis(tmp_path / "redis")
    try:
        async with store(server.address, "a") as a, store(server.address, "b") as b:
            await a.create(new_record("out-1", stream_replica="a"))
            async with a.open_stream("out-1") as stream:
                server.kill()
                started = time.monotonic()
                for call in (b.get("out-1"), b.create(new_record("out-2")), b.deliver("out-1", b"x"),
                             a.get("not-held-here")):
                    with pytest.raises(StoreUnavailable, match=r"session store unavailable .*replica"):
                        await call
                assert time.monotonic() - started < 1.0  # fail fast, no hang
                assert await a.healthy() is False
                # The stream and its POSTs share replica a: still served, record included.
                during = await a.get("out-1")
                assert during is not None and during.stream_replica == "a" and during.protocol_version == "2024-11-05"
                during.log_level = "info"
                await a.save(during)
                assert await a.deliver("out-1", frame({"during": True})) is True
                assert await next_frame(stream) == frame({"during": True})
                await asyncio.sleep(0.5)  # a is now in reconnect backoff

                server.start()
                back = time.monotonic()
                while True:
                    try:
                        if await b.deliver("out-1", frame({"after": True})):
                            break
                    except StoreUnavailable:
                        pass
                    assert time.monotonic() - back < 2.0, "not recovered within 2 s of Redis's return"
                    await asyncio.sleep(0.02)
                assert await next_frame(stream) == frame({"after": True})  # subscription restored
                await b.create(new_record("out-3"))
                assert await a.get("out-3") is not None
                assert await a.healthy() is True
        assert any("redis pub/sub lost" in m and "replica a" in m for m in caplog.messages)
        assert any("reconnected" in m for m in caplog.messages)
    finally:
        server.stop()


async def test_requirepass_and_nonzero_db(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cr3t-Pa55"
    server = start_redis(tmp_path / "redis", password=secret)
    try:
        async with store(server.address, "a", password=secret, db=3) as a, \
                store(server.address, "b", password=secret, db=3) as b, \
                raw(server.port, db=3, password=secret) as r3, raw(server.port, password=secret) as r0:
            await a.create(new_record("pw-1"))
            assert await r3.exists("higress-ops:session:pw-1") == 1
            assert await r0.exists("higress-ops:session:pw-1") == 0
            async with a.open_stream("pw-1") as stream:
                assert await b.deliver("pw-1", frame({"ok": 1})) is True
                assert await next_frame(stream) == frame({"ok": 1})
            stored = b"".join(v for v in (await r3.hgetall("higress-ops:session:pw-1")).values())
            assert secret.encode() not in stored

        bad = RedisSessionStore.from_config(RedisConfig(address=server.address, password="wrong-one", db=3),
                                            replica_id="c", ttl_seconds=30)
        with pytest.raises(StoreUnavailable, match="check /mcpServer/redis") as info:
            await bad.start()
        assert "wrong-one" not in str(info.value)
        nopass = RedisSessionStore.from_config(RedisConfig(address=server.address), replica_id="d", ttl_seconds=30)
        with pytest.raises(StoreUnavailable, match="refused replica d"):
            await nopass.start()
    finally:
        server.stop()
    assert not any(secret in m or "wrong-one" in m for m in caplog.messages)


async def test_password_secret_needs_the_kubernetes_source(redis_server: RedisServer) -> None:
    config = RedisConfig(address=redis_server.address, password_secret=SecretRef(name="redis", key="pw"))
    with pytest.raises(RedisSettingsError, match=r"/mcpServer/redis/passwordSecret.*redis key 'pw'"):
        RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30)
    # Resolved by the Kubernetes source: used as the password (this server has none, so use a no-auth check).
    resolved = RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30, password="from-secret")
    assert resolved.target.password == "from-secret"
    assert "from-secret" not in repr(resolved.target)


@pytest.mark.parametrize("address", ["localhost", "host:", ":6379", "host:99999", "a b:1", "host:6379:1", ""])
def test_bad_address_names_the_pointer(address: str) -> None:
    with pytest.raises(RedisSettingsError, match="/mcpServer/redis/address"):
        parse_address(address)


def test_good_addresses() -> None:
    assert parse_address("redis.higress-system.svc.cluster.local:6379") == (
        "redis.higress-system.svc.cluster.local", 6379)
    assert parse_address("[::1]:7000") == ("::1", 7000)


async def test_close_deregisters_streams(redis_server: RedisServer) -> None:
    async with store(redis_server.address, "b") as b, raw(redis_server.port) as r:
        a = RedisSessionStore.from_config(RedisConfig(address=redis_server.address), replica_id="a", ttl_seconds=30)
        await a.start()
        assert await a.hub.wait_connected(5)
        await a.create(new_record("dereg-1", stream_replica="a"))
        await b.create(new_record("dereg-2", stream_replica="b"))
        got: list[bytes] = []

        async def hold() -> None:
            async with a.open_stream("dereg-1") as stream:
                async for f in stream:
                    got.append(f)

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0.1)
        assert dict(await r.pubsub_numsub("mcp-server-sse:dereg-1"))[b"mcp-server-sse:dereg-1"] == 1
        await a.aclose()
        await asyncio.wait_for(holder, 2)  # the stream ended instead of hanging
        assert dict(await r.pubsub_numsub("mcp-server-sse:dereg-1"))[b"mcp-server-sse:dereg-1"] == 0
        record = await b.get("dereg-1")
        assert record is not None and record.stream_replica is None
        other = await b.get("dereg-2")
        assert other is not None and other.stream_replica == "b"
        assert await b.deliver("dereg-1", b"late") is False


async def test_a_closed_stream_stops_naming_its_replica(redis_server: RedisServer) -> None:
    """A publish nobody receives is retried only while the record names a holder: once the stream closed,
    delivering to its session answers False at once instead of after the redelivery window."""
    async with store(redis_server.address, "a") as a, store(redis_server.address, "b") as b:
        await a.create(new_record("rel-1", stream_replica="a"))
        async with a.open_stream("rel-1") as stream:
            assert await b.deliver("rel-1", frame({"n": 1})) is True
            assert await next_frame(stream) == frame({"n": 1})
        seen = await b.get("rel-1")
        assert seen is not None and seen.stream_replica is None
        started = time.monotonic()
        assert await b.deliver("rel-1", frame({"n": 2})) is False
        assert time.monotonic() - started < 0.5
        # While the record still names a holder whose subscription is gone, the publish is retried, then False.
        await b.save(replace(seen, stream_replica="gone-replica"))
        started = time.monotonic()
        assert await b.deliver("rel-1", frame({"n": 3})) is False
        assert REDELIVERY_WINDOW <= time.monotonic() - started < REDELIVERY_WINDOW + 1


async def test_hung_redis_fails_within_one_socket_timeout(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis")
    try:
        async with store(server.address, "a") as a:
            await a.create(new_record("hung-1"))
            os.kill(server.proc.pid, signal.SIGSTOP)  # accepts connections, never answers
            try:
                started = time.monotonic()
                with pytest.raises(StoreUnavailable, match="get failed: Timeout"):
                    await a.get("hung-1")
                assert time.monotonic() - started < 1.5
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            assert await a.get("hung-1") is not None
    finally:
        server.stop()
