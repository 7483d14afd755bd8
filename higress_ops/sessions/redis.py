"""Session records and stream delivery in Redis, so several replicas behave as one.

Records live in a hash `higress-ops:session:<id>` (fields `record` JSON, `owner`, `last_seen`)
whose TTL every read refreshes; stream frames travel on Higress's channel `mcp-server-sse:<id>`
in Higress's SSE framing, so a Higress gateway can share the Redis. Short socket timeouts and no
retry backoff make calls fail fast with `StoreUnavailable` while Redis is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, replace
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import (
    SSE_CHANNEL_PREFIX,
    STREAM_QUEUE_BYTES,
    FrameStream,
    SessionRecord,
    StoreUnavailable,
)
from higress_ops.sessions.pubsub import ChannelHub, redact

logger = logging.getLogger(__name__)

KEY_PREFIX = "higress-ops:session:"
_SESSION_ID = re.compile(r"[\x21-\x7e]{1,256}")  # visible ASCII, as Mcp-Session-Id requires

# Each script acts only on an existing key: a late save or read never resurrects a deleted session.
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2], 'last_seen', ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[4])
return 1
"""
_TOUCH = """
if redis.call('exists', KEYS[1]) == 0 then return false end
redis.call('hset', KEYS[1], 'last_seen', ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[2])
return redis.call('hmget', KEYS[1], 'record', 'owner', 'last_seen')
"""
_SAVE = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2], 'last_seen', ARGV[3])
redis.call('pexpire', KEYS[1], ARGV[4])
return 1
"""
_RELEASE = """
if redis.call('hget', KEYS[1], 'owner') == ARGV[1] then redis.call('hset', KEYS[1], 'owner', '') return 1 end
return 0
"""


class RedisSettingsError(ValueError):
    """`mcpServer.redis` cannot be used as given; the message names the config pointer."""


@dataclass(frozen=True)
class RedisTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    db: int

    def __repr__(self) -> str:  # the password never reaches a log line
        return f"RedisTarget({self.host}:{self.port}, db={self.db})"


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port`, as Higress's redis address."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([A-Za-z0-9.\-_]+):(\d{1,5})", address.strip())
    if not match:
        raise RedisSettingsError(f"/mcpServer/redis/address: expected host:port, got {address!r}")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 < port < 65536:
        raise RedisSettingsError(f"/mcpServer/redis/address: port {port} is out of range 1-65535")
    return host, port


def target_from_config(config: RedisConfig, password: str | None = None) -> RedisTarget:
    """`password` is the value already read from `passwordSecret` (the Kubernetes source does that)."""
    host, port = parse_address(config.address)
    if config.db < 0:
        raise RedisSettingsError(f"/mcpServer/redis/db: must be >= 0, got {config.db}")
    if config.password_secret is not None and password is None:
        ref = config.password_secret
        raise RedisSettingsError(
            "/mcpServer/redis/passwordSecret: the password lives in Secret "
            f"{ref.namespace + '/' if ref.namespace else ''}{ref.name} key {ref.key!r}, which needs the "
            "Kubernetes config source to resolve; run with it, or set /mcpServer/redis/password instead")
    chosen = password if password is not None else config.password
    return RedisTarget(host=host, port=port, username=config.username or None, password=chosen or None,
                       db=config.db)


def channel_of(session_id: str) -> str:
    return SSE_CHANNEL_PREFIX + session_id


class RedisSessionStore:
    """SessionStore over Redis: records with a sliding TTL, frames over one multiplexed subscription."""

    def __init__(
        self,
        target: RedisTarget,
        *,
        replica_id: str,
        ttl_seconds: float,
        socket_timeout: float = 1.0,
        connect_timeout: float = 0.5,
        backoff_max: float = 0.5,
        queue_bytes: int = STREAM_QUEUE_BYTES,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")
        self.target = target
        self.replica_id = replica_id
        self.ttl_seconds = ttl_seconds
        self._socket_timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._client = self._new_client(max_connections=64)
        self._create = self._client.register_script(_CREATE)
        self._touch = self._client.register_script(_TOUCH)
        self._save = self._client.register_script(_SAVE)
        self._release = self._client.register_script(_RELEASE)
        self._held: dict[str, SessionRecord] = {}  # records of sessions whose stream is held here
        self.hub = ChannelHub(lambda: self._new_client(max_connections=1), replica_id=replica_id,
                              channel_of=channel_of, subscribe_timeout=socket_timeout, backoff_max=backoff_max,
                              queue_bytes=queue_bytes)
        self.hub.on_reconnect = self._restore_held

    @classmethod
    def from_config(cls, config: RedisConfig, *, replica_id: str, ttl_seconds: float,
                    password: str | None = None, **options: Any) -> RedisSessionStore:
        return cls(target_from_config(config, password), replica_id=replica_id, ttl_seconds=ttl_seconds, **options)

    def _new_client(self, *, max_connections: int) -> aioredis.Redis:
        t = self.target
        return aioredis.Redis(
            host=t.host, port=t.port, db=t.db, username=t.username, password=t.password,
            socket_timeout=self._socket_timeout, socket_connect_timeout=self._connect_timeout,
            # One immediate retry covers a pooled connection that went stale across a Redis restart;
            # a timeout is not retried, so a hung Redis costs one socket timeout, not two.
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)), max_connections=max_connections,
            client_name=f"higress-ops:{self.replica_id}"[:100].replace(" ", "_"),
        )

    @property
    def where(self) -> str:
        return f"redis {self.target.host}:{self.target.port} db {self.target.db}"

    async def start(self) -> None:
        """Begin the subscription; a Redis that is down is waited for in the background, but
        credentials or a db Redis refuses are configuration errors and fail here."""
        try:
            await self._client.ping()
        except (AuthenticationError, ResponseError) as exc:
            await self._client.aclose()
            raise StoreUnavailable(
                f"{self.where} refused replica {self.replica_id}: {_reason(exc)}; "
                "check /mcpServer/redis username, password and db") from None
        except (RedisError, OSError) as exc:
            logger.warning("replica %s: %s not reachable at start (%s); serving what needs no Redis and "
                           "retrying in the background", self.replica_id, self.where, _reason(exc))
        await self.hub.start()
        logger.info("replica %s: sessions in %s", self.replica_id, self.where)

    async def aclose(self) -> None:
        """Deregister this replica's streams: end them, release ownership, drop the subscription."""
        held = self.hub.session_ids()
        await self.hub.aclose()
        if held:
            try:
                async with asyncio.timeout(self._socket_timeout * 2):
                    for session_id in held:
                        await self._release(keys=[_key(session_id)], args=[self.replica_id])
            except (RedisError, OSError, TimeoutError) as exc:
                logger.warning("replica %s: could not release %d stream(s) in Redis (%s)",
                               self.replica_id, len(held), _reason(exc))
        await self._client.aclose()
        logger.info("replica %s: session store closed, %d stream(s) deregistered", self.replica_id, len(held))

    async def create(self, record: SessionRecord) -> None:
        now = time.time()
        record.last_seen = now
        created = await self._call("create", self._create, record.id,
                                   [_encode(record), record.stream_replica or "", repr(now), self._ttl_ms()])
        if not created:
            raise ValueError(f"session {redact(record.id)} already exists")

    async def get(self, session_id: str) -> SessionRecord | None:
        """While Redis is down, a session whose stream this replica holds is served from its local copy."""
        if not _SESSION_ID.fullmatch(session_id):
            return None
        try:
            found = await self._call("get", self._touch, session_id, [repr(time.time()), self._ttl_ms()])
        except StoreUnavailable:
            local = self._held.get(session_id)
            if local is None or not self.hub.holds(session_id):
                raise
            local.last_seen = time.time()
            return replace(local)
        if not found or found[0] is None:
            self._held.pop(session_id, None)
            return None
        try:
            record = _decode(found)
        except (ValueError, TypeError) as exc:  # not written by us: treat as unknown rather than fail
            logger.warning("replica %s: unreadable record for session %s (%s)", self.replica_id,
                           redact(session_id), _reason(exc))
            return None
        self._remember(record)
        return record

    async def save(self, record: SessionRecord) -> None:
        now = time.time()
        record.last_seen = now
        self._remember(record)
        args = [_encode(record), record.stream_replica or "", repr(now), self._ttl_ms()]
        try:
            await self._call("save", self._save, record.id, args)
        except StoreUnavailable:
            if not self.hub.holds(record.id):
                raise
            logger.warning("replica %s: session %s changed while Redis is down; kept on this replica only",
                           self.replica_id, redact(record.id))

    async def _restore_held(self) -> None:
        """After an outage, write back the sessions whose streams live here: a restarted Redis lost them,
        and POSTs landing on other replicas look them up there."""
        now = repr(time.time())
        restored = 0
        for record in list(self._held.values()):
            if self.hub.holds(record.id):
                restored += int(await self._create(keys=[_key(record.id)],
                                                   args=[_encode(record), self.replica_id, now, self._ttl_ms()]))
        if restored:
            logger.warning("replica %s: %d session(s) written back to %s after it returned", self.replica_id,
                           restored, self.where)

    def _remember(self, record: SessionRecord) -> None:
        if self.hub.holds(record.id):
            self._held[record.id] = replace(record)

    async def delete(self, session_id: str) -> None:
        if not _SESSION_ID.fullmatch(session_id):
            return
        self._held.pop(session_id, None)
        try:
            await self._client.delete(_key(session_id))
        except (RedisError, OSError) as exc:
            raise self._unavailable("delete", exc) from None

    @asynccontextmanager
    async def open_stream(self, session_id: str) -> AsyncIterator[FrameStream]:
        """Works while Redis is down: local delivery goes on, and the subscription is restored on reconnect.
        The session's record is kept here too, so its POSTs to this replica survive a Redis outage."""
        async with self.hub.stream(session_id) as frames:
            try:
                with suppress(StoreUnavailable):
                    await self.get(session_id)
                yield frames
            finally:
                if not self.hub.holds(session_id):
                    self._held.pop(session_id, None)

    async def deliver(self, session_id: str, frame: bytes) -> bool:
        if self.hub.deliver_local(session_id, frame):
            return True
        try:
            receivers = await self._client.publish(channel_of(session_id), frame)
        except (RedisError, OSError) as exc:
            raise self._unavailable("publish", exc) from None
        return int(receivers) > 0

    async def healthy(self) -> bool:
        try:
            async with asyncio.timeout(self._socket_timeout):
                await self._client.ping()
        except (RedisError, OSError, TimeoutError):
            return False
        return self.hub.connected

    async def _call(self, action: str, script: Any, session_id: str, args: list[Any]) -> Any:
        try:
            return await script(keys=[_key(session_id)], args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(action, exc) from None

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"session store unavailable ({self.where}, replica {self.replica_id}): "
                                f"{action} failed: {_reason(exc)}")

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))


def _key(session_id: str) -> str:
    return KEY_PREFIX + session_id


def _encode(record: SessionRecord) -> str:
    data = record.to_dict()
    data.pop("last_seen", None)
    data.pop("stream_replica", None)
    return json.dumps(data, separators=(",", ":"))


def _decode(fields: list[bytes | None]) -> SessionRecord:
    raw, owner, last_seen = fields
    record = SessionRecord.from_dict(json.loads(raw or b"{}"))
    record.stream_replica = owner.decode() if owner else None
    if last_seen:
        record.last_seen = float(last_seen)
    return record


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
