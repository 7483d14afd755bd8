"""find-route agrees with what the real Envoy does with the same request."""

from __future__ import annotations

import pytest
import requests

from higress_ops.servers.ops.views.find_route import find_route, render
from higress_ops.servers.ops.views.matching import Request
from tests.servers.ops.views.conftest import admin
from tests.support import istio_envoy as ie

UPSTREAM_CLUSTER = {"httpbin": ie.HTTPBIN, "reviews-v1": ie.REVIEWS_V1, "reviews-v2": ie.REVIEWS_V2,
                    "wild": ie.WILD, "api": ie.API}

CASES = [
    ("httpbin.example.com", "/get/x", "GET", {}),
    ("HTTPBIN.example.com", "/get", "GET", {}),
    ("httpbin.example.com", "/anything/42", "GET", {}),
    ("httpbin.example.com", "/anything/4x2", "GET", {}),  # regex is a full match: no route -> 404
    ("httpbin.example.com", "/status/418", "GET", {}),  # only unhealthy endpoints -> 503
    ("reviews", "/", "GET", {"end-user": "jason"}),
    ("reviews:80", "/", "GET", {"x-canary": ""}),
    ("reviews.bookinfo.svc.cluster.local", "/r", "GET", {"end-user": "bob"}),
    ("a.b.wild.example.com", "/", "GET", {}),
    ("api.example.org", "/v1/x", "POST", {}),
    ("api.example.org", "/v1/x", "GET", {}),  # inverted match on an absent header fails (Envoy)
    ("api.example.org", "/v1/x", "GET", {"x-debug": "1"}),  # inverted and present -> no route
    ("empty.example.com", "/", "GET", {}),  # virtual host without routes
    ("unknown.example.net", "/", "GET", {}),  # falls to '*' -> PassthroughCluster, absent here
]


@pytest.mark.parametrize(("host", "path", "method", "headers"), CASES)
def test_find_route_names_the_cluster_envoy_used(gateway, dump, host, path, method, headers):
    resp = requests.request(method, f"http://127.0.0.1:{gateway.http_port}{path}",
                            headers={"host": host, **headers}, timeout=5)
    clusters_json = admin(gateway, "/clusters?format=json")  # after the request: its counters are evidence
    answer = find_route(dump, clusters_json, Request(host, path, method, {k.lower(): v for k, v in headers.items()}),
                        port=gateway.http_port)
    [m] = answer["matches"]
    assert m["status"] == resp.status_code, render(answer)
    if resp.status_code == 200:
        assert m["clusters"][0]["cluster"] == UPSTREAM_CLUSTER[resp.text], render(answer)


def test_explanations_name_the_cause(dump, gateway):
    requests.get(f"http://127.0.0.1:{gateway.http_port}/status/418", headers={"host": "httpbin.example.com"}, timeout=5)
    clusters_json = admin(gateway, "/clusters?format=json")

    def verdict(host: str, path: str = "/") -> str:
        return find_route(dump, clusters_json, Request(host, path), port=gateway.http_port)["matches"][0]["verdict"]

    assert "no route" in verdict("empty.example.com")
    assert "connections to 127.0.0.1:" in verdict("httpbin.example.com", "/status/418")
    assert "does not exist" in verdict("nope.example.net")
    answer = find_route(dump, clusters_json, Request("httpbin.example.com", "/get"), port=gateway.http_port)
    m = answer["matches"][0]
    assert m["virtual_host"] == "httpbin.example.com:80" and m["route"]["virtual_service"] == "httpbin.default"
    assert {(e["status"], e["state"]) for e in m["clusters"][0]["endpoints"]} == {("HEALTHY", "healthy"),
                                                                                 ("UNHEALTHY", "unhealthy")}
