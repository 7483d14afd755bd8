"""ingress-conflicts on the shop scenario: a newer Ingress claiming shop/cart's host and path is dropped by
Higress, and the real Envoy still sends /cart to cart, the older Ingress's backend."""

from __future__ import annotations

import copy

import pytest
import requests

from tests.support import shop as s
from tests.support.lint_world import about

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _ingress(name: str, created: str, path: str = "/cart", ingress_class: str = "higress") -> dict[str, object]:
    [cart] = [i for i in s.ingresses(s.Shop()) if i["metadata"]["name"] == "cart"]
    ing = copy.deepcopy(cart)
    ing["metadata"].update(name=name, uid=f"uid-shop-{name}", creationTimestamp=created, annotations={})
    ing["spec"] = {"ingressClassName": ingress_class, "rules": [{"host": s.HOST, "http": {"paths": [
        {"path": path, "pathType": "Prefix", "backend": {"service": {"name": "cart-v2", "port": {"number": 80}}}},
        {"path": path + "/", "pathType": "Prefix", "backend": {"service": {"name": "cart-v2",
                                                                         "port": {"number": 80}}}}]}}]}
    return ing


async def test_two_paths_of_one_ingress(shop, lint) -> None:
    """`/twice` and `/twice/` (Prefix) are one path to Higress (it trims the slash): the second is dropped."""
    shop.api.store.add(_ingress("twice", "2099-01-01T00:00:00Z", path="/twice"))
    [f] = about(await lint("ingress-conflicts"), "Ingress shop/twice")
    assert f["message"] == ("claims host shop.example.com path /twice/ (Prefix) twice: Higress keeps the first and "
                            "drops the second (Service cart-v2:80)")


async def test_the_newer_ingress_loses_the_path(shop, lint) -> None:
    shop.api.store.add(_ingress("cart-v2", "2099-01-01T00:00:00Z"))
    shop.api.store.add(_ingress("cart-nginx", "2099-01-01T00:00:00Z", ingress_class="nginx"))  # not Higress's
    found = await lint("ingress-conflicts")
    [mine] = about(found, "Ingress shop/cart-v2")  # `/cart` and `/cart/` are one Prefix path to Higress
    assert mine["severity"] == "warning" and mine["related"] == ["Ingress shop/cart"]
    assert mine["message"].startswith("claims host shop.example.com path /cart (Prefix) as Ingress shop/cart does: "
                                      "Higress keeps the older Ingress's path (created ")
    assert mine["message"].endswith("so this one (Service cart-v2:80) is not routed")
    assert {f["object"] for f in found} == {"Ingress shop/cart-v2"}  # the nginx-class one is another controller's
    # What the gateway does agrees: /cart is shop/cart's backend.
    answer = requests.get(f"http://127.0.0.1:{shop.gateway.http_port}/cart", headers={"host": s.HOST}, timeout=5)
    assert answer.status_code == 200 and answer.text == "cart"
