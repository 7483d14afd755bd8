"""`higress-ops serve` as an operator runs it: expiry, host routing, metrics and logs, SIGTERM, bad configs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from tests.support.serve import ServeProcess, echo_config, serving, write_config

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

BOTH = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}
PING = {"jsonrpc": "2.0", "id": 2, "method": "ping"}


async def test_idle_sessions_expire(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path, "--session-ttl", "0.5") as server:
        async with httpx.AsyncClient() as http:
            sid = (await http.post(server.url("/e"), json=INIT, headers=BOTH)).headers["mcp-session-id"]
            headers = {**BOTH, "Mcp-Session-Id": sid}
            assert (await http.post(server.url("/e"), json=PING, headers=headers)).status_code == 200
            await asyncio.sleep(1.5)
            assert (await http.post(server.url("/e"), json=PING, headers=headers)).status_code == 404


async def test_domain_list_and_match_list(tmp_path: Path) -> None:
    config = echo_config(("api", "/d"), ("any", "/e"),
                         match_list=[{"match_rule_domain": "*.x.com", "match_rule_path": "/d",
                                      "match_rule_type": "prefix"},
                                     {"match_rule_domain": "*", "match_rule_path": "^/e(/sse)?$",
                                      "match_rule_type": "regex"}])
    config["mcpServer"]["servers"][0]["domain_list"] = ["api.x.com"]
    with serving(config, tmp_path, "--allowed-host", "*") as server:  # loopback bind: other names need allowing
        async with httpx.AsyncClient() as http:
            async def status(path: str, host: str) -> int:
                return (await http.post(server.url(path), json=INIT, headers={**BOTH, "Host": host})).status_code

            assert await status("/d", "api.x.com:8443") == 200
            assert await status("/d", "web.x.com") == 404  # matched by match_list, not in domain_list
            assert await status("/d", "api.y.com") == 404  # outside match_list
            assert await status("/e", "anything.org") == 200


async def test_metrics_and_access_log_never_show_the_token(tmp_path: Path) -> None:
    token = "secret-token-4242"
    with serving(echo_config(("e", "/e")), tmp_path) as server:
        async with Client(sse_client(server.url("/e/sse"), headers={"X-Istiod-Token": token}),
                          mode="legacy") as client:
            assert (await client.call_tool("whoami", {})).content[0].text == token  # type: ignore[union-attr]
            await client.call_tool("echo", {"text": "m"})
        async with httpx.AsyncClient() as http:
            text = (await http.get(server.admin("/metrics"))).text
        assert 'higress_ops_requests_total{method="tools/call",server="e",status="202",transport="sse"} 2.0' in text
        assert 'higress_ops_tool_call_seconds_count{outcome="ok",server="e",tool="echo"} 1.0' in text
        assert "higress_ops_active_sessions" in text
        time.sleep(0.3)
        log = server.log()
        assert token not in text and token not in log
        lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
        calls = [line for line in lines if line.get("msg") == "request" and line.get("tool") == "echo"]
        assert calls and {"server", "transport", "method", "status", "duration_ms", "replica"} <= set(calls[0])


async def test_sigterm_lets_in_flight_calls_finish_and_ends_streams(tmp_path: Path) -> None:
    with serving(echo_config(("e", "/e")), tmp_path) as server:
        async with httpx.AsyncClient(timeout=20) as http:
            sid = (await http.post(server.url("/e"), json=INIT, headers=BOTH)).headers["mcp-session-id"]
            call = asyncio.create_task(http.post(
                server.url("/e"), headers={**BOTH, "Mcp-Session-Id": sid},
                json={"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": "sleep", "arguments": {"seconds": 1.5}}}))
            async with http.stream("GET", server.url("/e/sse")) as stream:
                await asyncio.sleep(0.4)
                started = time.monotonic()
                assert server.proc is not None
                server.proc.send_signal(15)
                reply = await call
                assert reply.status_code == 200 and reply.json()["result"]["content"][0]["text"] == "slept 1.5s"
                lines = [line async for line in stream.aiter_lines()]  # ends: the server closed it
                assert lines[0] == "event: endpoint"
            code = await asyncio.to_thread(server.proc.wait, 20)
            assert code == 0 and time.monotonic() - started < 10


def test_serve_refuses_bad_config_and_unknown_type(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.yaml", {"mcpServer": {"servers": [{"name": "x", "path": "no-slash",
                                                                          "type": "echo"}]}})
    run = subprocess.run([sys.executable, "-m", "higress_ops", "serve", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 1 and "/mcpServer/servers/0/path" in run.stderr
    unknown = write_config(tmp_path / "unknown.yaml", {"mcpServer": {"servers": [{"name": "x", "path": "/x",
                                                                                  "type": "nope"}]}})
    run = subprocess.run([sys.executable, "-m", "higress_ops", "serve", "--config", str(unknown), "--strict"],
                         capture_output=True, text=True, timeout=30)  # without --strict it is skipped and served
    assert run.returncode == 1 and "unknown server type 'nope'; registered types: " in run.stderr


def test_replica_id_flag(tmp_path: Path) -> None:
    process = ServeProcess(write_config(tmp_path / "c.yaml", echo_config(("e", "/e"))), tmp_path,
                           ("--replica-id", "replica-zz")).start()
    try:
        assert httpx.get(process.admin("/readyz")).json()["replica"] == "replica-zz"
    finally:
        process.stop()
