"""Prometheus metrics, in a registry per host so tests and reloads never share global state.

Labels are bounded by config (server, tool names) or by code (transport, method, status): never a
session id, a header value or anything a client can make up (an unknown method is counted as "other").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

KNOWN_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "logging/setLevel", "server/discover",
    "notifications/initialized", "notifications/cancelled", "batch", "stream", "delete", "response", "invalid",
})
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("higress_ops_requests", "MCP HTTP requests", ["server", "transport", "method",
                                                                              "status"], registry=self.registry)
        self.tool_seconds = Histogram("higress_ops_tool_call_seconds", "tools/call latency", ["server", "tool",
                                                                                               "outcome"],
                                      registry=self.registry,
                                      buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.sessions = Gauge("higress_ops_active_sessions", "sessions known to this replica", ["transport"],
                              registry=self.registry)
        self._request_children: dict[tuple[str, str, str, int], Any] = {}
        self.reloads = Counter("higress_ops_config_reloads", "config updates by result", ["result"],
                               registry=self.registry)

    def request(self, server: str, transport: str, method: str, status: int) -> None:
        key = (server, transport, method if method in KNOWN_METHODS else "other", status)
        child = self._request_children.get(key)
        if child is None:  # labels() costs more than the increment: keep each (bounded) child
            child = self._request_children[key] = self.requests.labels(*key[:3], str(status))
        child.inc()

    def tool_observer(self, server: str) -> Callable[[str, float, str], None]:
        children: dict[tuple[str, str], Any] = {}

        def observe(tool: str, seconds: float, outcome: str) -> None:
            child = children.get((tool, outcome))
            if child is None:
                child = children[(tool, outcome)] = self.tool_seconds.labels(server, tool, outcome)
            child.observe(seconds)
        return observe

    def track_sessions(self, transport: str, count: Callable[[], float]) -> None:
        self.sessions.labels(transport).set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
