"""A Higress gateway whose config has one fault for each istioctl-analyze check, seen two ways that agree: what
istiod holds (configz, registryz, endpointz: `istiod_state()`) and a real Envoy holding the routes and clusters
istiod would push for it (`lint_gateway()`), with the gateway pod's labels in its bootstrap node, as
pilot-agent writes them.

Higress generated (from Ingresses shop/catalog, shop/cart and shop/cart-old, host shop.example.com with TLS
shop-tls) a Gateway and a VirtualService: correct but for shop/cart-old, whose backend port 81 the Service cart
does not have (the route's cluster is missing: 503 NC, reported once, by missing-cluster). The operator added,
each wrong in one way:

    Gateway shop/public-gw       same selector as Higress's, port 80 host shop.example.com (IST0145), the same TLS
                                 credential on 443 (IST0138)
    Gateway shop/extra-port      a server on 8443, which the gateway Service does not expose (IST0162)
    VirtualService shop/reviews  bound to Gateway shop/missing-gw (IST0101, IST0132; istiod's status says IST0101)
    VirtualService shop/promo    bound to shop/public-gw for promo.example.com, which it does not serve (IST0132)
    VirtualService shop/search   (mesh) to an unknown host (IST0101), mirrored to another (IST0101 mirror host),
                                 to cart without a port (IST0112), to catalog:9999 (IST0101 host:port), to cart
                                 subset v9 (IST0101 host+subset)
    VirtualService shop/rules    (mesh) a catch-all first (IST0130), a duplicate match (IST0131), /api before
                                 /api/v2 (IST0131, overlapping prefix)
    VirtualServices shop/twin-a, shop/twin-b  (mesh) the same host (IST0109)
    VirtualService shop/cart-canary  (mesh) cart to subset v1: not for Higress's gateway routes to cart (IST0140)
    VirtualService shop/cart-override  shop.example.com on shop/public-gw: merged after Higress's routes; its
                                 /override takes /override/beta's requests (shadowed-route: it is on this gateway)
    VirtualService shop/vip      routes on @request.auth.claims.group with no RequestAuthentication (IST0149)
    DestinationRule shop/orders  port 80 tls SIMPLE, no caCertificates (IST0129), towards a plaintext port
    DestinationRule shop/pay     tls DISABLE towards port 443 `https`
    DestinationRule shop/catalog tls ISTIO_MUTUAL towards endpoints without a sidecar
    DestinationRule shop/edge    tls SIMPLE without caCertificates (IST0128)
    DestinationRule shop/ghost   for a host no service has (IST0174)
    DestinationRule shop/cart    subsets v3 and v4 select no pod (IST0173); v3 is routed on this gateway (/canary):
                                 its cluster is empty, 503 UH, reported by empty-cluster; v1 selects cart's pod;
                                 outlier detection may eject every host for 30 minutes, panic mode off (as Istio
                                 programs it)
    DestinationRule shop/catalog also a connection pool of 1 pending and 2 requests
    Service shop/inventory       port `web` (IST0118)
    ServiceEntry shop/ext-db     TCP without addresses (IST0134); shop/api-a + shop/api-b: HTTPS vs TLS (IST0177)
    EnvoyFilters higress-system/bad-add, bad-remove, bad-replace, relative, versioned + shop-late (IST0151-0155)
    HTTPRoute shop/store         ResolvedRefs False (IST0171); VirtualService shop/old has istiod's IST0002
    listener 8080 (route configuration http.8080) answers 404 itself for /orders, which port 80 routes to orders
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import istio_objects as o
from tests.support import istiod
from tests.support.envoy import Envoy
from tests.support.istio_envoy import HCM, ROUTER, T, Upstream, cluster_of, istio_meta, lb_endpoint, upstreams
from tests.support.istiod import IstiodDouble, default_state, istiod_double
from tests.support.procs import free_port, wait_until

NS, HIGRESS = "shop", o.HIGRESS
HOST = "shop.example.com"
SHOP_TLS = "kubernetes-ingress://Kubernetes/shop/shop-tls"
POD = "higress-gateway-7d9c-abcde"
FQDN = {name: f"{name}.{NS}.svc.cluster.local" for name in ("cart", "catalog", "orders", "pay", "inventory")}
CLUSTERS = {"cart": f"outbound|80||{FQDN['cart']}", "catalog": f"outbound|8080||{FQDN['catalog']}",
            "orders": f"outbound|80||{FQDN['orders']}", "pay": f"outbound|443||{FQDN['pay']}",
            "inventory": f"outbound|80||{FQDN['inventory']}"}
BACKENDS = tuple(CLUSTERS)
CART_V3 = f"outbound|80|v3|{FQDN['cart']}"  # no pod has version=v3: istiod sends the cluster no endpoint
CART_81 = f"outbound|81||{FQDN['cart']}"  # Ingress shop/cart-old still says port 81: no such cluster (503 NC)
HIGRESS_VS = f"{o.GEN}-shop-catalog-{o.clean_host(HOST)}"


def about(found: list[dict[str, Any]], obj: str, code: str = "") -> list[dict[str, Any]]:
    """The findings (analyze's JSON) about `obj` (`Kind namespace/name`), with message code `code` when given."""
    return [f for f in found if f["object"] == obj and (not code or f.get("code") == code)]


def _mesh_vs(name: str, hosts: list[str], http: list[dict[str, Any]]) -> dict[str, Any]:
    return o.virtual_service(name, NS, hosts, http)


def _dr(name: str, host: str, policy: dict[str, Any], subsets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": host, "trafficPolicy": policy}
    if subsets:
        spec["subsets"] = subsets
    return o.config("DestinationRule", name, NS, spec)


def _ef(name: str, patches: list[tuple[str, str, dict[str, Any]]], namespace: str = HIGRESS,
        priority: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {"configPatches": [{"applyTo": applies, "match": {"context": "GATEWAY", **match},
                                               "patch": {"operation": op, "value": {"name": f"{name}-{i}"}}}
                                              for i, (applies, op, match) in enumerate(patches)]}
    if priority:
        spec["priority"] = priority
    return o.config("EnvoyFilter", name, namespace, spec)


def configz() -> list[dict[str, Any]]:
    cart, catalog = FQDN["cart"], FQDN["catalog"]
    prefix = lambda p, **m: {"uri": {"prefix": p}, **m}  # noqa: E731
    return [
        o.higress_gateway(HOST, SHOP_TLS),
        o.higress_virtual_service("shop/catalog", HOST, [o.higress_http("shop/catalog", "/catalog", catalog, 8080),
                                                         o.higress_http("shop/cart-old", "/cart-old", cart, 81),
                                                         o.higress_http("shop/cart", "/cart", cart, 80)]),
        o.gateway("public-gw", NS, [o.server(80, [HOST, "www.example.com"]), o.server(
            443, [HOST], "HTTPS", tls={"mode": "SIMPLE", "credentialName": SHOP_TLS})]),
        o.gateway("extra-port", NS, [o.server(8443, ["admin.example.com"], "HTTPS",
                                              tls={"mode": "SIMPLE", "credentialName": "admin-tls"})]),
        o.virtual_service("reviews", NS, ["reviews.example.com"], [{"route": [o.route(cart, 80)]}], ["missing-gw"],
                          status={"validationMessages": [{"type": {"code": "IST0101"}, "level": "ERROR"}]}),
        o.virtual_service("promo", NS, ["promo.example.com"], [{"route": [o.route(cart, 80)]}], ["public-gw"]),
        o.virtual_service("cart-override", NS, [HOST], [
            {"name": "override", "match": [prefix("/override")], "route": [o.route(cart, 80)]},
            {"name": "override-beta", "match": [prefix("/override/beta")], "route": [o.route(cart, 80)]},
            {"name": "cart-v3", "match": [prefix("/canary")], "route": [o.route(cart, 80, "v3")]}], ["public-gw"]),
        o.virtual_service("vip", NS, ["www.example.com"], [{"match": [{"headers": {"@request.auth.claims.group": {
            "exact": "vip"}}}], "route": [o.route(cart, 80)]}, {"route": [o.route(cart, 80)]}], ["public-gw"]),
        _mesh_vs("search", ["search"], [
            {"match": [prefix("/find")], "route": [o.route(f"search.{NS}.svc.cluster.local", 80)],
             "mirror": {"host": f"audit.{NS}.svc.cluster.local", "port": {"number": 80}}},
            {"match": [prefix("/cart")], "route": [o.route(cart)]},
            {"match": [prefix("/catalog")], "route": [o.route(catalog, 9999)]},
            {"match": [prefix("/v9")], "route": [o.route(cart, 80, "v9")]}]),
        _mesh_vs("rules", ["rules"], [
            {"name": "api", "match": [prefix("/api")], "route": [o.route(cart, 80)]},
            {"name": "api-v2", "match": [prefix("/api/v2")], "route": [o.route(cart, 80)]},
            {"name": "again", "match": [prefix("/api", name="dup")], "route": [o.route(cart, 80)]},
            {"name": "all", "route": [o.route(cart, 80)]},
            {"name": "late", "match": [prefix("/late")], "route": [o.route(cart, 80)]}]),
        _mesh_vs("cart-canary", [cart], [{"route": [o.route(cart, 80, "v1")]}]),
        _mesh_vs("twin-a", ["twin"], [{"route": [o.route(cart, 80)]}]),
        _mesh_vs("twin-b", ["twin"], [{"route": [o.route(cart, 80)]}]),
        _mesh_vs("old", ["old"], [{"route": [o.route(cart, 80)]}]) | {"status": {"validationMessages": [
            {"type": {"code": "IST0002"}, "level": "WARNING", "documentationUrl": "https://istio.io/latest/docs/"
                                                                                  "reference/config/analysis/ist0002/"}]}},
        _dr("orders", FQDN["orders"], {"portLevelSettings": [{"port": {"number": 80}, "tls": {"mode": "SIMPLE"}}]}),
        _dr("pay", FQDN["pay"], {"tls": {"mode": "DISABLE"}}),
        _dr("catalog", catalog, {"tls": {"mode": "ISTIO_MUTUAL"}, "connectionPool": {
            "http": {"http1MaxPendingRequests": 1, "http2MaxRequests": 2}}}),
        _dr("edge", "edge.example.com", {"tls": {"mode": "SIMPLE", "sni": "edge.example.com"}}),
        _dr("ghost", f"ghost.{NS}.svc.cluster.local", {"loadBalancer": {"simple": "ROUND_ROBIN"}}),
        _dr("cart", cart, {"loadBalancer": {"simple": "LEAST_REQUEST"}, "outlierDetection": {
            "consecutive5xxErrors": 1, "interval": "5s", "baseEjectionTime": "1800s", "maxEjectionPercent": 100}},
            [{"name": "v1", "labels": {"version": "v1"}}, {"name": "v3", "labels": {"version": "v3"}},
             {"name": "v4", "labels": {"version": "v4"}}]),
        o.config("ServiceEntry", "ext-db", NS, {"hosts": ["db.partner.example"], "ports": [
            {"number": 5432, "name": "pg", "protocol": "TCP"}], "location": "MESH_EXTERNAL", "resolution": "DNS"}),
        o.config("ServiceEntry", "edge", NS, {"hosts": ["edge.example.com"], "ports": [
            {"number": 443, "name": "https", "protocol": "HTTPS"}], "location": "MESH_EXTERNAL", "resolution": "DNS"}),
        o.config("ServiceEntry", "api-a", NS, {"hosts": ["api.partner.example"], "ports": [
            {"number": 443, "name": "https", "protocol": "HTTPS"}], "resolution": "DNS"}),
        o.config("ServiceEntry", "api-b", NS, {"hosts": ["api.partner.example"], "ports": [
            {"number": 443, "name": "tls", "protocol": "TLS"}], "resolution": "DNS"}),
        _ef("bad-add", [("HTTP_ROUTE", "ADD", {})], priority=10),
        _ef("bad-remove", [("ROUTE_CONFIGURATION", "REMOVE", {})], priority=10),
        _ef("bad-replace", [("CLUSTER", "REPLACE", {})], priority=10),
        _ef("relative", [("HTTP_FILTER", "INSERT_BEFORE", {})]),
        _ef("versioned", [("HTTP_FILTER", "MERGE", {"proxy": {"proxyVersion": "^1\\.2.*"}})], priority=5),
        o.config("EnvoyFilter", "versioned-late", HIGRESS, {"configPatches": [
            {"applyTo": "HTTP_FILTER", "match": {"context": "GATEWAY"},
             "patch": {"operation": "INSERT_AFTER", "value": {"name": "versioned-0"}}}]}),
        o.config("HTTPRoute", "store", NS, {"parentRefs": [{"name": "higress-gateway", "namespace": HIGRESS}],
                                            "rules": [{"backendRefs": [{"name": "nothere", "port": 80}]}]},
                 api_version="gateway.networking.k8s.io/v1", status={"parents": [{
                     "parentRef": {"name": "higress-gateway", "namespace": HIGRESS}, "controllerName": "higress.io/"
                     "gateway-controller", "conditions": [
                         {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "Route was valid"},
                         {"type": "ResolvedRefs", "status": "False", "reason": "BackendNotFound",
                          "message": "backend(nothere.shop.svc.cluster.local) not found"}]}]}),
    ]


def registryz() -> list[dict[str, Any]]:
    s = istiod.service
    return [
        s(f"higress-gateway.{HIGRESS}.svc.cluster.local", "higress-gateway", HIGRESS,
          [("http2", 80, "HTTP2"), ("https", 443, "HTTPS")], o.GATEWAY_LABELS, labels=dict(o.GATEWAY_LABELS),
          service_type="LoadBalancer"),
        s(FQDN["cart"], "cart", NS, [("http", 80, "HTTP"), ("grpc-api", 9090, "HTTP2")], {"app": "cart"}),
        s(FQDN["catalog"], "catalog", NS, [("http-web", 8080, "HTTP")], {"app": "catalog"}),
        s(FQDN["orders"], "orders", NS, [("http", 80, "HTTP")], {"app": "orders"}),
        s(FQDN["pay"], "pay", NS, [("https", 443, "HTTPS")], {"app": "pay"}),
        s(FQDN["inventory"], "inventory", NS, [("web", 80, "UnsupportedProtocol")], {"app": "inventory"}),
        s("edge.example.com", "edge.example.com", NS, [("https", 443, "HTTPS")], registry="External", vip=""),
        s("db.partner.example", "db.partner.example", NS, [("pg", 5432, "TCP")], registry="External", vip=""),
        s("api.partner.example", "api.partner.example", NS, [("https", 443, "HTTPS")], registry="External", vip=""),
    ]


def endpointz(ports: dict[str, int]) -> dict[str, Any]:
    ep, sh = istiod.endpoint, istiod.shards
    return {
        f"higress-gateway.{HIGRESS}.svc.cluster.local": sh(HIGRESS, "higress-gateway", [
            ep("10.0.0.1", HIGRESS, "higress-gateway", "http2", 80, dict(o.GATEWAY_LABELS)),
            ep("10.0.0.1", HIGRESS, "higress-gateway", "https", 443, dict(o.GATEWAY_LABELS))]),
        FQDN["cart"]: sh(NS, "cart", [ep("127.0.0.1", NS, "cart", "http", ports["cart"], {"app": "cart",
                                                                                          "version": "v1"}),
                                      ep("127.0.0.1", NS, "cart", "grpc-api", ports["cart"], {"app": "cart",
                                                                                              "version": "v1"})]),
        **{FQDN[n]: sh(NS, n, [ep("127.0.0.1", NS, n, port_name, ports[n])])
           for n, port_name in (("catalog", "http-web"), ("orders", "http"), ("pay", "https"), ("inventory", "web"))},
    }


def istiod_state(ports: dict[str, int]) -> dict[str, Any]:
    return {**default_state(), "/debug/configz": configz(), "/debug/registryz": registryz(),
            "/debug/endpointz": endpointz(ports)}


# ---------------------------------------------------------------- the Envoy istiod would program

CART_OUTLIER = {"consecutive_5xx": 1, "interval": "5s", "base_ejection_time": "1800s", "max_ejection_percent": 100,
                "enforcing_success_rate": 0, "enforcing_consecutive_5xx": 100}
UPSTREAM_TLS = T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"


def _tls(sni: str, alpn: list[str]) -> dict[str, Any]:
    return {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": UPSTREAM_TLS, "sni": sni, "common_tls_context": {"alpn_protocols": alpn}}}


def _cluster(name: str, up: Upstream, rule: str = "", **extra: Any) -> dict[str, Any]:
    meta = istio_meta("destination-rule", NS, rule) if rule else None
    return cluster_of(CLUSTERS[name], [lb_endpoint(up.port)], meta, connect_timeout="0.5s", **extra)


def _route(name: str, path: str, cluster: str, vs: str, ns: str = HIGRESS) -> dict[str, Any]:
    return {"name": name, "match": {"prefix": path}, "route": {"cluster": cluster, "timeout": "0s"},
            "metadata": istio_meta("virtual-service", ns, vs)}


@dataclass
class LintGateway:
    envoy: Envoy
    http_port: int
    ups: dict[str, Upstream]
    alt_port: int  # listener 0.0.0.0_8080

    @property
    def admin_url(self) -> str:
        return self.envoy.admin_url

    @property
    def ports(self) -> dict[str, int]:
        return {name: up.port for name, up in self.ups.items()}


@contextmanager
def lint_gateway(workdir: Path) -> Iterator[LintGateway]:
    """Routes of shop.example.com: Higress's (shop/catalog, shop/cart) then shop/cart-override's; /orders,
    /pay and /inventory from the operator's VirtualService on public-gw. orders:80 originates TLS (the rule says
    SIMPLE), catalog:8080 Istio mTLS (ISTIO_MUTUAL), towards backends that speak plain HTTP."""
    workdir.mkdir(parents=True, exist_ok=True)
    with upstreams(*BACKENDS) as ups:
        http_port, alt_port = free_port(), free_port()
        vhost = {"name": f"{HOST}:80", "domains": [HOST, f"{HOST}:80"], "routes": [
            _route("shop/catalog", "/catalog", CLUSTERS["catalog"], HIGRESS_VS),
            _route("shop/cart-old", "/cart-old", CART_81, HIGRESS_VS),
            _route("shop/cart", "/cart", CLUSTERS["cart"], HIGRESS_VS),
            _route("override", "/override", CLUSTERS["cart"], "cart-override", NS),
            _route("override-beta", "/override/beta", CLUSTERS["cart"], "cart-override", NS),
            _route("orders", "/orders", CLUSTERS["orders"], "cart-override", NS),
            _route("pay", "/pay", CLUSTERS["pay"], "cart-override", NS),
            _route("inventory", "/inventory", CLUSTERS["inventory"], "cart-override", NS),
            _route("cart-v3", "/canary", CART_V3, "cart-override", NS)]}
        clusters = [
            # Istio's cluster for the rule's outlierDetection: panic threshold 0 (applyOutlierDetection)
            _cluster("cart", ups["cart"], "cart", outlier_detection=CART_OUTLIER,
                     common_lb_config={"healthy_panic_threshold": {"value": 0}}),
            _cluster("catalog", ups["catalog"], "catalog", transport_socket=_tls(
                f"outbound_.8080_._.{FQDN['catalog']}", ["istio-peer-exchange", "istio"]),
                     circuit_breakers={"thresholds": [{"max_pending_requests": 1, "max_requests": 2}]}),
            _cluster("orders", ups["orders"], "orders", transport_socket=_tls(FQDN["orders"], [])),
            _cluster("pay", ups["pay"], "pay"),
            _cluster("inventory", ups["inventory"]),
            cluster_of(CART_V3, [], istio_meta("destination-rule", NS, "cart"), connect_timeout="0.5s"),
        ]
        listener = {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1",
                                                                         "port_value": http_port}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                    "typed_config": {
                        "@type": HCM, "stat_prefix": "outbound_0.0.0.0_80", "http_filters": [ROUTER],
                        "route_config": {"name": "http.80", "validate_clusters": False,
                                         "virtual_hosts": [vhost]}}}]}]}
        # Port 8080 (a second Gateway server) answers 404 itself for /orders, which port 80 routes to its backend.
        admin_vhost = {"name": f"{HOST}:8080", "domains": [HOST, f"{HOST}:8080"], "routes": [
            {"name": "orders-maintenance", "match": {"prefix": "/orders"}, "direct_response": {"status": 404},
             "metadata": istio_meta("virtual-service", NS, "maintenance")}]}
        second = {**listener, "name": "0.0.0.0_8080", "address": {"socket_address": {"address": "127.0.0.1",
                                                                                      "port_value": alt_port}}}
        second["filter_chains"] = [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                 "typed_config": {"@type": HCM, "stat_prefix": "outbound_0.0.0.0_8080",
                                                                  "http_filters": [ROUTER], "route_config": {
                                                                      "name": "http.8080",
                                                                      "virtual_hosts": [admin_vhost]}}}]}]
        bootstrap = {
            "node": {"id": f"router~10.0.0.1~{POD}.{HIGRESS}~{HIGRESS}.svc.cluster.local", "cluster": "higress-gateway",
                     "metadata": {"LABELS": {**o.GATEWAY_LABELS, "pod-template-hash": "7d9c"}, "NAMESPACE": HIGRESS,
                                  "NAME": POD, "CLUSTER_ID": "Kubernetes", "ISTIO_VERSION": "1.27.0"}},
            "static_resources": {"clusters": clusters, "listeners": [listener, second]}}
        envoy = Envoy(bootstrap, workdir).start()
        try:
            yield LintGateway(envoy, http_port, ups, alt_port)
        finally:
            envoy.stop()


@dataclass
class World:
    gateway: LintGateway
    istiod: IstiodDouble


def _tls_errors(admin_url: str) -> bool:
    stats = requests.get(f"{admin_url}/stats?filter=ssl.connection_error", timeout=5).text
    return all(f"cluster.{CLUSTERS[name]}.ssl.connection_error: 0" not in stats and CLUSTERS[name] in stats
               for name in ("orders", "catalog"))


@contextmanager
def lint_world(workdir: Path) -> Iterator[World]:
    """The gateway, with TLS handshakes towards the plain-HTTP backends already failed once each (so the TLS
    counters have grown), and the istiod double holding what istiod says about it."""
    with lint_gateway(workdir) as gw:
        for path in ("/orders", "/catalog"):
            answer = requests.get(f"http://127.0.0.1:{gw.http_port}{path}", headers={"host": HOST}, timeout=10)
            assert answer.status_code == 503, (path, answer.text)
        wait_until(lambda: _tls_errors(gw.admin_url), 10, "the TLS errors counted")
        with istiod_double(state=istiod_state(gw.ports)) as istiod:
            yield World(gw, istiod)
