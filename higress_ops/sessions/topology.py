"""Which pub/sub connection a stream's channel belongs on.

With one server, or the master Sentinel names, every channel shares one connection and plain SUBSCRIBE, as
Higress expects. In a Redis Cluster a sharded channel (SSUBSCRIBE, Redis 7) lives on the master serving its
hash slot, so the hub keeps one connection per master and asks here which one a channel goes to; `refresh`
re-reads the slot map after a failover or a resharding.
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from higress_ops.sessions.redis_client import REDIS_FAILURES, RedisClients

logger = logging.getLogger(__name__)

ONE_SHARD = "main"


class Topology(Protocol):
    sharded: bool  # SSUBSCRIBE/SPUBLISH instead of SUBSCRIBE/PUBLISH

    def shards(self) -> list[str]:
        """The shard names known now (each gets one connection)."""
        ...

    def shard_of(self, channel: bytes) -> str | None:
        """The shard a channel lives on; None while the slot map is unknown."""
        ...

    async def refresh(self) -> bool:
        """Re-read where channels live; False when no node answered."""
        ...

    def connect(self, shard: str) -> aioredis.Redis:
        """A one-connection client to the shard."""
        ...


class OneShard:
    """One server or a Sentinel-managed master: one connection, Higress's plain pub/sub."""

    sharded = False

    def __init__(self, clients: RedisClients) -> None:
        self._clients = clients

    def shards(self) -> list[str]:
        return [ONE_SHARD]

    def shard_of(self, channel: bytes) -> str | None:
        return ONE_SHARD

    async def refresh(self) -> bool:
        return True

    def connect(self, shard: str) -> aioredis.Redis:
        return self._clients.shard_connection()


class ClusterShards:
    """A Redis Cluster's masters, from the slot map of the store's own cluster client."""

    sharded = True

    def __init__(self, clients: RedisClients, cluster: RedisCluster) -> None:
        self._clients = clients
        self._cluster = cluster
        self._known = False

    def shards(self) -> list[str]:
        if not self._known:
            return []
        return sorted({node.name for node in self._cluster.get_primaries()})

    def shard_of(self, channel: bytes) -> str | None:
        if not self._known:
            return None
        try:
            return str(self._cluster.nodes_manager.get_node_from_slot(self._cluster.keyslot(channel)).name)
        except REDIS_FAILURES:  # a slot no master covers right now (mid-failover)
            return None

    async def refresh(self) -> bool:
        try:
            await self._cluster.nodes_manager.initialize()
        except REDIS_FAILURES as exc:
            logger.debug("cluster slot map not refreshed (%s)", type(exc).__name__)
            return False
        self._known = True
        return True

    def connect(self, shard: str) -> aioredis.Redis:
        host, _, port = shard.rpartition(":")
        return self._clients.shard_connection((host, int(port)))
