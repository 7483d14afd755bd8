"""End-to-end tier: a real `higress-ops serve` with --auth kubernetes (API-server double) and the official SDK
client on every transport; the legacy stream's headers stay with the stream; slowloris, huge headers and
connection floods against the real HTTP server; hostile initializes and batches do not grow memory."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.hardening.report import record
from tests.support.apiserver import ApiServer, api_server
from tests.support.procs import rss_kb
from tests.support.rawhttp import connect, read_all
from tests.support.serve import ServeProcess, echo_config, serving

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture(scope="module")
def kube_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, ApiServer]]:
    workdir = tmp_path_factory.mktemp("kube-auth")
    with api_server() as api:
        api.users.update({"alice-sa-token": {"username": "system:serviceaccount:ops:alice"},
                          "carol-token": {"username": "carol"}})
        api.grants.add(("system:serviceaccount:ops:alice", "create", "pods", "portforward", "higress-system"))
        kubeconfig = api.kubeconfig(workdir / "kubeconfig")
        with serving(echo_config(("e", "/e")), workdir, "--auth", "kubernetes", "--kubeconfig", str(kubeconfig),
                     "--keepalive", "0.5") as server:
            yield server, api


def clients(server: ServeProcess, token: str) -> list[tuple[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    return [("legacy SSE", Client(sse_client(server.url("/e/sse"), headers=headers), mode="legacy")),
            ("streamable", Client(streamable_http_client(server.url("/e"), http_client=create_mcp_http_client(
                headers=headers)), mode="legacy")),
            ("2026-07-28", Client(streamable_http_client(server.url("/e"), http_client=create_mcp_http_client(
                headers=headers)), mode="2026-07-28"))]


async def test_sdk_client_with_a_service_account_token_on_every_transport(
        kube_served: tuple[ServeProcess, ApiServer]) -> None:
    server, _api = kube_served
    for name, client in clients(server, "alice-sa-token"):
        async with client:
            result = await client.call_tool("echo", {"text": name})
            assert result.content[0].text == f"hi {name}"  # type: ignore[union-attr]
    for token in ("nobody", "carol-token"):
        for name, client in clients(server, token):
            with pytest.raises(Exception):  # noqa: B017 - the SDK surfaces the 401/403 as its own error types
                async with client:
                    await client.list_tools()
            del name
    async with httpx.AsyncClient() as http:
        denied = await http.post(server.url("/e"), json=INIT, headers={**BOTH, "Authorization": "Bearer carol-token"})
        assert denied.status_code == 403
        missing = await http.get(server.url("/e/sse"), headers={"Accept": "text/event-stream"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert (await http.get(server.admin("/readyz"))).status_code == 200  # the admin port needs no token
    await asyncio.sleep(0.2)
    log = server.log()
    assert '"identity": "system:serviceaccount:ops:alice"' in log
    assert "alice-sa-token" not in log and "carol-token" not in log
    record("Client authentication", "--auth kubernetes, SDK client on legacy SSE, streamable, 2026-07-28",
           "ServiceAccount token with create pods/portforward: served; unknown token 401, no RBAC 403; the access "
           "log names the identity, never the token")


async def test_another_identity_cannot_use_or_end_a_legacy_stream(kube_served: tuple[ServeProcess, ApiServer]) -> None:
    server, api = kube_served
    api.users["bob-token"] = {"username": "bob"}
    api.grants.add(("bob", "create", "pods", "portforward", "higress-system"))
    alice = {"Authorization": "Bearer alice-sa-token"}
    async with httpx.AsyncClient(timeout=10) as http, http.stream(
            "GET", server.url("/e/sse"), headers={"Accept": "text/event-stream", **alice,
                                                  "X-Istiod-Token": "stream-token"}) as stream:
        lines = stream.aiter_lines()
        assert await anext(lines) == "event: endpoint"
        endpoint = (await anext(lines))[len("data: "):]
        post = {"Content-Type": "application/json"}
        bob = await http.post(server.url(endpoint), json=INIT, headers={**post, "Authorization": "Bearer bob-token"})
        assert bob.status_code == 404
        assert (await http.post(server.url(endpoint), json=INIT, headers={**post, **alice})).status_code == 202
        whoami = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}}
        assert (await http.post(server.url(endpoint), json=whoami, headers={**post, **alice})).status_code == 202
        answers = []
        async for line in lines:
            if line.startswith("data: "):
                answers.append(line)
            if len(answers) == 2:
                break
        assert '"text":"<none>"' in answers[1]  # the GET's X-Istiod-Token never serves a POST


async def test_slowloris_huge_headers_and_connection_floods(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path, "--header-timeout", "1", "--max-connections", "20") as server:
        slow = connect(server.port)
        slow.sendall(b"POST /e HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        answer = await asyncio.to_thread(read_all, slow)
        assert answer.startswith(b"HTTP/1.1 408") and 0.9 < time.monotonic() - started < 5
        big = connect(server.port)
        big.sendall(b"GET /e HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        with pytest.raises(OSError):  # the server closes long before 50 MB went in
            for _ in range(50 * 16):
                big.sendall(b"a" * 65536)
                sent += 65536
        assert sent < 8 * 1024 * 1024
        flood = [connect(server.port) for _ in range(25)]
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as http:
            busy = await http.post(server.url("/e"), json=INIT, headers=BOTH)
            assert busy.status_code == 503
            for sock in flood:
                sock.close()
            await asyncio.sleep(0.3)
            assert (await http.post(server.url("/e"), json=INIT, headers=BOTH)).status_code == 200
        record("HTTP server guards", "slowloris, 50 MB header, 25 idle connections over --max-connections 20",
               f"408 after {time.monotonic() - started:.1f} s of trickled headers; connection closed after "
               f"{sent // 1024} KiB of a 50 MB header; 503 while flooded, 200 once the flood left")


async def test_hostile_initializes_and_batches_do_not_grow_memory(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path, "--log-level", "warning") as server:
        assert server.proc is not None
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=16)) as http:
            await http.post(server.url("/e"), json=INIT, headers=BOTH)
            before = rss_kb(server.proc.pid)
            fat = {**INIT, "params": {**INIT["params"], "capabilities": {"experimental": {"x": "y" * 16_000}}}}
            heavy = {**INIT, "params": {**INIT["params"], "capabilities": {"experimental": {"x": "z" * 15_000}}}}

            async def hostile(i: int) -> list[int]:
                statuses = []
                for body in (fat, heavy):
                    reply = await http.post(server.url("/e"), json=body, headers=BOTH)
                    statuses.append(reply.status_code)
                sid = reply.headers.get("mcp-session-id", "")
                batch = [{"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {
                    "name": "echo", "arguments": {"text": "q" * 30_000}}} for n in range(32)]
                reply = await http.post(server.url("/e"), json=batch, headers={**BOTH, "Mcp-Session-Id": sid})
                if reply.status_code == 200:  # past --max-inflight the calls wait their turn: all 32 answered
                    assert sum("result" in answer for answer in reply.json()) == 32
                return [*statuses, reply.status_code]

            results = []
            for start in range(0, 1000, 50):
                results += await asyncio.gather(*(hostile(i) for i in range(start, start + 50)))
            assert all(status < 500 for statuses in results for status in statuses)
            growth_mb = (rss_kb(server.proc.pid) - before) / 1024
        # 80 MB: each batch is now answered in full (32 echoes, ~2 MB of JSON), where 24 calls were refused
        # before; 16 such answers in flight at once leave the allocator holding more.
        assert growth_mb < 80, growth_mb
        record("Memory under hostile clients", "1,000 clients: an over-cap initialize, a 15 KB initialize and a "
               "32-call batch of 30 KB arguments each", f"no 5xx, every batch answered in full; RSS grew "
               f"{growth_mb:.1f} MB (limit 80 MB)")


def test_a_network_bind_without_auth_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text('{"mcpServer": {"servers": [{"name": "e", "path": "/e", "type": "echo", "config": {}}]}}')
    run = subprocess.run([sys.executable, "-m", "higress_ops", "serve", "--config", str(config), "--host", "0.0.0.0"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0
    assert "not a loopback address" in run.stderr and "--auth none" in run.stderr


async def test_sdk_client_with_an_oidc_token(tmp_path: Path) -> None:
    from tests.support.oidc import oidc_issuer

    with oidc_issuer() as issuer, serving(echo_config(("e", "/e")), tmp_path, "--auth", "oidc", "--oidc-issuer",
                                          issuer.url, "--oidc-audience", "higress-ops") as server:
        token = issuer.issue("agent-7")
        for _name, client in clients(server, token):
            async with client:
                assert (await client.call_tool("echo", {"text": "t"})).is_error is False
        async with httpx.AsyncClient() as http:
            unauthorized = await http.post(server.url("/e"), json=INIT, headers=BOTH)
            metadata_url = unauthorized.headers["www-authenticate"].split('resource_metadata="')[1].split('"')[0]
            assert metadata_url == server.url("/.well-known/oauth-protected-resource/e")
            metadata = (await http.get(metadata_url)).json()
            assert metadata["authorization_servers"] == [issuer.url] and metadata["resource"] == server.url("/e")
            expired = await http.post(server.url("/e"), json=INIT, headers={
                **BOTH, "Authorization": f"Bearer {issuer.issue('agent-7', lifetime=-3600)}"})
            assert expired.status_code == 401 and "expired" in expired.text
        await asyncio.sleep(0.2)
        assert '"identity": "agent-7"' in server.log() and token not in server.log()


def test_an_explicit_auth_none_on_a_network_address_warns(caplog: pytest.LogCaptureFixture) -> None:
    import argparse

    from higress_ops.cli.serve import authenticator_from

    args = argparse.Namespace(auth="none", host="0.0.0.0")
    with caplog.at_level("WARNING"):
        assert authenticator_from(args).mode == "none"
    assert "without client authentication on a non-loopback address" in caplog.text
    with pytest.raises(SystemExit, match="--auth oidc needs"):
        authenticator_from(argparse.Namespace(auth="oidc", host="127.0.0.1", oidc_issuer=None, oidc_audience="a"))
