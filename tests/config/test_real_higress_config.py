"""The drop-in proof: the higress-config a real install holds (tests/config/fixtures/higress-config.yaml: every data
key the Helm chart writes, four server types, passwordSecret in another namespace, mcp-session's `secret` and
`rate_limit.error_text`) read through the Kubernetes source (`serve --kube`, its defaults) and served against a
password-protected real redis-server."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import yaml
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.config.test_reload import BOTH, INIT, until
from tests.support.apiserver import api_server
from tests.support.asgi import stateless
from tests.support.redis import start_redis
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

FIXTURE = Path(__file__).parent / "fixtures" / "higress-config.yaml"
NS = "higress-system"
PASSWORD = "redis-pw-in-another-namespace"


def real_configmap(redis_address: str, **mcp: Any) -> dict[str, str]:
    """The fixture's data keys as the API server holds them, Redis pointed at the test's, `mcp` merged in."""
    data: dict[str, str] = yaml.safe_load(FIXTURE.read_text())["data"]
    higress = yaml.safe_load(data["higress"])
    higress["mcpServer"]["redis"]["address"] = redis_address
    higress["mcpServer"].update(mcp)
    return {**data, "higress": yaml.safe_dump(higress, sort_keys=False)}


def opened(sealed: bytes, secret: str) -> bytes:
    """Higress mcp-session's Crypto.Decrypt: base64, 12-byte nonce, AES-256-GCM under SHA-256(secret)."""
    raw = base64.b64decode(sealed, validate=True)
    return AESGCM(hashlib.sha256(secret.encode()).digest()).decrypt(raw[:12], raw[12:], None)


async def test_the_real_higress_config_serves_its_higress_ops_entry(tmp_path: Path) -> None:
    redis_server = start_redis(tmp_path / "redis", password=PASSWORD)
    try:
        with api_server() as api:
            data = real_configmap(redis_server.address)
            secret = yaml.safe_load(data["higress"])["mcpServer"]["redis"]["secret"]
            api.put("configmaps", NS, "higress-config", data)
            api.put("secrets", "redis-system", "redis-credentials",  # passwordSecret.namespace, not higress-system
                    {"password": base64.b64encode(PASSWORD.encode()).decode()})
            kubeconfig = str(api.kubeconfig(tmp_path / "kubeconfig"))
            server = ServeProcess(None, tmp_path, ("--kube", "--kubeconfig", kubeconfig)).start()
            try:
                await _serve_and_reload(server, api, redis_server, secret)
            finally:
                server.stop()
            strict = subprocess.run([sys.executable, "-m", "higress_ops", "serve", "--kube", "--kubeconfig",
                                     kubeconfig, "--strict"], capture_output=True, text=True, timeout=60)
            assert strict.returncode == 1 and ": 4 problems" in strict.stderr and strict.stderr.count("--strict") == 4
    finally:
        redis_server.stop()


async def _serve_and_reload(server: ServeProcess, api: Any, redis_server: Any, secret: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        init = await http.post(server.url("/higress-ops"), json=INIT, headers=BOTH)
        assert init.status_code == 200 and init.json()["result"]["serverInfo"]["name"] == "higress-ops-mcp-server"
        sid = init.headers["mcp-session-id"]
        for path in ("/higress-api", "/higress-api/sse", "/rag", "/nacos"):  # the gateway's own: not here
            assert (await http.post(server.url(path), json=INIT, headers=BOTH)).status_code == 404, path
        log = server.log()
        for name, kind in (("higress-api-mcp-server", "higress-api"), ("rag-mcp-server", "rag"),
                           ("nacos-registry", "nacos-mcp-registry")):
            assert f"server '{name}' skipped: no plugin here serves type '{kind}'" in log
        assert PASSWORD not in log and secret not in log

        # Redis (password-protected) holds the session, and no field of it in the clear.
        raw = redis_server.client()
        keys = [key for key in raw.scan_iter("higress-ops:*")]
        assert keys == [f"higress-ops:session:{sid}".encode()]
        stored = raw.hgetall(keys[0])
        assert set(stored) == {b"record", b"owner"}
        for clear in (b"higress-ops-mcp-server", b"2025-06-18", b"streamable", b'"id"'):
            assert not any(clear in value for value in stored.values()), clear
        assert b'"server":"higress-ops-mcp-server"' in opened(stored[b"record"], secret)
        raw.close()

        # Hot reload: a tighter rate limit refuses the second call with the operator's error_text, and a new
        # server of the gateway's own type is a warning, never a refused ConfigMap.
        servers = yaml.safe_load(real_configmap("x:1")["higress"])["mcpServer"]["servers"]
        servers.append({"name": "more-api", "path": "/more-api", "type": "higress-api", "config": {}})
        api.put("configmaps", NS, "higress-config", real_configmap(
            redis_server.address, servers=servers,
            rate_limit={"limit": 1, "window": 600, "error_text": "slow down: one call per 10 minutes"}))

        async def reloaded() -> bool:
            return "server 'more-api' skipped" in server.log()

        await until(reloaded, "the reload with a new higress-api server")
        ready = (await http.get(server.admin("/readyz"))).json()
        assert ready["config"] == "ok" and ready["servers"] == ["higress-ops-mcp-server"]
        session = {**BOTH, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
        first = await http.post(server.url("/higress-ops"), headers=session, json={
            "jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "get-envoy-ready"}})
        assert first.status_code == 200 and "result" in first.json()  # counted (its Envoy is not there: isError)
        body, headers = stateless("tools/call", name="get-envoy-ready")
        second = await http.post(server.url("/higress-ops"), json=body, headers=headers)
        assert second.json()["error"]["message"] == "slow down: one call per 10 minutes", second.text
