"""The `higress-ops` server type (plugin.yaml's entry point is `higress_ops.servers.ops:build`)."""

from __future__ import annotations

from higress_ops.servers.ops.server import OpsServer, build

__all__ = ["OpsServer", "build"]
