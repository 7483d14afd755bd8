"""The `higress-ops` server: the catalog's raw tools, then the compact views, over two upstreams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from higress_ops import __version__
from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, ToolResult, ToolSpec
from higress_ops.servers.ops import handler
from higress_ops.servers.ops.catalog import CATALOG, Entry
from higress_ops.servers.ops.upstream import Upstreams
from higress_ops.servers.ops.views import VIEW_TOOLS

ANNOTATIONS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


def spec_of(entry: Entry) -> ToolSpec:
    return ToolSpec(name=entry.name, title=entry.title, description=entry.description,
                    input_schema=entry.input_schema(), output_schema=entry.output_schema,
                    annotations={"title": entry.title, **ANNOTATIONS})


class OpsServer:
    version = __version__

    def __init__(self, entry: ServerEntry) -> None:
        self.name = entry.name
        self.instructions: str | None = entry.config.get("description")
        self.upstreams = Upstreams(entry.config)
        self._entries = {e.name: e for e in CATALOG}
        self._views = {view.spec.name: view for view in VIEW_TOOLS}
        self._specs = [spec_of(e) for e in CATALOG] + [view.spec for view in VIEW_TOOLS]

    def tools(self) -> Sequence[ToolSpec]:
        return self._specs

    async def call_tool(self, name: str, arguments: Mapping[str, Any], ctx: CallContext) -> ToolResult:
        entry = self._entries.get(name)
        if entry is not None:
            return await handler.run(entry, arguments, self.upstreams, ctx)
        view = self._views.get(name)
        if view is not None:
            return await view.run(arguments, self.upstreams, ctx)
        raise KeyError(name)

    async def aclose(self) -> None:
        await self.upstreams.aclose()


def build(entry: ServerEntry) -> OpsServer:
    return OpsServer(entry)
