"""Long-lived event streams: the legacy SSE stream and the streamable GET stream.

The stream loop ends by itself (a None frame) when the client goes away, the server is removed or the
replica shuts down, never by cancellation, so its cleanup (unsubscribe, delete) always runs to the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

from starlette.types import Receive, Scope, Send

from higress_ops.sessions.base import FrameStream, SessionStore, StoreUnavailable
from higress_ops.transport.sse import HEADERS, KEEPALIVE

logger = logging.getLogger(__name__)

_RAW_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8")] + [
    (k.lower().encode(), v.encode()) for k, v in HEADERS.items()]


@dataclass
class StreamHandle:
    """A stream held on this replica."""

    frames: FrameStream | None = None
    ended: bool = False

    def end(self) -> None:
        self.ended = True
        if self.frames is not None:
            self.frames.close()


class EventStream:
    """An ASGI response that pumps a session's frames, with keep-alives, until the handle ends."""

    def __init__(self, store: SessionStore, session_id: str, handle: StreamHandle, *, keepalive: float,
                 first: bytes = b"", on_close: Callable[[], Awaitable[None]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.store = store
        self.session_id = session_id
        self.handle = handle
        self.keepalive = keepalive
        self.first = first
        self.on_close = on_close
        self.extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        self.status_code = 200

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _RAW_HEADERS + self.extra})
        watcher = asyncio.create_task(self._watch(receive))
        try:
            async with self.store.open_stream(self.session_id) as frames:
                self.handle.frames = frames
                if self.handle.ended:
                    frames.close()
                if self.first:
                    await send({"type": "http.response.body", "body": self.first, "more_body": True})
                while True:
                    frame = await frames.next(self.keepalive)
                    if frame is None:
                        break
                    await send({"type": "http.response.body", "body": frame or KEEPALIVE, "more_body": True})
            with suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away mid-write
        finally:
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
