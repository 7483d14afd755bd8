"""Server-sent events framing, the way Higress frames them on `mcp-server-sse:<id>` channels."""

from __future__ import annotations

from typing import Any

from higress_ops import jsonfast

KEEPALIVE = b": keep-alive\n\n"
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def encode(message: Any) -> bytes:
    return jsonfast.dumps(message)


def frame(message: Any, event: str = "message") -> bytes:
    """One event; JSON has no raw newlines, so one data line is enough."""
    return b"event: " + event.encode() + b"\ndata: " + encode(message) + b"\n\n"


def endpoint_frame(url: str) -> bytes:
    return b"event: endpoint\ndata: " + url.encode() + b"\n\n"
