"""The `gateways` and `istiods` blocks of a higress-ops server config: defaults, and errors with their pointers."""

from __future__ import annotations

from typing import Any

import pytest

from higress_ops.config import ConfigError, load_document
from higress_ops.config.model import PodFleet


def document(**server_config: Any) -> dict[str, Any]:
    return {"mcpServer": {"enable": True, "servers": [{"name": "ops", "path": "/higress-ops", "type": "higress-ops",
                                                       "config": {"istiodURL": "http://istiod:15014",
                                                                  "envoyAdminURL": "http://127.0.0.1:15000",
                                                                  **server_config}}]}}


def test_without_the_blocks_both_read_their_configured_url() -> None:
    config = load_document(document()).servers[0].config
    assert PodFleet.of(config, "gateways") == PodFleet("higress-system", "app=higress-gateway", "local", 15000)
    assert PodFleet.of(config, "istiods") == PodFleet("higress-system", "app=higress-controller", "local", 15014)


def test_the_blocks_default_to_the_servers_namespace_and_higress_selectors() -> None:
    config = load_document(document(namespace="gw-ns", gateways={"access": "portforward"},
                                    istiods={"access": "direct", "port": 15010, "namespace": "cp"})).servers[0].config
    assert PodFleet.of(config, "gateways") == PodFleet("gw-ns", "app=higress-gateway", "portforward", 15000)
    assert PodFleet.of(config, "istiods") == PodFleet("cp", "app=higress-controller", "direct", 15010)


@pytest.mark.parametrize(("block", "pointer", "words"), [
    ({"gateways": {"access": "tunnel"}}, "/mcpServer/servers/0/config/gateways/access", "local"),
    ({"gateways": {"adminPort": 0}}, "/mcpServer/servers/0/config/gateways/adminPort", "minimum"),
    ({"gateways": {"selector": "app in (a\nb)"}}, "/mcpServer/servers/0/config/gateways/selector", "label selector"),
    ({"gateways": {"podIP": "10.0.0.1"}}, "/mcpServer/servers/0/config/gateways/podIP", "allowed keys: access"),
    ({"istiods": {"namespace": "Not_A_Namespace"}}, "/mcpServer/servers/0/config/istiods/namespace", ""),
])
def test_bad_blocks_say_where(block: dict[str, Any], pointer: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_document(document(**block))
    problems = [p for p in caught.value.problems if p.pointer == pointer]
    assert problems, caught.value.problems
    assert words in problems[0].message
