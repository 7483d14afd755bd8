"""Every gateway pod as a target: two real Envoys as pods of the API-server double, reached through
`pods/portforward` (the kubernetes client's WebSocket protocol) and at podIP:port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from higress_ops import kube
from higress_ops.config.model import ServerEntry
from higress_ops.mcp.core import McpCore
from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer, server_info
from higress_ops.sessions.base import SessionRecord
from tests.support.fleet import GATEWAY_LABELS, Fleet, gateway_fleet

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    with gateway_fleet(tmp_path_factory.mktemp("fleet")) as made:
        yield made


@pytest.fixture
def fresh_pods(fleet: Fleet) -> Iterator[Fleet]:
    kube.use(kubeconfig=str(fleet.kubeconfig))
    fleet.reset()
    yield fleet


@pytest.fixture(params=["portforward", "direct"])
async def ops(request: pytest.FixtureRequest, fresh_pods: Fleet) -> AsyncIterator[OpsServer]:
    fresh_pods.reset(direct=request.param == "direct")
    server = OpsServer(ServerEntry(name="ops", path="/higress-ops", type="higress-ops",
                                   config=fresh_pods.config(request.param)))
    yield server
    await server.aclose()


def text(result: ToolResult) -> str:
    return "".join(part["text"] for part in result.content)


async def node_of(ops: OpsServer, **args: str) -> tuple[str, str]:
    """(node id the Envoy reports, the pod the answer names)."""
    result = await ops.call_tool("get-envoy-config-dump", {"mask": "bootstrap.node.id", **args}, CallContext())
    assert not result.is_error, text(result)
    return result.content[0]["text"], result.content[-1]["text"]


async def test_each_pod_answers_for_itself_and_says_so(ops: OpsServer, fresh_pods: Fleet) -> None:
    forwarded = fresh_pods.api.portforwards
    node, origin = await node_of(ops, pod="gw-b")
    assert "gw-b.higress-system" in node and origin == "[answered by pod gw-b]"
    node, origin = await node_of(ops, pod="gw-a")
    assert "gw-a.higress-system" in node and origin == "[answered by pod gw-a]"
    node, origin = await node_of(ops)  # no pod, no session: the first ready pod by name
    assert "gw-a.higress-system" in node and origin == "[answered by pod gw-a]"
    view = await ops.call_tool("get-envoy-proxy-config", {"type": "routes", "pod": "gw-b"}, CallContext())
    assert "canary-routes" in text(view) and text(view).endswith("[answered by pod gw-b]")
    istiods = await ops.call_tool("get-istiod-config-dump", {"pod": "gw-b"}, CallContext())
    assert text(istiods).endswith("[answered by istiod, for pod gw-b]")  # istiod's view, never "by the Envoy"
    through_api = fresh_pods.api.portforwards > forwarded
    assert through_api is (ops.upstreams.gateways.block.access == "portforward")


async def test_a_session_target_is_used_when_no_pod_is_named(ops: OpsServer) -> None:
    assert await ops.session_target() == "gw-a"
    node, origin = await node_of_ctx(ops, CallContext(target="gw-b"))
    assert "gw-b.higress-system" in node and origin == "[answered by pod gw-b]"


async def node_of_ctx(ops: OpsServer, ctx: CallContext) -> tuple[str, str]:
    result = await ops.call_tool("get-envoy-config-dump", {"mask": "bootstrap.node.id"}, ctx)
    return result.content[0]["text"], result.content[-1]["text"]


async def test_the_default_skips_a_pod_that_is_not_ready(ops: OpsServer, fresh_pods: Fleet) -> None:
    fresh_pods.api.set_ready("gw-a", False)
    await ops.upstreams.gateways.pods(max_age=0)  # listings are reused for 2 s; this test does not wait that out
    assert await ops.session_target() == "gw-b"


async def test_an_unknown_pod_is_an_error_naming_it(ops: OpsServer) -> None:
    result = await ops.call_tool("get-envoy-ready", {"pod": "gw-zzz"}, CallContext())
    assert result.is_error and "pod gw-zzz" in text(result) and "list-gateway-pods" in text(result)


async def test_port_forward_streams_are_pooled(fresh_pods: Fleet) -> None:
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=fresh_pods.config("portforward")))
    try:
        before = fresh_pods.api.portforwards
        for _ in range(10):
            for pod in ("gw-a", "gw-b"):
                assert not (await server.call_tool("get-envoy-ready", {"pod": pod}, CallContext())).is_error
        opened = fresh_pods.api.portforwards - before
        assert 2 <= opened <= 4, opened  # one kept-alive stream per pod, not 20
    finally:
        await server.aclose()


async def test_a_pod_that_goes_away_is_named_in_the_error(fresh_pods: Fleet) -> None:
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=fresh_pods.config("portforward")))
    try:
        assert not (await server.call_tool("get-envoy-ready", {"pod": "gw-b"}, CallContext())).is_error
        fresh_pods.api.remove_pod("gw-b")  # its open port-forward stream is cut, as the kubelet does
        gone = await server.call_tool("get-envoy-ready", {"pod": "gw-b"}, CallContext())
        assert gone.is_error and "pod gw-b went away" in text(gone), text(gone)
        assert "127.0.0.1" not in text(gone)
        assert not (await server.call_tool("get-envoy-ready", {"pod": "gw-a"}, CallContext())).is_error
    finally:
        await server.aclose()


async def test_a_sidecar_reads_its_own_pod_locally_and_the_others_forwarded(fresh_pods: Fleet,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "gw-b")  # the downward API in the sidecar overlay
    config = {**fresh_pods.config("portforward"), "envoyAdminURL": fresh_pods.envoys["gw-b"].admin_url}
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=config))
    try:
        assert await server.session_target() == "gw-b"  # its own pod first
        before = fresh_pods.api.portforwards
        node, origin = await node_of(server)
        assert "gw-b.higress-system" in node and origin == "[answered by pod gw-b]"
        assert fresh_pods.api.portforwards == before
        node, origin = await node_of(server, pod="gw-a")
        assert "gw-a.higress-system" in node and fresh_pods.api.portforwards == before + 1
    finally:
        await server.aclose()


async def test_a_pod_that_goes_away_mid_call_is_named(fresh_pods: Fleet) -> None:
    with socket.socket() as slow:  # a pod whose admin port takes the request and has not answered yet
        slow.bind(("127.0.0.1", 0))
        slow.listen()
        fresh_pods.api.add_pod("gw-slow", GATEWAY_LABELS, {15000: slow.getsockname()[1]})
        server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops",
                                       config=fresh_pods.config("portforward")))
        try:
            call = asyncio.ensure_future(server.call_tool("get-envoy-ready", {"pod": "gw-slow"}, CallContext()))
            for _ in range(100):
                if fresh_pods.api.forwards.get("gw-slow"):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert not call.done()
            fresh_pods.api.remove_pod("gw-slow")  # deleted while the call waits on it
            result = await asyncio.wait_for(call, 10)
            assert result.is_error and "pod gw-slow went away during the call" in text(result), text(result)
        finally:
            await server.aclose()


async def test_local_access_reads_envoy_admin_url_and_refuses_other_pods(fresh_pods: Fleet) -> None:
    config = {**fresh_pods.config("local"), "envoyAdminURL": fresh_pods.envoys["gw-b"].admin_url}
    server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=config))
    try:
        node, origin = await node_of(server)
        assert "gw-b.higress-system" in node and origin == "[answered by the local Envoy (envoyAdminURL)]"
        refused = await server.call_tool("get-envoy-ready", {"pod": "gw-a"}, CallContext())
        assert refused.is_error and "gateways.access" in text(refused)
        assert await server.session_target() == "envoyAdminURL"
    finally:
        await server.aclose()


async def test_timeouts_apply_to_every_target_and_name_the_pod(fresh_pods: Fleet) -> None:
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        fresh_pods.api.add_pod("gw-silent", GATEWAY_LABELS, {15000: port},
                               annotations={"higress-ops.io/port": str(port)})
        config = {**fresh_pods.config("direct"), "timeoutSeconds": 1}
        server = OpsServer(ServerEntry(name="ops", path="/p", type="higress-ops", config=config))
        try:
            result = await server.call_tool("get-envoy-ready", {"pod": "gw-silent"}, CallContext())
            assert result.is_error and "Envoy admin of pod gw-silent did not answer /ready within 1s" in text(result)
            assert "127.0.0.1" not in text(result)
        finally:
            await server.aclose()
            fresh_pods.api.remove_pod("gw-silent")


async def test_server_info_summaries_are_kept_per_pod(ops: OpsServer) -> None:
    for pod in ("gw-a", "gw-b", "gw-a"):
        result = await ops.call_tool("get-envoy-server-info", {"pod": pod}, CallContext())
        assert not result.is_error and "extensions" in result.content[0]["text"]
    assert {"gw-a", "gw-b"} <= set(server_info._caches)


async def test_the_pod_argument_cannot_reach_a_path(ops: OpsServer) -> None:
    core = McpCore(ops)
    record = SessionRecord(id="s", server="ops", transport="streamable", protocol_version="2025-06-18")
    for pod in ("../quitquitquit", "gw-a/../../healthcheck/fail", "gw-a?x=1", "GW-A"):
        answer = await core.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
            "name": "get-envoy-ready", "arguments": {"pod": pod}}}, record, CallContext())
        assert answer is not None and answer["error"]["code"] == -32602, (pod, answer)
