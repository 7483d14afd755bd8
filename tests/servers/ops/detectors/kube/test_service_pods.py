"""service-pods on the shop scenario: catalog's only pod stops being ready; the API (pod, EndpointSlice, a
Warning event), istiod (no endpoint) and the real Envoy (the cluster empties, 503 UH) all say so, and the finding
names the Service with the pod and why."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import shop as s
from tests.support.lint_world import about
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _hosts(admin: str, cluster: str) -> int:
    statuses = requests.get(f"{admin}/clusters?format=json", timeout=5).json()["cluster_statuses"]
    return next(len(c.get("host_statuses", [])) for c in statuses if c["name"] == cluster)


@pytest.fixture
def catalog_down(shop, shop_ops) -> Iterator[None]:
    """catalog-1 fails its readiness probe: the API marks it, istiod drops the endpoint, Envoy's EDS empties
    (after shop_ops has put the doubles back in their scenario state)."""
    [eds] = [p for p in Path(shop.gateway.envoy.workdir).glob("eds-*.json") if s.CATALOG_8080 in p.read_text()]
    saved = eds.read_text()
    for o in shop.api.store.items("Pod", s.NS):
        if o["metadata"]["name"] == "catalog-1":
            for c in o["status"]["conditions"]:
                if c["type"] in ("Ready", "ContainersReady"):
                    c["status"] = "False"
            o["status"]["containerStatuses"][0]["ready"] = False
            shop.api.store.add(o)
    for sl in shop.api.store.items("EndpointSlice", s.NS):
        if sl["metadata"]["labels"]["kubernetes.io/service-name"] == "catalog":
            sl["endpoints"][0]["conditions"] = {"ready": False, "serving": False, "terminating": False}
            shop.api.store.add(sl)
    [event] = [e for e in s.events(s.Shop()) if e["involvedObject"]["name"] == "cart-2"]
    event["metadata"]["name"] = "catalog-1.17f0b1"
    event["involvedObject"].update(name="catalog-1", uid="uid-shop-catalog-1")
    shop.api.store.add(event)
    shop.istiod.state["/debug/endpointz"].pop(s.CATALOG_FQDN)
    body = json.loads(saved)
    body["version_info"] = "2"
    body["resources"][0]["endpoints"] = []
    tmp = eds.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, eds)  # file-based xDS reloads on a move into place
    wait_until(lambda: _hosts(shop.gateway.admin_url, s.CATALOG_8080) == 0, 10, "catalog's endpoints gone")
    try:
        yield
    finally:
        tmp.write_text(saved)
        os.replace(tmp, eds)
        wait_until(lambda: _hosts(shop.gateway.admin_url, s.CATALOG_8080) == 1, 10, "catalog's endpoint back")


async def test_no_ready_pod_behind_a_routed_service(shop, catalog_down, lint) -> None:
    answer = requests.get(f"http://127.0.0.1:{shop.gateway.http_port}/catalog", headers={"host": s.HOST}, timeout=5)
    assert answer.status_code == 503 and "no healthy upstream" in answer.text
    found = await lint("service-pods", "empty-cluster")
    [svc] = about(found, "Service shop/catalog")
    assert svc["severity"] == "error" and svc["detector"] == "service-pods"
    assert svc["message"] == ("1 pod(s) match selector app=catalog, none ready: the cluster gets no endpoint, requests "
                              "get 503 UH")
    assert svc["evidence"][:2] == ["not ready: catalog-1 (Running; catalog running)",
                                   "EndpointSlices: 1 address(es), 0 ready"]
    assert svc["evidence"][2].startswith("Warning Unhealthy (catalog-1, x42): Readiness probe failed")
    assert svc["related"] == [f"cluster {s.CATALOG_8080}"]
    [cluster] = about(found, f"cluster {s.CATALOG_8080}")  # the Envoy side: istiod knows no endpoint
    assert "istiod knows no endpoints" in cluster["message"]


async def test_every_routed_service_of_the_scenario_has_a_ready_pod(lint) -> None:
    assert await lint("service-pods") == []  # cart has cart-1 ready (cart-2 is not: one is enough)
