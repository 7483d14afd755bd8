"""Where transport session state lives, so any replica can serve any session.

Two implementations: `memory` (one replica, the embedded default) and `redis` (several replicas).
The transport only uses this interface. Messages for a stream travel as SSE-framed bytes
(`event: message\ndata: <json>\n\n`), the framing Higress's mcp-session filter publishes on
`mcp-server-sse:<sessionId>`, so a Higress gateway can share the Redis.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from contextlib import AbstractAsyncContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Transport = Literal["sse", "streamable"]

SSE_CHANNEL_PREFIX = "mcp-server-sse:"  # Higress's channel name; keep it
SESSION_ID = re.compile(r"[\x21-\x7e]{1,256}")  # visible ASCII, as Mcp-Session-Id requires; bounded for keys


STREAM_QUEUE_BYTES = 4 * 1024 * 1024  # frames a stream may lag behind before its client is disconnected


class FrameQueue:
    """The frames waiting for one stream, bounded in bytes (not frames: one frame can be a 1 MiB result).

    A client that stops reading while results pile up is disconnected once its backlog passes the cap:
    its memory is freed at once and the stream ends, instead of growing until the pod is OOM-killed.

    An idle stream is most of a replica's streams, so an empty queue holds no buffer and its reader waits on
    one future: an asyncio.Queue keeps four deques (~3 KB) and `wait_for` on it runs a task per wait. Frames
    stay in the queue until the reader takes them; the future only wakes it, so a reader cancelled while
    waiting loses nothing.
    """

    __slots__ = ("_frames", "_waiter", "_woken", "bytes", "closed", "max_bytes", "overflowed")

    def __init__(self, max_bytes: int = STREAM_QUEUE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.closed = False
        self.overflowed = False
        self._frames: deque[bytes] | None = None  # made on demand, dropped once drained
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False  # wake() was called: the reader gets b"" (time for a keep-alive)

    def put(self, frame: bytes) -> bool:
        """Queue a frame; False when the stream is closed or the frame would pass the cap (which closes it)."""
        if self.closed:
            return False
        if self.bytes + len(frame) > self.max_bytes:
            self.overflowed = True
            self.close(drop_pending=True)
            return False
        self.bytes += len(frame)
        if self._frames is None:
            self._frames = deque()
        self._frames.append(frame)
        self._notify()
        return True

    def close(self, *, drop_pending: bool = False) -> None:
        """End the stream after the frames already queued (or at once, dropping them)."""
        if self.closed:
            return
        self.closed = True
        if drop_pending:
            self._frames = None
            self.bytes = 0
        self._notify()

    def wake(self) -> None:
        """End the reader's wait without a frame: `take` gives b"" (a keep-alive is due)."""
        self._woken = True
        self._notify()

    def ready(self) -> asyncio.Future[None]:
        """Done once `take` has something: a frame, a wake-up or the end."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            if self._frames or self.closed or self._woken:
                waiter.set_result(None)
        return waiter

    def take(self) -> bytes | None:
        """The next frame; None once the stream is over; b"" when there is none (woken, or nothing yet)."""
        self._woken = False
        frames = self._frames
        if frames:
            frame = frames.popleft()
            if not frames:
                self._frames = None
            self.bytes -= len(frame)
            return frame
        return None if self.closed else b""

    def _notify(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class FrameStream:
    """The frames delivered to one stream held on this replica.

    `next(timeout)` lets the transport write keep-alives between frames without cancelling an async
    iterator (which would finalize it); iterating works too. `ready`/`take`/`wake` are the same without a
    coroutine or a timer per wait, for a reader whose keep-alives come from elsewhere. The stream ends (None)
    once its queue is closed and drained.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: FrameQueue) -> None:
        self._queue = queue

    def ready(self) -> asyncio.Future[None]:
        return self._queue.ready()

    def take(self) -> bytes | None:
        return self._queue.take()

    def wake(self) -> None:
        self._queue.wake()

    async def next(self, timeout: float | None = None) -> bytes | None:
        """The next frame; b"" when `timeout` passed first; None once the stream is over."""
        waiter = self._queue.ready()
        if not waiter.done():
            timer = None if timeout is None else asyncio.get_running_loop().call_later(timeout, self._queue.wake)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
        return self._queue.take()

    def close(self) -> None:
        """End the stream from this side (shutdown, server removed, client gone)."""
        self._queue.close()

    def __aiter__(self) -> FrameStream:
        return self

    async def __anext__(self) -> bytes:
        while True:
            frame = await self.next()
            if frame is None:
                raise StopAsyncIteration
            if frame:
                return frame


class StoreUnavailable(Exception):
    """The store cannot be reached (e.g. Redis down). The transport answers 503 with this message."""


@dataclass
class SessionRecord:
    """Everything a replica needs to serve a session it did not create. Never holds tokens."""

    id: str
    server: str  # servers[] entry name; a session id is only valid on its own server
    transport: Transport
    protocol_version: str | None = None
    client_info: dict[str, Any] | None = None
    client_capabilities: dict[str, Any] | None = None
    initialized: bool = False
    log_level: str | None = None
    stream_replica: str | None = None  # the replica holding the session's stream, if any
    principal: str | None = None  # who opened it (Principal.key): nobody else may use it
    target: str | None = None  # the server's default target for this session, fixed at initialize (a pod name)
    created: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def copy(self) -> SessionRecord:
        """A shallow copy (what a caller may change are whole values): dataclasses.replace re-runs __init__, a
        few microseconds on every request's session load."""
        clone = object.__new__(SessionRecord)
        clone.__dict__.update(self.__dict__)
        return clone

    def state(self) -> tuple[Any, ...]:
        """What a request may change, cheap to compare (no deep copy): the transport saves when it differs."""
        return (self.protocol_version, self.client_info, self.client_capabilities, self.initialized,
                self.log_level, self.stream_replica, self.target)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class SessionStore(Protocol):
    replica_id: str
    ttl_seconds: float  # idle time after which a session is gone

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def create(self, record: SessionRecord) -> None:
        """Store a new session. Raises StoreUnavailable."""
        ...

    async def get(self, session_id: str) -> SessionRecord | None:
        """The live session, refreshing its idle timer; None when unknown or expired. Raises StoreUnavailable."""
        ...

    async def save(self, record: SessionRecord) -> None:
        """Persist changes to a record (negotiated version, log level, stream replica)."""
        ...

    async def delete(self, session_id: str) -> None: ...

    def open_stream(self, session_id: str) -> AbstractAsyncContextManager[FrameStream]:
        """Hold the session's stream on this replica: yields the SSE frames delivered to the session,
        from this replica or any other, until the context exits."""
        ...

    async def deliver(self, session_id: str, frame: bytes) -> bool:
        """Send an SSE frame to whichever replica holds the session's stream; local delivery skips the
        network. False when no replica holds it."""
        ...

    async def healthy(self) -> bool:
        """For /readyz."""
        ...
