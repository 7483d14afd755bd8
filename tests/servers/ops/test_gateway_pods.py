"""list-gateway-pods, compare-gateway-pods and proxy-status over every istiod: real Envoys as pods, two istiod
doubles as controller pods, all reached through the API-server double's port-forward."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from higress_ops import kube
from higress_ops.config.model import ServerEntry
from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer
from tests.support.fleet import GATEWAY_LABELS, Fleet, gateway_fleet
from tests.support.istio_envoy import IstioGateway
from tests.support.istiod import GATEWAY, IstiodDouble, istiod_double
from tests.support.procs import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with gateway_fleet(tmp_path_factory.mktemp("fleet")) as made:
        yield made


@pytest.fixture
async def ops(fleet: Fleet) -> AsyncIterator[OpsServer]:
    kube.use(kubeconfig=str(fleet.kubeconfig))
    fleet.reset()
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=fleet.config("portforward")))
    yield server
    await server.aclose()
    fleet.api.remove_pod("gw-c")


def text(result: ToolResult) -> str:
    return "".join(part["text"] for part in result.content)


def rows(result: ToolResult) -> dict[str, dict[str, Any]]:
    assert result.structured is not None, text(result)
    return {row["name"]: row for row in result.structured["rows"]}


async def test_list_gateway_pods_shows_each_pod_and_where_they_drift(ops: OpsServer) -> None:
    result = await ops.call_tool("list-gateway-pods", {}, CallContext())
    assert not result.is_error, text(result)
    pods = rows(result)
    assert set(pods) == {"gw-a", "gw-b"}
    a, b = pods["gw-a"], pods["gw-b"]
    assert (a["ready"], a["node"], a["ip"]) == (True, "node-a", "127.0.0.1") and b["node"] == "node-b"
    assert a["envoy"].count(".") == 2 and a["envoy"] == b["envoy"]  # e.g. 1.36.2, from /server_info
    assert a["uptime"].endswith("s")
    assert a["clusters"] == b["clusters"] and a["secrets"] == b["secrets"]
    assert a["routes"] != b["routes"] and a["listeners"] != b["listeners"]
    assert result.structured["drift"] == ["listeners", "routes"]  # type: ignore[index]
    assert "compare-gateway-pods" in text(result)
    header = text(result).splitlines()[0].split()
    assert header == ["NAME", "READY", "NODE", "IP", "ENVOY", "UPTIME", "LISTENERS", "ROUTES", "CLUSTERS", "SECRETS"]


async def test_an_unreachable_pod_is_a_row_not_a_failure(ops: OpsServer, fleet: Fleet) -> None:
    fleet.api.add_pod("gw-c", GATEWAY_LABELS, {15000: free_port()}, node="node-c")  # nothing listens there
    result = await ops.call_tool("list-gateway-pods", {}, CallContext())
    assert not result.is_error
    assert rows(result)["gw-c"]["envoy"] == "unreachable" and rows(result)["gw-a"]["envoy"] != "unreachable"
    assert "gw-c: Envoy admin of pod gw-c" in text(result)


async def test_compare_finds_the_route_only_one_envoy_has(ops: OpsServer) -> None:
    result = await ops.call_tool("compare-gateway-pods", {}, CallContext())
    assert not result.is_error, text(result)
    found = {(r["type"], r["name"]): r["pods"] for r in result.structured["rows"]}  # type: ignore[index]
    assert found[("routes", "canary-routes")]["gw-a"] == "-" and found[("routes", "canary-routes")]["gw-b"] != "-"
    assert found[("listeners", "canary")]["gw-a"] == "-"
    assert set(found) == {("routes", "canary-routes"), ("listeners", "canary")}  # the shared config is not listed
    assert text(result).startswith("2 of ")
    routes_only = await ops.call_tool("compare-gateway-pods", {"type": "routes", "limit": 1}, CallContext())
    assert [r["name"] for r in routes_only.structured["rows"]] == ["canary-routes"]  # type: ignore[index]
    same = await ops.call_tool("compare-gateway-pods", {"type": "clusters"}, CallContext())
    assert "every pod serves the same config" in text(same)
    unknown = await ops.call_tool("compare-gateway-pods", {"pods": ["gw-a", "nope"]}, CallContext())
    assert unknown.is_error and "nope" in text(unknown)


@pytest.fixture
def istiods(fleet: Fleet) -> Iterator[tuple[IstiodDouble, IstiodDouble]]:
    with istiod_double() as one, istiod_double() as two:
        syncz = one.state["/debug/syncz"]
        one.state = {**one.state, "/debug/syncz": syncz[:1]}
        two.state = {**two.state, "/debug/syncz": syncz[1:]}
        for name, double in (("higress-controller-1", one), ("higress-controller-2", two)):
            fleet.api.add_pod(name, {"app": "higress-controller"}, {15014: double.port})
        yield one, two
        for name in ("higress-controller-1", "higress-controller-2"):
            fleet.api.remove_pod(name)


async def test_proxy_status_aggregates_every_istiod(fleet: Fleet, istiods: tuple[IstiodDouble, IstiodDouble]) -> None:
    kube.use(kubeconfig=str(fleet.kubeconfig))
    config = fleet.config("portforward", istiods={"access": "portforward"})
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=config))
    try:
        result = await server.call_tool("get-istiod-proxy-status", {}, TOKEN)
        assert not result.is_error, text(result)
        by_proxy = {r["name"]: r for r in result.structured["rows"]}  # type: ignore[index]
        assert by_proxy[GATEWAY]["istiod"] == "higress-controller-1"
        assert by_proxy["other-gw.team-a"]["istiod"] == "higress-controller-2"
        assert text(result).splitlines()[0].split()[-2:] == ["ISTIOD", "VERSION"]
        assert all(r.headers.get("authorization") == "Bearer good-token" for d in istiods for r in d.requests)
        fleet.api.remove_pod("higress-controller-2")
        await server.upstreams.istiods.pods(max_age=0)  # listings are reused for 2 s; do not wait that out
        one_left = await server.call_tool("get-istiod-proxy-status", {}, TOKEN)
        assert [r["name"] for r in one_left.structured["rows"]] == [GATEWAY]  # type: ignore[index]
    finally:
        await server.aclose()


async def test_the_size_budget_holds_for_every_pod_answer(fleet: Fleet) -> None:
    kube.use(kubeconfig=str(fleet.kubeconfig))
    fleet.reset()
    config = fleet.config("portforward", maxResponseBytes=1024)
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=config))
    try:
        for name, args in (("list-gateway-pods", {}), ("compare-gateway-pods", {}),
                           ("get-envoy-config-dump", {"pod": "gw-b"}), ("get-envoy-proxy-config", {"pod": "gw-b"})):
            result = await server.call_tool(name, args, CallContext())
            assert not result.is_error, text(result)
            body = result.content[0]["text"]
            assert len(body.encode()) <= 1024, (name, len(body.encode()))
    finally:
        await server.aclose()


async def test_local_access_says_so_and_lists_the_gateway_proxies_istiod_knows(make_server: Any,
                                                                               gateway: IstioGateway) -> None:
    with istiod_double() as istiod:
        local = "higress-gateway-abc.higress-system"  # the proxy name in this Envoy's node id
        istiod.state["/debug/syncz"] += [
            {"cluster_id": "Kubernetes", "proxy": local, "proxy_type": "router", "istio_version": "1.27.0",
             "cluster_sent": "n1", "cluster_acked": "n1"},
            {"cluster_id": "Kubernetes", "proxy": "app-5d8f.shop", "proxy_type": "sidecar", "istio_version": "1.27.0"}]
        ops = make_server(gateway.admin_url, istiod.url)
        result = await ops.call_tool("list-gateway-pods", {}, TOKEN)
        assert not result.is_error, text(result)
        assert [r["name"] for r in result.structured["rows"]] == ["envoyAdminURL"]  # type: ignore[index]
        out = text(result)
        assert "Local access (no gateways block): this server reads only the Envoy at envoyAdminURL" in out
        assert "Add a gateways block (access: portforward or direct" in out
        known = {r["name"]: r for r in result.structured["istiod_gateways"]}  # type: ignore[index]
        assert set(known) == {GATEWAY, "other-gw.team-a", f"{local} (this Envoy)"}  # routers only
        assert known["other-gw.team-a"]["cds"] == "ERROR" and f"{local} (this Envoy)" in out
        down = make_server(gateway.admin_url, f"http://127.0.0.1:{free_port()}")
        result = await down.call_tool("list-gateway-pods", {}, TOKEN)
        assert "istiod did not answer /debug/syncz, so the gateway proxies it knows cannot be listed" in text(result)
        assert result.structured["istiod_gateways"] == []  # type: ignore[index]
