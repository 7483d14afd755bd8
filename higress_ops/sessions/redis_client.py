"""Every Redis client higress-ops opens, built in one place with one set of timeouts and credentials.

The session store, the pub/sub hub and the rate limiter all ask a `RedisClients` for their connections, so a
single `mcpServer.redis` block means the same thing to each of them in all three modes:

- single: one server at `address` (Higress's own form);
- sentinel: the master that the Sentinels name for `masterName`; each new connection asks them again, so a
  failover is followed without a restart;
- cluster: a Redis Cluster; commands are routed by slot (MOVED and ASK followed by redis-py), and pub/sub
  uses one plain connection per master (`shard_connection`), since sharded channels live on one shard.

Short socket timeouts and one immediate retry make a call against a Redis that is down fail fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from higress_ops.config.hostport import AddressError, parse_host_port
from higress_ops.config.model import RedisConfig, RedisMode, SecretRef

SOCKET_TIMEOUT = 1.0  # seconds a command may take before the store counts as unavailable
CONNECT_TIMEOUT = 0.5

CommandClient = aioredis.Redis | RedisCluster

# What a Redis call raises when Redis cannot serve it. redis-py's cluster errors (no reachable node, a slot no
# master covers) do not derive from RedisError, so catching RedisError alone lets them through as crashes.
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)


class RedisSettingsError(ValueError):
    """`mcpServer.redis` cannot be used as given; the message names the config pointer."""


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to reach Redis, credentials resolved. Its repr never shows a password."""

    mode: RedisMode
    nodes: tuple[tuple[str, int], ...]  # the server, the sentinels, or the cluster's seed nodes
    username: str | None
    password: str | None
    db: int
    master_name: str = ""
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    ca_data: str | None = None  # PEM from caSecret

    def __repr__(self) -> str:
        return f"RedisTarget({self.where})"

    @property
    def where(self) -> str:
        """For logs and errors: the mode and addresses, no credentials."""
        first = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)
        if self.mode == "sentinel":
            return f"redis sentinel master {self.master_name!r} via {first}"
        if self.mode == "cluster":
            return f"redis cluster via {first}"
        return f"redis {first} db {self.db}"


def parse_address(address: str, where: str = "/mcpServer/redis/address") -> tuple[str, int]:
    """`host:port` or `[v6]:port`, the forms the schema accepts."""
    try:
        return parse_host_port(address, where)
    except AddressError as exc:
        raise RedisSettingsError(str(exc)) from None


def target_from_config(config: RedisConfig, password: str | None = None) -> RedisTarget:
    """`password` is the value already read from `passwordSecret` (the Kubernetes source does that)."""
    field = {"single": "address", "sentinel": "sentinel/addresses", "cluster": "cluster/addresses"}[config.mode]
    if not config.addresses:
        raise RedisSettingsError("/mcpServer/redis: give exactly one of address, sentinel or cluster")
    nodes = tuple(parse_address(a, f"/mcpServer/redis/{field}" + ("" if config.mode == "single" else f"/{i}"))
                  for i, a in enumerate(config.addresses))
    if config.db < 0:
        raise RedisSettingsError(f"/mcpServer/redis/db: must be >= 0, got {config.db}")
    if config.mode == "cluster" and config.db != 0:
        raise RedisSettingsError("/mcpServer/redis/db: must be 0 with cluster: Redis Cluster has only db 0")
    if config.password_secret is not None and password is None:
        ref = config.password_secret
        raise RedisSettingsError(
            "/mcpServer/redis/passwordSecret: the password lives in Secret "
            f"{ref.namespace + '/' if ref.namespace else ''}{ref.name} key {ref.key!r}, which needs the "
            "Kubernetes config source to resolve; run with it, or set /mcpServer/redis/password instead")
    sentinel = config.sentinel_auth
    if sentinel.password_secret is not None and not sentinel.password:
        raise RedisSettingsError(_needs_kube("/mcpServer/redis/sentinel/passwordSecret", sentinel.password_secret,
                                             "/mcpServer/redis/sentinel/password"))
    if config.ca_secret is not None and not config.ca_data:
        raise RedisSettingsError(_needs_kube("/mcpServer/redis/caSecret", config.ca_secret, "/mcpServer/redis/caFile"))
    chosen = password if password is not None else config.password
    return RedisTarget(mode=config.mode, nodes=nodes, username=config.username or None, password=chosen or None,
                       db=config.db, master_name=config.master_name,
                       sentinel_username=config.sentinel_auth.username or None,
                       sentinel_password=config.sentinel_auth.password or None,
                       tls=config.tls, ca_file=config.ca_file or None, ca_data=config.ca_data or None)


