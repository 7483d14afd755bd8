"""server-info's summary of node.extensions: the reused-list shortcut must give exactly what parsing the whole
document gives, on Envoy's real bytes and on every layout that could fool it."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from higress_ops.servers.ops import server_info
from tests.support.istio_envoy import IstioGateway

MODES = [{}, {"extensions": "names"}, {"extensions": "counts"}, {"extensions": "full"}]


def whole(body: bytes, args: dict[str, Any]) -> tuple[Any, str]:
    return server_info.reshape(json.loads(body), args)


@pytest.fixture(scope="module")
def envoy_body(gateway: IstioGateway) -> bytes:
    return requests.get(f"{gateway.admin_url}/server_info", timeout=5).content


@pytest.mark.parametrize("args", MODES)
def test_envoy_bytes_give_the_same_answer_as_a_whole_parse(envoy_body: bytes, args: dict[str, Any]) -> None:
    for _ in range(2):  # the first call fills the cache, the second reuses it
        assert server_info.parse(envoy_body, args) == whole(envoy_body, args)
    info, note = server_info.parse(envoy_body, args)
    shown = info["node"]["extensions"]
    if args.get("extensions") == "counts":
        assert shown["envoy.filters.http"] > 10 and "counts by category" in note
    elif args.get("extensions") != "full":
        assert "envoy.filters.http.router" in shown["envoy.filters.http"] and "names by category" in note


def test_a_changed_extension_list_is_read_again(envoy_body: bytes) -> None:
    server_info.parse(envoy_body, {})
    changed = envoy_body.replace(b'"envoy.filters.http.router"', b'"envoy.filters.http.router2"', 1)
    assert changed != envoy_body
    info, _ = server_info.parse(changed, {})
    assert "envoy.filters.http.router2" in info["node"]["extensions"]["envoy.filters.http"]
    assert server_info.parse(changed, {}) == whole(changed, {})
    assert server_info.parse(envoy_body, {}) == whole(envoy_body, {})


def test_a_longer_or_shorter_list_at_the_same_place_is_read_again() -> None:
    base = document()
    longer = document(extensions=[*base["node"]["extensions"], {"name": "envoy.d", "category": "envoy.filters.http"}])
    shorter = document(extensions=base["node"]["extensions"][:1])
    for doc in (base, longer, shorter, base, shorter, longer):
        body = json.dumps(doc, indent=1).encode()
        assert server_info.parse(body, {}) == whole(body, {})


def document(metadata: Any = None, extensions: Any = None) -> dict[str, Any]:
    return {"version": "abc/1.40.0/Clean/RELEASE/BoringSSL", "state": "LIVE", "uptime_current_epoch": "5s",
            "node": {"id": "n", "metadata": metadata or {},
                     "extensions": extensions if extensions is not None else [
                         {"name": "envoy.a", "category": "envoy.filters.http", "disabled": False, "type_urls": ["x"]},
                         {"name": "envoy.b", "category": "envoy.filters.http", "disabled": True, "type_urls": []},
                         {"name": "envoy.c", "category": "", "type_urls": []}],
                     "client_features": []}}


@pytest.mark.parametrize("body", [
    json.dumps(document(), indent=1).encode(),  # Envoy's layout
    json.dumps(document()).encode(),  # compact: no layout to rely on
    json.dumps(document(metadata={"extensions": ["not these"]}), indent=1).encode(),  # a decoy key first
    json.dumps(document(metadata={"note": "\"extensions\": [ inside a string"}), indent=1).encode(),
    json.dumps(document(extensions=[]), indent=1).encode(),  # "extensions": [] on one line
    json.dumps(document(extensions={"not": "a list"}), indent=1).encode(),
    json.dumps({"node": "no object"}, indent=1).encode(),
    json.dumps([1, 2], indent=1).encode(),
], ids=["envoy-layout", "compact", "decoy-key", "decoy-string", "empty-list", "not-a-list", "odd-node", "array"])
@pytest.mark.parametrize("args", MODES)
def test_any_layout_gives_the_whole_parse_answer(body: bytes, args: dict[str, Any]) -> None:
    assert server_info.parse(body, args) == whole(body, args)


def test_disabled_extensions_are_listed_apart() -> None:
    info, note = server_info.parse(json.dumps(document(), indent=1).encode(), {})
    assert info["node"]["extensions"] == {"envoy.filters.http": ["envoy.a", "envoy.b"], "uncategorised": ["envoy.c"]}
    assert info["node"]["disabled_extensions"] == ["envoy.b"] and "3 extensions in 2 categories" in note
    counts, _ = server_info.parse(json.dumps(document()).encode(), {"extensions": "counts"})
    assert counts["node"]["extensions"] == {"envoy.filters.http": 2, "uncategorised": 1}


@pytest.mark.parametrize("body", [b"not json", b'{"node": {"extensions": [\n  {"name": \n  ]}}', b""])
def test_invalid_json_is_a_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        server_info.parse(body, {})
