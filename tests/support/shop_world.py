"""The shop scenario running: the real Envoy of shop_envoy.py, the istiod double holding shop.istiod_state() and
the API-server double holding shop.api_objects(), built from the same `Shop` (the upstreams' ports), so the
three sources agree. `config()` is a higress-ops server config reading all three (and the API in the shop's
namespaces); tests change the doubles (rights, objects, faults) and put them back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support import shop as s
from tests.support.apiserver import ApiServer, api_server
from tests.support.istiod import IstiodDouble, istiod_double
from tests.support.shop_envoy import ShopGateway, shop_gateway


@dataclass
class ShopWorld:
    gateway: ShopGateway
    istiod: IstiodDouble
    api: ApiServer
    kubeconfig: Path

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"istiodURL": self.istiod.url, "envoyAdminURL": self.gateway.admin_url, "namespace": s.HIGRESS,
                "istiodToken": "good-token", "timeoutSeconds": 5, "maxResponseBytes": 65536,
                "kubernetes": {"namespaces": [s.NS, s.HIGRESS]}, **extra}

    def reset(self) -> None:
        """Every right granted, every kind served, the scenario's objects and istiod state back."""
        self.api.store.rights, self.api.store.unserved, self.api.store.delay = None, set(), 0.0
        self.api.store.objects.clear()
        self.api.store.add_all(s.api_objects(self.gateway.shop))
        self.istiod.state = s.istiod_state(self.gateway.shop)
        self.istiod.faults.clear()


def _settled(gateway: ShopGateway) -> bool:
    """Every cluster in, and the health-checked hosts past their first check."""
    statuses = requests.get(f"{gateway.admin_url}/clusters?format=json", timeout=5).json()["cluster_statuses"]
    names = {c["name"] for c in statuses}
    checked = [h for c in statuses if c["name"] == s.CART_80 for h in c.get("host_statuses", [])]
    return s.CART_80 in names and s.LEGACY_80 in names and all(
        not h.get("health_status", {}).get("failed_active_health_check") for h in checked) and bool(checked)


@contextmanager
def shop_world(workdir: Path) -> Iterator[ShopWorld]:
    with ExitStack() as stack:
        gateway = stack.enter_context(shop_gateway(workdir / "envoy"))
        istiod = stack.enter_context(istiod_double())
        api = stack.enter_context(api_server())
        world = ShopWorld(gateway, istiod, api, api.kubeconfig(workdir / "kubeconfig"))
        world.reset()
        deadline = time.monotonic() + 15
        while not _settled(gateway):
            if time.monotonic() > deadline:
                raise TimeoutError("the shop gateway's clusters did not settle")
            time.sleep(0.1)
        yield world
