"""The ASGI app: health and metrics endpoints, then every MCP endpoint of every configured server.

Routing is by exact path and host (see routing.py), so it is one dict lookup per request; everything
else is in the transport modules. Each request leaves one structured access-log line.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from higress_ops import metrics
from higress_ops.mcp import jsonrpc
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.transport import guards, legacy_sse, streamable
from higress_ops.transport.exchange import Exchange
from higress_ops.transport.streams import EventStream

if TYPE_CHECKING:
    from higress_ops.host import Host

logger = logging.getLogger("higress_ops.access")
MAX_HEADER_BYTES = 64 * 1024  # a token is a few KB; nothing legitimate needs more
errors = logging.getLogger(__name__)


class _Request(Request):
    """Starlette's request with its headers in a dict: a request is checked against ~9 of them, and Starlette's
    Headers scans and decodes the raw list on every lookup. ASGI names are already lowercase; the first of a
    repeated header wins, as with Starlette's `get`."""

    @property
    def headers(self) -> Mapping[str, str]:  # type: ignore[override]
        headers = self.__dict__.get("_dict_headers")
        if headers is None:
            headers = {}
            for name, value in self.scope["headers"]:
                headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
            self.__dict__["_dict_headers"] = headers
        return headers


class App:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not an MCP transport
        path = scope["path"]
        if path in ("/healthz", "/readyz", "/metrics"):
            await (await self._operational(path))(scope, receive, send)
            return
        await self._mcp(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self.host
        request = _Request(scope, receive)
        started = time.perf_counter()
        ex = Exchange()
        found = host.routes.find(request.headers.get("host", ""), scope["path"])
        response: Response | EventStream
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES:
            response = guards.error_response(431, jsonrpc.INVALID_REQUEST, f"request headers of {header_bytes} "
                                             f"bytes are over the {MAX_HEADER_BYTES}-byte limit")
        elif found is None:
            response = guards.error_response(404, jsonrpc.INVALID_REQUEST, "Not Found: no MCP server here")
        else:
            endpoint, served = found
            ex.server = served.name
            try:
                host.origins.check(request)
                if endpoint == "sse":
                    response = await legacy_sse.open_stream(host, served, request, ex)
                elif "sessionId" in request.query_params:
                    response = await legacy_sse.post_message(host, served, request, ex,
                                                             request.query_params["sessionId"])
                else:
                    response = await streamable.handle(host, served, request, ex)
            except guards.Rejected as exc:
                response = exc.response()
            except StoreUnavailable as exc:
                response = guards.error_response(503, jsonrpc.INTERNAL_ERROR, f"Service Unavailable: {exc}",
                                                 {"Retry-After": "1"})
            except Exception:
                errors.exception("unexpected error", extra={"server": ex.server, "method": ex.method})
                response = guards.error_response(500, jsonrpc.INTERNAL_ERROR,
                                                 "Internal error; the server log has the details")
        try:
            await response(scope, receive, send)
        finally:
            status = response.status_code
            host.metrics.request(ex.server, ex.transport, ex.method, status)
            if logger.isEnabledFor(logging.INFO):
                logger.info("request", extra={
                    "server": ex.server, "transport": ex.transport, "method": ex.method, "tool": ex.tool,
                    "http": f"{scope['method']} {scope['path'][:200]}", "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2)})

    async def _operational(self, path: str) -> Response:
        if path == "/healthz":
            return Response("ok\n", media_type="text/plain")
        if path == "/metrics":
            return Response(self.host.metrics.render(), media_type=metrics.CONTENT_TYPE)
        ready, detail = await self.host.readiness()
        return Response(json.dumps(detail), status_code=200 if ready else 503, media_type="application/json")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.host.start()
                except Exception as exc:
                    errors.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.host.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
