"""The Istio and Higress rules the links follow, checked with the upstream projects' own test cases
(istio pkg/config/kube/conversion_test.go, pilot/pkg/networking/util/util_test.go TestMergeSubsetTrafficPolicy,
higress pkg/ingress/kube/common/tool_test.go) and the shop scenario."""

from __future__ import annotations

import pytest

from higress_ops.servers.ops.objects import higress
from higress_ops.servers.ops.objects import istio as ist
from tests.support import shop


@pytest.mark.parametrize(("port", "name", "transport", "app", "expected"), [
    (0, "", "TCP", "", "UnsupportedProtocol"),  # resolves empty
    (0, "", "UDP", "", "UDP"),  # from the protocol directly
    (0, "http-something", "TCP", "", "HTTP"),
    (0, "http-something", "TCP", "https", "HTTPS"),  # appProtocol wins over the name
    (0, "something-httpx", "TCP", "https", "HTTPS"),
    (0, "grpc-web-x", "TCP", "", "GRPC-Web"),
    (0, "grpcweb-x", "TCP", "", "UnsupportedProtocol"),
    (3306, "random-name", "TCP", "", "TCP"),  # well-known port
    (3306, "random-name", "TCP", "kubernetes.io/h2c", "HTTP2"),
    (9090, "grpc-api", "TCP", "kubernetes.io/h2c", "HTTP2"),  # the shop's cart port
    (80, "HTTP2-upper", "TCP", "", "HTTP2"),  # the prefix is compared without case
])
def test_port_protocol_is_istios(port: int, name: str, transport: str, app: str, expected: str) -> None:
    assert ist.port_protocol(port, name, transport, app) == expected


def _policy(rule: dict, port: int, subset: str = "") -> dict:
    return {f.name: (f.value, f.origin) for f in ist.effective_policy(rule, port, subset)}


def test_port_level_settings_replace_the_top_level_and_subsets_override_field_by_field() -> None:
    lb = lambda simple: {"simple": simple}  # noqa: E731
    # util_test.go: no parent policy, a subset port-level entry: only its fields, nothing inherited
    rule = {"subsets": [{"name": "s", "trafficPolicy": {
        "loadBalancer": lb("ROUND_ROBIN"), "connectionPool": {"http": {"maxRetries": 10}},
        "portLevelSettings": [{"port": {"number": 8080}, "loadBalancer": lb("LEAST_REQUEST")}]}}]}
    got = _policy(rule, 8080, "s")
    assert got["loadBalancer"][0] == lb("LEAST_REQUEST") and got["connectionPool"] == (None, "")
    # util_test.go: both have port-level entries: the subset's replaces everything
    rule = {"trafficPolicy": {"loadBalancer": lb("ROUND_ROBIN"), "outlierDetection": {"consecutiveErrors": 20},
                              "portLevelSettings": [{"port": {"number": 8080},
                                                     "outlierDetection": {"consecutiveErrors": 15}}]},
            "subsets": [{"name": "s", "trafficPolicy": {
                "loadBalancer": lb("ROUND_ROBIN"), "connectionPool": {"http": {"maxRetries": 10}},
                "portLevelSettings": [{"port": {"number": 8080}, "outlierDetection": {"consecutiveErrors": 13}}]}}]}
    got = _policy(rule, 8080, "s")
    assert {k: v[0] for k, v in got.items()} == {"tls": None, "connectionPool": None, "loadBalancer": None,
                                                 "outlierDetection": {"consecutiveErrors": 13}}
    assert got["outlierDetection"][1] == "subsets[s].trafficPolicy.portLevelSettings[port 8080]"


