"""The raw tools' filters applied here, on the parsed answer (istiod serves its debug documents whole, Envoy its
/clusters): against the istiod double's real shapes and a real Envoy."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer
from tests.support.istio_envoy import BROKEN, HTTPBIN, REVIEWS_V1, REVIEWS_V2, IstioGateway
from tests.support.istiod import IstiodDouble

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


@pytest.fixture
def ops(make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> OpsServer:
    return make_server(gateway.admin_url, istiod.url)


async def call(ops: OpsServer, tool: str, **args: Any) -> ToolResult:
    return await ops.call_tool(tool, args, TOKEN)


def body(result: ToolResult) -> Any:
    assert not result.is_error, result.content
    return json.loads(result.content[0]["text"])


def notes(result: ToolResult) -> str:
    return "\n".join(part["text"] for part in result.content[1:])


def names(configs: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{c['kind']} {c['metadata']['namespace']}/{c['metadata']['name']}" for c in configs)


async def test_configz_by_kind_namespace_name_and_host(ops: OpsServer, istiod: IstiodDouble) -> None:
    by_kind = await call(ops, "get-istiod-configz", kind="virtualservice")
    assert names(body(by_kind)) == ["VirtualService default/httpbin", "VirtualService shop/shop"]
    assert "[2 of 5 configs match kind=virtualservice]" in notes(by_kind)
    assert istiod.requests[-1].path == "/debug/configz" and istiod.requests[-1].query == {}  # applied here
    assert names(body(await call(ops, "get-istiod-configz", namespace="shop"))) == [
        "DestinationRule shop/cart", "VirtualService shop/shop"]
    assert names(body(await call(ops, "get-istiod-configz", kind="VirtualService", name="httpbin"))) == [
        "VirtualService default/httpbin"]
    # host: a VirtualService's hosts, a DestinationRule's host, a Gateway's server hosts ("*" serves every host),
    # a Higress WasmPlugin's rule domains; a configured wildcard covers the hosts under it
    assert names(body(await call(ops, "get-istiod-configz", host="httpbin.example.com"))) == [
        "Gateway higress-system/higress-gateway", "VirtualService default/httpbin",
        "WasmPlugin higress-system/key-auth"]
    assert names(body(await call(ops, "get-istiod-configz", host="cart.shop.example.com", kind="VirtualService"))) \
        == ["VirtualService shop/shop"]
    assert names(body(await call(ops, "get-istiod-configz", host="cart.shop.svc.cluster.local"))) == [
        "DestinationRule shop/cart", "Gateway higress-system/higress-gateway"]


async def test_a_filter_that_keeps_nothing_says_what_there_is(ops: OpsServer) -> None:
    none = await call(ops, "get-istiod-configz", kind="Sidecar")
    assert body(none) == []
    assert "[0 of 5 configs match kind=Sidecar; kind values there: DestinationRule, Gateway, VirtualService, " \
           "WasmPlugin]" in notes(none)
    typo = await call(ops, "get-istiod-registryz", hostname="httpbim.default.svc.cluster.local")
    assert body(typo) == [] and "hostname values there: api.partner.example, cart.shop.svc.cluster.local, " \
                                "httpbin.default.svc.cluster.local" in notes(typo)


async def test_registryz_and_endpointz_by_hostname_and_namespace(ops: OpsServer) -> None:
    cart = body(await call(ops, "get-istiod-registryz", hostname="cart.shop.svc.cluster.local"))
    assert [(s["hostname"], s["ports"]) for s in cart] == [
        ("cart.shop.svc.cluster.local", [{"name": "http", "port": 8080, "protocol": "HTTP"}])]
    shop = body(await call(ops, "get-istiod-registryz", namespace="shop"))
    assert sorted(s["hostname"] for s in shop) == ["api.partner.example", "cart.shop.svc.cluster.local"]
    wildcard = body(await call(ops, "get-istiod-registryz", hostname="*.shop.svc.cluster.local"))
    assert [s["hostname"] for s in wildcard] == ["cart.shop.svc.cluster.local"]
    endpoints = await call(ops, "get-istiod-endpointz", hostname="cart.shop.svc.cluster.local", namespace="shop")
    shards = body(endpoints)
    assert list(shards) == ["cart.shop.svc.cluster.local"] and list(shards["cart.shop.svc.cluster.local"]) == ["shop"]
    cart = shards["cart.shop.svc.cluster.local"]["shop"]["Shards"]["Kubernetes/Kubernetes"]
    addresses = [e["Addresses"] for e in cart]
    assert addresses == [["10.0.1.4"], ["10.0.1.5"]]
    assert "[1 of 2 services match hostname=cart.shop.svc.cluster.local, namespace=shop]" in notes(endpoints)
    assert list(body(await call(ops, "get-istiod-endpointz", namespace="default"))) == [
        "httpbin.default.svc.cluster.local"]


async def test_istiod_metrics_by_name(ops: OpsServer) -> None:
    result = await call(ops, "get-istiod-metrics", name_regex="pilot_xds.*")
    text = result.content[0]["text"]
    assert 'pilot_xds_pushes{type="cds"} 12' in text and "# TYPE pilot_xds_pushes counter" in text
    assert "convergence" not in text and "[1 of 4 metric names match name_regex=pilot_xds.*]" in notes(result)
    bad = await call(ops, "get-istiod-metrics", name_regex="(?=x)")  # RE2 has no lookahead
    assert bad.is_error and "RE2" in bad.content[0]["text"]


async def test_envoy_clusters_by_name_regex_in_both_formats(ops: OpsServer, gateway: IstioGateway) -> None:
    regex = r"outbound\|9080\|v[12]\|reviews\.bookinfo\.svc\.cluster\.local"
    picked = body(await call(ops, "get-envoy-clusters", format="json", name_regex=regex))
    assert sorted(c["name"] for c in picked["cluster_statuses"]) == [REVIEWS_V1, REVIEWS_V2]
    text_result = await call(ops, "get-envoy-clusters", name_regex=regex)
    lines = text_result.content[0]["text"].splitlines()
    assert {line.split("::")[0] for line in lines} == {REVIEWS_V1, REVIEWS_V2}
    assert any(line.endswith("::health_flags::healthy") for line in lines)  # Envoy's own lines, untouched
    assert f"of {len(body(await call(ops, 'get-envoy-clusters', format='json'))['cluster_statuses'])} clusters " \
           f"match name_regex={regex}" in notes(text_result)
    # full match, as Envoy's name_regex: a part of a name matches nothing
    assert body(await call(ops, "get-envoy-clusters", format="json", name_regex="reviews"))["cluster_statuses"] == []
    refused = await call(ops, "get-envoy-clusters", name_regex="(")
    assert refused.is_error and "nothing was sent" in refused.content[0]["text"]
    assert all(re.fullmatch(regex, n) is None for n in (HTTPBIN, BROKEN))


async def test_filters_applied_here_are_never_sent(make_server: Any, istiod: IstiodDouble) -> None:
    from tests.support.istiod import istiod_double

    with istiod_double() as fake_envoy:  # a recording server standing where Envoy's admin would be
        ops = make_server(fake_envoy.url, istiod.url)
        await call(ops, "get-envoy-clusters", format="json", name_regex="x&format=text")
        await call(ops, "get-istiod-registryz", hostname="a.b", namespace="shop")
    assert [(r.path, r.query) for r in fake_envoy.requests] == [("/clusters", {"format": ["json"]})]
    assert (istiod.requests[-1].path, istiod.requests[-1].query) == ("/debug/registryz", {})


async def test_an_answer_of_another_shape_is_returned_whole_and_says_the_filter_did_not_apply(
        make_server: Any, gateway: IstioGateway) -> None:
    from tests.support.istiod import istiod_double

    with istiod_double() as other:
        other.state["/debug/configz"] = {"configs": []}  # not istiod's list
        ops = make_server(gateway.admin_url, other.url)
        result = await call(ops, "get-istiod-configz", kind="Gateway")
    assert body(result) == {"configs": []}
    assert "[not filtered by kind=Gateway: the answer does not hold its configs where this tool expects them]" in \
        notes(result)
