"""Session records and stream delivery in Redis, so several replicas behave as one.

Records live in a hash `higress-ops:session:<id>` (fields `record` JSON, `owner`: the replica holding
the stream) whose TTL every read refreshes; stream frames travel on Higress's channel `mcp-server-sse:<id>`
in Higress's SSE framing, so a Higress gateway can share the Redis. In a Redis Cluster both names
put the id in a hash tag (`higress-ops:session:{<id>}`, `mcp-server-sse:{<id>}`), so a session's
record and channel share a slot, and frames go by SPUBLISH, within that slot's shard.
With `redis.secret` the record and every published frame are sealed as Higress seals its values
(sealing.py) and `owner` is a keyed tag, so Redis holds no session data in the clear; a value that does not open
reads as absent. Clients come from `RedisClients`: the same short timeouts in every mode, failing fast with
`StoreUnavailable` while Redis is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, ResponseError

from higress_ops.config.model import RedisConfig
from higress_ops.sessions.base import (
    SESSION_ID,
    SSE_CHANNEL_PREFIX,
    STREAM_QUEUE_BYTES,
    FrameStream,
    SessionRecord,
    StoreUnavailable,
)
from higress_ops.sessions.pubsub import ChannelHub, redact
from higress_ops.sessions.redis_client import (
    REDIS_FAILURES,
    RedisClients,
    RedisSettingsError,
    RedisTarget,
    parse_address,
    target_from_config,
)
from higress_ops.sessions.sealing import Unreadable, sealer_for
from higress_ops.sessions.topology import ClusterShards, OneShard, Topology

__all__ = ["RedisSessionStore", "RedisSettingsError", "RedisTarget", "parse_address", "target_from_config"]

logger = logging.getLogger(__name__)

KEY_PREFIX = "higress-ops:session:"
REDELIVERY_WINDOW = 2.0  # seconds a frame for a held stream is retried while its subscription moves

# Each script acts only on an existing key: a late save or read never resurrects a deleted session.
# A read refreshes the TTL and nothing else: the record's last use is the moment of that read.
_CREATE = """
if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[3])
return 1
"""
_TOUCH = """
if redis.call('exists', KEYS[1]) == 0 then return false end
redis.call('pexpire', KEYS[1], ARGV[1])
return redis.call('hmget', KEYS[1], 'record', 'owner')
"""
_SAVE = """
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'record', ARGV[1], 'owner', ARGV[2])
redis.call('pexpire', KEYS[1], ARGV[3])
return 1
"""
_RELEASE = """
if redis.call('hget', KEYS[1], 'owner') == ARGV[1] then redis.call('hset', KEYS[1], 'owner', '') return 1 end
return 0
"""


def channel_of(session_id: str, clustered: bool = False) -> str:
    """Higress's channel name; in a cluster the id is a hash tag, so channel and record share a slot."""
    return SSE_CHANNEL_PREFIX + ("{" + session_id + "}" if clustered else session_id)


def key_of(session_id: str, clustered: bool = False) -> str:
    return KEY_PREFIX + ("{" + session_id + "}" if clustered else session_id)


