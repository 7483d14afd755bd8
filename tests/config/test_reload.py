"""Hot reload with live MCP sessions: `serve --kube` following a ConfigMap through the API-server double,
and `serve --config` following its file (edits and SIGHUP)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.support.apiserver import ApiServer, api_server
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
                                                                       "capabilities": {}}}
NS, NAME = "higress-system", "higress-config"


def higress(servers: dict[str, str], **block: Any) -> str:
    """The `higress` YAML (JSON is YAML) with echo servers {path: greeting}."""
    entries = [{"name": f"s{path.strip('/')}", "path": path, "type": "echo", "config": {"greeting": greeting}}
               for path, greeting in servers.items()]
    return json.dumps({"mcpServer": {"enable": True, "sse_path_suffix": "/sse", "servers": entries, **block}})


async def until(check: Any, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {timeout}s: {what}")


class Mcp:
    def __init__(self, http: httpx.AsyncClient, server: ServeProcess) -> None:
        self.http, self.server = http, server

    async def initialize(self, path: str) -> httpx.Response:
        return await self.http.post(self.server.url(path), json=INIT, headers=BOTH)

    async def echo(self, path: str, sid: str, text: str = "x") -> httpx.Response:
        return await self.http.post(self.server.url(path), headers={**BOTH, "Mcp-Session-Id": sid},
                                    json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                          "params": {"name": "echo", "arguments": {"text": text}}})

    async def serves(self, path: str) -> bool:
        return (await self.initialize(path)).status_code == 200

    async def greeting(self, path: str, sid: str) -> str:
        reply = await self.echo(path, sid)
        return reply.json()["result"]["content"][0]["text"] if reply.status_code == 200 else f"<{reply.status_code}>"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    with api_server() as server:
        yield server


async def test_serve_kube_follows_the_configmap(api: ApiServer, tmp_path: Path) -> None:
    api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1", "/b": "b1", "/d": "d1"})})
    kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    server = ServeProcess(None, tmp_path, ("--kube", "--kubeconfig", str(kubeconfig), "--namespace", NS,
                                           "--configmap", NAME)).start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            mcp = Mcp(http, server)
            sid_a = (await mcp.initialize("/a")).headers["mcp-session-id"]
            sid_d = (await mcp.initialize("/d")).headers["mcp-session-id"]
            async with http.stream("GET", server.url("/b/sse")) as stream_b:
                lines = stream_b.aiter_lines()
                assert await anext(lines) == "event: endpoint"
                # add /c, remove /b, change /d, leave /a alone
                api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1", "/c": "c1", "/d": "d2"})})
                await until(lambda: mcp.serves("/c"), "/c added")
                rest = [line async for line in lines]  # /b's stream ended with its server
                assert "event: message" not in rest
            assert not await mcp.serves("/b")
            assert await mcp.greeting("/a", sid_a) == "a1 x"  # untouched: same session, same server
            assert await mcp.greeting("/d", sid_d) == "d2 x"  # changed: rebuilt, the session carries on

            # An invalid update is kept out, and /readyz says so.
            api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1", "nope": "x"})})

            async def stale() -> bool:
                ready = (await http.get(server.admin("/readyz"))).json()
                return ready["config"].startswith("stale") and any("/path" in p for p in ready["problems"])

            await until(stale, "invalid update rejected")
            assert await mcp.greeting("/a", sid_a) == "a1 x" and await mcp.serves("/c")
            metrics = (await http.get(server.admin("/metrics"))).text
            assert 'higress_ops_config_reloads_total{result="rejected"} 1.0' in metrics

            # The watch is dropped: it resumes from its resourceVersion.
            watches = api.watches
            api.drop_watches()
            await until(lambda: _true(api.watches > watches), "watch resumed")
            api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1", "/e": "e1"})})
            await until(lambda: mcp.serves("/e"), "update after a dropped watch")
            assert (await http.get(server.admin("/readyz"))).json()["config"] == "ok"

            # A bookmark moves the version on; then history expires: 410 Gone, a fresh read, and on.
            api.bookmark()
            api.expire_history()
            api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1", "/f": "f1"})})
            api.drop_watches()
            await until(lambda: mcp.serves("/f"), "update across 410 Gone")
            assert not await mcp.serves("/e")
            assert await mcp.greeting("/a", sid_a) == "a1 x"

            # Deleting the ConfigMap keeps the last good config.
            api.delete("configmaps", NS, NAME)
            await asyncio.sleep(0.5)
            assert await mcp.serves("/f")
        assert "410" in server.log() or "expired" in server.log()
    finally:
        server.stop()


async def _true(value: bool) -> bool:
    return value


def test_serve_kube_without_the_configmap_says_so(api: ApiServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "higress_ops", "serve", "--kube", "--kubeconfig",
                          str(api.kubeconfig(tmp_path / "kc"))], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "higress-system/higress-config" in run.stderr and "404" in run.stderr


async def test_redis_password_comes_from_its_secret(api: ApiServer, tmp_path: Path) -> None:
    from tests.support.redis import start_redis

    secured = start_redis(tmp_path / "redis", password="s3cret-pw")
    try:
        api.put("secrets", NS, "redis-auth", {"password": "czNjcmV0LXB3"})  # base64 of s3cret-pw
        block = {"redis": {"address": secured.address, "passwordSecret": {"name": "redis-auth", "key": "password"}}}
        api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1"}, **block)})
        server = ServeProcess(None, tmp_path, ("--kube", "--kubeconfig", str(api.kubeconfig(tmp_path / "kc")))).start()
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                assert (await http.get(server.admin("/readyz"))).json()["store"] == "ok"
                assert (await Mcp(http, server).initialize("/a")).status_code == 200
            assert "s3cret-pw" not in server.log()
        finally:
            server.stop()
    finally:
        secured.stop()


async def test_a_new_redis_password_in_its_secret_is_picked_up(api: ApiServer, tmp_path: Path) -> None:
    import redis.asyncio as aioredis

    from tests.support.redis import start_redis

    secured = start_redis(tmp_path / "redis", password="first-pw")
    try:
        api.put("secrets", NS, "redis-auth", {"password": "Zmlyc3QtcHc="})  # first-pw
        block = {"redis": {"address": secured.address, "passwordSecret": {"name": "redis-auth", "key": "password"}}}
        api.put("configmaps", NS, NAME, {"higress": higress({"/a": "a1"}, **block)})
        server = ServeProcess(None, tmp_path, ("--kube", "--kubeconfig", str(api.kubeconfig(tmp_path / "kc")),
                                               "--secret-poll", "0.3")).start()
        try:
            raw = aioredis.Redis(port=secured.port, password="first-pw")
            await raw.config_set("requirepass", "second-pw")  # rotate: Redis first, then the Secret
            await raw.aclose()
            api.put("secrets", NS, "redis-auth", {"password": "c2Vjb25kLXB3"})  # second-pw
            await until(lambda: _true("reconnecting the session store" in server.log()), "new password used")
            async with httpx.AsyncClient(timeout=10) as http:
                await until(lambda: _store_ok(http, server), "store healthy with the new password")
                assert (await Mcp(http, server).initialize("/a")).status_code == 200
            assert "second-pw" not in server.log() and "first-pw" not in server.log()
        finally:
            server.stop()
    finally:
        secured.stop()


async def _store_ok(http: httpx.AsyncClient, server: ServeProcess) -> bool:
    return (await http.get(server.admin("/readyz"))).json()["store"] == "ok"


async def test_serve_config_reloads_on_file_change_and_sighup(tmp_path: Path) -> None:
    path = tmp_path / "higress.yaml"
    path.write_text(higress({"/a": "a1"}))
    server = ServeProcess(path, tmp_path).start()
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            mcp = Mcp(http, server)
            sid = (await mcp.initialize("/a")).headers["mcp-session-id"]
            path.write_text(higress({"/a": "a1", "/b": "b1"}))
            await until(lambda: mcp.serves("/b"), "file change picked up")
            path.write_text("mcpServer: {servers: [{name: x, path: nope, type: echo}]}")
            await until(lambda: _stale(http, server), "invalid edit rejected")
            assert await mcp.greeting("/a", sid) == "a1 x" and await mcp.serves("/b")
            path.write_text("mcpServer: {servers: " + "[" * 50_000 + "]" * 50_000 + "}")  # RecursionError bait
            await until(lambda: _problem(http, server, "nests too deeply"), "deep YAML rejected with a reason")
            path.write_text(higress({"/a": "a1", "/c": "c1"}))
            assert server.proc is not None
            server.proc.send_signal(signal.SIGHUP)
            await until(lambda: mcp.serves("/c"), "SIGHUP reload")
            assert await mcp.greeting("/a", sid) == "a1 x"
    finally:
        server.stop()


async def _problem(http: httpx.AsyncClient, server: ServeProcess, text: str) -> bool:
    ready = (await http.get(server.admin("/readyz"))).json()
    return any(text in problem for problem in ready.get("problems", []))


async def _stale(http: httpx.AsyncClient, server: ServeProcess) -> bool:
    return (await http.get(server.admin("/readyz"))).json()["config"].startswith("stale")
