"""Streamable HTTP (2025-03-26 .. 2025-11-25) at `{path}`, and the 2026-07-28 envelope on the same path.

Responses travel on the request's own HTTP response as application/json, so any replica can answer any
session found in the store. Server-to-client notifications (log messages) go to the session's GET stream,
wherever it is held.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from higress_ops import spans
from higress_ops.mcp import jsonrpc, stateless
from higress_ops.mcp.jsonrpc import RpcError
from higress_ops.mcp.versions import BATCH_VERSIONS, SESSION_VERSIONS, STATELESS
from higress_ops.servers.base import CallContext
from higress_ops.sessions.base import SessionRecord
from higress_ops.transport import guards
from higress_ops.transport.exchange import (
    Exchange,
    admit_session,
    call_context,
    classify_all,
    create_session,
    load_session,
    new_session_id,
    quota_key,
    save_if_changed,
)
from higress_ops.transport.sse import encode, frame
from higress_ops.transport.streams import EventStream, StreamHandle

if TYPE_CHECKING:
    from higress_ops.host import Host, Served

SESSION_HEADER = "mcp-session-id"
_ALLOW = {"Allow": "GET, POST, DELETE"}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status_code=status, media_type="application/json", headers=headers)


async def handle(host: Host, served: Served, request: Request, ex: Exchange) -> Response | EventStream:
    ex.transport = "streamable"
    version = request.headers.get("mcp-protocol-version")
    if request.method == "POST":
        return await _post(host, served, request, ex, version)
    if request.method in ("GET", "DELETE"):
        if version == STATELESS:
            ex.transport = STATELESS
            raise guards.Rejected(405, f"protocol {STATELESS} has no session stream; POST each request",
                                  headers={"Allow": "POST"})
        _check_version(version)
        if request.method == "GET":
            return await _stream(host, served, request, ex)
        return await _delete(host, served, request, ex)
    raise guards.Rejected(405, f"{request.method} is not offered here", headers=_ALLOW)


def _retry_after(reply: dict[str, Any]) -> dict[str, str] | None:
    """A refused 2026-07-28 call (429) carries its JSON-RPC retryAfterSeconds as Retry-After too."""
    data = reply.get("error", {}).get("data")
    seconds = data.get("retryAfterSeconds") if isinstance(data, dict) else None
    return {"Retry-After": str(seconds)} if isinstance(seconds, int) else None


def _check_version(version: str | None) -> None:
    if version is not None and version not in SESSION_VERSIONS:
        raise guards.Rejected(400, f"Unsupported MCP-Protocol-Version {version[:40]!r}; this server speaks "
                                   f"{', '.join((*SESSION_VERSIONS, STATELESS))}")


async def _session(host: Host, served: Served, request: Request, ex: Exchange) -> SessionRecord:
    session_id = request.headers.get(SESSION_HEADER)
    if session_id is None:
        raise guards.Rejected(400, "Bad Request: the Mcp-Session-Id header is missing; initialize first")
    return await load_session(host, served, session_id, "streamable", ex.principal)


async def _post(host: Host, served: Served, request: Request, ex: Exchange, version: str | None) -> Response:
    guards.require_json(request)
    guards.require_accept(request, "application/json")
    body = await guards.read_body(request, host.settings.body_limit)
    spans.mark("read")
    try:
        payload = jsonrpc.parse(body)
    except RpcError as exc:
        return json_response(exc.to_response(None), 400)
    ctx = call_context(host, request, ex.principal)
    spans.mark("parse")
    if stateless.is_stateless(request.headers, payload):
        ex.transport = STATELESS
        if isinstance(payload, dict):
            ex.describe([payload], False)
        status, reply = await stateless.handle(served.core, payload, request.headers, ctx)
        ex.answered([reply])
        if reply is None:
            return Response(status_code=status)
        return json_response(reply, status, _retry_after(reply) if status == 429 else None)
    _check_version(version)
    try:
        messages, batch = classify_all(payload, host.settings.max_batch)
    except RpcError as exc:
        reply = exc.to_response(jsonrpc.request_id(payload))
        ex.answered([reply])
        return json_response(reply, 400)
    ex.describe(messages, batch)
    if not batch and messages[0].get("method") == "initialize" and "id" in messages[0]:
        return await _initialize(host, served, messages[0], ctx, ex)
    if any(m.get("method") == "initialize" for m in messages):
        return json_response(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, "initialize must be sent alone"), 400)
    record = await _session(host, served, request, ex)
    spans.mark("session")
    if batch and record.protocol_version not in BATCH_VERSIONS:
        return json_response(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, f"JSON-RPC batches are only allowed "
                                           f"by protocol {', '.join(BATCH_VERSIONS)}"), 400)
    ctx.session_id = record.id

    async def send(message: dict[str, Any]) -> None:
        await host.store.deliver(record.id, frame(message))

    before = record.state()
    if batch:
        answers = await asyncio.gather(*(served.core.handle(m, record, ctx, send) for m in messages))
    else:
        answers = [await served.core.handle(messages[0], record, ctx, send)]  # no task for a single message
    replies = [r for r in answers if r is not None]
    ex.answered(replies)
    spans.mark("result")
    await save_if_changed(host.store, record, before)
    spans.mark("save")
    if not replies:
        return Response(status_code=202)
    return json_response(replies if batch else replies[0])


async def _initialize(host: Host, served: Served, message: dict[str, Any], ctx: CallContext,
                      ex: Exchange) -> Response:
    key = quota_key(ex.principal, ctx.address)
    admit_session(host, ex.principal, key)
    record = SessionRecord(id=new_session_id(), server=served.name, transport="streamable",
                           principal=ex.principal.key)
    ctx.session_id = record.id
    reply = await served.core.handle(message, record, ctx)
    ex.answered([reply])
    if reply is None or "error" in reply:
        return json_response(reply, 200)
    await create_session(host, record, key)
    return json_response(reply, headers={"Mcp-Session-Id": record.id})


async def _stream(host: Host, served: Served, request: Request, ex: Exchange) -> EventStream:
    ex.method = "stream"
    guards.require_accept(request, "text/event-stream")
    record = await _session(host, served, request, ex)
    previous = served.streams.get(record.id)
    if previous is not None:
        previous.end()  # one GET stream per session (its owner's, checked above): the newest wins
    record.stream_replica = host.replica_id
    await host.store.save(record)
    handle = StreamHandle()
    served.streams[record.id] = handle

    async def close() -> None:
        if served.streams.get(record.id) is handle:
            del served.streams[record.id]

    return EventStream(host.store, record.id, handle, keepalives=host.keepalives, on_close=close)


async def _delete(host: Host, served: Served, request: Request, ex: Exchange) -> Response:
    ex.method = "delete"
    record = await _session(host, served, request, ex)
    handle = served.streams.pop(record.id, None)
    if handle is not None:
        handle.end()
    host.quota.closed(record.id)
    await host.store.delete(record.id)
    return Response(status_code=200)
