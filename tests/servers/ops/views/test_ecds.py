"""get-envoy-proxy-config type=ecds against a real Envoy whose HTTP filters come from ECDS."""

from __future__ import annotations

import json

import pytest

from higress_ops.servers.base import CallContext
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def call(make_server, gw: VerdictGateway, **args):
    server = make_server(gw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("get-envoy-proxy-config", {"type": "ecds", **args}, CallContext())
    assert not result.is_error, result.content
    return result


async def test_ecds_table_has_istioctls_columns_and_order(vgw, make_server):
    text = (await call(make_server, vgw)).content[0]["text"]
    table = text.split("\nWasm plugins:")[0].splitlines()
    assert table == [
        "ECDS NAME                   TYPE",
        "default.add-header          envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "higress-system.key-auth     envoy.extensions.filters.http.wasm.v3.Wasm",
    ]


async def test_wasm_plugin_shows_vm_runtime_source_and_that_it_failed_to_load(vgw, make_server):
    assert vgw.send("ecds", "app.example.com", "/ok") == 500  # what a failed Wasm plugin does to traffic
    result = await call(make_server, vgw)
    [wasm] = result.structured["wasm"]
    assert wasm["plugin"] == "higress-system.key-auth" and wasm["vm"] == "key-auth" and wasm["runtime"] == "v8"
    assert wasm["source"] == f"local {vgw.envoy.workdir / 'missing-key-auth.wasm'}"
    assert wasm["state"].startswith("FAILED")


async def test_output_json_gives_the_raw_extension_configs(vgw, make_server):
    result = await call(make_server, vgw, output="json")
    raw = json.loads(result.content[0]["text"])
    assert [e["ecds_filter"]["name"] for e in raw] == ["default.add-header", "higress-system.key-auth"]
