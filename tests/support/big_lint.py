"""A Higress gateway of `routes` routes (five Ingress paths per host) with faults on every host, for analyze's
budget test and benchmark: the Envoy's bootstrap and what istiod says about the same config.

Per host `h-NNNN.example.com` Higress generated a Gateway and a VirtualService from the Ingresses `ns-K/app-NNNN-P`
(P in 0..4), each path to Service `app-NNNN-P` port 80. Every fifth path's Service moved to port 8080 (the route's
cluster `outbound|80||...` is missing: 503 NC), and every host's VirtualService also routes its catch-all to a
Service that does not exist. Thousands of findings: the first page must still stay within 2,000 tokens.
"""

from __future__ import annotations

from typing import Any

from tests.support import istio_objects as o
from tests.support import istiod
from tests.support.envoy import static_cluster
from tests.support.istio_envoy import HCM, ROUTER, istio_meta
from tests.support.istiod import default_state

PATHS = 5  # Ingress paths per host


def fqdn(i: int, p: int) -> str:
    return f"app-{i:04d}-{p}.ns-{i % 20}.svc.cluster.local"


def moved(i: int, p: int) -> bool:
    return p == 0  # one path in five: its Service's port is now 8080


def bootstrap(routes: int, listener_port: int) -> dict[str, Any]:
    hosts = routes // PATHS
    vhosts, clusters = [], []
    for i in range(hosts):
        host = f"h-{i:04d}.example.com"
        vs = f"{o.GEN}-ns-{i % 20}-app-{i:04d}-0-{o.clean_host(host)}"
        vroutes = []
        for p in range(PATHS):
            name = f"outbound|80||{fqdn(i, p)}"
            vroutes.append({"name": f"ns-{i % 20}/app-{i:04d}-{p}", "match": {"prefix": f"/p{p}/"},
                            "route": {"cluster": name, "timeout": "0s"},
                            "metadata": istio_meta("virtual-service", o.HIGRESS, vs)})
            clusters.append(static_cluster(f"outbound|8080||{fqdn(i, p)}" if moved(i, p) else name, 9))
        vhosts.append({"name": f"{host}:80", "domains": [host], "routes": vroutes})
    listener = {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1",
                                                                     "port_value": listener_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": {
                    "@type": HCM, "stat_prefix": "outbound_0.0.0.0_80", "http_filters": [ROUTER],
                    "route_config": {"name": "http.80", "validate_clusters": False, "virtual_hosts": vhosts}}}]}]}
    node = {"LABELS": dict(o.GATEWAY_LABELS), "NAMESPACE": o.HIGRESS, "NAME": "higress-gateway-big"}
    return {"node": {"id": f"router~10.0.0.1~higress-gateway-big.{o.HIGRESS}~{o.HIGRESS}.svc.cluster.local",
                     "cluster": "higress-gateway", "metadata": node},
            "static_resources": {"clusters": clusters, "listeners": [listener]}}


def istiod_state(routes: int) -> dict[str, Any]:
    hosts = routes // PATHS
    configz: list[dict[str, Any]] = []
    registry = [istiod.service(f"higress-gateway.{o.HIGRESS}.svc.cluster.local", "higress-gateway", o.HIGRESS,
                          [("http2", 80, "HTTP2"), ("https", 443, "HTTPS")], dict(o.GATEWAY_LABELS),
                          service_type="LoadBalancer")]
    for i in range(hosts):
        host = f"h-{i:04d}.example.com"
        http = [o.higress_http(f"ns-{i % 20}/app-{i:04d}-{p}", f"/p{p}", fqdn(i, p), 80) for p in range(PATHS)]
        http.append({"name": f"ns-{i % 20}/app-{i:04d}-default", "route": [o.route(f"gone-{i:04d}.example.com", 80)]})
        configz += [o.higress_gateway(host), o.higress_virtual_service(f"ns-{i % 20}/app-{i:04d}-0", host, http)]
        registry += [istiod.service(fqdn(i, p), f"app-{i:04d}-{p}", f"ns-{i % 20}",
                               [("http", 8080 if moved(i, p) else 80, "HTTP")], {"app": f"app-{i:04d}-{p}"})
                     for p in range(PATHS)]
    return {**default_state(), "/debug/configz": configz, "/debug/registryz": registry, "/debug/endpointz": {}}
