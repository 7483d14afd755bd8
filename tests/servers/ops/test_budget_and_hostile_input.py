"""A 2,000-cluster dump within the budget, and hostile arguments that never leave the allowlist."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from higress_ops.config.model import ServerEntry
from higress_ops.mcp.core import McpCore
from higress_ops.servers.base import CallContext
from higress_ops.servers.ops import OpsServer
from higress_ops.sessions.base import SessionRecord
from tests.support.envoy import Envoy
from tests.support.gateway import big_gateway
from tests.support.istiod import IstiodDouble, istiod_double

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Envoy]:
    with big_gateway(tmp_path_factory.mktemp("big"), 2000) as envoy:
        yield envoy


async def test_a_2000_cluster_dump_is_cut_to_the_budget(big: Envoy, make_server: Any) -> None:
    ops = make_server(big.admin_url, "http://127.0.0.1:9")
    result = await ops.call_tool("get-envoy-config-dump", {}, CallContext())
    assert not result.is_error
    payload = result.content[0]["text"]
    assert len(payload.encode()) <= 65536
    dump = json.loads(payload)  # still valid JSON after the cut
    assert dump["configs"][0]["@type"].endswith("BootstrapConfigDump")
    note = result.content[-2]["text"]  # the last line names the Envoy that answered
    assert "of 2,000 items" in note and "resource=" in note and "name_regex=" in note
    one = await ops.call_tool("get-envoy-config-dump", {"resource": "static_clusters",
                                                         "name_regex": ".*svc-01234.*"}, CallContext())
    clusters = json.loads(one.content[0]["text"])["configs"]
    assert [c["cluster"]["name"] for c in clusters] == ["outbound|80||svc-01234.ns-34.svc.cluster.local"]
    assert len(one.content) == 2 and one.content[1]["text"] == "[answered by the local Envoy (envoyAdminURL)]"


HOSTILE: list[tuple[str, dict[str, Any]]] = [
    ("get-envoy-config-dump", {"name_regex": "x&resource=../../quitquitquit"}),
    ("get-envoy-config-dump", {"name_regex": ".*#fragment"}),
    ("get-envoy-config-dump", {"name_regex": "a\r\nHost: evil.example"}),
    ("get-envoy-stats", {"filter": "x?format=prometheus&usedonly"}),
    ("get-envoy-stats", {"filter": "http://evil.example/"}),
    ("get-envoy-stats", {"filter": "%2e%2e%2fquitquitquit"}),
]
REJECTED: list[tuple[str, dict[str, Any]]] = [
    ("get-envoy-config-dump", {"resource": "../quitquitquit"}),
    ("get-envoy-config-dump", {"resource": "listeners&x=1"}),
    ("get-envoy-config-dump", {"mask": "a,b;rm"}),
    ("get-envoy-config-dump", {"path": "/quitquitquit"}),
    ("get-envoy-clusters", {"format": "json&x=1"}),
    ("get-envoy-stats", {"type": "counters"}),
    ("get-envoy-stats", {"filter": "x" * 300}),
    ("get-istiod-syncz", {"namespace": "../debug/force_disconnect"}),
    ("get-istiod-configz", {"kind": "Virtual Service"}),
    ("get-istiod-configz", {"host": "a b"}),
    ("get-istiod-registryz", {"namespace": "Default"}),
    ("get-istiod-endpointz", {"hostname": "x" * 300}),
    ("get-envoy-clusters", {"name_regex": ""}),
    ("get-envoy-ready", {"url": "http://evil.example"}),
]
ALLOWED_KEYS = {"/config_dump": {"resource", "mask", "name_regex", "include_eds"},
                "/stats": {"filter", "format", "usedonly", "type"}, "/clusters": {"format"}}


@pytest.fixture
def recorder() -> Iterator[IstiodDouble]:
    with istiod_double() as double:  # records every request; stands where Envoy and istiod would be
        yield double


def core_over(recorder: IstiodDouble) -> McpCore:
    config = {"istiodURL": recorder.url, "envoyAdminURL": recorder.url, "maxResponseBytes": 65536,
              "timeoutSeconds": 5, "namespace": "higress-system"}
    return McpCore(OpsServer(ServerEntry(name="ops", path="/o", type="higress-ops", config=config)))


async def call(core: McpCore, name: str, args: dict[str, Any]) -> dict[str, Any]:
    reply = await core.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                               "params": {"name": name, "arguments": args}},
                              SessionRecord(id="s", server="ops", transport="streamable"),
                              CallContext(headers={"x-istiod-token": "good-token"}))
    assert reply is not None
    return reply


@pytest.mark.parametrize(("tool", "args"), HOSTILE)
async def test_hostile_values_travel_only_as_encoded_values(recorder: IstiodDouble, tool: str,
                                                            args: dict[str, Any]) -> None:
    await call(core_over(recorder), tool, args)
    assert len(recorder.requests) == 1, "one request, to the tool's own path"
    sent = recorder.requests[0]
    assert sent.method == "GET" and sent.path in ALLOWED_KEYS
    assert set(sent.query) <= ALLOWED_KEYS[sent.path]
    key, value = next(iter(args.items()))
    assert sent.query[key] == [value]  # arrived intact, as one value of its own key


@pytest.mark.parametrize(("tool", "args"), REJECTED)
async def test_invalid_arguments_never_reach_an_upstream(recorder: IstiodDouble, tool: str,
                                                         args: dict[str, Any]) -> None:
    reply = await call(core_over(recorder), tool, args)
    assert reply["error"]["code"] == -32602 and tool in reply["error"]["message"]
    assert recorder.requests == []


async def test_a_redirect_is_never_followed(tmp_path: Path, make_server: Any) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    with istiod_double() as elsewhere:
        class Redirect(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", f"{elsewhere.url}/debug/force_disconnect")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            ops = make_server(f"http://127.0.0.1:{server.server_address[1]}", elsewhere.url)
            result = await ops.call_tool("get-envoy-server-info", {}, CallContext())
            assert result.is_error and "redirect" in result.content[0]["text"]
            assert elsewhere.requests == []
        finally:
            server.shutdown()
            server.server_close()
