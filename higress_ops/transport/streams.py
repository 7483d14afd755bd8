"""Long-lived event streams: the legacy SSE stream and the streamable GET stream.

The stream loop ends by itself (a None frame) when the client goes away, the server is removed or the
replica shuts down, never by cancellation, so its cleanup (unsubscribe, delete) always runs to the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

from starlette.types import Receive, Scope, Send

from higress_ops.sessions.base import FrameStream, SessionStore, StoreUnavailable
from higress_ops.transport.connection import DISCONNECT
from higress_ops.transport.keepalive import KeepAlives
from higress_ops.transport.sse import HEADERS, KEEPALIVE

logger = logging.getLogger(__name__)

_RAW_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
    (k.lower().encode(), v.encode()) for k, v in HEADERS.items()]


class StreamHandle:
    """A stream held on this replica."""

    __slots__ = ("ended", "frames")

    def __init__(self) -> None:
        self.frames: FrameStream | None = None
        self.ended = False

    def end(self) -> None:
        self.ended = True
        if self.frames is not None:
            self.frames.close()


class EventStream:
    """An ASGI response that pumps a session's frames, with keep-alives, until the handle ends.

    Idle streams are most of what a replica holds, so one costs one task and a few small objects: it waits on its
    frame queue's future, the replica's one keep-alive timer wakes it (keepalive.py), and it learns that its
    client went away from the server's `higress_ops.disconnect` extension (connection.py). A second task waits in
    `receive()` only under a server without that extension, or for a GET that came with a body: something must
    read it (left unread, uvicorn buffers 64 KB of it and stops reading the connection, so it would not see the
    client leave either).
    """

    __slots__ = ("extra", "first", "handle", "keepalives", "on_close", "over", "session_id", "store", "wrote")
    status_code = 200

    def __init__(self, store: SessionStore, session_id: str, handle: StreamHandle, *, keepalives: KeepAlives,
                 first: bytes = b"", on_close: Callable[[], Awaitable[None]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self.handle = handle
        self.keepalives = keepalives
        self.first = first
        self.on_close = on_close
        self.extra = [(k.lower().encode(), v.encode()) for k, v in headers.items()] if headers else None
        self.wrote = 0  # for the keep-alive wheel: its tick at this stream's last write
        self.over = False

    def keepalive(self) -> None:
        """The wheel's call: nothing was written for an interval."""
        if self.handle.frames is not None:
            self.handle.frames.wake()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": _RAW_HEADERS + self.extra if self.extra else _RAW_HEADERS})
        disconnect = None if _has_body(scope) else (scope.get("extensions") or {}).get(DISCONNECT)
        watcher = None
        if disconnect is not None:
            disconnect(self.handle.end)
        else:
            watcher = asyncio.create_task(self._watch(receive))
        try:
            async with self.store.open_stream(self.session_id) as frames:
                self.handle.frames = frames
                if self.handle.ended:
                    frames.close()
                if self.first:
                    await send({"type": "http.response.body", "body": self.first, "more_body": True})
                    self.first = b""  # sent: an idle stream need not keep it
                self.keepalives.hold(self)
                while True:
                    await frames.ready()
                    frame = frames.take()
                    if frame is None:
                        break
                    self.wrote = self.keepalives.now
                    await send({"type": "http.response.body", "body": frame or KEEPALIVE, "more_body": True})
            with suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
            self.over = True
            if disconnect is not None:
                disconnect(None)
            if watcher is not None:
                watcher.cancel()
            if self.on_close is not None:
                try:
                    await self.on_close()
                except StoreUnavailable as exc:
                    logger.warning("stream cleanup could not reach the session store: %s", exc)

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.handle.end()
                return


def _has_body(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
               for name, value in scope["headers"])
