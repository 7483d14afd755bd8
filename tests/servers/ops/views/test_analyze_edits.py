"""analyze names the object to edit: on the shop scenario, the Service cart moves to port 8080 while the Ingress
shop/cart still says 80 (the issue's own example): the real Envoy answers 503 NC, and the finding's object to edit
resolves, through the route Envoy holds, to the Ingress that produced it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from higress_ops.servers.base import CallContext
from tests.support import shop as s
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
CART_8080 = f"outbound|8080||{s.CART_FQDN}"


def _names(admin: str) -> set[str]:
    return {c["name"] for c in requests.get(f"{admin}/clusters?format=json", timeout=5).json()["cluster_statuses"]}


@pytest.fixture
def cart_moved(shop, shop_ops) -> Iterator[None]:
    """kubectl edit svc cart: port 80 -> 8080. The API and istiod's registry say so, and istiod's clusters for
    cart are now on 8080 (Envoy's CDS); the Ingress still routes to port 80."""
    cds = Path(shop.gateway.envoy.workdir) / "cds.json"
    saved = cds.read_text()
    [svc] = [o for o in shop.api.store.items("Service", s.NS) if o["metadata"]["name"] == "cart"]
    svc["spec"]["ports"][0]["port"] = 8080
    shop.api.store.add(svc)
    for entry in shop.istiod.state["/debug/registryz"]:
        if entry["hostname"] == s.CART_FQDN:
            entry["ports"][0]["port"] = 8080
    body = json.loads(saved)
    body["version_info"] = "2"
    for c in body["resources"]:
        if c["name"].endswith(s.CART_FQDN):
            c["name"] = c["name"].replace("outbound|80|", "outbound|8080|")
    tmp = cds.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, cds)
    wait_until(lambda: CART_8080 in _names(shop.gateway.admin_url) and s.CART_80 not in _names(
        shop.gateway.admin_url), 10, "cart's clusters on 8080")
    try:
        yield
    finally:
        tmp.write_text(saved)
        os.replace(tmp, cds)
        wait_until(lambda: s.CART_80 in _names(shop.gateway.admin_url), 10, "cart's clusters back on 80")


async def test_the_fix_names_the_ingress_behind_the_route(shop, shop_ops, cart_moved) -> None:
    answer = requests.get(f"http://127.0.0.1:{shop.gateway.http_port}/cart", headers={"host": s.HOST}, timeout=5)
    assert answer.status_code == 503  # NC: no such cluster
    result = await shop_ops.call_tool("analyze", {"detectors": ["missing-cluster"]}, CallContext())
    [f] = result.structured["findings"]
    assert f["object"] == f"cluster {s.CART_80}" and f["code"] == "IST0101"
    assert f"istiod's registry has {s.CART_FQDN} with ports: http 8080/HTTP, grpc-api 9090/HTTP2" in f["evidence"]
    assert CART_8080 in f["fix"]
    assert f["edit"] == ["Service shop/cart (port 80)", "Ingress shop/cart (its route shop/cart)"]
    text = result.content[0]["text"]
    assert "    edit: Service shop/cart (port 80); Ingress shop/cart (its route shop/cart)" in text
    # The Ingress it names is the API's: its backend still says port 80.
    [ingress] = [o for o in shop.api.store.items("Ingress", s.NS) if o["metadata"]["name"] == "cart"]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == {"name": "cart",
                                                                                     "port": {"number": 80}}


@pytest.fixture
def grpc_route(shop, shop_ops) -> Iterator[None]:
    """An Ingress path /grpc to cart's port 9090 (grpc-api, appProtocol kubernetes.io/h2c: istiod's cluster speaks
    HTTP/2), whose pod answers HTTP/1.1 only."""
    rds = Path(shop.gateway.envoy.workdir) / "rds.json"
    saved = rds.read_text()
    body = json.loads(saved)
    body["version_info"] = "2"
    body["resources"][0]["virtual_hosts"][0]["routes"].insert(0, {
        "name": f"{s.NS}/cart-grpc", "match": {"prefix": "/grpc"}, "route": {"cluster": s.CART_9090},
        "metadata": {"filter_metadata": {"istio": {"config": s.vs_path(s.SHOP_VS)}}}})
    tmp = rds.with_suffix(".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, rds)
    url = f"http://127.0.0.1:{shop.gateway.http_port}/grpc"
    wait_until(lambda: requests.get(url, headers={"host": s.HOST}, timeout=5).status_code == 502, 10, "/grpc routed")
    try:
        yield
    finally:
        tmp.write_text(saved)
        os.replace(tmp, rds)
        wait_until(lambda: requests.get(url, headers={"host": s.HOST}, timeout=5).status_code == 404, 10,
                   "/grpc gone")


async def test_a_protocol_mismatch_names_the_port_that_declared_it(shop, shop_ops, grpc_route) -> None:
    result = await shop_ops.call_tool("analyze", {"detectors": ["upstream-protocol"]}, CallContext())
    [f] = result.structured["findings"]
    assert f["object"] == f"cluster {s.CART_9090}" and f["verdict"]["reason"] == "upstream_protocol_error"
    assert f["edit"][0] == "DestinationRule shop/cart (applied to the cluster)"
    assert f["edit"][1] == "Service shop/cart (port 9090 grpc-api, appProtocol kubernetes.io/h2c: HTTP2)"
