"""proxy-config tables on a real Envoy's dump, expected rows written from istioctl's column rules."""

from __future__ import annotations

import datetime as dt

from higress_ops.servers.ops.views import clusters, endpoints, listeners, routes, secrets
from higress_ops.servers.ops.views.x509info import rfc3339
from tests.support import istio_envoy as ie


def cells(table, *cols):
    return [tuple(str(r[c]) for c in cols) for r in table.rows]


def test_clusters_table_splits_istio_names_and_sorts_by_fqdn_subset_port(dump):
    t = clusters.table(dump)
    # SERVICE FQDN, PORT, SUBSET ('-' when empty), DIRECTION, TYPE, DESTINATION RULE (name.namespace)
    assert cells(t, *clusters.HEADERS) == [
        ("", "8080", "-", "inbound", "STATIC", ""),  # inbound|8080|| has an empty hostname
        ("BlackHoleCluster", "-", "-", "-", "STATIC", ""),
        ("api.default.svc.cluster.local", "80", "-", "outbound", "STATIC", ""),
        ("broken.default.svc.cluster.local", "80", "-", "outbound", "STATIC", ""),
        ("httpbin.default.svc.cluster.local", "8000", "-", "outbound", "EDS", ""),
        ("mysql.db.svc.cluster.local", "3306", "-", "outbound", "STATIC", ""),
        ("prometheus_stats", "-", "-", "-", "STATIC", ""),
        ("reviews.bookinfo.svc.cluster.local", "9080", "v1", "outbound", "STATIC", "reviews.bookinfo"),
        ("reviews.bookinfo.svc.cluster.local", "9080", "v2", "outbound", "STATIC", "reviews.bookinfo"),
        ("wild.default.svc.cluster.local", "80", "-", "outbound", "STATIC", ""),
    ]


def test_cluster_filters_are_substring_tests_on_the_name(dump):
    names = lambda f: [c["name"] for c in clusters.matching(dump, f)]  # noqa: E731
    assert names(clusters.ClusterFilter(fqdn="reviews", subset="v2")) == [ie.REVIEWS_V2]
    assert names(clusters.ClusterFilter(port=8080)) == [ie.INBOUND]
    assert names(clusters.ClusterFilter(direction="inbound")) == [ie.INBOUND]
    assert len(names(clusters.ClusterFilter(port=80, direction="outbound"))) == 3


def test_routes_table_has_one_row_per_route_with_virtual_service_from_metadata(dump):
    t = routes.table(dump)
    rows = cells(t, *routes.HEADERS)
    reviews_domains = "reviews, reviews.bookinfo + 1 more..."  # ports dropped, .svc forms folded, two shown
    assert rows == [
        ("http.80", "httpbin.example.com:80", "httpbin.example.com", "/get*", "httpbin.default"),
        ("http.80", "httpbin.example.com:80", "httpbin.example.com", "/status/418", "httpbin.default"),
        ("http.80", "httpbin.example.com:80", "httpbin.example.com", "regex /anything/[0-9]+", "httpbin.default"),
        ("http.80", "reviews.bookinfo.svc.cluster.local:80", reviews_domains, "/*", "reviews.bookinfo"),
        ("http.80", "reviews.bookinfo.svc.cluster.local:80", reviews_domains, "/*", "reviews.bookinfo"),
        ("http.80", "reviews.bookinfo.svc.cluster.local:80", reviews_domains, "/*", "reviews.bookinfo"),
        ("http.80", "wild:80", "*.wild.example.com", "/*", "wild.default"),
        ("http.80", "api-prefix:80", "api.*", "/v1*", "api.default"),
        ("http.80", "api-prefix:80", "api.*", "/v1*", "api.default"),
        ("http.80", "empty:80", "empty.example.com", "/*", "404"),  # no routes: istioctl prints /* and 404
        # allow_any is a PassthroughCluster route: istioctl leaves it out. The static config has no name.
        ("", "backend", "*", "/stats/prometheus*", ""),
    ]
    assert routes.table(dump, routes.RouteFilter(name="nope")).rows == []


