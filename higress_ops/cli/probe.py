"""What `serve` says in its `listening` line: the MCP URLs of every server, and whether each server's upstreams
(istiod, Envoy) answered at start, so a newcomer sees at once which URL of the config to fix.

A server type opts in with `probes() -> {name: (url, config key)}` (see servers/base.py). Any HTTP answer counts as
answered (istiod's debug port answers 401 without a token, Envoy's /ready 503 while not live): only no answer is a
problem. Probes run in parallel with a one-second timeout, before the ports open."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from higress_ops.config import McpServerConfig

TIMEOUT = 1.0


def mcp_urls(config: McpServerConfig, host: str, port: int) -> dict[str, dict[str, str]]:
    """Per server: its legacy SSE URL and its streamable HTTP (and 2026-07-28) URL."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, f"[{host}]" if ":" in host else host)
    base = f"http://{shown}:{port}"
    return {entry.name: {"legacy_sse": f"{base}{entry.path}{config.sse_path_suffix}",
                         "streamable_http": f"{base}{entry.path}"} for entry in config.servers}


def _answers(url: str) -> str | None:
    """None when something answered HTTP at `url`, else why not."""
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT):  # a configured http(s) URL
            return None
    except urllib.error.HTTPError:
        return None  # an HTTP answer, whatever its status
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return str(reason) or type(exc).__name__


def upstreams(servers: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """Per server that declares probes: each upstream's "answered", or the URL, the reason and the key to fix."""
    wanted = [(name, what, url, key) for name, server in servers.items() if callable(getattr(server, "probes", None))
              for what, (url, key) in server.probes().items()]
    if not wanted:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(wanted))) as pool:
        answers = list(pool.map(lambda w: _answers(w[2]), wanted))
    found: dict[str, dict[str, str]] = {}
    for (name, what, url, key), problem in zip(wanted, answers, strict=True):
        found.setdefault(name, {})[what] = "answered" if problem is None else \
            f"no answer at {url} ({problem}): check {key} in the server config"
    return found
