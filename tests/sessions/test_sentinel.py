"""RedisSessionStore in Sentinel mode against a real group: 1 master, 2 replicas, 3 sentinels on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.sessions.redis import RedisSessionStore
from tests.hardening.report import record
from tests.sessions.stores import CALL_BOUND, DeliveryLoad, frame, new_record, next_frame, open_store
from tests.support.redis import SentinelGroup, start_sentinel_group

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90), pytest.mark.redis_ha]


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    started = start_sentinel_group(tmp_path / "sentinel")
    yield started
    started.stop()


def sentinel_config(group: SentinelGroup, **extra: object) -> RedisConfig:
    return RedisConfig(mode="sentinel", addresses=tuple(group.sentinel_addresses), master_name=group.master_name,
                       **extra)  # type: ignore[arg-type]


async def test_records_and_frames_go_through_the_master_sentinel_names(group: SentinelGroup) -> None:
    config = sentinel_config(group)
    async with open_store(config, "a") as a, open_store(config, "b") as b:
        await a.create(new_record("sn-1", stream_replica="a"))
        seen = await b.get("sn-1")
        assert seen is not None and seen.stream_replica == "a"
        master = group.master().client()
        assert master.exists("higress-ops:session:sn-1") == 1  # Higress's key and channel names in this mode
        async with a.open_stream("sn-1") as stream:
            assert await b.deliver("sn-1", frame({"id": 1})) is True
            assert await next_frame(stream) == frame({"id": 1})
            assert master.publish("mcp-server-sse:sn-1", b"from-higress") == 1
            assert await next_frame(stream) == b"from-higress"
            subscribed = [c for c in master.client_list() if c.get("name") == "higress-ops:a" and int(c["sub"]) > 0]
            assert len(subscribed) == 1  # one pub/sub connection, on the master
        assert await a.healthy() and await b.healthy()


async def test_wrong_master_name_is_a_clear_error_at_start(group: SentinelGroup) -> None:
    config = RedisConfig(mode="sentinel", addresses=tuple(group.sentinel_addresses), master_name="no-such-master")
    a = RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30)
    await a.start()  # the process starts; what needs Redis says why it cannot
    try:
        with pytest.raises(StoreUnavailable, match="no-such-master"):
            await a.create(new_record("x"))
        assert await a.healthy() is False
    finally:
        await a.aclose()


async def test_master_sigkilled_under_load(group: SentinelGroup, caplog: pytest.LogCaptureFixture) -> None:
    """Sentinel promotes a replica; both replicas of higress-ops follow it, streams resubscribe, every frame
    Redis accepted arrives in order, every failure was a StoreUnavailable, and no call hung."""
    caplog.set_level(logging.WARNING, logger="higress_ops.sessions")
    config = sentinel_config(group)
    sessions = [f"fo-{i}" for i in range(10)]
    async with open_store(config, "a") as a, open_store(config, "b") as b, AsyncExitStack() as stack:
        load = DeliveryLoad(a, b, sessions)
        tasks = await load.run(stack)
        await asyncio.sleep(0.5)
        group.master().client().execute_command("WAIT", 2, 2000)  # the records reached both replicas
        old = group.master()
        old.kill()
        killed = time.monotonic()
        recovered = await load.delivered_since(killed, timeout=30)
        group.wait_failover(old)
        assert (await b.get("fo-3")) is not None  # records survived on the promoted replica
        await b.create(new_record("after-failover"))
        assert await a.get("after-failover") is not None
        await load.settle()
        for task in tasks:
            task.cancel()
        assert load.failed > 0, "the kill was never noticed: the test did not test a failover"
        assert load.dropped == 0 and load.lost() == {} and load.in_order()
        assert load.slowest < CALL_BOUND, f"a call took {load.slowest:.1f}s"
        deadline = time.monotonic() + 10  # /readyz follows: both replicas healthy again on the new master
        while not (await a.healthy() and await b.healthy()):
            assert time.monotonic() < deadline, f"not healthy again: a {a.hub.connected}, b {b.hub.connected}"
            await asyncio.sleep(0.05)
    assert any("redis pub/sub lost" in m for m in caplog.messages)
    record("Redis high availability", "Sentinel: SIGKILL master -> every stream delivering again (s)",
           f"{recovered:.2f}")
    record("Redis high availability", "Sentinel failover: frames accepted / lost / calls failed fast",
           f"{sum(len(v) for v in load.accepted.values())} / 0 / {load.failed}")