def test_the_shop_rule_for_each_of_its_clusters() -> None:
    (rule,) = [c for c in shop.configz() if c["kind"] == "DestinationRule"]
    port80 = _policy(rule["spec"], 80)
    assert port80["tls"] == ({"mode": "DISABLE"}, "trafficPolicy.portLevelSettings[port 80]")
    assert port80["loadBalancer"][0] == {"simple": "LEAST_REQUEST"}
    assert port80["outlierDetection"] == (None, "") and port80["connectionPool"] == (None, "")  # not inherited
    v1 = _policy(rule["spec"], 80, "v1")
    assert v1["outlierDetection"] == ({"consecutive5xxErrors": 1, "interval": "5s", "baseEjectionTime": "1800s",
                                       "maxEjectionPercent": 100}, "subsets[v1].trafficPolicy")
    assert v1["loadBalancer"][0] == {"simple": "LEAST_REQUEST"}  # still the port's
    grpc = _policy(rule["spec"], 9090)
    assert grpc["connectionPool"][1] == grpc["outlierDetection"][1] == "trafficPolicy"
    assert grpc["loadBalancer"][0] == {"simple": "ROUND_ROBIN"} and grpc["tls"] == (None, "")


def test_destination_rule_lookup_prefers_the_exact_host_then_the_gateways_namespace() -> None:
    def dr(ns: str, host: str, name: str = "r") -> ist.IstioConfig:
        return ist.config({"kind": "DestinationRule", "apiVersion": "networking.istio.io/v1",
                           "metadata": {"name": name, "namespace": ns}, "spec": {"host": host}})

    host = shop.CART_FQDN
    rules = [dr("shop", "*.shop.svc.cluster.local", "wild"), dr("shop", host, "own"),
             dr("higress-system", host, "gateway"), dr("other", host, "elsewhere")]
    found = ist.destination_rule_for(rules, host, "higress-system", "shop", "higress-system")
    assert found is not None and found.meta.name == "gateway"
    found = ist.destination_rule_for(rules[:2] + rules[3:], host, "higress-system", "shop", "higress-system")
    assert found is not None and found.meta.name == "own"
    found = ist.destination_rule_for(rules[:1], host, "higress-system", "shop", "higress-system")
    assert found is not None and found.meta.name == "wild"
    assert ist.destination_rule_for(rules[3:], host, "higress-system", "shop", "higress-system") is None


def test_envoy_filter_cluster_patches_match_as_istios_clusterMatch() -> None:
    configs = ist.configs(shop.configz())

    def names(cluster: str) -> list[str]:
        return [f"{p.envoy_filter.meta.name}[{p.index}] {p.match}"
                for p in ist.cluster_patches(configs, cluster, "higress-system", "higress-system")]

    assert names(shop.CART_80) == [f"cart-health-check[0] service {shop.CART_FQDN} port 80",
                                   "gateway-connect-timeout[0] every cluster"]
    assert names(shop.CART_80_V1) == names(shop.CART_80)  # no subset in the match: every subset
    assert names(shop.CART_9090) == ["gateway-connect-timeout[0] every cluster"]
    assert "sidecar-only" not in str(names(shop.CART_80))  # SIDECAR_OUTBOUND, and not in the gateway's namespace


def test_higress_names() -> None:
    # tool_test.go TestGenerateUniqueRouteName: "bar/foo" outside Higress's namespace, "foo" in it
    assert higress.route_name("bar", "foo", "xxx") == "bar/foo" and higress.route_name("bar", "foo", "bar") == "foo"
    assert higress.ingress_of_route("bar/foo", "xxx") == ("bar", "foo")
    assert higress.ingress_of_route("foo", "higress-system") == ("higress-system", "foo")
    assert higress.ingress_of_route("shop.example.com-app-root", "higress-system") is None
    assert higress.ingress_candidates("shop/cart-default", "x") == [("shop", "cart-default"), ("shop", "cart")]
    assert higress.clean_host(shop.HOST) == shop.clean_host(shop.HOST)  # md5 bytes 4..12, hex
    assert higress.virtual_service_name("shop", "catalog", shop.HOST) == shop.SHOP_VS
    assert higress.gateway_name(shop.HOST) == f"istio-autogenerated-k8s-ingress-{shop.clean_host(shop.HOST)}"
    # hex(md5("Kubernetes/shop/cart")): cluster id / service namespace / service name
    assert higress.destination_rule_name("shop", "cart") == ("istio-autogenerated-k8s-ingress-"
                                                             "b68830d4cdfb56159da73dbdb2b090d5")
    assert higress.registry_of_host("legacy.static") == ("static", "legacy")
    assert higress.registry_of_host("svc.DEFAULT-GROUP.public.nacos") == ("nacos", "")
    assert higress.registry_of_host(shop.CART_FQDN) is None


