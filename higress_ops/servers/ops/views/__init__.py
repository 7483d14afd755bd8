"""Compact, istioctl-grade views over Envoy's and istiod's debug data.

`VIEW_TOOLS` is what the ops server adds to its catalog; each has `.spec` and `async run(...)`.
"""

from __future__ import annotations

VIEW_TOOLS: tuple = ()
