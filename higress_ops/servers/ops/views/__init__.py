"""Compact, istioctl-grade views over Envoy's and istiod's debug data.

`VIEW_TOOLS` is what the ops server adds to its catalog: objects with `.spec: ToolSpec` and
`async run(arguments, upstreams, ctx) -> ToolResult`.
"""

from __future__ import annotations

from higress_ops.servers.ops.views.tools import TOOLS as VIEW_TOOLS
from higress_ops.servers.ops.views.tools import ViewTool

__all__ = ["VIEW_TOOLS", "ViewTool"]