def test_links_from_what_envoy_holds() -> None:
    from higress_ops.servers.ops.objects.links import cluster_link, config_ref, route_link

    vs = {"filter_metadata": {"istio": {"config": shop.vs_path(shop.SHOP_VS)}}}
    link = route_link({"name": "shop/cart", "metadata": vs})
    assert link.virtual_service == ("higress-system", shop.SHOP_VS) and link.ingress == ("shop", "cart")
    assert route_link({"name": "echo", "metadata": vs}).ingress == ("higress-system", "echo")  # Higress's namespace
    own = {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/shop/virtual-service/x"}}}
    assert route_link({"name": "shop/cart", "metadata": own}).ingress is None  # not Higress's: a name is only a name
    assert route_link({"name": "shop/cart"}).virtual_service is None
    assert config_ref("/apis/networking.istio.io/v1/namespaces/a/destination-rule/b") == ("DestinationRule", "a", "b")
    assert config_ref("/apis/other.io/v1/namespaces/a/x/b") is None and config_ref(7) is None
    meta = {"metadata": {"filter_metadata": {"istio": {"config": shop.DR_PATH, "services": [
        {"host": shop.CART_FQDN, "name": "cart", "namespace": "shop"}]}}}}
    cart = cluster_link(shop.CART_80_V1, meta)
    assert (cart.port, cart.subset, cart.destination_rule, cart.service) == (80, "v1", ("shop", "cart"),
                                                                             ("shop", "cart"))
    assert cart.describe() == "DestinationRule shop/cart, Service shop/cart"
    assert cluster_link(shop.CATALOG_8080).service == ("shop", "catalog")  # from the name alone
    assert cluster_link(shop.LEGACY_80).describe() == "McpBridge registry legacy (static)"


def test_wasm_plugins_apply_by_ingress_domain_or_default_and_only_in_higress_namespace() -> None:
    from higress_ops.servers.ops.objects import kubernetes as k8s
    from higress_ops.servers.ops.objects.links import wasm_plugins_of

    cart = k8s.ingress(next(o for o in shop.api_objects() if o["kind"] == "Ingress"
                            and o["metadata"]["name"] == "cart"))

    def plugin(ns: str, name: str, spec: dict) -> k8s.KubeObject:
        return k8s.kube_object({"kind": "WasmPlugin", "metadata": {"namespace": ns, "name": name}, "spec": spec})

    plugins = [plugin("higress-system", "by-domain", {"matchRules": [{"domain": ["*.example.com"]}]}),
               plugin("higress-system", "disabled", {"matchRules": [{"ingress": ["shop/cart"],
                                                                     "configDisable": True}]}),
               plugin("higress-system", "global", {"defaultConfig": {}}),
               plugin("higress-system", "global-off", {"defaultConfig": {}, "defaultConfigDisable": True}),
               plugin("shop", "elsewhere", {"matchRules": [{"ingress": ["shop/cart"]}]})]
    assert [w.split(" (")[0] for w in wasm_plugins_of(cart, plugins, "higress-system")] == [
        "higress-system/by-domain", "higress-system/global", "shop/elsewhere"]
    assert "NOT applied: Higress reads WasmPlugins in higress-system only" in wasm_plugins_of(
        cart, plugins, "higress-system")[-1]