class RedisSessionStore:
    """SessionStore over Redis: records with a sliding TTL, frames over one subscription per shard."""

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
        secret: str = "",
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")
        self.target = target
        self.sealer = sealer_for(secret)
        self._warned: set[str] = set()  # kinds of unreadable values already logged: once each, not per value
        self.replica_id = replica_id
        self.ttl_seconds = ttl_seconds
        self._socket_timeout = socket_timeout
        self.clients = RedisClients(target, name=f"higress-ops:{replica_id}", socket_timeout=socket_timeout,
                                    connect_timeout=connect_timeout)
        self.clustered = self.clients.clustered
        self._client = self.clients.commands(max_connections=64)
        self._create = self._client.register_script(_CREATE)
        self._touch = self._client.register_script(_TOUCH)
        self._save = self._client.register_script(_SAVE)
        self._release = self._client.register_script(_RELEASE)
        self._held: dict[str, SessionRecord] = {}  # records of sessions whose stream is held here
        topology: Topology = ClusterShards(self.clients, self._client) if isinstance(self._client, RedisCluster) \
            else OneShard(self.clients)
        self.hub = ChannelHub(topology, replica_id=replica_id, channel_of=self.channel_of,
                              subscribe_timeout=socket_timeout, backoff_max=backoff_max, queue_bytes=queue_bytes,
                              unseal=self._open_frame if self.sealer else None)
        self.hub.on_reconnect = self._restore_held

    @classmethod
    def from_config(cls, config: RedisConfig, *, replica_id: str, ttl_seconds: float,
                    password: str | None = None, **options: Any) -> RedisSessionStore:
        return cls(target_from_config(config, password), replica_id=replica_id, ttl_seconds=ttl_seconds,
                   secret=config.secret, **options)

    @property
    def where(self) -> str:
        return self.target.where

    def channel_of(self, session_id: str) -> str:
        return channel_of(session_id, self.clustered)

    def key_of(self, session_id: str) -> str:
        return key_of(session_id, self.clustered)

    async def start(self) -> None:
        """Begin the subscriptions; a Redis that is down is waited for in the background, but
        credentials or a db Redis refuses are configuration errors and fail here."""
        try:
            await self._client.ping()
        except (AuthenticationError, ResponseError) as exc:
            await self._close_clients()
            raise StoreUnavailable(
                f"{self.where} refused replica {self.replica_id}: {_reason(exc)}; "
                "check /mcpServer/redis username, password and db") from None
        except REDIS_FAILURES as exc:
            logger.warning("replica %s: %s not reachable at start (%s); serving what needs no Redis and "
                           "retrying in the background", self.replica_id, self.where, _reason(exc))
        await self.hub.start()
        logger.info("replica %s: sessions in %s", self.replica_id, self.where)

    async def aclose(self) -> None:
        """Deregister this replica's streams: end them, release ownership, drop the subscriptions."""
        held = self.hub.session_ids()
        await self.hub.aclose()
        if held:
            try:
                async with asyncio.timeout(self._socket_timeout * 2):
                    for session_id in held:
                        await self._release(keys=[self.key_of(session_id)], args=[self._owner(self.replica_id)])
            except (TimeoutError, *REDIS_FAILURES) as exc:
                logger.warning("replica %s: could not release %d stream(s) in Redis (%s)",
                               self.replica_id, len(held), _reason(exc))
        await self._close_clients()
        logger.info("replica %s: session store closed, %d stream(s) deregistered", self.replica_id, len(held))

    async def _close_clients(self) -> None:
        with suppress(*REDIS_FAILURES):
            await self._client.aclose()
        await self.clients.aclose()

    async def create(self, record: SessionRecord) -> None:
        now = time.time()
        record.last_seen = now
        created = await self._call("create", self._create, record.id, self._fields(record))
        if not created:
            raise ValueError(f"session {redact(record.id)} already exists")

    async def get(self, session_id: str) -> SessionRecord | None:
        """While Redis is down, a session whose stream this replica holds is served from its local copy."""
        if not SESSION_ID.fullmatch(session_id):
            return None
        try:
            found = await self._call("get", self._touch, session_id, [self._ttl_ms()])
        except StoreUnavailable:
            local = self._held.get(session_id)
            if local is None or not self.hub.holds(session_id):
                raise
            local.last_seen = time.time()
            return local.copy()
        if not found or found[0] is None:
            self._held.pop(session_id, None)
            return None
        try:
            record = self._decode(found)
        except (ValueError, TypeError) as exc:  # not written by us, or not under our secret: unknown, not a failure
            self._unreadable("record", f"session {redact(session_id)}: {_reason(exc)}")
            return None
        self._remember(record)
        return record

    async def save(self, record: SessionRecord) -> None:
        record.last_seen = time.time()
        self._remember(record)
        try:
            await self._call("save", self._save, record.id, self._fields(record))
        except StoreUnavailable:
            if not self.hub.holds(record.id):
                raise
            logger.warning("replica %s: session %s changed while Redis is down; kept on this replica only",
                           self.replica_id, redact(record.id))

    async def _restore_held(self) -> None:
        """After an outage or a failover, write back the sessions whose streams live here: a restarted
        Redis, or a promoted replica that missed the last writes, lost them, and POSTs landing on other
        replicas look them up there."""
        restored = 0
        for record in list(self._held.values()):
            if self.hub.holds(record.id):
                record.stream_replica = self.replica_id
                restored += int(await self._create(keys=[self.key_of(record.id)], args=self._fields(record)))
        if restored:
            logger.warning("replica %s: %d session(s) written back to %s after it returned", self.replica_id,
                           restored, self.where)

    def _remember(self, record: SessionRecord) -> None:
        if self.hub.holds(record.id):
            self._held[record.id] = record.copy()

    async def delete(self, session_id: str) -> None:
        if not SESSION_ID.fullmatch(session_id):
            return
        self._held.pop(session_id, None)
        await self._bounded("delete", self._client.delete(self.key_of(session_id)))

    @asynccontextmanager
    async def open_stream(self, session_id: str) -> AsyncIterator[FrameStream]:
        """Works while Redis is down: local delivery goes on, and the subscription is restored on reconnect.
        The session's record is kept here too, so its POSTs to this replica survive a Redis outage. When the
        last local stream of the session ends, the record stops naming this replica as its stream's holder, so
        a later publish to it is not retried for a stream nobody holds."""
        try:
            async with self.hub.stream(session_id) as frames:
                with suppress(StoreUnavailable):
                    await self.get(session_id)
                yield frames
        finally:
            if not self.hub.holds(session_id):
                self._held.pop(session_id, None)
                with suppress(StoreUnavailable):
                    await self._bounded("release", self._release(keys=[self.key_of(session_id)],
                                                                 args=[self._owner(self.replica_id)]))

    async def deliver(self, session_id: str, frame: bytes) -> bool:
        """Local delivery skips Redis. A publish nobody received is retried for a short window while the
        record names a replica holding the stream: that replica is re-subscribing (a failover, a slot that
        moved), and the frame would otherwise be silently lost."""
        if self.hub.deliver_local(session_id, frame):
            return True
        deadline = time.monotonic() + REDELIVERY_WINDOW
        delay = 0.02
        while True:
            if await self._publish(session_id, frame) > 0:
                return True
            if time.monotonic() >= deadline or not await self._owned(session_id):
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def _publish(self, session_id: str, frame: bytes) -> int:
        channel = self.channel_of(session_id)
        if self.sealer is not None:
            frame = self.sealer.seal(frame)
        if self.clustered:
            return int(await self._bounded("publish", self._client.spublish(channel, frame)))
        return int(await self._bounded("publish", self._client.publish(channel, frame)))

    async def _owned(self, session_id: str) -> bool:
        return bool(await self._bounded("publish", self._client.hget(self.key_of(session_id), "owner")))

    async def healthy(self) -> bool:
        """Redis answers and every pub/sub shard is connected; in a cluster, every slot is served."""
        try:
            async with asyncio.timeout(self._socket_timeout):
                if isinstance(self._client, RedisCluster):
                    info = await self._client.cluster_info(target_nodes=RedisCluster.RANDOM)
                    if info.get("cluster_state") != "ok":
                        return False
                else:
                    await self._client.ping()
        except (TimeoutError, *REDIS_FAILURES):
            return False
        return self.hub.connected

    async def _call(self, action: str, script: Any, session_id: str, args: list[Any]) -> Any:
        return await self._bounded(action, script(keys=[self.key_of(session_id)], args=args))

    async def _bounded(self, action: str, call: Awaitable[Any]) -> Any:
        """One Redis call, never longer than CALL_TIMEOUT: a cluster client retrying through a failover
        (MOVED, reconnects, a slot-map refresh) could otherwise hold a request for several seconds."""
        try:
            async with asyncio.timeout(self.clients.call_timeout):
                return await call
        except (TimeoutError, *REDIS_FAILURES) as exc:
            raise self._unavailable(action, exc) from None

    def _unavailable(self, action: str, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"session store unavailable ({self.where}, replica {self.replica_id}): "
                                f"{action} failed: {_reason(exc)}")

    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl_seconds * 1000))

    # -- what is stored -----------------------------------------------------------------------------

    def _owner(self, replica: str | None) -> str:
        """The `owner` field: the replica's id, or its keyed tag under a secret (the release script compares it)."""
        if not replica:
            return ""
        return self.sealer.tag(replica) if self.sealer is not None else replica

    def _fields(self, record: SessionRecord) -> list[Any]:
        """Script arguments: the record (sealed under a secret), its owner field, the TTL."""
        data = record.to_dict()
        data.pop("last_seen", None)
        text = json.dumps(data, separators=(",", ":")).encode()
        return [self.sealer.seal(text) if self.sealer is not None else text, self._owner(record.stream_replica),
                self._ttl_ms()]

    def _decode(self, fields: list[bytes | None]) -> SessionRecord:
        raw, owner = fields[0] or b"{}", fields[1]
        if self.sealer is not None:
            raw = self.sealer.open(raw)
        record = SessionRecord.from_dict(json.loads(raw))
        if self.sealer is None:  # `owner` names the stream's replica
            record.stream_replica = owner.decode() if owner else None
        elif not owner:  # its tag says whether one holds it; which one is in the sealed record
            record.stream_replica = None
        record.last_seen = time.time()  # the read just refreshed it
        return record

    def _open_frame(self, sealed: bytes) -> bytes | None:
        assert self.sealer is not None
        try:
            return self.sealer.open(sealed)
        except Unreadable as exc:
            self._unreadable("frame", str(exc))
            return None

    def _unreadable(self, kind: str, why: str) -> None:
        """Logged once per kind: a Redis full of records from before the secret was set must not flood the log."""
        if kind in self._warned:
            logger.debug("replica %s: unreadable %s treated as absent: %s", self.replica_id, kind, why)
            return
        self._warned.add(kind)
        logger.warning("replica %s: a %s in %s could not be read and is treated as absent (%s); every replica "
                       "sharing this Redis needs the same mcpServer.redis.secret. Further ones are not logged.",
                       self.replica_id, kind, self.where, why)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
