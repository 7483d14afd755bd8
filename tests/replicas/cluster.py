"""Several `higress-ops serve` processes sharing one Redis deployment behind a front Envoy, and the MCP wire bits
the tests speak."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import requests

from tests.replicas.backends import Backend, start_backend
from tests.replicas.front import front_proxy
from tests.support.envoy import Envoy
from tests.support.procs import free_port, log_tail, stop, wait_until

PATH = "/higress-ops"
SERVER = "echo-server"


def write_config(path: Path, redis: dict[str, Any]) -> Path:
    """The product README's config shape, with the `echo` test server type and the given `redis` block."""
    block = {"mcpServer": {
        "enable": True, "sse_path_suffix": "/sse",
        "redis": {"username": "", "password": "", **redis},
        "match_list": [{"match_rule_domain": "*", "match_rule_path": PATH, "match_rule_type": "prefix"}],
        "servers": [{"name": SERVER, "path": PATH, "type": "echo", "config": {"greeting": "hi"}}],
    }}
    path.write_text(json.dumps(block))  # JSON is YAML
    return path


@dataclass
class Replica:
    replica_id: str
    config: Path
    workdir: Path
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 30) -> Replica:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / f"{self.replica_id}.log"
        env = {**os.environ, "HIGRESS_OPS_REPLICA_ID": self.replica_id, "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "higress_ops", "serve", "--config", str(self.config),
                 "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port),
                 "--replica-id", self.replica_id],
                stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            wait_until(self.ready, timeout, f"replica {self.replica_id}", self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{log_tail(self.log)}") from exc
        return self

    def ready(self) -> bool:
        answer = requests.get(f"{self.admin_url}/readyz", timeout=1)  # 200 even while Redis is away: "degraded"
        return answer.status_code == 200 and answer.json()["store"] == "ok"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_replicas(count: int, config: Path, workdir: Path) -> list[Replica]:
    replicas: list[Replica] = []
    try:
        for i in range(count):
            replicas.append(Replica(f"replica-{'abc'[i]}", config, workdir).start())
    except Exception:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


def rpc(method: str, params: dict[str, Any] | None = None, id: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message


INITIALIZE = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "replica-test",
                                                                                   "version": "1"}}


def echo_call(text: str) -> dict[str, Any]:
    return {"name": "echo", "arguments": {"text": text}}


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs from a text/event-stream response; comments (keep-alives) skipped."""
    event, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


STREAMABLE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def next_message(events: AsyncIterator[tuple[str, str]], timeout: float = 5) -> dict[str, Any]:
    while True:
        kind, data = await asyncio.wait_for(anext(events), timeout)
        if kind == "message":
            message = json.loads(data)
            if message.get("method") == "ping" and "id" in message:  # a server ping, not ours
                continue
            return message


@dataclass
class Cluster:
    redis: Backend
    replicas: list[Replica]
    envoy: Envoy
    front_port: int

    @property
    def front(self) -> str:
        return f"http://127.0.0.1:{self.front_port}{PATH}"

    def stop(self) -> None:
        self.envoy.stop()
        for replica in self.replicas:
            replica.stop()
        self.redis.stop()


def make_cluster(workdir: Path, replicas: int, mode: str = "single", secret: str = "") -> Cluster:
    """`secret`: the config's redis.secret, so everything stored and published is sealed."""
    redis = start_backend(mode, workdir)
    started: list[Replica] = []
    try:
        config = write_config(workdir / "higress.yaml", {**redis.redis_block(), **({"secret": secret} if secret
                                                                                   else {})})
        started = start_replicas(replicas, config, workdir)
        envoy, port = front_proxy([r.port for r in started], workdir / "envoy")
    except Exception:
        for replica in started:
            replica.stop()
        redis.stop()
        raise
    return Cluster(redis, started, envoy, port)
