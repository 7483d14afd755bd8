"""The three Redis deployments the replica scenarios run on, each behind one small interface: the config block
that points higress-ops at it, a raw client for checking what is stored, the key and channel names, how many
publishes crossed it, and the master to kill."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from tests.support.redis import (
    RedisClusterNodes,
    RedisServer,
    SentinelGroup,
    start_redis,
    start_redis_cluster,
    start_sentinel_group,
)

MODES = ("single", "sentinel", "cluster")


@dataclass
class Backend:
    mode: str
    single: RedisServer | None = None
    group: SentinelGroup | None = None
    nodes: RedisClusterNodes | None = None

    def redis_block(self) -> dict[str, Any]:
        """`mcpServer.redis` as a user writes it for this deployment."""
        if self.group is not None:
            return {"sentinel": {"masterName": self.group.master_name, "addresses": self.group.sentinel_addresses}}
        if self.nodes is not None:
            return {"cluster": {"addresses": self.nodes.addresses[:3]}}
        assert self.single is not None
        return {"address": self.single.address}

    def client(self) -> aioredis.Redis | RedisCluster:
        """A raw client on the current master(s), for checking what higress-ops stored."""
        if self.nodes is not None:
            return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", s.port) for s in self.nodes.alive()])
        server = self.group.master() if self.group is not None else self.single
        assert server is not None
        return aioredis.Redis(host="127.0.0.1", port=server.port)

    def key(self, session_id: str) -> str:
        return f"higress-ops:session:{{{session_id}}}" if self.nodes else f"higress-ops:session:{session_id}"

    def publishes(self) -> int:
        """PUBLISH (single, sentinel) or SPUBLISH (cluster) calls Redis has served, summed over masters."""
        servers = self.nodes.masters() if self.nodes else [self.group.master() if self.group else self.single]
        total = 0
        for server in servers:
            assert server is not None
            stats = server.client().info("commandstats")
            total += sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("publish", "spublish"))
        return total

    def master_of(self, session_id: str) -> RedisServer:
        """The master holding this session's record and channel: the one to kill."""
        if self.nodes is not None:
            return self.nodes.node_of_slot(key_slot(self.key(session_id).encode()))
        server = self.group.master() if self.group is not None else self.single
        assert server is not None
        return server

    def wait_recovered(self, killed: RedisServer) -> None:
        """Until Redis serves again without the killed process (a promotion; a restart for a single server)."""
        if self.group is not None:
            self.group.wait_failover(killed)
        elif self.nodes is not None:
            self.nodes.wait_ok()
        else:
            killed.start()

    def stop(self) -> None:
        for part in (self.single, self.group, self.nodes):
            if part is not None:
                part.stop()


def start_backend(mode: str, workdir: Path) -> Backend:
    if mode == "sentinel":
        return Backend(mode, group=start_sentinel_group(workdir / "sentinel"))
    if mode == "cluster":
        return Backend(mode, nodes=start_redis_cluster(workdir / "cluster"))
    return Backend(mode, single=start_redis(workdir / "redis"))
