"""Sessions in this process: the embedded default for one replica, no Redis needed.

Idle sessions expire after `ttl_seconds`; a session whose stream is open here is never idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import replace

from higress_ops.sessions.base import FrameStream, SessionRecord, Transport, close_queue

logger = logging.getLogger(__name__)

STREAM_QUEUE_FRAMES = 1024  # frames a slow stream may lag behind before new ones are dropped


class MemorySessionStore:
    def __init__(self, *, replica_id: str, ttl_seconds: float = 1800.0) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"ttl_seconds must be > 0, got {ttl_seconds}")
        self.replica_id = replica_id
        self.ttl_seconds = ttl_seconds
        self._records: dict[str, SessionRecord] = {}
        self._streams: dict[str, asyncio.Queue[bytes | None]] = {}
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with suppress(asyncio.CancelledError):
                await self._sweeper
        for queue in list(self._streams.values()):
            close_queue(queue)

    async def create(self, record: SessionRecord) -> None:
        if record.id in self._records:
            raise ValueError("session id already exists")
        record.last_seen = time.time()
        self._records[record.id] = replace(record)

    async def get(self, session_id: str) -> SessionRecord | None:
        record = self._records.get(session_id)
        if record is None:
            return None
        now = time.time()
        if self._expired(record, now):
            self._forget(session_id)
            return None
        record.last_seen = now
        return replace(record)  # callers mutate their copy and save() it, as with Redis

    async def save(self, record: SessionRecord) -> None:
        if record.id in self._records:
            record.last_seen = time.time()
            self._records[record.id] = replace(record)

    async def delete(self, session_id: str) -> None:
        self._forget(session_id)

    @asynccontextmanager
    async def open_stream(self, session_id: str) -> AsyncIterator[FrameStream]:
        previous = self._streams.get(session_id)
        if previous is not None:  # one stream per session: a new GET replaces the old one
            close_queue(previous)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(STREAM_QUEUE_FRAMES)
        self._streams[session_id] = queue
        try:
            yield FrameStream(queue)
        finally:
            if self._streams.get(session_id) is queue:
                del self._streams[session_id]
                record = self._records.get(session_id)
                if record is not None:
                    record.last_seen = time.time()  # idle time counts from the stream's end

    async def deliver(self, session_id: str, frame: bytes) -> bool:
        queue = self._streams.get(session_id)
        if queue is None:
            return False
        try:
            queue.put_nowait(frame)
        except asyncio.QueueFull:
            logger.warning("stream %d frames behind; frame dropped", STREAM_QUEUE_FRAMES,
                           extra={"session": session_id[:8]})
            return False
        return True

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
            close_queue(queue)

    async def _sweep_forever(self) -> None:
        interval = min(30.0, max(0.05, self.ttl_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            for session_id in [sid for sid, rec in self._records.items() if self._expired(rec, now)]:
                self._forget(session_id)

