"""Prometheus metrics, in a registry per host so tests and reloads never share global state.

Labels are bounded by config (server, tool names) or by code (transport, method, status, upstream paths):
never a session id, a header value or anything a client can make up (an unknown method is counted as "other").
No `_created` series: they double the output and no dashboard reads them.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from higress_ops import __version__

disable_created_metrics()  # process-wide in prometheus_client; every registry here wants it off

KNOWN_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "logging/setLevel", "server/discover",
    "notifications/initialized", "notifications/cancelled", "batch", "stream", "delete", "response", "invalid",
})
CONTENT_TYPE = CONTENT_TYPE_LATEST
UPSTREAM_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)


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
        self.upstream_seconds = Histogram("higress_ops_upstream_request_seconds", "GETs to istiod, Envoy admin and "
                                          "the Kubernetes API, by upstream and catalog path (the API: by resource)",
                                          ["upstream", "path"],
                                          registry=self.registry, buckets=UPSTREAM_BUCKETS)
        self.upstream_errors = Counter("higress_ops_upstream_errors", "upstream GETs that failed or answered >= 400",
                                       ["upstream", "path", "reason"], registry=self.registry)
        self._upstream_children: dict[tuple[str, str], Any] = {}
        Gauge("higress_ops_build_info", "always 1; the labels say what is running", ["version", "python"],
              registry=self.registry).labels(__version__, platform.python_version()).set(1)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=self.registry)  # python_info

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

    def upstream(self, upstream: str, path: str, seconds: float, error: str | None) -> None:
        child = self._upstream_children.get((upstream, path))
        if child is None:  # as in request(): one labels() per (bounded) label set, not per tool call
            child = self._upstream_children[(upstream, path)] = self.upstream_seconds.labels(upstream, path)
        child.observe(seconds)
        if error is not None:
            self.upstream_errors.labels(upstream, path, error).inc()

    def track_sessions(self, transport: str, count: Callable[[], float]) -> None:
        self.sessions.labels(transport).set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# The host's metrics for the request being served: set by the ASGI app per request, read by upstream clients, which
# a server type builds without a handle on the host. Unset (the CLI's `call`, a bench): nothing is recorded.
ACTIVE: ContextVar[Metrics | None] = ContextVar("higress_ops_metrics", default=None)


def observe_upstream(upstream: str, path: str, seconds: float, error: str | None = None) -> None:
    """One upstream GET: `path` must be a code constant (a catalog path), never a client's text."""
    active = ACTIVE.get()
    if active is not None:
        active.upstream(upstream, path, seconds, error)
