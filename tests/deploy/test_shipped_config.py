"""`serve --kube` exactly as the overlays run it, against the API-server double holding the exact shipped
ConfigMap and the operator's Secret: it starts and becomes ready. The ConfigMap names Redis by its in-cluster
Service name, `higress-ops-redis:6379`; the server runs in a mount namespace whose /etc/hosts maps that name to
loopback, and a real redis-server listens on 6379 (one test at a time on this machine: a file lock)."""

from __future__ import annotations

import base64
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.deploy.test_manifests import image_command, named, ops_container, patched_gateway, render
from tests.support.apiserver import ApiServer, api_server
from tests.support.procs import free_port, log_tail, port_open, stop, wait_until
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.timeout(120), pytest.mark.xdist_group("redis-6379")]
PASSWORD = "s3cret-for-the-test"
NAMESPACE = "higress-system"


@contextmanager
def redis_on_6379(workdir: Path) -> Iterator[RedisServer]:
    with open("/tmp/higress-ops-redis-6379.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other worktrees' runs on this machine wait here
        assert not port_open(6379), "something else listens on 127.0.0.1:6379; this test needs that port"
        redis = RedisServer(port=6379, workdir=workdir, password=PASSWORD).start()
        try:
            yield redis
        finally:
            redis.stop()


def shipped_args(overlay: str) -> tuple[list[str], dict[str, str]]:
    """The container's args and literal env of an overlay, as rendered (the sidecar's after the gateway patch)."""
    if overlay == "image":  # a container that gives no args: the Dockerfile's CMD
        return image_command(), {}
    if overlay == "standalone":
        container = ops_container(named(render("standalone"), "Deployment", "higress-ops"))
    else:
        container = ops_container(patched_gateway())
    env = {"POD_NAME": "higress-gateway-test"} if any(e["name"] == "POD_NAME" for e in container["env"]) else {}
    return list(container["args"]), env


@contextmanager
def serve(args: list[str], env: dict[str, str], api: ApiServer, workdir: Path) -> Iterator[str]:
    port, admin = free_port(), free_port()
    args = [*args]
    for flag, value in (("--host", "127.0.0.1"), ("--port", str(port)), ("--admin-port", str(admin))):
        args[args.index(flag) + 1] = value
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 higress-ops-redis\n")
    log = workdir / "serve.log"
    command = ["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts),
               sys.executable, "-m", "higress_ops", *args, "--kubeconfig", str(api.kubeconfig(workdir / "kubeconfig"))]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    try:
        wait_until(lambda: requests.get(f"http://127.0.0.1:{admin}/healthz", timeout=1).ok, 30, "serve", proc)
        yield f"http://127.0.0.1:{admin}"  # the admin port: /healthz, /readyz
    except Exception as exc:
        raise RuntimeError(f"{exc}\n{log_tail(log)}") from exc
    finally:
        stop(proc)


def put_shipped(api: ApiServer) -> None:
    configmap = named(render("standalone"), "ConfigMap", "higress-ops-config")
    api.put("configmaps", NAMESPACE, configmap["metadata"]["name"], configmap["data"])


@pytest.mark.parametrize("overlay", ["standalone", "sidecar", "image"])
def test_serve_kube_with_the_shipped_configmap_becomes_ready(overlay: str, tmp_path: Path) -> None:
    args, env = shipped_args(overlay)
    assert arg_of(args, "--configmap") == "higress-ops-config"
    with api_server() as api, redis_on_6379(tmp_path / "redis"):
        put_shipped(api)
        api.put("secrets", NAMESPACE, "higress-ops-redis", {"password": base64.b64encode(PASSWORD.encode()).decode()})
        with serve(args, env, api, tmp_path) as base:
            # Ready comes first; a Redis still starting shows as a degraded store, never as unready (issue 23).
            wait_until(lambda: requests.get(f"{base}/readyz", timeout=2).json().get("store") == "ok", 30,
                       "readiness with the store reached")
            ready = requests.get(f"{base}/readyz", timeout=2)
            assert ready.status_code == 200 and ready.json()["servers"] == ["higress-ops-mcp-server"]


def test_without_its_configmap_the_server_waits_instead_of_crashing(tmp_path: Path) -> None:
    args, env = shipped_args("sidecar")
    with api_server() as api, redis_on_6379(tmp_path / "redis"), serve(args, env, api, tmp_path) as base:
        waiting = requests.get(f"{base}/readyz", timeout=2)
        assert waiting.status_code == 503 and "higress-ops-config" in waiting.text
        assert requests.get(f"{base}/healthz", timeout=2).ok  # the sidecar's probes pass: the pod stays Ready
        put_shipped(api)  # the Secret is still missing: it keeps waiting, and says why
        wait_until(lambda: "higress-ops-redis" in requests.get(f"{base}/readyz", timeout=2).text, 30, "secret")
        api.put("secrets", NAMESPACE, "higress-ops-redis",
                {"password": base64.b64encode(PASSWORD.encode()).decode()})
        wait_until(lambda: requests.get(f"{base}/readyz", timeout=2).status_code == 200, 60, "readiness")


def arg_of(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]