def _needs_kube(where: str, ref: SecretRef, instead: str) -> str:
    return (f"{where}: Secret {ref.namespace + '/' if ref.namespace else ''}{ref.name} key {ref.key!r} is read by "
            f"the Kubernetes config source (serve --kube); from a file, set {instead} instead")


def _fail_fast() -> Retry:
    """One immediate retry covers a pooled connection that went stale across a restart or a failover; a timeout
    is not retried, so a hung Redis costs one socket timeout, not two. Every client gets it explicitly: redis-py's
    default (3 retries, backoff up to 10 s) made asking three dead Sentinels for the master take 23 s."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


class RedisClients:
    """Builds the clients for one target; every one gets the same timeouts, TLS settings and client name."""

    def __init__(self, target: RedisTarget, *, name: str, socket_timeout: float = SOCKET_TIMEOUT,
                 connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self.target = target
        self.socket_timeout = socket_timeout
        self.connect_timeout = connect_timeout
        self.client_name = name[:100].replace(" ", "_")
        self._sentinel: Sentinel | None = None

    @property
    def call_timeout(self) -> float:
        """The longest one Redis call may take, retries and redirections included, before it counts as failed."""
        return self.socket_timeout + 2 * self.connect_timeout

    @property
    def clustered(self) -> bool:
        return self.target.mode == "cluster"

    def _tls(self) -> dict[str, Any]:
        if not self.target.tls:
            return {}
        return {"ssl": True, "ssl_ca_certs": self.target.ca_file, "ssl_ca_data": self.target.ca_data,
                "ssl_cert_reqs": "required"}

    def _connection(self) -> dict[str, Any]:
        """What every data-node connection shares."""
        return {
            "username": self.target.username, "password": self.target.password,
            "socket_timeout": self.socket_timeout, "socket_connect_timeout": self.connect_timeout,
            "retry": _fail_fast(),
            "client_name": self.client_name, **self._tls(),
        }

    def commands(self, *, max_connections: int = 64) -> CommandClient:
        """The client for commands (records, scripts, PUBLISH/SPUBLISH, rate-limit windows)."""
        t = self.target
        if t.mode == "cluster":
            return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in t.nodes],
                                max_connections=max_connections, **self._connection())
        if t.mode == "sentinel":
            master: aioredis.Redis = self.sentinel().master_for(t.master_name, db=t.db, max_connections=max_connections,
                                                                **self._connection())
            return master
        host, port = t.nodes[0]
        return aioredis.Redis(host=host, port=port, db=t.db, max_connections=max_connections, **self._connection())

    def shard_connection(self, node: tuple[str, int] | None = None) -> aioredis.Redis:
        """A one-connection client for pub/sub: to `node` (a cluster master), else to the server or master."""
        if node is None:
            return self.commands(max_connections=1)  # type: ignore[return-value]  # never a cluster here
        host, port = node
        return aioredis.Redis(host=host, port=port, max_connections=1, **self._connection())

    def sentinel(self) -> Sentinel:
        """One Sentinel manager per target: each new master connection asks the Sentinels where the master is."""
        if self._sentinel is None:
            t = self.target
            self._sentinel = Sentinel(
                list(t.nodes), min_other_sentinels=0,
                sentinel_kwargs={"username": t.sentinel_username, "password": t.sentinel_password,
                                 "socket_timeout": self.socket_timeout, "retry": _fail_fast(),
                                 "socket_connect_timeout": self.connect_timeout, **self._tls()})
        return self._sentinel

    async def aclose(self) -> None:
        """Close the Sentinel connections, if any (command clients are closed by their owners)."""
        if self._sentinel is not None:
            for client in self._sentinel.sentinels:
                await client.aclose()
