"""A real gateway Envoy and the istiod double, shared by the ops tool tests of a module; the shop scenario
(Envoy, istiod and the Kubernetes API agreeing) for the object views and detectors."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import requests

from higress_ops import kube
from higress_ops.config.model import ServerEntry
from higress_ops.servers.ops import OpsServer
from tests.support.fault_envoy import FaultGateway, fault_gateway
from tests.support.istio_envoy import IstioGateway, istio_gateway
from tests.support.istiod import IstiodDouble, istiod_double
from tests.support.lint_world import World, lint_world
from tests.support.serve import ServeProcess, serving
from tests.support.shop_world import ShopWorld, shop_world
from tests.support.verdict_envoy import VerdictGateway, verdict_gateway


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IstioGateway]:
    with istio_gateway(tmp_path_factory.mktemp("gw")) as gw:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # file-based xDS lands right after LIVE; wait for the secrets
            if '"dynamic_active_secrets"' in requests.get(f"{gw.admin_url}/config_dump", timeout=5).text:
                break
            time.sleep(0.1)
        yield gw


@pytest.fixture(scope="module")
def vgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VerdictGateway]:
    """The Envoy whose routes each exercise one verdict rule (tests/support/verdict_envoy.py)."""
    with verdict_gateway(tmp_path_factory.mktemp("verdicts")) as gw:
        yield gw


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The lint world (tests/support/lint_world.py): a real Envoy and the istiod double that agrees with it."""
    with lint_world(tmp_path_factory.mktemp("lint")) as running:
        yield running


@pytest.fixture(scope="module")
def fgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultGateway]:
    """The Envoy with one config fault per failure class (tests/support/fault_envoy.py)."""
    with fault_gateway(tmp_path_factory.mktemp("faults")) as gw:
        yield gw


@pytest.fixture(scope="module")
def istiod() -> Iterator[IstiodDouble]:
    with istiod_double() as double:
        yield double


def ops_config(envoy_url: str, istiod_url: str, **extra: Any) -> dict[str, Any]:
    return {"istiodURL": istiod_url, "envoyAdminURL": envoy_url, "namespace": "higress-system",
            "description": "ops under test", "maxResponseBytes": 65536, "timeoutSeconds": 5, **extra}


@pytest.fixture
async def make_server() -> AsyncIterator[Callable[..., OpsServer]]:
    made: list[OpsServer] = []

    def make(envoy_url: str, istiod_url: str, **extra: Any) -> OpsServer:
        server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops",
                                       config=ops_config(envoy_url, istiod_url, **extra)))
        made.append(server)
        return server

    yield make
    for server in made:
        await server.aclose()


@pytest.fixture(scope="module")
def server(gateway: IstioGateway, istiod: IstiodDouble,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """A real `higress-ops serve` in front of the module's gateway Envoy and istiod double."""
    config = {"mcpServer": {"enable": True, "sse_path_suffix": "/sse", "servers": [
        {"name": "higress-ops-mcp-server", "path": "/higress-ops", "type": "higress-ops",
         "config": {"istiodURL": istiod.url, "envoyAdminURL": gateway.admin_url}}]}}
    with serving(config, tmp_path_factory.mktemp("ops-serve")) as process:
        yield process


@pytest.fixture(scope="session")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopWorld]:
    """The shop scenario running (tests/support/shop_world.py): a real Envoy, istiod and the API, consistent;
    one per test process (tests put the doubles back with `shop.reset()`, as `shop_ops` does)."""
    with shop_world(tmp_path_factory.mktemp("shop")) as world:
        yield world


@pytest.fixture
async def shop_ops(shop: ShopWorld) -> AsyncIterator[OpsServer]:
    """An ops server reading the shop scenario's three sources, the doubles back in their scenario state."""
    kube.use(kubeconfig=str(shop.kubeconfig))
    shop.reset()
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops", config=shop.config()))
    yield server
    await server.aclose()
    kube.use()  # the process default again
