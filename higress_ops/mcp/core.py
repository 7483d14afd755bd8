"""The MCP core: lifecycle, tools, prompts and logging over JSON-RPC, independent of any transport.

A transport hands over one classified message plus the session's record; the core answers it and
updates the record (negotiated version, client info, log level), which the transport persists. The
same core serves the handshake revisions and the 2026-07-28 per-request envelope (`stateless.py`
checks the envelope, then calls in here with a record whose version is STATELESS).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from higress_ops import jsonfast, spans
from higress_ops.mcp import jsonrpc
from higress_ops.mcp.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND, RATE_LIMITED, REQUEST_CANCELLED, RpcError
from higress_ops.mcp.slots import CallSlots, QueueFull
from higress_ops.mcp.versions import STATELESS, SUPPORTED, negotiate
from higress_ops.ratelimit import RateLimiter
from higress_ops.servers.base import CallContext, McpServer, PromptProvider, ToolResult, ToolSpec
from higress_ops.servers.held import ByteLedger
from higress_ops.sessions.base import SessionRecord

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]
ToolObserver = Callable[[str, float, str], None]  # (tool, seconds, "ok" | "error" | "invalid")

LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
_LEVEL_RANK = {level: rank for rank, level in enumerate(LOG_LEVELS)}
_HANDSHAKE_ONLY = frozenset({"initialize", "logging/setLevel"})
_LIST_TTL_MS = 60_000  # tools only change when the config does
_MAX_MESSAGE = 300  # validation messages quote the offending value; keep them readable
MAX_CLIENT_STATE = 16 * 1024  # clientInfo + capabilities kept in a session record (and Redis)
MAX_ARGUMENTS = 64 * 1024  # a tool's arguments, checked before schema validation walks them
MAX_INFLIGHT = 8  # tool calls one session (or one identity's 2026-07-28 calls) may have running at once
MAX_QUEUED = 32  # calls waiting for one of those slots: a whole batch fits
MAX_QUEUED_BYTES = 1024 * 1024  # their arguments, together


def _clip(text: str, limit: int = _MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


CallKey = tuple[str, type, Any]


def _call_key(session_id: str, request_id: Any) -> CallKey:
    """A session's call by JSON-RPC id: 1 and "1" (and 1.0) are different ids, as in the JSON."""
    if not isinstance(request_id, str | int | float | None):
        request_id = jsonfast.dumps(request_id)  # no request has such an id: it matches no call
    return (session_id, type(request_id), request_id)


def _small_info(info: Any) -> dict[str, Any] | None:
    """Client info goes into session records (and Redis): keep only short identity strings."""
    if not isinstance(info, dict):
        return None
    return {k: _clip(str(info[k]), 128) for k in ("name", "title", "version") if isinstance(info.get(k), str)}


