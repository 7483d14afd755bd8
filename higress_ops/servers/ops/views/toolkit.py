"""What every view tool is made of: its shape (a spec and an async handler over the views' Source), the checked
readers of its arguments (a bad one is a ValueError that names it, which the tool answers as an error result),
and its input schema's parts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.base import CallContext, ToolResult, ToolSpec
from higress_ops.servers.ops.upstream import Upstreams
from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.paging import DEFAULT_LIMIT
from higress_ops.servers.ops.views.source import Source, UpstreamError, as_source

Run = Callable[[Mapping[str, Any], Source, CallContext], Awaitable[ToolResult]]
PAGING = {
    "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "First row to show."},
    "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": DEFAULT_LIMIT,
              "description": "Rows per page."},
}
S = {"type": "string"}
PORT = {"type": "integer", "minimum": 0, "maximum": 65535}


@dataclass(frozen=True)
class ViewTool:
    spec: ToolSpec
    handler: Run
    reads_envoy: bool = True  # the server adds the `pod` argument and names the pod that answered

    async def run(self, arguments: Mapping[str, Any], upstreams: Any, ctx: CallContext) -> ToolResult:
        """With the server's own upstreams, in the view process (offload.py: its parsing and computing would
        stall this event loop); with any other Source (the view process's own), here."""
        if isinstance(upstreams, Upstreams):
            from higress_ops.servers.ops.views import offload  # it runs this module's tools in another process

            return await offload.run(self.spec.name, arguments, upstreams, ctx)
        return await self.run_here(arguments, upstreams, ctx)

    async def run_here(self, arguments: Mapping[str, Any], upstreams: Any, ctx: CallContext) -> ToolResult:
        from higress_ops.servers.ops.detectors.facts import released_after_the_call  # facts imports the views

        with released_after_the_call():
            try:
                return await self.handler(arguments, as_source(upstreams), ctx)
            except (UpstreamError, DumpError, ValueError) as exc:
                return ToolResult.error(f"{self.spec.name}: {exc}")


def int_arg(args: Mapping[str, Any], key: str, default: int, lo: int = 0, hi: int = 2**31) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"'{key}' must be an integer from {lo} to {hi}, got {value!r}")
    return value


def str_arg(args: Mapping[str, Any], key: str, default: str = "", choices: tuple[str, ...] = ()) -> str:
    value = args.get(key, default)
    if not isinstance(value, str) or len(value) > 1000:
        raise ValueError(f"'{key}' must be a string of at most 1000 characters")
    if choices and value not in choices:
        raise ValueError(f"'{key}' must be one of {', '.join(choices)}, got {value!r}")
    return value


def spec(name: str, description: str, props: dict[str, Any], required: tuple[str, ...] = ()) -> ToolSpec:
    schema: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return ToolSpec(name=name, description=description, input_schema=schema,
                    title=name.replace("-", " ").capitalize(),
                    annotations={"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True,
                                 "openWorldHint": False})
