"""From an Envoy route or cluster to the objects behind it, on the shop scenario running for real: a real Envoy
holding what istiod would push, the istiod double and the API-server double agreeing with it
(tests/support/shop_world.py)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer
from tests.support import shop as s
from tests.support.shop_world import ShopWorld

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
CTX = CallContext()


def text(result: ToolResult) -> str:
    return "".join(part["text"] for part in result.content)


async def call(shop_ops: OpsServer, tool: str, **args: Any) -> ToolResult:
    result = await shop_ops.call_tool(tool, args, CTX)
    assert not result.is_error, text(result)
    return result


async def test_proxy_config_tables_name_the_istio_resources_as_istioctl_does(shop_ops: OpsServer) -> None:
    routes = (await call(shop_ops, "get-envoy-proxy-config", type="routes")).structured["rows"]
    by_match = {(r["vhost_name"], r["match"]): r["virtual_service"] for r in routes}
    # istioctl's renderConfig: `<name>.<namespace>` of the VirtualService path in filter_metadata.istio.config
    assert by_match[(f"{s.HOST}:80", "/cart")] == by_match[(f"{s.HOST}:80", "/catalog/*")] == f"{s.SHOP_VS}.{s.HIGRESS}"
    assert by_match[(f"{s.ECHO_HOST}:80", "/*")] == f"{s.ECHO_VS}.{s.HIGRESS}"
    clusters = (await call(shop_ops, "get-envoy-proxy-config", type="clusters")).structured["rows"]
    rules = {(r["service_fqdn"], r["port"], r["subset"]): r["destination_rule"] for r in clusters}
    assert rules[(s.CART_FQDN, 80, "-")] == rules[(s.CART_FQDN, 80, "v1")] == rules[(s.CART_FQDN, 9090, "-")] == \
        "cart.shop"
    assert rules[(s.CATALOG_FQDN, 8080, "-")] == ""  # no rule applied: Istio stamps only istio.services


async def test_find_route_names_the_ingress_and_the_objects_behind_the_cluster(shop_ops: OpsServer,
                                                                              shop: ShopWorld) -> None:
    port = shop.gateway.http_port
    answer = await call(shop_ops, "find-route", host=s.HOST, path="/cart/items", port=port)
    (match,) = answer.structured["matches"]
    assert match["route"]["name"] == "shop/cart" and match["route"]["ingress"] == "shop/cart"
    assert match["clusters"][0]["objects"] == "DestinationRule shop/cart, Service shop/cart"
    assert f"virtual service {s.SHOP_VS}.{s.HIGRESS}, Ingress shop/cart" in text(answer)
    assert "; from DestinationRule shop/cart, Service shop/cart" in text(answer)
    # The request really goes where the links say: Ingress shop/cart's backend, the Service's ready pod.
    sent = requests.get(f"http://127.0.0.1:{port}/cart/items", headers={"host": s.HOST}, timeout=5)
    assert sent.status_code == 200 and sent.text == "cart"
    (endpoint,) = [e for e in match["clusters"][0]["endpoints"]]
    assert endpoint["address"] == f"{s.IPS['cart-1']}:{shop.gateway.shop.cart}"
    echo = await call(shop_ops, "find-route", host=s.ECHO_HOST, path="/", port=port)
    assert echo.structured["matches"][0]["route"]["ingress"] == "higress-system/echo"  # route name "echo"


async def test_describe_cluster_from_every_source(shop_ops: OpsServer, shop: ShopWorld) -> None:
    result = await call(shop_ops, "describe-cluster", cluster=s.CART_80)
    d, shown = result.structured, text(result)
    assert d["service"]["source"] == "kubernetes" and d["service"]["selector"] == {"app": "cart"}
    assert d["port"] == {"name": "http", "port": 80, "protocol": "HTTP", "target_port": str(shop.gateway.shop.cart),
                         "app_protocol": ""}
    assert d["service"]["changed"].endswith("by kubectl-edit")
    assert (d["endpoints"]["ready"], d["endpoints"]["total"]) == (1, 2) and d["endpoints"]["source"] == ["cart-7x2kq"]
    assert (d["pods"]["ready"], d["pods"]["total"]) == (1, 2)
    rule = d["destination_rule"]
    assert (rule["namespace"], rule["name"], rule["applied"], rule["subsets"]) == ("shop", "cart", True, ["v1"])
    policy = {p["field"]: (p["value"], p["from"]) for p in rule["policy"]}
    assert policy["tls"] == ({"mode": "DISABLE"}, "trafficPolicy.portLevelSettings[port 80]")
    assert policy["outlierDetection"] == (None, "")  # replaced by the port's settings, not inherited
    # ... and Envoy holds exactly that: LEAST_REQUEST, no outlier detection, plaintext, the patched health check
    envoy = d["envoy"]
    assert (envoy["lb_policy"], envoy["outlier_detection"], envoy["tls"], envoy["health_checks"]) == (
        "LEAST_REQUEST", None, "plaintext", 1)
    assert policy["loadBalancer"][0] == {"simple": "LEAST_REQUEST"}
    assert d["envoy_filters"] == [f"higress-system/cart-health-check configPatches[0] MERGE (service {s.CART_FQDN} "
                                  "port 80)", "higress-system/gateway-connect-timeout configPatches[0] MERGE "
                                  "(every cluster)"]
    assert d["routes"]["total"] == 2 and {r["ingress"] for r in d["routes"]["list"]} == {"shop/cart"}
    (ingress,) = d["ingresses"]
    assert ingress.startswith("shop/cart: shop.example.com/cart (Prefix) -> cart:80 [kubernetes, changed ")
    assert ingress.endswith(" by kubectl-client-side-apply]")
    assert d["wasm_plugins"] == ["Ingress shop/cart: WasmPlugin higress-system/key-auth (matchRules[0].ingress, phase "
                                 "AUTHN, priority 310)"]
    assert any("Pod shop/cart-2 Unhealthy (x42" in w for w in d["warnings"])
    assert d["not_read"] == []
    assert "port http 80/HTTP -> target" in shown and "<- this cluster" in shown and "Not read" not in shown


async def test_links_istiod_no_longer_backs_are_named(shop_ops: OpsServer, shop: ShopWorld) -> None:
    assert (await call(shop_ops, "describe-cluster", cluster=s.CART_80)).structured["stale"] == []
    configz = shop.istiod.state["/debug/configz"]
    vs = next(c for c in configz if c["metadata"]["name"] == s.SHOP_VS)
    vs["spec"]["http"] = [h for h in vs["spec"]["http"] if h["name"] != "shop/cart"]  # Ingress shop/cart deleted
    shop.istiod.state["/debug/configz"] = [c for c in configz if c["kind"] != "DestinationRule"]  # and the rule
    result = await call(shop_ops, "describe-cluster", cluster=s.CART_80)
    assert result.structured["stale"] == [
        "DestinationRule shop/cart (the cluster's istio.config) is not in istiod's configz",
        f"VirtualService {s.HIGRESS}/{s.SHOP_VS} has no http route named shop/cart any more"]
    assert "Envoy's links istiod no longer backs:" in text(result)


async def test_describe_a_subset_cluster(shop_ops: OpsServer) -> None:
    d = (await call(shop_ops, "describe-cluster", service="shop/cart", port=80, subset="v1")).structured
    assert d["cluster"] == s.CART_80_V1 and d["pods"]["selector"] == "app=cart,version=v1"
    assert (d["pods"]["ready"], d["pods"]["total"]) == (1, 1)
    policy = {p["field"]: p for p in d["destination_rule"]["policy"]}
    assert policy["outlierDetection"]["from"] == "subsets[v1].trafficPolicy"
    assert policy["outlierDetection"]["value"]["consecutive5xxErrors"] == d["envoy"]["outlier_detection"][
        "consecutive_5xx"] == 1
    missing = (await call(shop_ops, "describe-cluster", service="shop/cart", port=80, subset="v9")).structured
    assert missing["subset_missing"] == "v9" and not missing["envoy"]["found"]


async def test_without_rights_the_api_says_which_and_istiod_still_answers(shop_ops: OpsServer, shop: ShopWorld) -> None:
    shop.api.store.rights = {("list", "ingresses.networking.k8s.io", "shop")}  # nothing else
    result = await call(shop_ops, "describe-cluster", cluster=s.CART_80)
    d, shown = result.structured, text(result)
    assert any(g.startswith("forbidden to get services in namespace shop as system:serviceaccount:higress-system:"
                            "higress-ops") for g in d["not_read"])
    assert any(g.startswith("forbidden to list endpointslices.discovery.k8s.io in namespace shop")
               for g in d["not_read"])
    assert d["service"]["source"] == "istiod" and d["port"]["target_port"] == str(shop.gateway.shop.cart)
    assert d["endpoints"]["source"] == ["istiod Kubernetes/Kubernetes"] and d["endpoints"]["ready"] == 1
    assert "pods" not in d and d["destination_rule"]["name"] == "cart"  # pods need the API; the rule is istiod's
    assert d["ingresses"][0].startswith("shop/cart: shop.example.com/cart (Prefix) -> cart:80 [kubernetes")  # granted
    assert "Not read:\n  forbidden to get services in namespace shop" in shown  # sorted: the same every call


async def test_without_the_api_every_link_comes_from_istiod(shop: ShopWorld) -> None:
    config = {k: v for k, v in shop.config().items() if k != "kubernetes"}
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops", config=config))
    try:
        d = (await call(server, "describe-cluster", cluster=s.CART_80)).structured
    finally:
        await server.aclose()
    assert d["not_read"] == ["the Kubernetes API is not read (no kubernetes.namespaces in the server config): "
                             "Ingresses come from istiod's generated VirtualServices, Services and endpoints from its "
                             "registry"]
    assert d["service"]["source"] == "istiod" and d["endpoints"]["ready"] == 1
    assert d["ingresses"] == ["shop/cart: shop.example.com/cart (Prefix) -> cart:80 [istiod]"]
    assert {r["ingress"] for r in d["routes"]["list"]} == {"shop/cart"}


async def test_a_namespace_not_configured_is_read_from_istiod_and_said(shop_ops: OpsServer, shop: ShopWorld) -> None:
    config = {**shop.config(), "kubernetes": {"namespaces": [s.HIGRESS]}}
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops", config=config))
    try:
        d = (await call(server, "describe-cluster", cluster=s.CART_80)).structured
    finally:
        await server.aclose()
    assert d["not_read"] == ["namespace shop is not in kubernetes.namespaces: its objects come from istiod, or are "
                             "not shown (pods, events)"]
    assert d["service"]["source"] == "istiod" and "pods" not in d
    assert d["ingresses"][0].endswith("[istiod]")


async def test_describe_an_mcp_bridge_backend_and_a_missing_port(shop_ops: OpsServer, shop: ShopWorld) -> None:
    d = (await call(shop_ops, "describe-cluster", cluster=s.LEGACY_80)).structured
    assert d["service"]["kind"] == "ServiceEntry" and d["service"]["namespace"] == "mcp"
    assert d["links"]["mcp_bridge_registry"] == {"type": "static", "name": "legacy"}
    assert d["mcp_bridge"]["mcp_bridge"] == "higress-system/default" and "ignored" not in d["mcp_bridge"]
    assert d["mcp_bridge"]["registry"]["domain"] == f"{s.IPS['legacy']}:{shop.gateway.shop.legacy}"
    assert [r["ingress"] for r in d["routes"]["list"]] == ["shop/legacy"]
    missing = await call(shop_ops, "describe-cluster", service="shop/catalog", port=80)
    assert not missing.structured["envoy"]["found"] and missing.structured["port"] is None
    assert "the service has NO port 80: ports are 8080" in text(missing)


async def test_one_call_reads_each_document_once(shop_ops: OpsServer, shop: ShopWorld) -> None:
    shop.istiod.requests.clear()
    shop.api.store.requests.clear()
    await call(shop_ops, "describe-cluster", cluster=s.CART_80)
    # The API answered for the Service and its endpoints, so istiod's registry was not needed: configz only.
    assert [r.path for r in shop.istiod.requests] == ["/debug/configz"]
    api = [(r.verb, r.resource, r.namespace, r.query.get("labelSelector", "")) for r in shop.api.store.requests]
    assert len(api) == len(set(api))
    assert ("get", "services", "shop", "") in api and ("list", "pods", "shop", "app=cart") in api


async def test_bad_arguments_get_a_precise_error(shop_ops: OpsServer) -> None:
    for args, message in (({}, "pass 'cluster'"), ({"service": "shop/cart"}, "and 'port'"),
                          ({"cluster": "a b"}, "must be an Envoy cluster name"),
                          ({"service": "Shop/Cart!", "port": 80}, "must be namespace/name")):
        result = await shop_ops.call_tool("describe-cluster", args, CTX)
        assert result.is_error and message in text(result)
