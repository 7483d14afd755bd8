"""Sessions in this process: the embedded default for one replica, no Redis needed.

Idle sessions expire after `ttl_seconds`; a session whose stream is open here is never idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress

from higress_ops.sessions.base import STREAM_QUEUE_BYTES, FrameQueue, FrameStream, SessionRecord, Transport

logger = logging.getLogger(__name__)

class MemorySessionStore:
    def __init__(self, *, replica_id: str, ttl_seconds: float = 1800.0,
                 queue_bytes: int = STREAM_QUEUE_BYTES) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")
        self.replica_id = replica_id
        self.ttl_seconds = ttl_seconds
        self.queue_bytes = queue_bytes
        self._records: dict[str, SessionRecord] = {}
        self._streams: dict[str, FrameQueue] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await self._sweeper
        for queue in list(self._streams.values()):
            queue.close()

    async def create(self, record: SessionRecord) -> None:
        if record.id in self._records:
            raise ValueError("session id already exists")
        record.last_seen = time.time()
        self._records[record.id] = record.copy()

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        now = time.time()
        if self._expired(record, now):
            self._forget(session_id)
            return None
        record.last_seen = now
        return record.copy()  # callers mutate their copy and save() it, as with Redis

    async def save(self, record: SessionRecord) -> None:
        if record.id in self._records:
            record.last_seen = time.time()
            self._records[record.id] = record.copy()

    async def delete(self, session_id: str) -> None:
        self._forget(session_id)

    def open_stream(self, session_id: str) -> _Held:
        return _Held(self, session_id)

    def _hold(self, session_id: str) -> FrameQueue:
        previous = self._streams.get(session_id)
        if previous is not None:  # one stream per session: a new GET replaces the old one
            previous.close()
        queue = self._streams[session_id] = FrameQueue(self.queue_bytes)
        return queue

    def _release(self, session_id: str, queue: FrameQueue) -> None:
        if self._streams.get(session_id) is queue:
            del self._streams[session_id]
            record = self._records.get(session_id)
            if record is not None:
                record.last_seen = time.time()  # idle time counts from the stream's end

    async def deliver(self, session_id: str, frame: bytes) -> bool:
        queue = self._streams.get(session_id)
        if queue is None:
            return False
        if queue.put(frame):
            return True
        if queue.overflowed:
            logger.warning("stream disconnected: its client stopped reading and %d bytes piled up",
                           queue.max_bytes, extra={"session": session_id[:8]})
        return False

    async def healthy(self) -> bool:
        return True

    def count(self, transport: Transport) -> int:
        return sum(1 for record in self._records.values() if record.transport == transport)

    def _expired(self, record: SessionRecord, now: float) -> bool:
        return record.id not in self._streams and now - record.last_seen > self.ttl_seconds

    def _forget(self, session_id: str) -> None:
        self._records.pop(session_id, None)
        queue = self._streams.pop(session_id, None)
        if queue is not None:
            queue.close()

    async def _sweep_forever(self) -> None:
        interval = min(30.0, max(0.05, self.ttl_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for session_id in [sid for sid, rec in self._records.items() if self._expired(rec, now)]:
                self._forget(session_id)


class _Held:
    """A stream held on this replica, as `open_stream`'s context manager. A class rather than an
    @asynccontextmanager: it lives as long as the stream, and a suspended async generator with its wrapper is
    ~0.5 KB per idle stream."""

    __slots__ = ("_queue", "_session_id", "_store")

    def __init__(self, store: MemorySessionStore, session_id: str) -> None:
        self._store = store
        self._session_id = session_id
        self._queue: FrameQueue | None = None

    async def __aenter__(self) -> FrameStream:
        self._queue = self._store._hold(self._session_id)
        return FrameStream(self._queue)

    async def __aexit__(self, *exc: object) -> None:
        if self._queue is not None:
            self._store._release(self._session_id, self._queue)
