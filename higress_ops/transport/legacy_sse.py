"""HTTP+SSE (2024-11-05): `GET {path}{sse_path_suffix}` holds the stream; `POST {path}?sessionId=` feeds it.

A POST may land on any replica: it is handled there and its responses are delivered through the session
store to whichever replica holds the stream (locally without a network hop).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from higress_ops.logs import ACCESS_LOGGER
from higress_ops.mcp import jsonrpc
from higress_ops.mcp.jsonrpc import RpcError
from higress_ops.mcp.versions import BATCH_VERSIONS
from higress_ops.servers.base import CallContext
from higress_ops.sessions.base import SessionRecord, StoreUnavailable
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
from higress_ops.transport.peers import client_address
from higress_ops.transport.sse import endpoint_frame, frame
from higress_ops.transport.streams import EventStream, StreamHandle

if TYPE_CHECKING:
    from higress_ops.host import Host, Served

logger = logging.getLogger(__name__)
access = logging.getLogger(ACCESS_LOGGER)


async def open_stream(host: Host, served: Served, request: Request, ex: Exchange) -> Response | EventStream:
    ex.transport, ex.method = "sse", "stream"
    if request.method != "GET":
        raise guards.Rejected(405, "the SSE endpoint only takes GET", headers={"Allow": "GET"})
    guards.require_accept(request, "text/event-stream")
    key = quota_key(ex.principal, client_address(request, host.trusted_proxies))
    admit_session(host, ex.principal, key)
    session_id = new_session_id()
    await create_session(host, SessionRecord(id=session_id, server=served.name, transport="sse",
                                             stream_replica=host.replica_id, principal=ex.principal.key), key)
    handle = StreamHandle()
    served.streams[session_id] = handle

    async def close() -> None:
        served.streams.pop(session_id, None)
        host.quota.closed(session_id)
        await host.store.delete(session_id)  # a legacy session lives exactly as long as its stream

    return EventStream(host.store, session_id, handle, keepalives=host.keepalives,
                       first=endpoint_frame(f"{served.entry.path}?sessionId={session_id}"), on_close=close)


async def post_message(host: Host, served: Served, request: Request, ex: Exchange, session_id: str) -> Response:
    ex.transport = "sse"
    if request.method != "POST":
        raise guards.Rejected(405, "the message endpoint takes POST", headers={"Allow": "POST"})
    guards.require_json(request)
    record = await load_session(host, served, session_id, "sse", ex.principal)
    body = await guards.read_body(request, host.settings.body_limit)
    try:
        messages, batch = classify_all(jsonrpc.parse(body), host.settings.max_batch)
    except RpcError as exc:
        raise guards.Rejected(400, exc.message, exc.code) from None
    if batch and record.protocol_version not in BATCH_VERSIONS:
        raise guards.Rejected(400, f"JSON-RPC batches are only allowed by protocol {', '.join(BATCH_VERSIONS)}; "
                                   "this session negotiated " + str(record.protocol_version or "nothing yet"))
    ex.describe(messages, batch)
    # This POST's own headers only: the stream's GET may have come from another client.
    ctx = call_context(host, request, ex.principal, session_id)

    async def send(message: dict[str, Any]) -> None:
        await host.store.deliver(session_id, frame(message))

    requests = [m for m in messages if "id" in m and "method" in m]
    before = record.state()
    for message in messages:
        if "id" not in message or "method" not in message:
            await served.core.handle(message, record, ctx)  # notifications and responses: quick, in order
    if not requests:
        await save_if_changed(host.store, record, before)
        return Response(status_code=202)
    task = asyncio.create_task(_answer(host, served, record, before, requests, ctx, send, ex))
    host.track(task)
    return Response("Accepted", status_code=202, media_type="text/plain")


async def _answer(host: Host, served: Served, record: SessionRecord, before: tuple[Any, ...],
                  requests: list[dict[str, Any]], ctx: CallContext, send: Any, ex: Exchange) -> None:
    replies = await asyncio.gather(*(served.core.handle(m, record, ctx, send) for m in requests))
    answered = replace(ex)
    answered.answered(replies)
    access.info("answer", extra=answered.log_fields())  # the 202 was logged already; this is the outcome
    try:
        await save_if_changed(host.store, record, before)  # before the reply: the client's next POST sees it
        for reply in replies:
            if reply is not None and not await host.store.deliver(record.id, frame(reply)):
                logger.warning("response dropped: no replica holds the session's stream",
                               extra={"server": served.name, "session": record.id[:8]})
    except StoreUnavailable as exc:
        logger.warning("response not delivered: %s", exc, extra={"server": served.name})
