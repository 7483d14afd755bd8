"""The Kubernetes API as the ops server's third upstream, through the real kubernetes client against the
API-server double: bounded lists, one request per list for a burst of calls, refusals that name the missing
right, and the event loop left free while the client blocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from higress_ops import kube
from higress_ops.servers.ops.kubeapi import KINDS, Forbidden, KubeApi, KubeError, NotConfigured, NotServed
from tests.support import shop
from tests.support.apiserver import ApiServer, api_server

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    with api_server() as server:
        server.store.add_all(shop.api_objects())
        server.kubeconfig(tmp_path_factory.mktemp("kube") / "config")
        yield server


@pytest.fixture
def reader(api: ApiServer, tmp_path: Path) -> Iterator[KubeApi]:
    kube.use(kubeconfig=str(api.kubeconfig(tmp_path / "config")))
    api.store.rights, api.store.unserved, api.store.delay = None, set(), 0.0
    api.store.requests.clear()
    yield KubeApi({"kubernetes": {"namespaces": ["shop", "higress-system"]}}, timeout=5)
    kube.use()  # the process default again, for the tests that follow


async def test_lists_carry_kind_and_follow_continue_tokens_up_to_max_objects(api: ApiServer, tmp_path: Path) -> None:
    kube.use(kubeconfig=str(api.kubeconfig(tmp_path / "config")))
    api.store.rights = None
    small = KubeApi({"kubernetes": {"namespaces": ["shop"], "maxObjects": 2}}, timeout=5)
    listed = await small.list("Pod", "shop")
    assert listed.cut and [p["metadata"]["name"] for p in listed.items] == ["cart-1", "cart-2"]
    assert {p["kind"] for p in listed.items} == {"Pod"} and listed.resource_version  # list items carry no kind
    paged = KubeApi({"kubernetes": {"namespaces": ["shop"], "maxObjects": 5}}, timeout=5)
    import higress_ops.servers.ops.kubeapi as kubeapi

    page, kubeapi.PAGE = kubeapi.PAGE, 1  # one object per request: the continue tokens are followed
    try:
        api.store.requests.clear()
        listed = await paged.list("Pod", "shop")
    finally:
        kubeapi.PAGE = page
    assert not listed.cut and [p["metadata"]["name"] for p in listed.items] == ["cart-1", "cart-2", "catalog-1"]
    assert [r.query.get("limit") for r in api.store.requests] == ["1", "1", "1"]
    assert all("continue" in r.query for r in api.store.requests[1:])


async def test_selectors_and_gets(reader: KubeApi) -> None:
    cart = await reader.list("Pod", "shop", labels="app=cart,version in (v1, v2)")
    assert [p["metadata"]["name"] for p in cart.items] == ["cart-1", "cart-2"]
    warnings = await reader.list("Event", "shop", fields="type=Warning")
    assert sorted(e["reason"] for e in warnings.items) == ["FailedToUpdateEndpointSlices", "Unhealthy"]
    slices = await reader.list("EndpointSlice", "shop", labels="kubernetes.io/service-name=cart")
    assert [s["metadata"]["name"] for s in slices.items] == ["cart-7x2kq"]
    service = await reader.get("Service", "shop", "cart")
    assert service is not None and service["spec"]["ports"][0]["targetPort"] == 8080
    assert await reader.get("Service", "shop", "gone") is None  # a 404 with the name is an answer
    plugins = await reader.list("WasmPlugin", "higress-system")
    assert [p["apiVersion"] for p in plugins.items] == ["extensions.higress.io/v1alpha1"]


async def test_a_burst_of_calls_costs_one_request_per_list_and_answers_are_reused(reader: KubeApi,
                                                                                  api: ApiServer) -> None:
    api.store.delay = 0.3
    answers = await asyncio.gather(*(reader.list("Ingress", "shop") for _ in range(20)))
    assert len({id(a) for a in answers}) == 1 and reader.requests == 1
    await reader.list("Ingress", "shop")  # within cacheSeconds
    assert reader.requests == 1
    await reader.list("Ingress", "shop", labels="app=x")  # another query is another list
    assert reader.requests == 2


async def test_the_event_loop_runs_while_the_client_blocks(reader: KubeApi, api: ApiServer) -> None:
    api.store.delay = 0.5
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    await reader.list("Service", "shop")
    ticker.cancel()
    assert time.monotonic() - started >= 0.5 and ticks >= 10  # the loop kept running during the request


async def test_refusals_name_the_right_to_grant(reader: KubeApi, api: ApiServer) -> None:
    api.store.grant("list", "services", "shop")
    with pytest.raises(Forbidden) as refused:
        await reader.list("Ingress", "shop")
    assert refused.value.right == "list ingresses.networking.k8s.io in namespace shop"
    assert "system:serviceaccount:higress-system:higress-ops" in str(refused.value)
    with pytest.raises(Forbidden) as refused:
        await reader.get("Service", "shop", "cart")  # list was granted, get was not
    assert refused.value.right == "get services in namespace shop"
    assert (await reader.list("Service", "shop")).items
    calls = reader.requests
    with pytest.raises(Forbidden):
        await reader.list("Ingress", "shop")  # a refusal is kept like an answer: no second request
    assert reader.requests == calls


async def test_unserved_kinds_unconfigured_namespaces_and_no_api(reader: KubeApi, api: ApiServer,
                                                                 tmp_path: Path) -> None:
    api.store.unserved.add("McpBridge")
    with pytest.raises(NotServed, match=r"mcpbridges\.networking\.higress\.io .*CRD"):
        await reader.list("McpBridge", "higress-system")
    with pytest.raises(NotConfigured, match=r"default is not in kubernetes\.namespaces"):
        await reader.list("Service", "default")
    with pytest.raises(NotConfigured, match=r"no kubernetes\.namespaces"):
        await KubeApi({}, timeout=5).list("Service", "shop")
    with pytest.raises(ValueError, match="not a kind"):
        await reader.list("Secret", "shop")
    kube.use(kubeconfig=str(ApiServer(port=9).kubeconfig(tmp_path / "gone")))
    with pytest.raises(KubeError, match=r"cannot list services in namespace shop through the Kubernetes API "
                                        r"\(Connection refused\)"):
        await KubeApi({"kubernetes": {"namespaces": ["shop"]}}, timeout=2).list("Service", "shop")


def test_the_kinds_read_are_never_secrets() -> None:
    assert "Secret" not in KINDS and all(k.plural != "secrets" for k in KINDS.values())


async def test_reads_are_timed_into_the_upstream_metrics_by_resource(reader: KubeApi, api: ApiServer) -> None:
    from higress_ops.metrics import ACTIVE, Metrics

    metrics = Metrics()
    token = ACTIVE.set(metrics)  # what the ASGI app does per request; the worker thread inherits it
    try:
        api.store.grant("list", "services", "shop")
        await reader.list("Service", "shop")
        with pytest.raises(Forbidden):
            await reader.list("Pod", "shop", labels="app=cart")
    finally:
        ACTIVE.reset(token)
    text = metrics.render().decode()
    assert ('higress_ops_upstream_request_seconds_count{path="services",upstream="kubernetes"} 1.0' in text)
    assert 'higress_ops_upstream_errors_total{path="pods",reason="forbidden",upstream="kubernetes"} 1.0' in text
    assert "app=cart" not in text  # a selector is never a label
