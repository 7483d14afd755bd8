"""The running state of one replica: the config it serves, a server and MCP core per entry, the
session store, metrics, and what a hot reload changes.

The transport reads `host.routes` on every request; `apply` swaps in a new table atomically, so a
request sees either the old config or the new one, never half of each.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from higress_ops.auth import Authenticator, NoAuth
from higress_ops.config import ConfigError, McpServerConfig, Problem
from higress_ops.config.model import ServerEntry
from higress_ops.mcp.core import MAX_INFLIGHT, MAX_QUEUED, MAX_QUEUED_BYTES, McpCore
from higress_ops.metrics import Metrics
from higress_ops.ratelimit import make_limiter
from higress_ops.registry import Registry
from higress_ops.servers.base import McpServer
from higress_ops.servers.held import PROCESS, ByteLedger
from higress_ops.sessions.base import STREAM_QUEUE_BYTES, SessionStore, StoreUnavailable
from higress_ops.sessions.memory import MemorySessionStore
from higress_ops.sessions.quota import SessionQuota
from higress_ops.transport.guards import DEFAULT_BODY_LIMIT
from higress_ops.transport.keepalive import KeepAlives
from higress_ops.transport.peers import parse_networks
from higress_ops.transport.routing import MatchList, RouteTable
from higress_ops.transport.security import Gate, HostPolicy
from higress_ops.transport.streams import StreamHandle

logger = logging.getLogger(__name__)


STORE_DEGRADED = ("degraded: the session store is unreachable; new and stored sessions get 503 until it returns, "
                  "stateless (2026-07-28) calls are served")


def default_replica_id() -> str:
    return os.environ.get("HIGRESS_OPS_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class HostSettings:
    session_ttl: float = 1800.0  # idle seconds before a session is gone
    keepalive: float = 15.0  # seconds between SSE keep-alive comments
    body_limit: int = DEFAULT_BODY_LIMIT
    allowed_origins: tuple[str, ...] = ()
    drain_timeout: float = 10.0  # how long SIGTERM waits for in-flight calls
    admin_port: int | None = None  # /healthz, /readyz, /metrics answer only on this local port
    loopback: bool = True  # bound to loopback: Host must be a loopback name (DNS-rebinding defence)
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For is believed
    public_url: str | None = None  # scheme://host[:port] clients use, for the URLs the server hands out
    max_sessions: int = 10_000  # per replica
    max_sessions_per_identity: int = 1_000
    max_batch: int = 32  # messages in one JSON-RPC batch
    max_inflight: int = MAX_INFLIGHT  # tool calls running at once per session (per identity without one)
    max_queued: int = MAX_QUEUED  # calls waiting for one of those, first come first served
    max_queued_bytes: int = MAX_QUEUED_BYTES  # and their arguments together
    max_upstream_bytes: int = PROCESS  # upstream answers all calls in progress may hold
    queue_bytes: int = STREAM_QUEUE_BYTES  # a stream's backlog before its client is disconnected


@dataclass
class Served:
    """One servers[] entry as served: its server, its core, and the streams it holds here."""

    entry: ServerEntry
    server: McpServer
    core: McpCore
    streams: dict[str, StreamHandle] = field(default_factory=dict)  # streams held on this replica

    @property
    def name(self) -> str:
        return self.entry.name


class Host:
    def __init__(self, config: McpServerConfig, *, registry: Registry, replica_id: str | None = None,
                 settings: HostSettings | None = None, store: SessionStore | None = None,
                 redis_password: str | None = None, auth: Authenticator | None = None) -> None:
        self.registry = registry
        self.replica_id = replica_id or default_replica_id()
        self.settings = settings = settings or HostSettings()
        self.metrics = Metrics()
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.gate = Gate(HostPolicy(loopback=settings.loopback, allowed_hosts=settings.allowed_hosts,
                                    allowed_origins=settings.allowed_origins), auth or NoAuth(), self.trusted_proxies,
                         public_url=settings.public_url)
        self.ledger = ByteLedger(total=settings.max_upstream_bytes)
        self.keepalives = KeepAlives(settings.keepalive)  # one timer for every stream held here
        self.quota = SessionQuota(max_total=settings.max_sessions, max_per_principal=settings.max_sessions_per_identity,
                                  ttl_seconds=settings.session_ttl)
        self.store: SessionStore = store or make_store(config, self.replica_id, settings, redis_password)
        self._redis_password = redis_password
        self.limiter = make_limiter(config, redis_password)
        self.config = config
        self.servers: dict[str, Served] = {entry.name: self._build(entry) for entry in config.servers}
        self.routes = self._route_table(config, self.servers)
        self.rejected: ConfigError | None = None
        self.stopping = asyncio.Event()
        self.inflight: set[asyncio.Task[Any]] = set()
        self.followers: list[Callable[[Host], Coroutine[Any, Any, None]]] = []  # config sources following changes
        self._background: list[asyncio.Task[None]] = []
        self._started = False

    async def start(self) -> None:
        await self.store.start()
        if isinstance(self.store, MemorySessionStore):
            memory = self.store
            for transport in ("sse", "streamable"):
                self.metrics.track_sessions(transport, lambda t=transport: memory.count(t))  # type: ignore[misc]
        else:
            self.metrics.track_sessions("sse", lambda: sum(len(s.streams) for s in self.servers.values()))
        self._started = True
        self._background = [asyncio.create_task(follow(self)) for follow in self.followers]
        logger.info("serving", extra={"servers": sorted(self.servers), "store": type(self.store).__name__})

    # -- hot reload -------------------------------------------------------------------------------

    async def apply(self, config: McpServerConfig) -> dict[str, list[str]]:
        """Serve a new validated config: rebuild only what changed; untouched servers keep their sessions."""
        old = self.servers
        report: dict[str, list[str]] = {"added": [], "removed": [], "changed": [], "kept": []}
        try:
            new: dict[str, Served] = {}
            for entry in config.servers:
                current = old.get(entry.name)
                if current is not None and current.entry == entry:
                    new[entry.name] = current
                    report["kept"].append(entry.name)
                else:
                    new[entry.name] = self._build(entry)
                    report["changed" if current is not None else "added"].append(entry.name)
            routes = self._route_table(config, new)
        except Exception as exc:
            self.reject(ConfigError([Problem("", f"could not build the new servers: {exc}")]))
            raise
        if config.redis != self.config.redis:
            logger.warning("mcpServer.redis changed; the session store keeps its old settings until a restart")
        report["removed"] = [name for name in old if name not in new]
        if config.rate_limit != self.config.rate_limit:
            old_limiter, self.limiter = self.limiter, make_limiter(config, self._redis_password)
            for served in new.values():
                served.core.limiter = self.limiter
            if old_limiter is not None:
                await old_limiter.aclose()
        self.config, self.servers, self.routes, self.rejected = config, new, routes, None
        for name in report["removed"] + report["changed"]:
            await self._retire(old[name])
        self.metrics.reloads.labels("applied").inc()
        logger.info("config applied", extra=report)
        return report

    def reject(self, error: ConfigError) -> None:
        """Keep serving the last good config; /readyz and a metric show the rejected update."""
        self.rejected = error
        self.metrics.reloads.labels("rejected").inc()
        logger.error("config update rejected; still serving the last good config",
                     extra={"problems": [str(p) for p in error.problems]})

    async def _retire(self, served: Served) -> None:
        for handle in list(served.streams.values()):
            handle.end()  # a legacy stream's session is deleted as its stream closes
        with suppress(Exception):
            await served.core.aclose()
        try:
            await served.server.aclose()
        except Exception:
            logger.exception("server close failed", extra={"server": served.name})

    # -- lifecycle --------------------------------------------------------------------------------

    def track(self, task: asyncio.Task[Any]) -> None:
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    def begin_shutdown(self) -> None:
        """SIGTERM: end every stream now; in-flight calls get `drain_timeout` to finish."""
        self.stopping.set()
        for served in self.servers.values():
            for handle in list(served.streams.values()):
                handle.end()

    async def use_redis_password(self, password: str | None) -> None:
        """The Redis password changed (its Secret did): reconnect with a new store; held streams end and
        their clients reconnect, sessions themselves live in Redis and carry on."""
        if password == self._redis_password or self.config.redis is None:
            return
        store = make_store(self.config, self.replica_id, self.settings, password)
        await store.start()
        old, self.store, self._redis_password = self.store, store, password
        for served in self.servers.values():
            for handle in list(served.streams.values()):
                handle.end()
        await old.aclose()

    async def aclose(self) -> None:
        for task in self._background:
            task.cancel()
        self.begin_shutdown()
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=self.settings.drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                logger.warning("shutdown cancelled calls still running", extra={"count": len(pending)})
        for served in self.servers.values():
            await self._retire(served)
        if self._started:
            await self.store.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
        await self.gate.auth.aclose()

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready while the process serves and is not stopping. A session store that is down is reported as
        degraded, not as unready: Redis is shared, so an unready answer would take every replica out of its
        Service at once, and then even what needs no session (2026-07-28 calls) would have nowhere to go."""
        detail: dict[str, Any] = {"replica": self.replica_id, "servers": sorted(self.servers)}
        try:
            healthy = await self.store.healthy()
        except StoreUnavailable:
            healthy = False
        detail["store"] = "ok" if healthy else STORE_DEGRADED
        if self.rejected is not None:
            detail["config"] = "stale: the last update was rejected, serving the previous config"
            detail["problems"] = [str(p) for p in self.rejected.problems]
        else:
            detail["config"] = "ok"
        ready = not self.stopping.is_set()
        if self.stopping.is_set():
            detail["stopping"] = True
        return ready, detail

    # -- building ---------------------------------------------------------------------------------

    def _build(self, entry: ServerEntry) -> Served:
        server = self.registry.build(entry)
        settings = self.settings
        core = McpCore(server, on_tool_call=self.metrics.tool_observer(entry.name), limiter=self.limiter,
                       max_inflight=settings.max_inflight, max_queued=settings.max_queued,
                       max_queued_bytes=settings.max_queued_bytes, ledger=self.ledger)
        return Served(entry, server, core)

    @staticmethod
    def _route_table(config: McpServerConfig, servers: dict[str, Served]) -> RouteTable[Served]:
        table: RouteTable[Served] = RouteTable(MatchList(config.match_list))
        for served in servers.values():
            entry = served.entry
            table.add(entry.path, entry.domain_list, "message", served)
            table.add(entry.path + config.sse_path_suffix, entry.domain_list, "sse", served)
        return table


def make_store(config: McpServerConfig, replica_id: str, settings: HostSettings,
               redis_password: str | None) -> SessionStore:
    ttl = settings.session_ttl
    if config.redis is None:
        return MemorySessionStore(replica_id=replica_id, ttl_seconds=ttl, queue_bytes=settings.queue_bytes)
    from higress_ops.sessions.redis import RedisSessionStore

    return RedisSessionStore.from_config(config.redis, replica_id=replica_id, ttl_seconds=ttl,
                                         password=redis_password, queue_bytes=settings.queue_bytes)
