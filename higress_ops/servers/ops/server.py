"""The `higress-ops` server: the catalog's raw tools, the compact views and the gateway-pod tools, over two
upstreams. Every tool that reads an Envoy takes `pod` (added here, once, for both schema builders) and names
the Envoy that answered."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from higress_ops import __version__, spans
from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, PromptSpec, ToolResult, ToolSpec
from higress_ops.servers.ops import gateway_pods, handler, prompts
from higress_ops.servers.ops.catalog import CATALOG, Entry
from higress_ops.servers.ops.targets import Target, with_pod_parameter
from higress_ops.servers.ops.upstream import UpstreamError, Upstreams
from higress_ops.servers.ops.views.tools import TOOLS as VIEW_TOOLS

ANNOTATIONS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def spec_of(entry: Entry) -> ToolSpec:
    return ToolSpec(name=entry.name, title=entry.title, description=entry.description,
                    input_schema=entry.input_schema(), output_schema=entry.output_schema,
                    annotations={"title": entry.title, **ANNOTATIONS})


def targeted(spec: ToolSpec) -> ToolSpec:
    return replace(spec, input_schema=with_pod_parameter(spec.input_schema))


def answered_by(result: ToolResult, target: Target, tool: str = "") -> ToolResult:
    """The result with a last line naming the Envoy it came from (never its address); an istiod tool's answer
    came from istiod, about that Envoy, and says so."""
    origin = f"pod {target.name}" if target.pod is not None else f"the local Envoy ({target.name})"
    line = f"[answered by istiod, for {origin}]" if tool.startswith("get-istiod") else f"[answered by {origin}]"
    return ToolResult([*result.content, {"type": "text", "text": line}], result.structured, result.is_error)


class OpsServer:
    version = __version__

    def __init__(self, entry: ServerEntry) -> None:
        self.name = entry.name
        self.instructions: str | None = entry.config.get("description")
        self.upstreams = Upstreams(entry.config)
        self._entries = {e.name: e for e in CATALOG}
        self._views = {view.spec.name: view for view in VIEW_TOOLS}
        self._fleet = {tool.spec.name: tool for tool in gateway_pods.TOOLS}
        self._targeted = {e.name for e in CATALOG if e.upstream == "envoy"} | \
                         {view.spec.name for view in VIEW_TOOLS if view.reads_envoy}
        specs = [spec_of(e) for e in CATALOG] + [view.spec for view in VIEW_TOOLS] + \
                [tool.spec for tool in gateway_pods.TOOLS]
        self._specs = [targeted(s) if s.name in self._targeted else s for s in specs]

    def tools(self) -> Sequence[ToolSpec]:
        return self._specs

    async def session_target(self) -> str | None:
        """A new session's Envoy, fixed for its lifetime so every replica serving it reads the same one."""
        return await self.upstreams.gateways.default_name()

    def prompts(self) -> Sequence[PromptSpec]:
        return prompts.specs()

    def get_prompt(self, name: str, arguments: Mapping[str, str]) -> list[dict[str, Any]]:
        return prompts.messages(name, arguments)

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        fleet_tool = self._fleet.get(name)
        if fleet_tool is not None:
            return await fleet_tool.run(arguments, self.upstreams, ctx)
        if name not in self._entries and name not in self._views:
            raise KeyError(name)
        if name not in self._targeted:
            return await self._run(name, arguments, ctx)
        try:
            target = await self.upstreams.gateways.target(arguments.get("pod") or ctx.target)
        except UpstreamError as exc:
            return ToolResult.error(f"{name}: {exc}")
        spans.mark("target")
        # The resolved name travels in the context (every fetch of this call reads that pod) and in the
        # arguments (server-info's cache is per target).
        result = await self._run(name, {**arguments, "pod": target.name}, ctx.derive(target=target.name))
        if result.is_error and target.pod is not None and not await self._still_there(target):
            return ToolResult.error(f"{name}: pod {target.name} went away during the call (it is no longer listed); "
                                    "list-gateway-pods shows the pods there are")
        return answered_by(result, target, name)

    async def _run(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        entry = self._entries.get(name)
        if entry is not None:
            return await handler.run(entry, arguments, self.upstreams, ctx)
        return await self._views[name].run(arguments, self.upstreams, ctx)

    async def _still_there(self, target: Target) -> bool:
        try:
            gateways = self.upstreams.gateways
            return any(p.name == target.name for p in await gateways.pods_after(time.monotonic()))
        except UpstreamError:
            return True  # cannot tell: the call's own error stands

    def probes(self) -> dict[str, tuple[str, str]]:
        """What `serve` checks at start: the configured URLs (pods reached through the API are not probed)."""
        found = {}
        for what, fleet, path in (("istiod", self.upstreams.istiods, "/version"),
                                  ("envoy", self.upstreams.gateways, "/ready")):
            if not fleet.discovers:
                found[what] = (fleet.local.base_url + path, fleet.local_name)
        return found

    async def aclose(self) -> None:
        await self.upstreams.aclose()


def build(entry: ServerEntry) -> OpsServer:
    return OpsServer(entry)
