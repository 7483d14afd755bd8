"""A real `higress-ops serve` process on a free port, started from a config the test writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.procs import free_port, log_tail, stop, wait_until


def echo_config(*servers: tuple[str, str], **block: Any) -> dict[str, Any]:
    """An mcpServer block with `echo` test servers, given as (name, path) pairs."""
    entries = [{"name": name, "path": path, "type": "echo", "config": {"greeting": "hi"}} for name, path in servers]
    return {"mcpServer": {"enable": True, "sse_path_suffix": "/sse", "servers": entries, **block}}


@dataclass
class ServeProcess:
    config: Path | None  # None: the args name the source (e.g. --kube)
    workdir: Path
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def admin(self, path: str) -> str:
        """/healthz, /readyz and /metrics: on the admin port, never the MCP port."""
        return f"http://127.0.0.1:{self.admin_port}{path}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"serve-{self.port}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 30) -> ServeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "higress_ops", "serve", *(["--config", str(self.config)] if self.config else []),
                 "--host", "127.0.0.1", "--port", str(self.port), "--admin-port", str(self.admin_port),
                 *self.args],
                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        try:
            wait_until(self.ready, timeout, "higress-ops serve", self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{log_tail(self.log_path)}") from exc
        return self

    def ready(self) -> bool:
        """Ready, and its session store connected (a Redis outage leaves /readyz at 200, "degraded")."""
        answer = requests.get(self.admin("/readyz"), timeout=1)
        return answer.status_code == 200 and answer.json().get("store") == "ok"

    def terminate(self) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def kill(self) -> None:
        """SIGKILL: a replica dying without any shutdown."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def write_config(path: Path, config: Mapping[str, Any] | Path) -> Path:
    if isinstance(config, Path):
        return config
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


@contextmanager
def serving(config: Mapping[str, Any] | Path, workdir: Path, *args: str,
            env: Mapping[str, str] | None = None) -> Iterator[ServeProcess]:
    workdir.mkdir(parents=True, exist_ok=True)
    process = ServeProcess(write_config(workdir / "higress.yaml", config), workdir, args, env or {}).start()
    try:
        yield process
    finally:
        process.stop()
