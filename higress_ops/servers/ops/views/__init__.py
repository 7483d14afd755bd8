"""Compact, istioctl-grade views over Envoy's and istiod's debug data.

The readers (configdump, matching, host_health, endpoints, ...) turn admin JSON into facts; the detectors
(servers/ops/detectors) build findings on them; `tools.TOOLS` is what the ops server lists: objects with
`.spec: ToolSpec` and `async run(arguments, upstreams, ctx) -> ToolResult`. Nothing is imported here, so a
detector can import a reader without pulling in the tools that run the detectors.
"""
