"""Every status code of design.md section 4, spoken in raw HTTP to a real `higress-ops serve`."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import pytest

from tests.support.asgi import BOTH, INIT, rpc
from tests.support.serve import ServeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

async def session(http: httpx.AsyncClient, url: str, version: str = "2025-06-18") -> str:
    init = {**INIT, "params": {**INIT["params"], "protocolVersion": version}}
    reply = await http.post(url, json=init, headers=BOTH)
    assert reply.status_code == 200
    return reply.headers["mcp-session-id"]


async def open_legacy(http: httpx.AsyncClient, server: ServeProcess) -> tuple[Any, str, Any]:
    """The legacy stream (entered), the message URL from its endpoint event, and the stream's lines."""
    stream = http.stream("GET", server.url("/a/sse"), headers={"Accept": "text/event-stream"})
    response = await stream.__aenter__()
    lines = response.aiter_lines()
    assert await anext(lines) == "event: endpoint"
    data = await anext(lines)
    assert data.startswith("data: /a?sessionId=")
    return stream, server.url(data[len("data: "):]), lines


async def test_streamable_session_lifecycle(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        sid = await session(http, url)
        assert len(sid) >= 22  # >= 128 random bits in url-safe base64
        headers = {**BOTH, "Mcp-Session-Id": sid}
        note = await http.post(url, json=rpc("notifications/initialized", id=None), headers=headers)
        assert (note.status_code, note.content) == (202, b"")
        listed = await http.post(url, json=rpc("tools/list"), headers=headers)
        assert listed.status_code == 200 and listed.headers["content-type"].startswith("application/json")
        assert [t["name"] for t in listed.json()["result"]["tools"]] == ["echo", "whoami", "sleep", "fail"]
        response = await http.post(url, json={"jsonrpc": "2.0", "id": 5, "result": {}}, headers=headers)
        assert response.status_code == 202
        assert (await http.post(url, json=rpc("ping"), headers=BOTH)).status_code == 400  # no session id
        missing = await http.post(url, json=rpc("ping"), headers={**BOTH, "Mcp-Session-Id": "unknown-id"})
        assert missing.status_code == 404
        assert (await http.delete(url, headers={"Mcp-Session-Id": sid})).status_code == 200
        assert (await http.post(url, json=rpc("ping"), headers=headers)).status_code == 404
        assert (await http.delete(url, headers={"Mcp-Session-Id": sid})).status_code == 404


async def test_a_session_is_bound_to_its_server(server: ServeProcess) -> None:
    async with httpx.AsyncClient() as http:
        sid = await session(http, server.url("/a"))
        other = await http.post(server.url("/b"), json=rpc("ping"), headers={**BOTH, "Mcp-Session-Id": sid})
        assert other.status_code == 404
        stream, message_url, _lines = await open_legacy(http, server)
        try:
            legacy_id = message_url.split("sessionId=")[1]
            crossed = await http.post(server.url(f"/b?sessionId={legacy_id}"), json=rpc("ping"))
            assert crossed.status_code == 404
            as_streamable = await http.post(server.url("/a"), json=rpc("ping"),
                                            headers={**BOTH, "Mcp-Session-Id": legacy_id})
            assert as_streamable.status_code == 404
        finally:
            await stream.__aexit__(None, None, None)


async def test_accept_and_content_type(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        refused = await http.post(url, json=INIT, headers={"Accept": "text/event-stream",
                                                           "Content-Type": "application/json"})
        assert refused.status_code == 406
        wrong_type = await http.post(url, content=json.dumps(INIT), headers={"Accept": "application/json",
                                                                             "Content-Type": "text/plain"})
        assert wrong_type.status_code == 400
        sse_refused = await http.get(server.url("/a/sse"), headers={"Accept": "application/json"})
        assert sse_refused.status_code == 406
        sid = await session(http, url)
        get_refused = await http.get(url, headers={"Accept": "application/json", "Mcp-Session-Id": sid})
        assert get_refused.status_code == 406


async def test_bad_bodies(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        parse = await http.post(url, content=b"{not json", headers=BOTH)
        assert parse.status_code == 400 and parse.json()["error"]["code"] == -32700
        invalid = await http.post(url, json={"jsonrpc": "2.0", "id": 1}, headers=BOTH)
        assert invalid.status_code == 400 and invalid.json()["error"]["code"] == -32600
        too_big = await http.post(url, content=b'{"pad": "' + b"x" * (1024 * 1024) + b'"}', headers=BOTH)
        assert too_big.status_code == 413
        sid = await session(http, url)
        batch = await http.post(url, json=[rpc("ping", 1), rpc("ping", 2)], headers={**BOTH, "Mcp-Session-Id": sid})
        assert batch.status_code == 400 and "batch" in batch.json()["error"]["message"]


async def test_batches_on_2025_03_26(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        sid = await session(http, url, "2025-03-26")
        headers = {**BOTH, "Mcp-Session-Id": sid}
        reply = await http.post(url, json=[rpc("ping", 1), rpc("notifications/initialized", None),
                                           rpc("tools/call", 2, name="echo", arguments={"text": "b"})],
                                headers=headers)
        assert reply.status_code == 200
        answers = {item["id"]: item for item in reply.json()}
        assert answers[1]["result"] == {} and answers[2]["result"]["content"][0]["text"] == "hi b"
        only_notes = await http.post(url, json=[rpc("notifications/initialized", None)], headers=headers)
        assert only_notes.status_code == 202


async def test_version_negotiation_and_header(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        for asked, got in (("2024-11-05", "2024-11-05"), ("2025-03-26", "2025-03-26"),
                           ("2025-11-25", "2025-11-25"), ("2030-01-01", "2025-11-25")):
            init = {**INIT, "params": {**INIT["params"], "protocolVersion": asked}}
            assert (await http.post(url, json=init, headers=BOTH)).json()["result"]["protocolVersion"] == got
        sid = await session(http, url)
        bad = await http.post(url, json=rpc("ping"), headers={**BOTH, "Mcp-Session-Id": sid,
                                                              "MCP-Protocol-Version": "1999-01-01"})
        assert bad.status_code == 400 and "Unsupported MCP-Protocol-Version" in bad.text
        good = await http.post(url, json=rpc("ping"), headers={**BOTH, "Mcp-Session-Id": sid,
                                                               "MCP-Protocol-Version": "2025-06-18"})
        assert good.status_code == 200


async def test_2026_envelope_over_http(server: ServeProcess) -> None:
    url = server.url("/a")
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {}}
    modern = {**BOTH, "MCP-Protocol-Version": "2026-07-28"}
    async with httpx.AsyncClient() as http:
        discover = await http.post(url, json=rpc("server/discover", _meta=meta),
                                   headers={**modern, "Mcp-Method": "server/discover"})
        assert discover.status_code == 200 and "2026-07-28" in discover.json()["result"]["supportedVersions"]
        call = await http.post(url, json=rpc("tools/call", name="echo", arguments={"text": "m"}, _meta=meta),
                               headers={**modern, "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
        assert call.status_code == 200 and call.json()["result"]["resultType"] == "complete"
        assert "mcp-session-id" not in call.headers
        mismatch = await http.post(url, json=rpc("tools/call", name="echo", arguments={"text": "m"}, _meta=meta),
                                   headers={**modern, "Mcp-Method": "tools/call", "Mcp-Name": "fail"})
        assert mismatch.status_code == 400 and mismatch.json()["error"]["code"] == -32020
        no_meta = await http.post(url, json=rpc("tools/list"), headers={**modern, "Mcp-Method": "tools/list"})
        assert no_meta.status_code == 400 and no_meta.json()["error"]["code"] == -32602
        unknown = await http.post(url, json=rpc("prompts/list", _meta=meta),
                                  headers={**modern, "Mcp-Method": "prompts/list"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32601
        assert (await http.get(url, headers=modern)).status_code == 405
        assert (await http.delete(url, headers=modern)).status_code == 405


async def test_methods_not_offered(server: ServeProcess) -> None:
    async with httpx.AsyncClient() as http:
        assert (await http.put(server.url("/a"), content=b"{}")).status_code == 405
        assert (await http.post(server.url("/a/sse"), json=INIT)).status_code == 405
        assert (await http.get(server.url("/a?sessionId=abc"))).status_code == 405


async def test_origin(server: ServeProcess) -> None:
    url = server.url("/a")
    async with httpx.AsyncClient() as http:
        evil = await http.post(url, json=INIT, headers={**BOTH, "Origin": "http://evil.example"})
        assert evil.status_code == 403
        same = await http.post(url, json=INIT, headers={**BOTH, "Origin": server.base})
        assert same.status_code == 200
        stream = await http.get(server.url("/a/sse"), headers={"Origin": "http://evil.example"})
        assert stream.status_code == 403


async def test_legacy_sse_codes_and_keepalive(server: ServeProcess) -> None:
    async with httpx.AsyncClient() as http:
        stream, message_url, lines = await open_legacy(http, server)
        try:
            ok = await http.post(message_url, json=rpc("ping", 3))
            assert ok.status_code == 202
            seen: list[str] = []
            while "event: message" not in seen or ": keep-alive" not in seen:  # keep-alive every 0.3 s here
                seen.append(await anext(lines))
            reply = json.loads(seen[seen.index("event: message") + 1][len("data: "):])
            assert reply == {"jsonrpc": "2.0", "id": 3, "result": {}}
            bad_json = await http.post(message_url, content=b"{", headers={"Content-Type": "application/json"})
            assert bad_json.status_code == 400
            bad_type = await http.post(message_url, content=b"{}", headers={"Content-Type": "text/plain"})
            assert bad_type.status_code == 400
            too_big = await http.post(message_url, content=b"[" + b" " * (1024 * 1024) + b"]",
                                      headers={"Content-Type": "application/json"})
            assert too_big.status_code == 413
            assert (await http.post(server.url("/a?sessionId="), json=rpc("ping"))).status_code == 400
            assert (await http.post(server.url("/a?sessionId=nope"), json=rpc("ping"))).status_code == 404
        finally:
            await stream.__aexit__(None, None, None)


async def test_unmatched_paths_are_404(server: ServeProcess) -> None:
    async with httpx.AsyncClient() as http:
        for path in ("/", "/c", "/a/", "/a/sse/x", "/asse"):
            assert (await http.post(server.url(path), json=INIT, headers=BOTH)).status_code == 404, path
