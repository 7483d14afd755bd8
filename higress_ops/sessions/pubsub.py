"""One Redis pub/sub connection per replica, multiplexing every session channel it holds.

Higress's mcp-session filter opens a subscription per SSE session; with many streams that is many
Redis connections. Here a single reader task owns one `PubSub`, fans messages out to local
streams, and, when the connection drops, reconnects with capped backoff and resubscribes to
every channel still held, so streams survive a Redis restart.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from higress_ops.sessions.base import STREAM_QUEUE_BYTES, FrameQueue, FrameStream

logger = logging.getLogger(__name__)

def redact(session_id: str) -> str:
    """A session id is a bearer secret for its session: logs get a prefix only."""
    return session_id[:6] + "…"


class ChannelHub:
    """Local fan-out of frames per channel, fed by local delivery and by one Redis subscription."""

    def __init__(
        self,
        client_factory: Callable[[], aioredis.Redis],
        *,
        replica_id: str,
        channel_of: Callable[[str], str],
        subscribe_timeout: float = 1.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 0.5,
        keepalive: float = 5.0,
        queue_bytes: int = STREAM_QUEUE_BYTES,
    ) -> None:
        self._client_factory = client_factory
        self.replica_id = replica_id
        self._channel_of = channel_of
        self._subscribe_timeout = subscribe_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._keepalive = keepalive
        self.queue_bytes = queue_bytes
        self._streams: dict[str, set[FrameQueue]] = {}  # session id -> local streams
        self._by_channel: dict[bytes, str] = {}  # channel -> session id
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._client: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Called after the connection comes back, e.g. to write back records a restarted Redis lost.
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def session_ids(self) -> list[str]:
        return list(self._streams)

    def holds(self, session_id: str) -> bool:
        return session_id in self._streams

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"redis-pubsub[{self.replica_id}]")

    async def wait_connected(self, timeout: float) -> bool:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
        return self.connected

    async def aclose(self) -> None:
        """End every local stream and drop the subscription (Redis unsubscribes on disconnect)."""
        self._closing = True
        self._connected.clear()
        for queues in self._streams.values():
            for queue in queues:
                queue.close()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()

    def deliver_local(self, session_id: str, frame: bytes) -> bool:
        queues = self._streams.get(session_id)
        if not queues:
            return False
        delivered = False
        for queue in queues:
            if queue.put(frame):
                delivered = True
            elif queue.overflowed:
                logger.warning("replica %s: stream for session %s disconnected: its client stopped reading and "
                               "%d bytes piled up", self.replica_id, redact(session_id), queue.max_bytes)
        return delivered

    @asynccontextmanager
    async def stream(self, session_id: str) -> AsyncIterator[FrameStream]:
        queue = FrameQueue(self.queue_bytes)
        first = session_id not in self._streams
        self._streams.setdefault(session_id, set()).add(queue)
        channel = self._channel_of(session_id).encode()
        self._by_channel[channel] = session_id
        try:
            if first and self.connected:
                await self._subscribe(channel)
            yield FrameStream(queue)
        finally:
            queues = self._streams.get(session_id, set())
            queues.discard(queue)
            if not queues:
                self._streams.pop(session_id, None)
                self._by_channel.pop(channel, None)
                if self.connected and not self._closing:
                    await self._unsubscribe(channel)

    async def _subscribe(self, channel: bytes) -> None:
        """Subscribe and wait for Redis to confirm, so a PUBLISH sent after this returns is not lost."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(waiter)
        try:
            await self._pubsub.subscribe(channel)
            await asyncio.wait_for(asyncio.shield(waiter), self._subscribe_timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            # The reader notices the broken connection and resubscribes everything on reconnect.
            logger.warning("replica %s: subscribe not confirmed (%s); it is restored on reconnect",
                           self.replica_id, type(exc).__name__)
        finally:
            waiters = self._confirm.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._confirm.pop(channel, None)

    async def _unsubscribe(self, channel: bytes) -> None:
        try:
            await self._pubsub.unsubscribe(channel)
        except (RedisError, OSError) as exc:
            logger.debug("replica %s: unsubscribe failed (%s)", self.replica_id, type(exc).__name__)

    async def _run(self) -> None:
        delay = self._backoff_initial
        announced_down = False
        while not self._closing:
            try:
                await self._connect()
                if announced_down:
                    logger.warning("replica %s: redis pub/sub reconnected, %d stream(s) resubscribed",
                                   self.replica_id, len(self._streams))
                    if self.on_reconnect is not None:
                        try:
                            await self.on_reconnect()
                        except (RedisError, OSError) as exc:
                            logger.warning("replica %s: restoring sessions after reconnect failed (%s)",
                                           self.replica_id, type(exc).__name__)
                announced_down = False
                delay = self._backoff_initial
                await self._read()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self.connected or not announced_down:
                    logger.warning("replica %s: redis pub/sub lost (%s: %s); reconnecting with backoff",
                                   self.replica_id, type(exc).__name__, exc)
                    announced_down = True
            except Exception:  # never let the reader die: streams depend on it
                logger.exception("replica %s: redis pub/sub reader failed; reconnecting", self.replica_id)
                announced_down = True
            self._connected.clear()
            await self._drop_connection()
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff_max)

    async def _connect(self) -> None:
        self._client = self._client_factory()
        self._pubsub = self._client.pubsub()
        await self._pubsub.ping()  # opens the connection and authenticates, or raises
        self._connected.set()
        channels = [self._channel_of(sid).encode() for sid in self._streams]
        if channels:
            await self._pubsub.subscribe(*channels)

    async def _read(self) -> None:
        """Dispatch messages; an idle connection is PINGed, and one that stays silent counts as lost."""
        pinged = False
        while not self._closing:
            message = await self._pubsub.get_message(timeout=self._keepalive)
            if message is None:
                if pinged:
                    raise ConnectionError(f"no answer to PING within {self._keepalive}s")
                await self._pubsub.ping()
                pinged = True
                continue
            pinged = False
            kind = message["type"]
            kind = kind.decode() if isinstance(kind, bytes) else kind
            channel = message.get("channel")
            if kind == "message":
                session_id = self._by_channel.get(channel)
                data = message["data"]
                if session_id is not None and isinstance(data, bytes):
                    self.deliver_local(session_id, data)
            elif kind == "subscribe":
                for waiter in self._confirm.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)

    async def _drop_connection(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            with suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with suppress(Exception):
                await client.aclose()

