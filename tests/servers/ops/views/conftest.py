"""The views' admin JSON from the module's gateway Envoy (the `gateway` fixture of tests/servers/ops/conftest.py),
and the verdict gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.support.istio_envoy import IstioGateway
from tests.support.verdict_envoy import VerdictGateway, verdict_gateway


def admin(gw: IstioGateway, path: str) -> Any:
    return requests.get(f"{gw.admin_url}{path}", timeout=5).json()


@pytest.fixture(scope="module")
def dump(gateway: IstioGateway) -> Any:
    return admin(gateway, "/config_dump")


@pytest.fixture(scope="module")
def clusters_json(gateway: IstioGateway) -> Any:
    return admin(gateway, "/clusters?format=json")


@pytest.fixture(scope="module")
def vgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerdictGateway]:
    """The Envoy whose routes each exercise one verdict rule (tests/support/verdict_envoy.py)."""
    with verdict_gateway(tmp_path_factory.mktemp("verdicts")) as gw:
        yield gw
