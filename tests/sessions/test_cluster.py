"""RedisSessionStore on a real Redis Cluster (3 masters, 3 replicas, `redis-cli --cluster create`): hash-tagged
keys, sharded pub/sub with one connection per shard, a master failover and a live resharding."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from redis.crc import key_slot

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.sessions.redis import RedisSessionStore
from tests.hardening.report import record
from tests.sessions.stores import CALL_BOUND, DeliveryLoad, frame, new_record, next_frame, open_store
from tests.support.redis import RedisClusterNodes, RedisServer, start_redis_cluster

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.redis_ha]


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[RedisClusterNodes]:
    started = start_redis_cluster(tmp_path / "cluster")
    yield started
    started.stop()


def cluster_config(nodes: RedisClusterNodes) -> RedisConfig:
    return RedisConfig(mode="cluster", addresses=tuple(nodes.addresses[:2]))  # seeds: the rest is discovered


def shard_of(nodes: RedisClusterNodes, sid: str) -> RedisServer:
    return nodes.node_of_slot(key_slot(f"mcp-server-sse:{{{sid}}}".encode()))


async def test_hash_tagged_keys_and_one_sharded_connection_per_master(nodes: RedisClusterNodes) -> None:
    config = cluster_config(nodes)
    sessions = [f"cl-{i}" for i in range(30)]
    async with open_store(config, "a") as a, open_store(config, "b") as b, AsyncExitStack() as stack:
        streams = {}
        for sid in sessions:
            await a.create(new_record(sid, stream_replica="a"))
            streams[sid] = await stack.enter_async_context(a.open_stream(sid))
        for sid in sessions:  # record and channel share the session's slot
            server = shard_of(nodes, sid)
            assert server.client().exists(f"higress-ops:session:{{{sid}}}") == 1
            assert await b.deliver(sid, frame({"to": sid})) is True
            assert await next_frame(streams[sid]) == frame({"to": sid})
        masters = nodes.masters()
        assert len({shard_of(nodes, sid).port for sid in sessions}) == 3  # the sessions span every shard
        for master in masters:
            mine = [c for c in master.client().client_list() if c.get("name") == "higress-ops:a"
                    and int(c.get("ssub", 0)) > 0]
            held = sum(shard_of(nodes, sid).port == master.port for sid in sessions)
            assert [int(c["ssub"]) for c in mine] == [held], (master.port, mine)  # one connection per shard
            assert not any(int(c.get("sub", 0)) for c in master.client().client_list())  # no plain SUBSCRIBE
        sid = sessions[7]  # what a foreign publisher on the same Redis does: SPUBLISH to the tagged channel
        assert shard_of(nodes, sid).client().execute_command("SPUBLISH", f"mcp-server-sse:{{{sid}}}", b"x") == 1
        assert await next_frame(streams[sid]) == b"x"
        assert a.hub.shard_names() == sorted(f"127.0.0.1:{m.port}" for m in masters)
        assert await a.healthy() and await b.healthy()


async def test_master_killed_other_shards_unaffected(nodes: RedisClusterNodes) -> None:
    config = cluster_config(nodes)
    sessions = [f"kf-{i}" for i in range(15)]
    async with open_store(config, "a") as a, open_store(config, "b") as b, AsyncExitStack() as stack:
        load = DeliveryLoad(a, b, sessions)
        tasks = await load.run(stack)
        await asyncio.sleep(0.5)
        victim = shard_of(nodes, sessions[0])
        on_victim = [sid for sid in sessions if shard_of(nodes, sid).port == victim.port]
        elsewhere = [sid for sid in sessions if sid not in on_victim]
        assert elsewhere, "every session on one shard: the test would not show isolation"
        victim.client().execute_command("WAIT", 1, 2000)
        victim.kill()
        killed = time.monotonic()
        recovered = await load.delivered_since(killed, timeout=30, among=on_victim)
        nodes.wait_ok()
        await load.settle()
        for task in tasks:
            task.cancel()
        assert load.failed_by.keys() <= set(on_victim), "a session on a healthy shard saw an error"
        assert sum(load.failed_by.get(sid, 0) for sid in on_victim) > 0, "the kill was never noticed"
        assert load.dropped == 0 and load.lost() == {} and load.in_order()
        assert load.slowest < CALL_BOUND, f"a call took {load.slowest:.1f}s"
        assert None not in [await b.get(sid) for sid in on_victim]  # records on the promoted replica
        deadline = time.monotonic() + 10
        while not (await a.healthy() and await b.healthy()):
            assert time.monotonic() < deadline, "not healthy again after the promotion"
            await asyncio.sleep(0.05)
    record("Redis high availability", "Cluster: SIGKILL one master -> its shard's streams delivering again (s)",
           f"{recovered:.2f}")
    record("Redis high availability", "Cluster failover: calls failed on the other shards", "0")


async def test_resharding_with_live_sessions_loses_no_frames(nodes: RedisClusterNodes) -> None:
    """`redis-cli --cluster reshard` moves the slots of live sessions (MIGRATE of their records, SUNSUBSCRIBE
    of their channels, MOVED/ASK for commands) while frames flow; every accepted frame arrives."""
    config = cluster_config(nodes)
    sessions = [f"rs-{i}" for i in range(15)]
    async with open_store(config, "a") as a, open_store(config, "b") as b, AsyncExitStack() as stack:
        load = DeliveryLoad(a, b, sessions)
        tasks = await load.run(stack)
        source = shard_of(nodes, sessions[0])
        target = next(m for m in nodes.masters() if m.port != source.port)
        moving = [sid for sid in sessions if shard_of(nodes, sid).port == source.port]
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await asyncio.to_thread(nodes.move_slots, source, target, nodes.slot_count(source))
        took = time.monotonic() - started
        assert all(shard_of(nodes, sid).port == target.port for sid in moving)  # they really moved
        await load.delivered_since(time.monotonic(), timeout=10)
        await load.settle()
        for task in tasks:
            task.cancel()
        assert load.dropped == 0 and load.lost() == {} and load.in_order()
        assert load.failed == 0
        accepted = sum(len(v) for v in load.accepted.values())
        for sid in moving:
            assert await b.get(sid) is not None
        channels = [f"mcp-server-sse:{{{sid}}}" for sid in moving]  # resubscribed where they live now
        assert dict(target.client().pubsub_shardnumsub(*channels)) == {c.encode(): 1 for c in channels}
    record("Redis high availability", "Cluster reshard of a whole shard with live sessions: frames accepted / lost",
           f"{accepted} / 0 in {took:.1f}s")


async def test_cluster_down_at_start_is_waited_for(nodes: RedisClusterNodes) -> None:
    """A replica starting while no cluster node answers serves what needs no Redis, reports unhealthy, and
    places its streams' subscriptions once the cluster is back."""
    nodes.stop()
    config = cluster_config(nodes)
    a = RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30)
    await a.start()
    try:
        assert await a.healthy() is False and a.hub.shard_names() == []
        with pytest.raises(StoreUnavailable):
            await a.create(new_record("late-1"))
        async with a.open_stream("late-1") as stream:
            assert await a.deliver("late-1", frame({"local": 1})) is True  # local delivery needs no Redis
            assert await next_frame(stream) == frame({"local": 1})
            for server in nodes.servers:  # same ports and nodes.conf: the cluster forms again
                server.start()
            nodes.wait_ok()
            assert await a.hub.wait_connected(15)
            async with open_store(config, "b") as b:
                await a.create(new_record("late-1", stream_replica="a"))
                assert await b.deliver("late-1", frame({"via": "cluster"})) is True
                assert await next_frame(stream, timeout=5) == frame({"via": "cluster"})
        assert await a.healthy()
    finally:
        await a.aclose()


