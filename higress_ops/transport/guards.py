"""Checks every MCP request passes before any JSON-RPC: Accept, Content-Type, body size."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import Response

from higress_ops.mcp import jsonrpc
from higress_ops.transport.sse import encode

DEFAULT_BODY_LIMIT = 1024 * 1024


class Rejected(Exception):
    """The request is refused before the MCP layer; carries the HTTP answer."""

    def __init__(self, status: int, message: str, code: int = jsonrpc.INVALID_REQUEST,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers

    def response(self) -> Response:
        return error_response(self.status, self.code, self.message, self.headers)


def error_response(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(jsonrpc.error(None, code, message)), status_code=status, media_type="application/json",
                    headers=headers)


@functools.lru_cache(maxsize=256)
def _accepts(accept: str, media_type: str) -> bool:
    """Clients send the same Accept on every request: parsed once per value (bounded however many there are)."""
    types = {part.split(";", 1)[0].strip().lower() for part in accept.split(",") if part.strip()}
    return bool(types & {media_type, media_type.split("/", 1)[0] + "/*", "*/*"})


def accepts(request: Request, media_type: str) -> bool:
    accept = request.headers.get("accept")
    if not accept:
        return True
    return _accepts(accept, media_type) if len(accept) <= 1024 else _accepts.__wrapped__(accept, media_type)


def require_accept(request: Request, *media_types: str) -> None:
    missing = [m for m in media_types if not accepts(request, m)]
    if missing:
        raise Rejected(406, f"Not Acceptable: this endpoint answers with {' and '.join(media_types)}; "
                            "send an Accept header that allows it")


def require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type != "application/json" and content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise Rejected(400, "Content-Type must be application/json")


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is over `limit`. Read from the ASGI receive channel itself:
    a JSON-RPC body nearly always comes in one message, and Starlette's stream generator cost more than the
    parse (bench P1's span table)."""
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise Rejected(400, "invalid Content-Length")
        if int(length) > limit:
            raise Rejected(413, f"request body of {length} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] != "http.request":
            raise Rejected(400, "client disconnected before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"request body is over the {limit}-byte limit")
        if not message.get("more_body", False):
            return b"".join((*chunks, chunk)) if chunks else chunk
        chunks.append(chunk)
