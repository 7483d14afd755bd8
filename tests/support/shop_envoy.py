"""A real Envoy holding what istiod would push to the gateway for the shop scenario (tests/support/shop.py):
routes named after their Ingress with the VirtualService in `filter_metadata.istio.config`, clusters with the
DestinationRule and `istio.services` in theirs, the DestinationRule's effective policy and the EnvoyFilter patches
already applied (as istiod applies them), and live upstreams at the pods' IPs, so a request through the
listener reaches the pod the API and istiod say it does.

Dynamic resources come from file-based xDS, as in istio_envoy.py. `shop_gateway(workdir)` yields a `ShopGateway`:
the Envoy, its listener ports, and the `Shop` (ports) to build the API objects and istiod's state from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import shop as s
from tests.support.envoy import Envoy
from tests.support.istio_envoy import (
    HCM,
    ROUTER,
    T,
    TestCert,
    b64,
    lb_endpoint,
    make_cert,
    path_source,
    upstreams,
    write_xds,
)
from tests.support.procs import free_port

UNLIMITED = 4294967295
SECRET = "kubernetes-ingress://Kubernetes/shop/shop-tls"  # the Gateway's credentialName, as SDS names it
# Istio puts it on every gateway listener with TLS chains: without it no SNI is read and no chain with
# server_names ever matches (Envoy 1.40 adds none by itself).
TLS_INSPECTOR = {"name": "envoy.filters.listener.tls_inspector", "typed_config": {
    "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}


@dataclass
class ShopGateway:
    envoy: Envoy
    http_port: int
    https_port: int
    shop: s.Shop
    cert: TestCert

    @property
    def admin_url(self) -> str:
        return self.envoy.admin_url


def _meta(config: str = "", services: tuple[tuple[str, str, str], ...] = (), subset: str = "") -> dict[str, Any]:
    istio: dict[str, Any] = {}
    if config:
        istio["config"] = config
    if services:
        istio["services"] = [{"host": h, "name": n, "namespace": ns} for h, n, ns in services]
    if subset:
        istio["subset"] = subset
    return {"filter_metadata": {"istio": istio}}


def _breakers(connections: int = UNLIMITED, pending: int = UNLIMITED) -> dict[str, Any]:
    return {"thresholds": [{"max_connections": connections, "max_pending_requests": pending,
                            "max_requests": UNLIMITED, "max_retries": UNLIMITED, "track_remaining": True}]}


def clusters(workdir: Path, shop: s.Shop) -> list[dict[str, Any]]:
    """The clusters istiod builds: cart:80 gets the port-level policy ALONE (LEAST_REQUEST, no outlier detection,
    default pool), v1 adds its subset's outlier detection, 9090 the top-level policy; every cluster the global
    connect timeout patch, cart:80 and its subset the health check patch."""
    cart = (s.CART_FQDN, "cart", s.NS)
    eds: dict[str, list[tuple[str, int]]] = {
        s.CART_80: [(s.IPS["cart-1"], shop.cart)], s.CART_80_V1: [(s.IPS["cart-1"], shop.cart)],
        s.CART_9090: [(s.IPS["cart-1"], shop.cart_grpc)], s.CATALOG_8080: [(s.IPS["catalog-1"], shop.catalog)],
        s.ECHO_80: [(s.IPS["echo-1"], shop.echo)], s.LEGACY_80: [(s.IPS["legacy"], shop.legacy)]}

    def cluster(name: str, meta: dict[str, Any], **extra: Any) -> dict[str, Any]:
        path = write_xds(workdir / f"eds-{len(list(workdir.glob('eds-*')))}.json",
                         T + "envoy.config.endpoint.v3.ClusterLoadAssignment",
                         [{"cluster_name": name, "endpoints": [{"locality": {"region": "r1", "zone": "z1"},
                                                                "lb_endpoints": [lb_endpoint(port, host=ip)
                                                                                 for ip, port in eds[name]]}]}])
        return {"name": name, "type": "EDS", "connect_timeout": "2s", "circuit_breakers": _breakers(),
                "eds_cluster_config": {"service_name": name, "eds_config": path_source(path)}, "metadata": meta,
                **extra}

    outlier_v1 = {"consecutive_5xx": 1, "interval": "5s", "base_ejection_time": "1800s", "max_ejection_percent": 100}
    outlier_top = {"consecutive_5xx": 5, "interval": "10s", "base_ejection_time": "30s", "max_ejection_percent": 50}
    h2 = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": T + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    return [
        cluster(s.CART_80, _meta(s.DR_PATH, (cart,)), lb_policy="LEAST_REQUEST", health_checks=[s.HEALTH_CHECK]),
        cluster(s.CART_80_V1, _meta(s.DR_PATH, (cart,), "v1"), lb_policy="LEAST_REQUEST",
                health_checks=[s.HEALTH_CHECK], outlier_detection=outlier_v1),
        cluster(s.CART_9090, _meta(s.DR_PATH, (cart,)), circuit_breakers=_breakers(100, 10),
                outlier_detection=outlier_top, typed_extension_protocol_options=h2),
        cluster(s.CATALOG_8080, _meta("", ((s.CATALOG_FQDN, "catalog", s.NS),))),
        cluster(s.ECHO_80, _meta("", ((s.ECHO_FQDN, "echo", s.HIGRESS),))),
        cluster(s.LEGACY_80, _meta("", (("legacy.static", "legacy.static", "mcp"),))),
    ]


def route_configuration() -> dict[str, Any]:
    """http.80 as istiod builds it from Higress's VirtualServices: one Envoy route per match, each named after
    the http route (= the Ingress), with the VirtualService in its metadata."""
    def routes(ingress: str, path: str, cluster: str, vs: str, timeout: str = "0s") -> list[dict[str, Any]]:
        matches = [{"prefix": "/"}] if path == "/" else [{"path": path}, {"prefix": path + "/"}]
        return [{"name": ingress, "match": {**m, "case_sensitive": True}, "metadata": _meta(s.vs_path(vs)),
                 "route": {"cluster": cluster, "timeout": timeout}, "decorator": {"operation": f"{cluster}/*"}}
                for m in matches]

    return {"name": "http.80", "validate_clusters": False, "virtual_hosts": [
        {"name": f"{s.HOST}:80", "domains": [s.HOST, f"{s.HOST}:80"],
         "routes": routes(f"{s.NS}/catalog", "/catalog", s.CATALOG_8080, s.SHOP_VS)
                   + routes(f"{s.NS}/cart", "/cart", s.CART_80, s.SHOP_VS, "5s")},
        {"name": f"{s.ECHO_HOST}:80", "domains": [s.ECHO_HOST, f"{s.ECHO_HOST}:80"],
         "routes": routes("echo", "/", s.ECHO_80, s.ECHO_VS)},
        {"name": f"{s.LEGACY_HOST}:80", "domains": [s.LEGACY_HOST, f"{s.LEGACY_HOST}:80"],
         "routes": routes(f"{s.NS}/legacy", "/", s.LEGACY_80, s.LEGACY_VS)},
    ]}


@contextmanager
def shop_gateway(workdir: Path) -> Iterator[ShopGateway]:
    workdir.mkdir(parents=True, exist_ok=True)
    hosts = {"cart": s.IPS["cart-1"], "cart-grpc": s.IPS["cart-1"], "catalog": s.IPS["catalog-1"],
             "echo": s.IPS["echo-1"], "legacy": s.IPS["legacy"]}
    with upstreams(*hosts, hosts=hosts) as ups:
        shop = s.Shop(cart=ups["cart"].port, cart_grpc=ups["cart-grpc"].port, catalog=ups["catalog"].port,
                      echo=ups["echo"].port, legacy=ups["legacy"].port)
        cert = make_cert(s.HOST, sans=(s.HOST,))
        sds = write_xds(workdir / "sds.json", T + "envoy.extensions.transport_sockets.tls.v3.Secret", [
            {"name": SECRET, "tls_certificate": {"certificate_chain": {"inline_bytes": b64(cert.cert_pem)},
                                                 "private_key": {"inline_bytes": b64(cert.key_pem)}}}])
        cds = write_xds(workdir / "cds.json", T + "envoy.config.cluster.v3.Cluster", clusters(workdir, shop))
        rds = write_xds(workdir / "rds.json", T + "envoy.config.route.v3.RouteConfiguration", [route_configuration()])
        http_port, https_port = free_port(), free_port()

        def hcm(prefix: str) -> dict[str, Any]:
            return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": prefix, "http_filters": [ROUTER], "normalize_path": True,
                "rds": {"route_config_name": "http.80", "config_source": path_source(rds)}}}

        tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"], "tls_certificate_sds_secret_configs": [
                {"name": SECRET, "sds_config": path_source(sds)}]}}}
        lds = write_xds(workdir / "lds.json", T + "envoy.config.listener.v3.Listener", [
            {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1", "port_value": http_port}},
             "filter_chains": [{"filters": [hcm("outbound_0.0.0.0_80")]}]},
            {"name": "0.0.0.0_443", "address": {"socket_address": {"address": "127.0.0.1", "port_value": https_port}},
             "listener_filters": [TLS_INSPECTOR],
             "filter_chains": [{"filter_chain_match": {"server_names": [s.HOST]},
                                "filters": [hcm("outbound_0.0.0.0_443")], "transport_socket": tls}]}])
        bootstrap = {
            "node": {"id": "router~10.0.0.1~higress-gateway-shop.higress-system~higress-system.svc.cluster.local",
                     "cluster": "higress-gateway"},
            "dynamic_resources": {"cds_config": path_source(cds), "lds_config": path_source(lds)},
            "static_resources": {"clusters": [{"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "1s"}]},
        }
        envoy = Envoy(bootstrap, workdir).start()
        try:
            yield ShopGateway(envoy, http_port, https_port, shop, cert)
        finally:
            envoy.stop()
