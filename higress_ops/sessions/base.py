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
    """

    def __init__(self, max_bytes: int = STREAM_QUEUE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.closed = False
        self.overflowed = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def put(self, frame: bytes) -> bool:
        """Queue a frame; False when the stream is closed or the frame would pass the cap (which closes it)."""
        if self.closed:
            return False
        if self.bytes + len(frame) > self.max_bytes:
            self.overflowed = True
            self.close(drop_pending=True)
            return False
        self.bytes += len(frame)
        self._queue.put_nowait(frame)
        return True

    def close(self, *, drop_pending: bool = False) -> None:
        """End the stream after the frames already queued (or at once, dropping them)."""
        if self.closed:
            return
        self.closed = True
        if drop_pending:
            while not self._queue.empty():
                self._queue.get_nowait()
            self.bytes = 0
        self._queue.put_nowait(None)

    async def get(self) -> bytes | None:
        frame = await self._queue.get()
        if frame:
            self.bytes -= len(frame)
        return frame


class FrameStream:
    """The frames delivered to one stream held on this replica.

    `next(timeout)` lets the transport write keep-alives between frames without cancelling an async
    iterator (which would finalize it); iterating works too. A None in the queue ends the stream.
    """

    def __init__(self, queue: FrameQueue) -> None:
        self._queue = queue
        self.closed = False

    async def next(self, timeout: float) -> bytes | None:
        """The next frame; b"" when `timeout` passed first; None once the stream is over."""
        if self.closed:
            return None
        try:
            frame = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return b""
        if frame is None:
            self.closed = True
        return frame

    def close(self) -> None:
        """End the stream from this side (shutdown, server removed, client gone)."""
        self._queue.close()

    def __aiter__(self) -> FrameStream:
        return self

    async def __anext__(self) -> bytes:
        frame = await self.next(float("inf")) if not self.closed else None
        if frame is None:
            raise StopAsyncIteration
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
