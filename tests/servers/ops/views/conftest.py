"""One Istio-shaped gateway Envoy per module, and its admin JSON."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.istio_envoy import IstioGateway, istio_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IstioGateway]:
    with istio_gateway(tmp_path_factory.mktemp("gw")) as gw:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # file-based xDS lands right after LIVE; wait for the secrets
            if '"dynamic_active_secrets"' in requests.get(f"{gw.admin_url}/config_dump", timeout=5).text:
                break
            time.sleep(0.1)
        yield gw


def admin(gw: IstioGateway, path: str) -> Any:
    return requests.get(f"{gw.admin_url}{path}", timeout=5).json()


@pytest.fixture(scope="module")
def dump(gateway: IstioGateway) -> Any:
    return admin(gateway, "/config_dump")


@pytest.fixture(scope="module")
def clusters_json(gateway: IstioGateway) -> Any:
    return admin(gateway, "/clusters?format=json")