async def test_moved_reply_to_ssubscribe_replaces_the_channel_and_keeps_the_connection(
        nodes: RedisClusterNodes, caplog: pytest.LogCaptureFixture) -> None:
    """A subscription sent to a node that no longer serves the slot (the hub's slot map was stale mid-reshard)
    is answered MOVED. The hub re-places that channel; the shard's connection, with frames for its other
    channels already on the wire, stays up (dropping it lost a frame in a resharding run)."""
    caplog.set_level(logging.WARNING, logger="higress_ops.sessions")
    config = cluster_config(nodes)
    async with open_store(config, "a") as a, open_store(config, "b") as b:
        sids = [f"mv-{i}" for i in range(40)]
        here = next(s for s in sids if shard_of(nodes, s).port == nodes.masters()[0].port)
        there = next(s for s in sids if shard_of(nodes, s).port != shard_of(nodes, here).port)
        for sid in (here, there):
            await a.create(new_record(sid, stream_replica="a"))
        async with a.open_stream(here) as near, a.open_stream(there) as far:
            wrong = f"127.0.0.1:{shard_of(nodes, here).port}"  # simulate the stale map: subscribe `there` here
            channel = a.channel_of(there).encode()
            await a.hub._shards[a.hub._placed[channel]].remove(channel)
            a.hub._placed[channel] = wrong
            await a.hub._shards[wrong].add(channel)
            assert await b.deliver(there, frame({"to": "there"})) is True  # re-placed on its real shard
            assert await next_frame(far) == frame({"to": "there"})
            assert await b.deliver(here, frame({"to": "here"})) is True
            assert await next_frame(near) == frame({"to": "here"})
        assert not any("pub/sub lost" in m for m in caplog.messages)
