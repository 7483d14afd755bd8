"""JSON-RPC 2.0 message shapes: parsing, classifying and building, nothing MCP-specific."""

from __future__ import annotations

from typing import Any, Literal

from higress_ops import jsonfast

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
HEADER_MISMATCH = -32020  # 2026-07-28: Mcp-Method / Mcp-Name / version header disagrees with the body
UNSUPPORTED_PROTOCOL_VERSION = -32022  # 2026-07-28: data {"supported": [...], "requested": ...}
RATE_LIMITED = -32029  # ours: the server's rate_limit refused the call; data says when to retry

# The HTTP status a 2026-07-28 answer carries for an error code (the SDK's table); other codes get 200.
HTTP_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
               UNSUPPORTED_PROTOCOL_VERSION: 400, METHOD_NOT_FOUND: 404, RATE_LIMITED: 429}

Kind = Literal["request", "notification", "response"]
RequestId = str | int


class RpcError(Exception):
    """A protocol error that becomes a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_response(self, id: RequestId | None) -> dict[str, Any]:
        return error(id, self.code, self.message, self.data)


MAX_DEPTH = 64  # MCP messages nest a handful of levels; deeper is an attack on recursive code downstream


def parse(body: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a request body; anything that is not UTF-8 JSON, or nests deeper than `max_depth`, is a
    parse error (so no later recursive walk, e.g. schema validation, can hit RecursionError)."""
    try:
        value = jsonfast.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RpcError(PARSE_ERROR, f"Parse error: the body is not valid JSON ({str(exc)[:200]})") from None
    if body.count(b"[") + body.count(b"{") > max_depth and depth(value, max_depth) > max_depth:
        raise RpcError(PARSE_ERROR, f"Parse error: the body nests deeper than {max_depth} levels")
    return value


def depth(value: Any, limit: int) -> int:
    """How deep `value` nests, counted without recursion; stops looking once past `limit`."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))) and \
        (not isinstance(value, int) or -(2**63) <= value < 2**63)


def kind(message: Any) -> Kind:
    """What a decoded message is; anything else is an invalid request."""
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise RpcError(INVALID_REQUEST, "Invalid request: expected a JSON-RPC 2.0 object with \"jsonrpc\": \"2.0\"")
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            raise RpcError(INVALID_REQUEST, "Invalid request: \"method\" must be a non-empty string")
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise RpcError(INVALID_REQUEST, "Invalid request: \"params\" must be an object")
        if "id" not in message:
            return "notification"
        if not _valid_id(message["id"]):
            raise RpcError(INVALID_REQUEST, "Invalid request: \"id\" must be a string or an integer")
        return "request"
    if "id" in message and ("result" in message or "error" in message):
        return "response"
    raise RpcError(INVALID_REQUEST, "Invalid request: neither a request, a notification nor a response")


def request_id(message: Any) -> RequestId | None:
    """The id to answer with, when one can be read at all."""
    if isinstance(message, dict) and _valid_id(message.get("id")):
        valid: RequestId = message["id"]
        return valid
    return None


def error(id: RequestId | None, code: int, message: str, data: Any = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id, "error": err}


def result(id: RequestId, value: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "result": value}


def notification(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message
