"""Stream frames fanned out from Redis pub/sub: one connection per shard per replica, never one per session.

Higress's mcp-session filter opens a subscription per SSE session; with many streams that is many Redis
connections. Here each shard (the one server or master, or each Redis Cluster master) gets one `Shard`: one
connection, one reader task, every channel of this replica that lives there. A lost connection reconnects with
capped backoff and resubscribes what it holds. In a cluster, a lost master or a moved slot (Redis sends
SUNSUBSCRIBE when a slot leaves a node) makes the hub re-read the slot map and move channels to the shard
that now serves them, so streams survive failovers and reshardings.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from redis.crc import key_slot
from redis.exceptions import AskError, ResponseError

from higress_ops.sessions.base import STREAM_QUEUE_BYTES, FrameQueue, FrameStream
from higress_ops.sessions.redis_client import REDIS_FAILURES
from higress_ops.sessions.topology import Topology

logger = logging.getLogger(__name__)

def redact(session_id: str) -> str:
    """A session id is a bearer secret for its session: logs get a prefix only."""
    return session_id[:6] + "…"


class Shard:
    """One pub/sub connection to one Redis node and the channels this replica holds there."""

    def __init__(self, hub: ChannelHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.channels: set[bytes] = set()
        self.connected = asyncio.Event()
        self._confirm: dict[bytes, list[asyncio.Future[None]]] = {}
        self._client: Any = None
        self._pubsub: Any = None
        self._closing = False
        self._verbs = ("ssubscribe", "sunsubscribe") if hub.topology.sharded else ("subscribe", "unsubscribe")
        self.task = asyncio.create_task(self._run(), name=f"redis-pubsub[{hub.replica_id}:{name}]")

    async def add(self, channel: bytes) -> None:
        """Subscribe and wait for Redis to confirm, so a publish sent after this returns is not lost."""
        self.channels.add(channel)
        if not self.connected.is_set():
            return  # subscribed with everything else on (re)connect
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirm.setdefault(channel, []).append(waiter)
        try:
            await getattr(self._pubsub, self._verbs[0])(channel)
            await asyncio.wait_for(asyncio.shield(waiter), self.hub.subscribe_timeout)
        except (TimeoutError, AttributeError, *REDIS_FAILURES) as exc:
            logger.warning("replica %s: subscribe on %s not confirmed (%s); it is restored on reconnect",
                           self.hub.replica_id, self.name, type(exc).__name__)
        finally:
            waiters = self._confirm.get(channel, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._confirm.pop(channel, None)

    async def remove(self, channel: bytes) -> None:
        self.channels.discard(channel)
        if self.connected.is_set() and not self._closing:
            try:
                await getattr(self._pubsub, self._verbs[1])(channel)
            except (AttributeError, *REDIS_FAILURES) as exc:
                logger.debug("replica %s: unsubscribe failed (%s)", self.hub.replica_id, type(exc).__name__)

    async def aclose(self) -> None:
        self._closing = True
        self.connected.clear()
        if asyncio.current_task() is not self.task:  # a reader retiring its own shard just stops after this
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task
        await self._drop()

    async def _run(self) -> None:
        hub = self.hub
        delay = hub.backoff_initial
        lost = False
        while not self._closing:
            try:
                await self._connect()
                if lost:
                    logger.warning("replica %s: redis pub/sub reconnected (%s), %d stream(s) resubscribed",
                                   hub.replica_id, self.name, len(self.channels))
                    await hub.reconnected()
                lost = False
                delay = hub.backoff_initial
                await self._read()
            except asyncio.CancelledError:
                raise
            except REDIS_FAILURES as exc:
                if not lost:
                    logger.warning("replica %s: redis pub/sub lost (%s: %s: %s); reconnecting with backoff",
                                   hub.replica_id, self.name, type(exc).__name__, exc)
                lost = True
            except Exception:  # never let a reader die: streams depend on it
                logger.exception("replica %s: redis pub/sub reader failed; reconnecting", hub.replica_id)
                lost = True
            self.connected.clear()
            await self._drop()
            if self._closing:
                return
            await hub.reshuffle()  # a cluster may have moved this shard's slots elsewhere
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, hub.backoff_max)

    async def _connect(self) -> None:
        self._client = self.hub.topology.connect(self.name)
        self._pubsub = self._client.pubsub()
        await self._pubsub.ping()  # opens the connection and authenticates, or raises
        subscribe = getattr(self._pubsub, self._verbs[0])
        if self.hub.topology.sharded:  # one SSUBSCRIBE may only name channels of one slot
            by_slot: dict[int, list[bytes]] = {}
            for channel in self.channels:
                by_slot.setdefault(key_slot(channel), []).append(channel)
            for group in by_slot.values():
                await subscribe(*group)
        elif self.channels:
            await subscribe(*self.channels)
        self.connected.set()

    async def _read(self) -> None:
        """Dispatch messages; an idle connection is PINGed, and one that stays silent counts as lost."""
        pinged = False
        keepalive = self.hub.keepalive
        while not self._closing:
            try:
                message = await self._pubsub.get_message(timeout=keepalive)
            except ResponseError as exc:  # an error reply, read in full: the connection itself is fine
                self._refused(exc)
                continue
            if message is None:
                if pinged:
                    raise ConnectionError(f"no answer to PING within {keepalive}s")
                await self._pubsub.ping()
                pinged = True
                continue
            pinged = False
            kind = message["type"]
            kind = kind.decode() if isinstance(kind, bytes) else kind
            channel = message.get("channel")
            if kind in ("message", "smessage"):
                if isinstance(message["data"], bytes):
                    self.hub.dispatch(channel, message["data"])
            elif kind in ("subscribe", "ssubscribe"):
                for waiter in self._confirm.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == "sunsubscribe" and channel in self.channels:
                # Not asked for: the channel's slot left this node (resharding or failover).
                self.channels.discard(channel)
                self.hub.moved(channel)

    def _refused(self, exc: ResponseError) -> None:
        """A SSUBSCRIBE answered MOVED (the slot left this node before the hub knew): re-place that slot's
        channels. Dropping the connection instead would lose frames already on the wire for the others."""
        if isinstance(exc, AskError):  # MovedError too
            for channel in [c for c in self.channels if key_slot(c) == exc.slot_id]:
                self.channels.discard(channel)
                for waiter in self._confirm.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
                self.hub.moved(channel)
            return
        logger.warning("replica %s: redis refused a pub/sub command on %s: %s", self.hub.replica_id, self.name,
                       str(exc)[:200])

    async def _drop(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        if pubsub is not None:
            with suppress(Exception):
                await pubsub.aclose()
        if client is not None:
            with suppress(Exception):
                await client.aclose()


class ChannelHub:
    """Local fan-out of frames per session, fed by local delivery and by one subscription per shard."""

    def __init__(
        self,
        topology: Topology,
        *,
        replica_id: str,
        channel_of: Callable[[str], str],
        subscribe_timeout: float = 1.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 0.5,
        keepalive: float = 5.0,
        queue_bytes: int = STREAM_QUEUE_BYTES,
        unseal: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.topology = topology
        self._unseal = unseal  # redis.secret: frames arrive sealed; None from it drops one that does not open
        self.replica_id = replica_id
        self._channel_of = channel_of
        self.subscribe_timeout = subscribe_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.keepalive = keepalive
        self.queue_bytes = queue_bytes
        self._streams: dict[str, set[FrameQueue]] = {}  # session id -> local streams
        self._by_channel: dict[bytes, str] = {}  # channel -> session id
        self._shards: dict[str, Shard] = {}
        self._placed: dict[bytes, str] = {}  # channel -> shard name; missing: waiting for a slot map
        self._lock = asyncio.Lock()
        self._mover: asyncio.Task[None] | None = None
        self._closing = False
        # Called after a connection comes back, e.g. to write back records a restarted Redis lost.
        self.on_reconnect: Callable[[], Awaitable[None]] | None = None

    @property
    def connected(self) -> bool:
        """Every shard's connection is up (and there is at least one)."""
        return bool(self._shards) and all(s.connected.is_set() for s in self._shards.values())

    def shard_names(self) -> list[str]:
        return sorted(self._shards)

    def session_ids(self) -> list[str]:
        return list(self._streams)

    def holds(self, session_id: str) -> bool:
        return session_id in self._streams

    async def start(self) -> None:
        await self.topology.refresh()
        for name in self.topology.shards():
            self._shard(name)
        if not self._shards:  # a cluster not reachable yet: keep trying in the background
            self._schedule_reshuffle()

    async def wait_connected(self, timeout: float) -> bool:
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not self.connected:
                    await asyncio.sleep(0.02)
        return self.connected

    async def aclose(self) -> None:
        """End every local stream and drop the subscriptions (Redis unsubscribes on disconnect)."""
        self._closing = True
        for queues in self._streams.values():
            for queue in queues:
                queue.close()
        if self._mover is not None:
            self._mover.cancel()
            with suppress(asyncio.CancelledError):
                await self._mover
        for shard in list(self._shards.values()):
            await shard.aclose()
        self._shards.clear()

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

    def dispatch(self, channel: bytes, frame: bytes) -> None:
        session_id = self._by_channel.get(channel)
        if session_id is None:
            return
        opened = self._unseal(frame) if self._unseal is not None else frame
        if opened is not None:
            self.deliver_local(session_id, opened)

    @asynccontextmanager
    async def stream(self, session_id: str) -> AsyncIterator[FrameStream]:
        queue = FrameQueue(self.queue_bytes)
        first = session_id not in self._streams
        self._streams.setdefault(session_id, set()).add(queue)
        channel = self._channel_of(session_id).encode()
        self._by_channel[channel] = session_id
        try:
            if first:
                await self._place(channel)
            yield FrameStream(queue)
        finally:
            queues = self._streams.get(session_id, set())
            queues.discard(queue)
            if not queues:
                self._streams.pop(session_id, None)
                self._by_channel.pop(channel, None)
                shard = self._shards.get(self._placed.pop(channel, ""))
                if shard is not None and not self._closing:
                    await shard.remove(channel)

    def _shard(self, name: str) -> Shard:
        shard = self._shards.get(name)
        if shard is None:
            shard = self._shards[name] = Shard(self, name)
        return shard

    async def _place(self, channel: bytes) -> None:
        name = self.topology.shard_of(channel)
        if name is None:
            self._schedule_reshuffle()  # placed once the slot map is known
            return
        self._placed[channel] = name
        await self._shard(name).add(channel)

    def moved(self, channel: bytes) -> None:
        """A shard lost a channel it did not give up: find where it lives now."""
        self._placed.pop(channel, None)
        self._schedule_reshuffle()

    def _schedule_reshuffle(self) -> None:
        if self._closing or (self._mover is not None and not self._mover.done()):
            return
        self._mover = asyncio.create_task(self._reshuffle_until_placed(), name=f"redis-reshuffle[{self.replica_id}]")

    async def _reshuffle_until_placed(self) -> None:
        delay = self.backoff_initial
        while not self._closing:
            await self.reshuffle()
            if self._shards and all(c in self._placed for c in self._by_channel):
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max)

    async def reshuffle(self) -> None:
        """Re-read the topology; open shards for new masters, close those of former ones, and move every
        channel whose slot now lives elsewhere. One at a time; a no-op for a single shard."""
        if not self.topology.sharded and self._shards:
            return
        async with self._lock:
            if self._closing or not await self.topology.refresh():
                return
            current = set(self.topology.shards())
            for name in current - set(self._shards):
                self._shard(name)
            for channel in list(self._by_channel):
                where = self.topology.shard_of(channel)
                was = self._placed.get(channel)
                if where is None or where == was:
                    continue
                if was in self._shards:
                    await self._shards[was].remove(channel)
                self._placed[channel] = where
                await self._shard(where).add(channel)
            for name in set(self._shards) - current:
                if not any(placed == name for placed in self._placed.values()):
                    await self._shards.pop(name).aclose()

    async def reconnected(self) -> None:
        if self.on_reconnect is not None:
            try:
                await self.on_reconnect()
            except REDIS_FAILURES as exc:
                logger.warning("replica %s: restoring sessions after reconnect failed (%s)",
                               self.replica_id, type(exc).__name__)
