"""`echo`: a minimal server type from outside the higress-ops package, for registry and transport tests."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, ServerType, ToolResult, ToolSpec

CONFIG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "greeting": {"type": "string", "default": "hello"},
        "description": {"type": "string", "default": "Echo test server"},
    },
    "additionalProperties": False,
}

_TOOLS = (
    ToolSpec(
        name="echo",
        description="Returns the text it is given, prefixed with the configured greeting.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                      "additionalProperties": False},
        annotations={"readOnlyHint": True},
    ),
    ToolSpec(
        name="whoami",
        description="Returns the x-istiod-token header the call carried (tests only: checks header plumbing).",
        input_schema={"type": "object", "properties": {}, "additionalProperties": False},
    ),
    ToolSpec(
        name="sleep",
        description="Sleeps for `seconds`, logging once per second: for cancellation and shutdown tests.",
        input_schema={"type": "object", "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60}},
                      "required": ["seconds"]},
    ),
    ToolSpec(
        name="fail",
        description="Always fails with isError.",
        input_schema={"type": "object", "properties": {}},
    ),
)


class EchoServer:
    version = "0.1.0"

    def __init__(self, entry: ServerEntry) -> None:
        self.name = entry.name
        self.instructions = entry.config.get("description")
        self.greeting = entry.config.get("greeting", "hello")

    def tools(self) -> Sequence[ToolSpec]:
        return _TOOLS

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        if name == "echo":
            return ToolResult.text(f"{self.greeting} {arguments['text']}", structured={"text": arguments["text"]})
        if name == "whoami":
            return ToolResult.text(ctx.headers.get("x-istiod-token", "<none>"))
        if name == "sleep":
            seconds = float(arguments["seconds"])
            elapsed = 0.0
            while elapsed < seconds:
                step = min(1.0, seconds - elapsed)
                await asyncio.sleep(step)
                elapsed += step
                await ctx.log("info", {"slept": elapsed})
            return ToolResult.text(f"slept {seconds}s")
        if name == "fail":
            return ToolResult.error("this tool always fails")
        raise KeyError(name)

    async def aclose(self) -> None:
        return None


SERVER_TYPE = ServerType(name="echo", build=EchoServer, config_schema=CONFIG_SCHEMA,
                         description="Echo test server (tests/plugins/echo_plugin)")