def test_listeners_table_describes_each_filter_chain(dump, gateway):
    t = listeners.table(dump)
    rows = cells(t, *listeners.HEADERS)
    expected = sorted([
        ("127.0.0.1", str(gateway.http_port), "ALL", "Route: http.80"),
        ("127.0.0.1", str(gateway.tls_port), "SNI: httpbin.example.com", "Route: http.80"),
        # chains of one listener: by DESTINATION, descending; a BlackHoleCluster tcp_proxy is not TCP
        ("127.0.0.1", str(gateway.tcp_port), "App: HTTP", "Non-HTTP/Non-TCP"),
        ("127.0.0.1", str(gateway.tcp_port), "Addr: 127.0.0.0/8:" + str(gateway.tcp_port),
         f"Cluster: {ie.ECHO_TCP}"),
    ], key=lambda r: int(r[1]))
    assert [r for r in rows if r[3] != "Inline Route: /stats/prometheus*"] == expected
    assert listeners.table(dump, listeners.ListenerFilter(port=gateway.tcp_port, type="tcp")).rows
    assert not listeners.table(dump, listeners.ListenerFilter(port=gateway.tcp_port, type="HTTP")).rows


def test_secrets_table_reads_the_certificates_themselves(dump, gateway):
    t = secrets.table(dump)
    now = dt.datetime.now(dt.UTC)
    got = {r["RESOURCE NAME"]: r for r in t.rows}
    assert t.rows[0]["RESOURCE NAME"] == ie.PENDING and t.rows[0]["STATUS"] == "WARMING"
    assert got[ie.PENDING]["VALID CERT"] is False and got[ie.PENDING]["SERIAL NUMBER"] == ""
    for name, cert in gateway.certs.items():
        row = got[name]
        assert row["STATUS"] == "ACTIVE"
        assert row["TYPE"] == ("CA" if cert.is_ca else "Cert Chain")
        assert row["SERIAL NUMBER"] == format(cert.serial, "032x")
        assert row["NOT AFTER"] == rfc3339(cert.not_after) and row["NOT BEFORE"] == rfc3339(cert.not_before)
        assert row["VALID CERT"] is (cert.not_before < now < cert.not_after)
    assert "private_key" not in str(secrets.matching(dump))


def test_endpoints_table_comes_from_clusters_json_with_eds_health(clusters_json, gateway):
    t = endpoints.table(clusters_json, endpoints.EndpointFilter(status="UNHEALTHY"))  # EDS status or HEALTH
    assert sorted(cells(t, "STATUS", "CLUSTER", "HEALTH")) == sorted([
        ("UNHEALTHY", ie.BROKEN, "eds_unhealthy"), ("UNHEALTHY", ie.HTTPBIN, "eds_unhealthy"),
        ("DRAINING", ie.BROKEN, "eds_draining")])
    draining = endpoints.table(clusters_json, endpoints.EndpointFilter(address="127.0.0.3"))
    assert cells(draining, "STATUS", "OUTLIER CHECK", "CLUSTER") == [("DRAINING", "OK", ie.BROKEN)]
    assert {r["HEALTH"] for r in endpoints.table(clusters_json, endpoints.EndpointFilter(status="healthy")).rows} == \
        {"healthy"}
    one = endpoints.table(clusters_json, endpoints.EndpointFilter(cluster=ie.REVIEWS_V1))
    assert cells(one, "ENDPOINT", "STATUS") == [(f"127.0.0.1:{gateway.ups['reviews-v1'].port}", "HEALTHY")]
    all_rows = endpoints.table(clusters_json).rows
    keys = [(r["ENDPOINT"].rsplit(":", 1)[0], int(r["ENDPOINT"].rsplit(":", 1)[1]), r["CLUSTER"]) for r in all_rows]
    assert keys == sorted(keys)  # address, then port, then cluster