class McpCore:
    """One configured server's MCP endpoint. Holds compiled argument validators and in-flight calls."""

    def __init__(self, server: McpServer, *, on_tool_call: ToolObserver | None = None,
                 limiter: RateLimiter | None = None, max_inflight: int = MAX_INFLIGHT, max_queued: int = MAX_QUEUED,
                 max_queued_bytes: int = MAX_QUEUED_BYTES, ledger: ByteLedger | None = None) -> None:
        self.server = server
        self.slots = CallSlots(max_inflight, max_queued, max_queued_bytes)
        self.ledger = ledger  # the host's: upstream bytes every call in progress holds
        self.on_tool_call = on_tool_call
        self.limiter = limiter  # the host swaps it when rate_limit changes
        specs = list(server.tools())
        self._tools: dict[str, ToolSpec] = {spec.name: spec for spec in specs}
        self._tool_list = [spec.to_mcp() for spec in specs]
        self._validators = {spec.name: Draft202012Validator(spec.input_schema) for spec in specs}
        self._empty_ok = {name: validator.is_valid({}) for name, validator in self._validators.items()}
        # The task running each session's call (the request's own: a task per call cost more than the call's
        # JSON-RPC work), and the calls whose client cancelled them.
        self._inflight: dict[CallKey, asyncio.Task[Any]] = {}
        self._cancelled: set[CallKey] = set()
        self._prompts = server if isinstance(server, PromptProvider) else None
        self._prompt_list = [p.to_mcp() for p in self._prompts.prompts()] if self._prompts else []
        self._methods: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
            "initialize": self._initialize,
            "ping": self._ping,
            "tools/list": self._list_tools,
            "tools/call": self._call_tool,
            "logging/setLevel": self._set_level,
            **({"prompts/list": self._list_prompts, "prompts/get": self._get_prompt} if self._prompts else {}),
            "server/discover": self._discover,
        }

    @property
    def capabilities(self) -> dict[str, Any]:
        caps: dict[str, Any] = {"tools": {"listChanged": False}, "logging": {}}
        if self._prompts is not None:
            caps["prompts"] = {"listChanged": False}
        return caps

    @property
    def server_info(self) -> dict[str, Any]:
        return {"name": self.server.name, "version": self.server.version}

    def tool_names(self) -> list[str]:
        return list(self._tools)

    async def handle(self, message: dict[str, Any], record: SessionRecord, ctx: CallContext,
                     send: Send | None = None) -> dict[str, Any] | None:
        """Answer one request (the response) or take one notification (None). Never raises RpcError."""
        method = message.get("method")
        if not isinstance(method, str):  # a response from the client: we never send requests, so drop it
            return None
        params = message.get("params") or {}
        if "id" not in message:
            self._notification(method, params, record)
            return None
        request_id = message["id"]
        handler = self._methods.get(method)
        stateless = record.protocol_version == STATELESS
        try:
            if handler is None or (stateless and method in _HANDSHAKE_ONLY) or \
                    (method == "server/discover" and not stateless and record.transport == "sse"):
                # Answering discover on a legacy SSE session would switch the SDK's auto mode to an era
                # this transport does not carry; an error makes it fall back to initialize at once.
                raise RpcError(METHOD_NOT_FOUND, f"Method not found: {_clip(method, 100)}")
            value = await handler(params, record, ctx, send, request_id)
        except RpcError as exc:
            return exc.to_response(request_id)
        except Exception:
            logger.exception("internal error", extra={"server": self.server.name, "method": method})
            return jsonrpc.error(request_id, jsonrpc.INTERNAL_ERROR,
                                 f"Internal error while handling {method}; see the server log")
        if stateless:
            self._decorate(method, value)
        return jsonrpc.result(request_id, value)

    async def aclose(self) -> None:
        """Cancel the calls in flight (each is answered as cancelled) and wait for them to finish."""
        me = asyncio.current_task()
        tasks = [task for task in self._inflight.values() if task is not me]
        for key, task in list(self._inflight.items()):
            if key not in self._cancelled:
                self._cancelled.add(key)
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._inflight.clear()

    # -- notifications -----------------------------------------------------------------------------

    def _notification(self, method: str, params: Mapping[str, Any], record: SessionRecord) -> None:
        if method == "notifications/initialized":
            record.initialized = True
        elif method == "notifications/cancelled":
            key = _call_key(record.id, params.get("requestId"))
            task = self._inflight.get(key)
            if task is not None and key not in self._cancelled:
                self._cancelled.add(key)
                task.cancel()
        # Everything else (roots/list_changed, progress, unknown) needs nothing from a tools-only server.

    # -- requests ----------------------------------------------------------------------------------

    async def _initialize(self, params: Mapping[str, Any], record: SessionRecord, *_: Any) -> dict[str, Any]:
        requested = params.get("protocolVersion")
        if not isinstance(requested, str):
            raise RpcError(INVALID_PARAMS, "initialize needs params.protocolVersion, a string such as "
                                           f"\"{negotiate(None)}\"")
        capabilities = params.get("capabilities", {})
        if not isinstance(capabilities, dict):
            raise RpcError(INVALID_PARAMS, "initialize: params.capabilities must be an object")
        size = len(jsonfast.dumps(capabilities)) + len(jsonfast.dumps(params.get("clientInfo")))
        if size > MAX_CLIENT_STATE:
            raise RpcError(INVALID_PARAMS, f"initialize: clientInfo and capabilities take {size} bytes, over the "
                                           f"{MAX_CLIENT_STATE}-byte limit a session may store")
        record.protocol_version = negotiate(requested)
        record.client_info = _small_info(params.get("clientInfo"))
        record.client_capabilities = capabilities
        record.target = await self._session_target()
        result: dict[str, Any] = {"protocolVersion": record.protocol_version, "capabilities": self.capabilities,
                                  "serverInfo": self.server_info}
        if self.server.instructions:
            result["instructions"] = self.server.instructions
        return result

    async def _session_target(self) -> str | None:
        """The server's pick of a target for a new session (servers/base.py); none if it has no say or fails:
        calls then resolve their target each time, and the handshake never fails for it."""
        pick = getattr(self.server, "session_target", None)
        if pick is None:
            return None
        try:
            target = await pick()
        except Exception as exc:
            logger.warning("no default target for a new session (%s)", type(exc).__name__,
                           extra={"server": self.server.name})
            return None
        return target if isinstance(target, str) else None

    async def _ping(self, *_: Any) -> dict[str, Any]:
        return {}

    async def _discover(self, *_: Any) -> dict[str, Any]:
        result: dict[str, Any] = {"supportedVersions": list(SUPPORTED), "capabilities": self.capabilities}
        if self.server.instructions:
            result["instructions"] = self.server.instructions
        return result

    async def _list_tools(self, params: Mapping[str, Any], *_: Any) -> dict[str, Any]:
        if params.get("cursor") is not None:
            raise RpcError(INVALID_PARAMS, "tools/list: unknown cursor (this server returns every tool in one page)")
        return {"tools": self._tool_list}

    async def _list_prompts(self, params: Mapping[str, Any], *_: Any) -> dict[str, Any]:
        if params.get("cursor") is not None:
            raise RpcError(INVALID_PARAMS, "prompts/list: unknown cursor (this server returns every prompt in one "
                                           "page)")
        return {"prompts": self._prompt_list}

    async def _get_prompt(self, params: Mapping[str, Any], *_: Any) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "prompts/get needs params.name, the name of a prompt from prompts/list")
        arguments = params.get("arguments") or {}
        if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
            raise RpcError(INVALID_PARAMS, f"prompts/get {_clip(name, 100)}: params.arguments must be an object of "
                                           "strings")
        assert self._prompts is not None
        try:
            messages = self._prompts.get_prompt(name, arguments)
        except KeyError:
            raise RpcError(INVALID_PARAMS, f"Unknown prompt: {_clip(name, 100)!r}; prompts/list names the "
                                           f"{len(self._prompt_list)} prompts of this server") from None
        except ValueError as exc:
            raise RpcError(INVALID_PARAMS, _clip(str(exc))) from None
        spec = next(p for p in self._prompt_list if p["name"] == name)
        return {"description": spec["description"], "messages": messages}

    async def _set_level(self, params: Mapping[str, Any], record: SessionRecord, *_: Any) -> dict[str, Any]:
        level = params.get("level")
        if level not in _LEVEL_RANK:
            raise RpcError(INVALID_PARAMS, f"logging/setLevel: level must be one of {', '.join(LOG_LEVELS)}")
        record.log_level = level
        return {}

    async def _call_tool(self, params: Mapping[str, Any], record: SessionRecord, ctx: CallContext,
                         send: Send | None, request_id: jsonrpc.RequestId) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise RpcError(INVALID_PARAMS, "tools/call needs params.name, the name of a tool from tools/list")
        if name not in self._tools:
            raise RpcError(INVALID_PARAMS, f"Unknown tool: {_clip(name, 100)!r}; tools/list names the "
                                           f"{len(self._tools)} tools of this server")
        arguments = params.get("arguments")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise RpcError(INVALID_PARAMS, f"tools/call {name}: params.arguments must be an object")
        if arguments and len(jsonfast.dumps(arguments)) > MAX_ARGUMENTS:
            raise RpcError(INVALID_PARAMS, f"tools/call {name}: arguments over {MAX_ARGUMENTS} bytes; no tool of "
                                           "this server takes that much")
        validator = self._validators[name]
        if not arguments and self._empty_ok[name]:
            problem = None  # the common no-argument call: its answer is known from the schema
        else:
            problem = None if validator.is_valid(arguments) else best_match(validator.iter_errors(arguments))
        if problem is not None:
            self._observe(name, 0.0, "invalid")
            where = "/".join(str(part) for part in problem.absolute_path)
            raise RpcError(INVALID_PARAMS, f"Invalid arguments for tool {name}: {_clip(problem.message)}"
                                           + (f" (at /{where})" if where else ""))
        if self.limiter is not None:
            decision = await self.limiter.check(self.server.name, ctx.caller or "unknown", ctx.address)
            if not decision.allowed:
                self._observe(name, 0.0, "limited")
                rule = self.limiter.rule
                message = _clip(rule.error_text) if rule.error_text else (  # the operator's own words, as Higress
                    f"Rate limit exceeded: at most {rule.limit} tool calls per {rule.window}s for "
                    f"{ctx.caller or 'this client'} (mcpServer.rate_limit); retry in {decision.retry_after}s")
                raise RpcError(RATE_LIMITED, message, {"retryAfterSeconds": decision.retry_after})
        # A session's calls share its slots; a 2026-07-28 call has no session and counts against its identity.
        spans.mark("validate")
        slot = record.id or "identity:" + (ctx.caller or "unknown")
        running = self.slots.take(slot)
        call_ctx = ctx.derive(target=record.target, log=self._logger(record, send),
                              held=self.ledger.open() if self.ledger is not None else None)
        started = time.perf_counter()
        key = _call_key(record.id, request_id) if record.id else None
        current = asyncio.current_task()
        if key is not None and current is not None:
            self._inflight[key] = current  # notifications/cancelled cancels it (and only this call: see below)
        try:
            result = await (self._run_tool(name, arguments, call_ctx) if running else
                            self._queued(slot, len(jsonfast.dumps(arguments)), name, arguments, call_ctx))
        except asyncio.CancelledError:
            if key not in self._cancelled or current is None or current.uncancel() > 0:
                raise  # the transport itself is shutting this request down (too)
            self._observe(name, time.perf_counter() - started, "cancelled")
            raise RpcError(REQUEST_CANCELLED, f"tools/call {name} was cancelled by the client") from None
        except QueueFull:
            self._observe(name, 0.0, "limited")
            slots = self.slots
            raise RpcError(RATE_LIMITED, f"Too many tool calls at once: {'this session' if record.id else ctx.caller} "
                                         f"runs {slots.running} and has {slots.waiting_for(slot)} waiting, the most "
                                         "this server queues; retry in a second", {"retryAfterSeconds": 1}) from None
        finally:
            if key is not None:
                self._inflight.pop(key, None)
                self._cancelled.discard(key)
            if running:
                self.slots.release(slot)
            if call_ctx.held is not None:
                call_ctx.held.release()
        spans.mark("tool")
        self._observe(name, time.perf_counter() - started, "error" if result.is_error else "ok")
        return result.to_mcp()

    async def _queued(self, slot: str, size: int, name: str, arguments: dict[str, Any],
                      ctx: CallContext) -> ToolResult:
        """Wait in line for a slot (first come, first served), then run; QueueFull when the line is full."""
        await self.slots.wait(slot, size)
        try:
            return await self._run_tool(name, arguments, ctx)
        finally:
            self.slots.release(slot)

    async def _run_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> ToolResult:
        spans.mark("call-setup")
        try:
            return await self.server.call_tool(name, arguments, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a tool bug must not become a protocol error: the model reads isError
            logger.exception("tool failed", extra={"server": self.server.name, "tool": name})
            return ToolResult.error(f"{name} failed unexpectedly ({type(exc).__name__}); the server log has "
                                    "the details")

    def _observe(self, tool: str, seconds: float, outcome: str) -> None:
        if self.on_tool_call is not None:
            self.on_tool_call(tool, seconds, outcome)

    def _logger(self, record: SessionRecord, send: Send | None) -> Callable[[str, Any], Awaitable[None]]:
        async def log(level: str, data: Any) -> None:
            threshold = record.log_level
            if send is None or threshold is None or _LEVEL_RANK.get(level, 0) < _LEVEL_RANK[threshold]:
                return
            await send(jsonrpc.notification("notifications/message",
                                            {"level": level, "logger": self.server.name, "data": data}))
        return log

    def _decorate(self, method: str, value: dict[str, Any]) -> None:
        """2026-07-28 results carry resultType, list/discover results caching hints, and who answered."""
        value.setdefault("resultType", "complete")
        if method in ("tools/list", "prompts/list", "server/discover"):
            value.setdefault("ttlMs", _LIST_TTL_MS)
            value.setdefault("cacheScope", "public")
        meta = value.get("_meta")
        stamp = {"io.modelcontextprotocol/serverInfo": self.server_info}
        value["_meta"] = {**meta, **stamp} if isinstance(meta, dict) else stamp
