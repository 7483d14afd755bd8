"""What every MCP exchange shares across transports: session ids, loading a session for its principal,
message batches, the caller's identity, record saving and the facts the access log and metrics report."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from higress_ops.auth import ANONYMOUS, Principal
from higress_ops.mcp import jsonrpc
from higress_ops.mcp.jsonrpc import INVALID_REQUEST, RpcError
from higress_ops.servers.base import CallContext
from higress_ops.sessions.base import SESSION_ID, SessionRecord, SessionStore, Transport
from higress_ops.transport import guards
from higress_ops.transport.peers import client_address

if TYPE_CHECKING:
    from higress_ops.host import Host, Served

# Never handed to tools: credentials for this server, and hop-by-hop headers.
_NOT_FORWARDED = frozenset({"authorization", "cookie", "connection", "content-length", "transfer-encoding", "host"})
_NOT_FOUND_HINT = {"sse": "it expired or its stream closed; open a new SSE stream",
                   "streamable": "it expired or was deleted; initialize a new one"}


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits, visible ASCII as Mcp-Session-Id requires


def check_session_id(session_id: str) -> None:
    if not SESSION_ID.fullmatch(session_id):
        raise guards.Rejected(400, "malformed session id: use the one the server gave you")


async def load_session(host: Host, served: Served, session_id: str, transport: Transport,
                       principal: Principal) -> SessionRecord:
    """The session, if it is this server's, of this transport, and opened by this principal; else 404.

    Another principal's session answers exactly like an unknown one, so ids cannot be probed."""
    check_session_id(session_id)
    record = await host.store.get(session_id)
    if record is None or record.server != served.name or record.transport != transport or \
            (record.principal or ANONYMOUS.key) != principal.key:
        raise guards.Rejected(404, f"Session not found: {_NOT_FOUND_HINT[transport]}")
    host.quota.touched(session_id)
    return record


def quota_key(principal: Principal, address: str) -> str:
    """What a new session counts against: the authenticated identity, else the real client address (with
    `--auth none` everyone is the same anonymous principal, and one client must not use up every one's quota)."""
    return f"address:{address}" if principal.anonymous else principal.key


def admit_session(host: Host, principal: Principal, key: str) -> None:
    """Refuse a new session over this replica's limits (503) or its quota key's (429), with Retry-After."""
    full = host.quota.admit(key)
    if full == "replica":
        raise guards.Rejected(503, "Service Unavailable: this replica holds its maximum number of sessions; "
                                   "retry later or end unused sessions", jsonrpc.INTERNAL_ERROR,
                              {"Retry-After": "30"})
    if full == "principal":
        who = f"client address {key[len('address:'):]}" if principal.anonymous else principal.name
        raise guards.Rejected(429, f"Too Many Requests: {who} already has the maximum of "
                                   f"{host.quota.max_per_principal} open sessions; end some (DELETE) or wait for "
                                   "them to expire", jsonrpc.INVALID_REQUEST, {"Retry-After": "30"})


async def create_session(host: Host, record: SessionRecord, key: str) -> None:
    """Store a new session and count it against its quota key (admit_session checked it fits)."""
    await host.store.create(record)
    host.quota.opened(record.id, key)


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers a tool may read (e.g. x-istiod-token). Held in memory only, never stored."""
    return {k: v for k, v in headers.items() if k not in _NOT_FORWARDED}


def call_context(host: Host, request: Request, principal: Principal, session_id: str | None = None) -> CallContext:
    """What a call may know of its request: its own headers (never Authorization), who is calling, and the
    rate-limit key: the authenticated identity, else the real client address."""
    address = client_address(request, host.trusted_proxies)
    return CallContext(headers=forwarded_headers(request.headers), session_id=session_id, principal=principal,
                       caller=address if principal.anonymous else principal.name, address=address,
                       use_server_token=not principal.anonymous or host.settings.loopback)


def classify_all(payload: Any, max_batch: int) -> tuple[list[dict[str, Any]], bool]:
    """(messages, was_batch); any malformed member fails the whole body, as a 400."""
    batch = isinstance(payload, list)
    messages = payload if batch else [payload]
    if batch and not messages:
        raise RpcError(INVALID_REQUEST, "Invalid request: an empty batch")
    if batch and len(messages) > max_batch:
        raise RpcError(INVALID_REQUEST, f"Invalid request: a batch of {len(messages)} messages is over the limit "
                                        f"of {max_batch}; send fewer at a time")
    for message in messages:
        jsonrpc.kind(message)
    return messages, batch


async def save_if_changed(store: SessionStore, record: SessionRecord, before: tuple[Any, ...]) -> None:
    if record.state() != before:
        await store.save(record)


@dataclass(slots=True)
class Exchange:
    """Facts about one HTTP request for its access-log line and metrics."""

    server: str = "-"
    transport: str = "-"
    method: str = "-"
    tool: str = ""
    principal: Principal = ANONYMOUS
    outcome: str = ""  # ok | tool_error | rpc_error, once a JSON-RPC answer is known
    error_code: int | None = None

    def describe(self, messages: list[dict[str, Any]], batch: bool) -> None:
        if batch:
            self.method = "batch"
            return
        message = messages[0]
        self.method = message.get("method") or "response"
        params = message.get("params")
        if self.method == "tools/call" and isinstance(params, dict):  # not checked yet on the 2026 path
            name = params.get("name")
            self.tool = name[:64] if isinstance(name, str) else ""

    def answered(self, replies: Iterable[Mapping[str, Any] | None]) -> None:
        """Record the JSON-RPC outcome: an error anywhere in a batch wins over a tool error, over ok."""
        for reply in replies:
            if not reply:
                continue
            error = reply.get("error")
            if isinstance(error, dict):  # replies are the core's own dicts (an ABC check costs more)
                self.outcome, self.error_code = "rpc_error", error.get("code")
                return
            result = reply.get("result")
            if isinstance(result, dict) and result.get("isError") is True:
                self.outcome = "tool_error"
            elif not self.outcome:
                self.outcome = "ok"

    def log_fields(self, http: str | None = None, status: int = 0, duration_ms: float = 0.0) -> dict[str, Any]:
        """An access line's fields, in one dict (the logging module copies it into the record once); `http`, for
        the line of the HTTP request itself, comes with its status and duration."""
        fields: dict[str, Any] = {"server": self.server, "transport": self.transport, "method": self.method,
                                  "tool": self.tool, "identity": self.principal.name}
        if http is not None:
            fields["http"], fields["status"], fields["duration_ms"] = http, status, duration_ms
        if self.outcome:
            fields["outcome"] = self.outcome
        if self.error_code is not None:
            fields["error_code"] = self.error_code
        return fields
