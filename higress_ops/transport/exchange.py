"""What every MCP exchange shares across transports: session ids, message batches, record saving and the
facts the access log and metrics report."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from higress_ops.mcp import jsonrpc
from higress_ops.mcp.jsonrpc import INVALID_REQUEST, RpcError
from higress_ops.sessions.base import SessionRecord, SessionStore
from higress_ops.transport import guards

_SESSION_ID = re.compile(r"[\x21-\x7e]{1,256}")  # visible ASCII, as Mcp-Session-Id requires
_NOT_FORWARDED = frozenset({"cookie", "connection", "content-length", "transfer-encoding", "host"})


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits, visible ASCII as Mcp-Session-Id requires


def check_session_id(session_id: str) -> None:
    if not _SESSION_ID.fullmatch(session_id):
        raise guards.Rejected(400, "malformed session id: use the one the server gave you")


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers a tool may read (e.g. x-istiod-token). Held in memory only, never stored."""
    return {k: v for k, v in headers.items() if k not in _NOT_FORWARDED}


def caller_of(request: Request) -> str:
    """The client address for rate limits: the first X-Forwarded-For hop (Higress in front), else the peer."""
    forwarded = request.headers.get("x-forwarded-for", "")
    first = forwarded.split(",", 1)[0].strip()
    if first and len(first) <= 64:
        return first
    return request.client.host if request.client else "unknown"


def classify_all(payload: Any) -> tuple[list[dict[str, Any]], bool]:
    """(messages, was_batch); any malformed member fails the whole body, as a 400."""
    batch = isinstance(payload, list)
    messages = payload if batch else [payload]
    if batch and not messages:
        raise RpcError(INVALID_REQUEST, "Invalid request: an empty batch")
    for message in messages:
        jsonrpc.kind(message)
    return messages, batch


async def save_if_changed(store: SessionStore, record: SessionRecord, before: tuple[Any, ...]) -> None:
    if record.state() != before:
        await store.save(record)


@dataclass
class Exchange:
    """Facts about one HTTP request for its access-log line and metrics."""

    server: str = "-"
    transport: str = "-"
    method: str = "-"
    tool: str = ""

    def describe(self, messages: list[dict[str, Any]], batch: bool) -> None:
        if batch:
            self.method = "batch"
            return
        message = messages[0]
        self.method = message.get("method") or "response"
        if self.method == "tools/call":
            params = message.get("params") or {}
            name = params.get("name")
            self.tool = name[:64] if isinstance(name, str) else ""
