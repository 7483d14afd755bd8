"""JSON-RPC message classification: what counts as a request, a notification or garbage."""

from __future__ import annotations

from typing import Any

import pytest

from higress_ops.mcp import jsonrpc
from higress_ops.mcp.versions import LATEST_SESSION, negotiate


@pytest.mark.parametrize(("message", "kind"), [
    ({"jsonrpc": "2.0", "id": 1, "method": "ping"}, "request"),
    ({"jsonrpc": "2.0", "id": "a", "method": "ping", "params": {}}, "request"),
    ({"jsonrpc": "2.0", "method": "notifications/initialized"}, "notification"),
    ({"jsonrpc": "2.0", "id": 1, "result": {}}, "response"),
    ({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "x"}}, "response"),
])
def test_kinds(message: dict[str, Any], kind: str) -> None:
    assert jsonrpc.kind(message) == kind


@pytest.mark.parametrize("message", [
    [], "x", 1, None, {}, {"jsonrpc": "2.0"}, {"jsonrpc": "1.0", "id": 1, "method": "ping"},
    {"jsonrpc": "2.0", "id": 1, "method": 5}, {"jsonrpc": "2.0", "id": 1, "method": ""},
    {"jsonrpc": "2.0", "id": True, "method": "ping"}, {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
    {"jsonrpc": "2.0", "id": None, "method": "ping"}, {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]},
    {"jsonrpc": "2.0", "id": 2**70, "method": "ping"},
])
def test_invalid_messages(message: Any) -> None:
    with pytest.raises(jsonrpc.RpcError) as info:
        jsonrpc.kind(message)
    assert info.value.code == jsonrpc.INVALID_REQUEST


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"nan-json"])
def test_parse_errors(body: bytes) -> None:
    with pytest.raises(jsonrpc.RpcError) as info:
        jsonrpc.parse(body)
    assert info.value.code == jsonrpc.PARSE_ERROR


def test_error_shape_keeps_a_null_id() -> None:
    assert jsonrpc.error(None, -32600, "bad") == {"jsonrpc": "2.0", "id": None,
                                                  "error": {"code": -32600, "message": "bad"}}


def test_negotiate() -> None:
    assert negotiate("2024-11-05") == "2024-11-05"
    assert negotiate("2026-07-28") == LATEST_SESSION
    assert negotiate(None) == LATEST_SESSION
