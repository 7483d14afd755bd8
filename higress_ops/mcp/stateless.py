"""The 2026-07-28 per-request envelope: one POST, one JSON-RPC request, no handshake, no session.

Checks run in the SDK's order (first failure wins) so its clients get the errors they expect:
`params._meta` carries the protocol version and client capabilities (-32602); the MCP-Protocol-Version,
Mcp-Method and Mcp-Name headers agree with the body (-32020); the version is one we speak (-32022 with
the supported list). Error codes map to HTTP statuses through `jsonrpc.HTTP_STATUS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.mcp import jsonrpc
from higress_ops.mcp.core import LOG_LEVELS, McpCore
from higress_ops.mcp.jsonrpc import (
    HEADER_MISMATCH,
    INVALID_PARAMS,
    INVALID_REQUEST,
    UNSUPPORTED_PROTOCOL_VERSION,
    RpcError,
)
from higress_ops.mcp.versions import STATELESS, SUPPORTED
from higress_ops.servers.base import CallContext
from higress_ops.sessions.base import SessionRecord

VERSION_META = "io.modelcontextprotocol/protocolVersion"
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo"
LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"
NAME_PARAMS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
MODERN = (STATELESS,)


def unsupported(requested: Any) -> RpcError:
    return RpcError(UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version",
                    {"supported": list(SUPPORTED), "requested": requested if isinstance(requested, str) else None})


def is_stateless(headers: Mapping[str, str], message: Any) -> bool:
    """Whether a POST to the message path belongs to this envelope rather than a handshake session."""
    if headers.get("mcp-protocol-version") == STATELESS:
        return True
    return isinstance(message, dict) and message.get("method") == "server/discover"


def _status(response: dict[str, Any]) -> int:
    error = response.get("error")
    return jsonrpc.HTTP_STATUS.get(error["code"], 200) if isinstance(error, dict) else 200


def check_envelope(message: dict[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    """The request's `_meta` once every rung passed; raises RpcError naming the first that failed."""
    params = message.get("params")
    if not isinstance(params, dict):
        params = {}
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise RpcError(INVALID_PARAMS, f"params._meta must be an object carrying {VERSION_META!r} and "
                                       f"{CAPABILITIES_META!r} (protocol {STATELESS})")
    missing = [key for key in (VERSION_META, CAPABILITIES_META) if key not in meta]
    if missing:
        raise RpcError(INVALID_PARAMS, f"params._meta is missing the required key(s): {', '.join(missing)}")
    version = meta[VERSION_META]
    if headers.get("mcp-protocol-version") != version:
        raise RpcError(HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta's protocol version")
    method = message["method"]
    if headers.get("mcp-method") != method:
        raise RpcError(HEADER_MISMATCH, f"Mcp-Method header does not match the request body's method ({method!r})")
    name_key = NAME_PARAMS.get(method)
    if name_key is not None and params.get(name_key) is not None and headers.get("mcp-name") != params[name_key]:
        raise RpcError(HEADER_MISMATCH, f"Mcp-Name header does not match the request body's {name_key!r}")
    if not isinstance(version, str):
        raise RpcError(INVALID_PARAMS, "the protocol-version value in params._meta must be a string")
    if version not in MODERN:
        raise unsupported(version)
    if not isinstance(meta[CAPABILITIES_META], dict):
        raise RpcError(INVALID_PARAMS, f"{CAPABILITIES_META!r} in params._meta must be an object")
    return meta


async def handle(core: McpCore, message: Any, headers: Mapping[str, str],
                 ctx: CallContext) -> tuple[int, dict[str, Any] | None]:
    """Answer one 2026-07-28 POST: (HTTP status, JSON body or None for 202)."""
    if isinstance(message, list):
        return 400, jsonrpc.error(None, INVALID_REQUEST, f"Protocol {STATELESS} takes one JSON-RPC message per "
                                                         "POST, not a batch")
    try:
        kind = jsonrpc.kind(message)
    except RpcError as exc:
        return 400, exc.to_response(jsonrpc.request_id(message))
    if kind == "response":
        return 400, jsonrpc.error(message.get("id"), INVALID_REQUEST,
                                  f"Protocol {STATELESS} has no server-to-client requests to answer")
    if kind == "notification":  # nothing to act on without a session; acknowledged like the SDK does
        version = headers.get("mcp-protocol-version", "")
        if version not in MODERN:
            return 400, unsupported(version).to_response(None)
        return 202, None
    try:
        meta = check_envelope(message, headers)
    except RpcError as exc:
        return jsonrpc.HTTP_STATUS.get(exc.code, 400), exc.to_response(message["id"])
    level = meta.get(LOG_LEVEL_META)
    record = SessionRecord(id="", server=core.server.name, transport="streamable", protocol_version=STATELESS,
                           client_capabilities=meta[CAPABILITIES_META], initialized=True,
                           log_level=level if level in LOG_LEVELS else None)
    response = await core.handle(message, record, ctx)
    assert response is not None  # a request always gets an answer
    return _status(response), response
