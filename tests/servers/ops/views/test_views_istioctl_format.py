"""The rendered text lines up like istioctl's tabwriter output (istioctl's own testdata shape)."""

from __future__ import annotations

from higress_ops.servers.ops.views import routes
from higress_ops.servers.ops.views.table import tabwrite

ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"


def test_route_table_text_matches_istioctl_gateway_output():
    def backend(prefix, cluster):
        route = {"match": {"prefix": prefix}, "route": {"cluster": cluster}}
        return {"route_config": {"@type": ROUTE, "virtual_hosts": [
            {"name": "backend", "domains": ["*"], "routes": [route]}]}}

    vs = "/apis/networking.istio.io/v1/namespaces/default/virtual-service/httpbin"
    dump = {"configs": [{
        "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
        "static_route_configs": [backend("/stats/prometheus", "prometheus_stats"), backend("/healthz/ready", "agent")],
        "dynamic_route_configs": [{"route_config": {"@type": ROUTE, "name": "http.8080", "virtual_hosts": [{
            "name": "httpbin.example.com:80", "domains": ["httpbin.example.com"],
            "routes": [{"match": {"prefix": "/get", "case_sensitive": True},
                        "route": {"cluster": "outbound|8000||httpbin.default.svc.cluster.local"},
                        "metadata": {"filter_metadata": {"istio": {
                            "config": vs}}}}]}]}}],
    }]}
    expected = (
        "NAME          VHOST NAME                 DOMAINS                 MATCH                  VIRTUAL SERVICE\n"
        "http.8080     httpbin.example.com:80     httpbin.example.com     /get*                  httpbin.default\n"
        "              backend                    *                       /stats/prometheus*     \n"
        "              backend                    *                       /healthz/ready*        \n"
    )
    assert routes.table(dump).render() == expected


def test_tabwriter_pads_all_but_the_last_cell():
    assert tabwrite([["A", "BB", "C"], ["AAA", "B", ""]], 1) == "A   BB C\nAAA B  \n"


def test_domains_cell_rules():
    assert routes.describe_domains(["a.example.com"]) == "a.example.com"
    assert routes.describe_domains(["a.example.com", "a.example.com:80"]) == "a.example.com"
    assert routes.describe_domains(["x", "x.ns.svc.cluster.local", "x.ns", "x.ns.svc", "10.0.0.1", "10.0.0.2"]) == \
        "x, x.ns + 2 more..."
    assert routes.describe_domains(["[fd00:10::7]", "[fd00:10::7]:80", "h"]) == "[fd00:10::7], h"
