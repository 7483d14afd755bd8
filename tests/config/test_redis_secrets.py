"""The Sentinels' password and the Redis CA from Kubernetes Secrets, read by `serve --kube`; from a file they are
refused with a pointer (the data nodes' `passwordSecret` is covered in test_reload.py)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from higress_ops.config import load_document
from higress_ops.sessions.redis import RedisSessionStore, RedisSettingsError
from tests.config.test_reload import NAME, NS, Mcp, higress
from tests.support.apiserver import ApiServer, api_server
from tests.support.istio_envoy import make_cert
from tests.support.procs import free_port
from tests.support.redis import RedisServer, start_sentinel_group
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with api_server() as server:
        yield server


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def serve_kube(api: ApiServer, tmp_path: Path) -> ServeProcess:
    return ServeProcess(None, tmp_path, ("--kube", "--kubeconfig", str(api.kubeconfig(tmp_path / "kc")))).start()


@pytest.mark.redis_ha
async def test_sentinel_password_from_its_secret(api: ApiServer, tmp_path: Path) -> None:
    group = start_sentinel_group(tmp_path / "sentinel", sentinel_password="sentinel-pw-91")
    try:
        api.put("secrets", NS, "sentinel-auth", {"password": b64("sentinel-pw-91")})
        block = {"redis": {"sentinel": {"masterName": group.master_name, "addresses": group.sentinel_addresses,
                                        "passwordSecret": {"name": "sentinel-auth", "key": "password"}}}}
        api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1"}, **block)})
        server = serve_kube(api, tmp_path)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(server.admin("/readyz"))).json()["store"] == "ok"
                init = await Mcp(http, server).initialize("/a")
                assert init.status_code == 200
                assert group.master().client().exists(f"higress-ops:session:{init.headers['mcp-session-id']}")
            assert "sentinel-pw-91" not in server.log()
        finally:
            server.stop()
    finally:
        group.stop()


async def test_redis_ca_from_its_secret(api: ApiServer, tmp_path: Path) -> None:
    cert = make_cert("localhost", sans=("localhost",), is_ca=True)
    (tmp_path / "server.pem").write_text(cert.cert_pem)
    (tmp_path / "server.key").write_text(cert.key_pem)
    port = free_port()
    redis = RedisServer(port, tmp_path / "redis", extra=(
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tmp_path / "server.pem"),
        "--tls-key-file", str(tmp_path / "server.key"), "--tls-auth-clients", "no")).start()
    try:
        api.put("secrets", NS, "redis-ca", {"ca.crt": b64(cert.cert_pem)})
        block = {"redis": {"address": f"localhost:{port}", "tls": True,
                           "caSecret": {"name": "redis-ca", "key": "ca.crt"}}}
        api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1"}, **block)})
        server = serve_kube(api, tmp_path)
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(server.admin("/readyz"))).json()["store"] == "ok"
                assert (await Mcp(http, server).initialize("/a")).status_code == 200
        finally:
            server.stop()
    finally:
        redis.stop()


async def test_missing_secret_key_is_a_pointer_error(api: ApiServer, tmp_path: Path) -> None:
    api.put("secrets", NS, "redis-ca", {"other": b64("x")})
    block = {"redis": {"address": "localhost:1", "tls": True, "caSecret": {"name": "redis-ca", "key": "ca.crt"}}}
    api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1"}, **block)})
    with pytest.raises(RuntimeError, match=r"/mcpServer/redis/caSecret/key.*has no key 'ca.crt'"):
        serve_kube(api, tmp_path)


@pytest.mark.parametrize(("block", "where"), [
    ({"sentinel": {"masterName": "m", "addresses": ["s:1"], "passwordSecret": {"name": "s", "key": "k"}}},
     "/mcpServer/redis/sentinel/passwordSecret"),
    ({"address": "r:1", "tls": True, "caSecret": {"name": "ca", "key": "ca.crt"}}, "/mcpServer/redis/caSecret"),
])
def test_secrets_from_a_file_config_are_refused(block: dict, where: str) -> None:
    config = load_document({"mcpServer": {"redis": block}}).redis
    assert config is not None
    with pytest.raises(RedisSettingsError, match=f"^{where}: Secret .* is read by the Kubernetes config source"):
        RedisSessionStore.from_config(config, replica_id="a", ttl_seconds=30)
