"""The views' admin JSON from the module's gateway Envoy (the `gateway` fixture of tests/servers/ops/conftest.py,
where the verdict gateway's `vgw` is too)."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from tests.support.istio_envoy import IstioGateway


def admin(gw: IstioGateway, path: str) -> Any:
    return requests.get(f"{gw.admin_url}{path}", timeout=5).json()


@pytest.fixture(scope="module")
def dump(gateway: IstioGateway) -> Any:
    return admin(gateway, "/config_dump")


@pytest.fixture(scope="module")
def clusters_json(gateway: IstioGateway) -> Any:
    return admin(gateway, "/clusters?format=json")
