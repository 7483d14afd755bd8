"""What every benchmark shares: processes, an HTTP/1.1 keep-alive client, MCP sessions over it,
alternating rounds and statistics. Every figure is a ratio against a baseline measured in the same run."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.envoy import Envoy
from tests.support.procs import free_port, stop, wait_until
from tests.support.serve import ServeProcess, write_config

ROOT = Path(__file__).resolve().parent.parent
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {"n": len(samples), "median_ms": statistics.median(samples) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000}


class Http:
    """One keep-alive HTTP/1.1 connection: the lightest client, the same for baseline and candidate."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def _exchange(self, method: str, path: str, body: str | None = None,
                  headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        """A server may close an idle keep-alive connection (uvicorn's default is 5 s): reconnect once, as any
        pooled client would."""
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                return self.conn.getresponse()
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                self.conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str) -> bytes:
        response = self._exchange("GET", path)
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return body

    def post(self, path: str, message: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        response = self._exchange("POST", path, json.dumps(message), {**MCP_HEADERS, **headers})
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

    def get_fn(self, path: str) -> Callable[[], bytes]:
        return lambda: self.get(path)

    def close(self) -> None:
        self.conn.close()


class McpSession:
    """A streamable HTTP session (JSON responses) over one Http connection."""

    def __init__(self, base: str, path: str, headers: dict[str, str] | None = None) -> None:
        self.http = Http(base)
        self.path = path
        status, answer, body = self.http.post(path, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}},
            dict(headers or {}))
        assert status == 200, body[:300]
        self.headers = {**(headers or {}), "Mcp-Session-Id": answer["mcp-session-id"],
                        "MCP-Protocol-Version": "2025-06-18"}
        self.http.post(path, {"jsonrpc": "2.0", "method": "notifications/initialized"}, self.headers)
        self.next_id = 1

    def call(self, tool: str, arguments: dict[str, Any] | None = None) -> bytes:
        self.next_id += 1
        status, _, body = self.http.post(self.path, {"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                                                     "params": {"name": tool, "arguments": arguments or {}}},
                                         self.headers)
        assert status == 200 and (b'"isError":false' in body or b'"isError": false' in body), body[:300]
        return body

    def call_fn(self, tool: str, arguments: dict[str, Any] | None = None) -> Callable[[], bytes]:
        return lambda: self.call(tool, arguments)

    def ping(self) -> None:
        self.next_id += 1
        status, _, _ = self.http.post(self.path, {"jsonrpc": "2.0", "id": self.next_id, "method": "ping"},
                                      self.headers)
        assert status == 200


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed_with_pings(call: Callable[[], Any], pinger: McpSession, pings: list[float]) -> float:
    """How long `call` takes while another session pings every 10 ms (each ping's time goes to `pings`): a
    server that keeps its loop free answers the pings promptly during the call."""
    stop = threading.Event()

    def ping_forever() -> None:
        while not stop.is_set():
            pings.append(timed(pinger.ping))
            time.sleep(0.01)

    thread = threading.Thread(target=ping_forever)
    thread.start()
    try:
        return timed(call)
    finally:
        stop.set()
        thread.join()


def alternate(rounds: int, per_round: int, sides: dict[str, Callable[[], Any]]) -> dict[str, list[float]]:
    """Run each side `per_round` times per round, sides interleaved round by round, so drift hits all."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, fn in sides.items():
            samples[name] += [timed(fn) for _ in range(per_round)]
    return samples


@contextmanager
def admin_envoy(workdir: Path) -> Iterator[Envoy]:
    envoy = Envoy({"node": {"id": "bench", "cluster": "bench"}}, workdir).start()
    try:
        yield envoy
    finally:
        envoy.stop()


@contextmanager
def ops_serve(workdir: Path, envoy_url: str, *args: str, max_bytes: int = 1 << 20,
              extra: dict[str, Any] | None = None, istiod_url: str = "http://127.0.0.1:9",
              ops: dict[str, Any] | None = None) -> Iterator[ServeProcess]:
    config = {"mcpServer": {"enable": True, "sse_path_suffix": "/sse", **(extra or {}), "servers": [
        {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
         "config": {"istiodURL": istiod_url, "envoyAdminURL": envoy_url, "maxResponseBytes": max_bytes,
                    **(ops or {})}},
        {"name": "echo", "path": "/echo", "type": "echo", "config": {}}]}}
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServeProcess(write_config(workdir / f"higress-{free_port()}.yaml", config), workdir,
                           ("--log-level", "warning", *args)).start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def module_server(module: str, envoy_url: str, *args: str) -> Iterator[str]:
    """`python -m MODULE ENVOY_URL PORT ARGS...` (bench.sdk_server, bench.bare_hop): its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", module, envoy_url, str(port), *args], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _port_answers(base), 30, module, proc)
        yield base
    finally:
        stop(proc)


def sdk_server(envoy_url: str) -> contextlib.AbstractContextManager[str]:
    return module_server("bench.sdk_server", envoy_url)


def _port_answers(base: str) -> bool:
    try:
        Http(base).conn.request("GET", "/")
        return True
    except OSError:
        return False


@dataclass
class ProcStat:
    """CPU seconds and RSS of a process, from /proc."""

    pid: int

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
