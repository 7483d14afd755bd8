"""The ASGI app: the MCP endpoints of every configured server on the MCP port, and /healthz, /readyz and
/metrics on the admin port only, so an Ingress to the MCP port never exposes them.

Every MCP request passes the gate once (Host/Origin, then authentication) before routing to a transport
handler; the principal it yields is handed down in the call context. Routing is by exact path and host
(see routing.py), one dict lookup. Each request leaves one structured access-log line.
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

from higress_ops import metrics, spans
from higress_ops.logs import ACCESS_LOGGER
from higress_ops.mcp import jsonrpc
from higress_ops.sessions.base import StoreUnavailable
from higress_ops.transport import guards, legacy_sse, streamable
from higress_ops.transport.exchange import Exchange
from higress_ops.transport.security import METADATA_PREFIX
from higress_ops.transport.server import MAX_HEADER_BYTES, local_port
from higress_ops.transport.streams import EventStream

if TYPE_CHECKING:
    from higress_ops.host import Host

logger = logging.getLogger(ACCESS_LOGGER)
errors = logging.getLogger(__name__)
ADMIN_PATHS = ("/healthz", "/readyz", "/metrics")
STORE_DOWN = "Service Unavailable: the session store is unavailable; retry shortly"


class _Request(Request):
    """Starlette's request with its headers in a dict: a request is checked against ~9 of them, and Starlette's
    Headers scans and decodes the raw list on every lookup. ASGI names are already lowercase; the first of a
    repeated header wins, as with Starlette's `get`."""

    @property
    def headers(self) -> Mapping[str, str]:  # type: ignore[override]
        headers = self.__dict__.get("_dict_headers")
        if headers is None:
            headers, size = {}, 0
            for name, value in self.scope["headers"]:
                headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
                size += len(name) + len(value)
            self.__dict__["_dict_headers"], self.__dict__["_header_bytes"] = headers, size
        return headers

    @property
    def header_bytes(self) -> int:
        """The size of the header fields, counted in the same pass that builds the dict."""
        if "_header_bytes" not in self.__dict__:
            _ = self.headers
        return int(self.__dict__["_header_bytes"])


class App:
    def __init__(self, host: Host) -> None:
        self.host = host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets are not an MCP transport
        metrics.ACTIVE.set(self.host.metrics)  # this request's task: upstream clients record into this host
        if local_port(scope) == self.host.settings.admin_port:
            await (await self._operational(scope["path"]))(scope, receive, send)
        elif scope["path"].startswith(METADATA_PREFIX):
            await self._resource_metadata(scope)(scope, receive, send)
        else:
            await self._mcp(scope, receive, send)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        host = self.host
        spans.begin()
        started = time.perf_counter()
        ex = Exchange()
        response: Response | EventStream
        try:  # the request is not a local here: a stream would keep it (and its headers) as long as it runs
            response = await self._dispatch(_Request(scope, receive), ex)
        except guards.Rejected as exc:
            response = exc.response()
        except StoreUnavailable as exc:
            errors.warning("session store unavailable: %s", exc, extra={"server": ex.server})
            response = guards.error_response(503, jsonrpc.INTERNAL_ERROR, STORE_DOWN, {"Retry-After": "1"})
        except Exception:
            errors.exception("unexpected error", extra={"server": ex.server, "method": ex.method})
            response = guards.error_response(500, jsonrpc.INTERNAL_ERROR,
                                             "Internal error; the server log has the details")
        spans.mark("respond")
        try:
            await response(scope, receive, send)
        finally:
            spans.mark("send")
            status = response.status_code
            host.metrics.request(ex.server, ex.transport, ex.method, status)
            if logger.isEnabledFor(logging.INFO):
                logger.info("request", extra=ex.log_fields(f"{scope['method']} {scope['path'][:200]}", status,
                                                           round((time.perf_counter() - started) * 1000, 2)))
            spans.mark("log+metrics")
            spans.end()

    async def _dispatch(self, request: _Request, ex: Exchange) -> Response | EventStream:
        host = self.host
        header_bytes = request.header_bytes
        if header_bytes > MAX_HEADER_BYTES:  # uvicorn's protocol already cut bigger ones; this covers any server
            raise guards.Rejected(431, f"request headers of {header_bytes} bytes are over the "
                                       f"{MAX_HEADER_BYTES}-byte limit")
        found = host.routes.find(request.headers.get("host", ""), request.scope["path"])
        if found is None:  # authenticate anyway: an unauthenticated caller learns nothing, not even which paths exist
            await host.gate.admit(request, ("*",), request.scope["path"])
            raise guards.Rejected(404, "Not Found: no MCP server here")
        endpoint, served = found
        ex.principal = await host.gate.admit(request, served.entry.domain_list, served.entry.path)
        ex.server = served.name
        spans.mark("gate")
        if endpoint == "sse":
            return await legacy_sse.open_stream(host, served, request, ex)
        if b"sessionId" in request.scope["query_string"] and "sessionId" in request.query_params:
            return await legacy_sse.post_message(host, served, request, ex, request.query_params["sessionId"])
        return await streamable.handle(host, served, request, ex)

    def _resource_metadata(self, scope: Scope) -> Response:
        """RFC 9728 Protected Resource Metadata at /.well-known/oauth-protected-resource<server path>, behind the
        same Host/Origin policy as the MCP endpoints; `resource` is never built from a Host nobody named."""
        request = _Request(scope)
        path = scope["path"][len(METADATA_PREFIX):]
        gate = self.host.gate
        found = self.host.routes.find(request.headers.get("host", ""), path)
        domains = found[1].entry.domain_list if found is not None else ("*",)
        try:
            gate.hosts.check(request.headers, domains)
        except guards.Rejected as exc:
            return exc.response()
        base = gate.resource_base(request, domains)
        metadata = gate.auth.resource_metadata(base + path) if base is not None else None
        if found is None or found[0] != "message" or metadata is None or scope["method"] not in ("GET", "HEAD"):
            hint = " (set serve --public-url to publish it)" if base is None and found is not None else ""
            return Response(json.dumps({"error": "not_found", "error_description": "no protected resource "
                                        f"metadata here{hint}"}), status_code=404, media_type="application/json")
        return Response(json.dumps(metadata), media_type="application/json",
                        headers={"Cache-Control": "max-age=300"})

    async def _operational(self, path: str) -> Response:
        if path == "/healthz":
            return Response("ok\n", media_type="text/plain")
        if path == "/metrics":
            return Response(self.host.metrics.render(), media_type=metrics.CONTENT_TYPE)
        if path == "/spans" and spans.enabled():  # serve --spans: the benchmark's per-step table
            return Response(json.dumps(spans.table()), media_type="application/json")
        if path == "/readyz":
            ready, detail = await self.host.readiness()
            return Response(json.dumps(detail), status_code=200 if ready else 503, media_type="application/json")
        return Response("not found: the admin port serves /healthz, /readyz and /metrics\n", status_code=404,
                        media_type="text/plain")

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

