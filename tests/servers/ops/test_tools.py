"""All 18 raw tools and their parameters against a real Envoy and the istiod double."""

from __future__ import annotations

import json
from typing import Any

import pytest

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import OpsServer
from higress_ops.servers.ops.catalog import CATALOG
from tests.support.istio_envoy import IstioGateway
from tests.support.istiod import IstiodDouble

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

TOKEN = CallContext(headers={"x-istiod-token": "good-token"})
NO_TOKEN = CallContext()
README_TOOLS = [
    "get-istiod-configz", "get-istiod-endpointz", "get-istiod-clusters", "get-istiod-registryz", "get-istiod-syncz",
    "get-istiod-metrics", "get-istiod-version", "get-istiod-debug-vars", "get-envoy-config-dump",
    "get-envoy-listeners", "get-envoy-clusters", "get-envoy-stats", "get-envoy-runtime", "get-envoy-memory",
    "get-envoy-server-info", "get-envoy-ready", "get-envoy-hot-restart-version", "get-envoy-certs",
]


@pytest.fixture
def ops(make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> OpsServer:
    return make_server(gateway.admin_url, istiod.url)


def text(result: ToolResult) -> str:
    return "".join(part["text"] for part in result.content)


def answer(result: ToolResult) -> list[dict[str, Any]]:
    """The content without the last line naming the Envoy that answered (which every Envoy tool adds)."""
    *rest, origin = result.content
    assert origin["text"].startswith("[answered by "), origin
    return [dict(part) for part in rest]


def body(result: ToolResult) -> Any:
    assert not result.is_error, text(result)
    return json.loads(result.content[0]["text"])


async def call(ops: OpsServer, name: str, ctx: CallContext = TOKEN, **args: Any) -> ToolResult:
    return await ops.call_tool(name, args, ctx)


async def test_the_readme_tools_come_first_with_read_only_annotations(ops: OpsServer) -> None:
    specs = list(ops.tools())
    assert [s.name for s in specs[:18]] == README_TOOLS
    assert [s.name for s in specs[18:]] == ["get-envoy-proxy-config", "get-istiod-proxy-status",
                                            "get-istiod-config-dump", "find-route", "get-gateway-health",
                                            "check-certs", "describe-cluster", "what-changed", "analyze",
                                            "list-gateway-pods", "compare-gateway-pods"]
    reads_envoy = {s.name for s in specs if s.name.startswith("get-envoy-")} | {
        "get-istiod-config-dump", "find-route", "get-gateway-health", "check-certs", "describe-cluster", "analyze"}
    assert {s.name for s in specs if "pod" in s.input_schema["properties"]} == reads_envoy
    for spec in specs:
        assert spec.annotations is not None and spec.annotations["readOnlyHint"] is True
        assert spec.annotations["destructiveHint"] is False and spec.annotations["openWorldHint"] is False
        assert spec.title and spec.input_schema["additionalProperties"] is False
        assert len(spec.description) > 40
    assert ops.instructions == "ops under test"
    assert len({e.path for e in CATALOG}) == 18


async def test_istiod_tools(ops: OpsServer, istiod: IstiodDouble) -> None:
    configz = body(await call(ops, "get-istiod-configz"))
    assert {c["kind"] for c in configz} == {"Gateway", "VirtualService", "DestinationRule", "WasmPlugin"}
    assert "httpbin.default.svc.cluster.local" in body(await call(ops, "get-istiod-endpointz"))
    clusters = await call(ops, "get-istiod-clusters")
    assert clusters.structured == {"items": [{"id": "Kubernetes", "secretName": "", "syncStatus": "synced"}]}
    assert body(await call(ops, "get-istiod-registryz"))[0]["hostname"] == "httpbin.default.svc.cluster.local"
    syncz = await call(ops, "get-istiod-syncz")
    assert syncz.structured is not None and len(syncz.structured["items"]) == 2
    only = await call(ops, "get-istiod-syncz", namespace="team-a")
    assert [p["proxy"] for p in only.structured["items"]] == ["other-gw.team-a"]  # type: ignore[index]
    assert istiod.requests[-1].query == {"namespace": ["team-a"]}
    metrics = await call(ops, "get-istiod-metrics")
    assert 'pilot_xds_pushes{type="cds"} 12' in text(metrics)
    assert text(await call(ops, "get-istiod-version")) == "1.27.0-3e6a2c1b-Clean"


async def test_debug_vars_reads_the_real_debug_state(ops: OpsServer, istiod: IstiodDouble) -> None:
    result = await call(ops, "get-istiod-debug-vars")
    assert not result.is_error
    note, data = result.content[0]["text"], json.loads(result.content[1]["text"])
    assert "/debug/vars" in note and "404" in note and "/debug/push_status" in note
    assert data["/debug/connections"]["totalClients"] == 2
    assert [r.path for r in istiod.requests[-3:]] == ["/debug/vars", "/debug/push_status", "/debug/connections"]


async def test_401_says_how_to_get_a_token(ops: OpsServer, istiod: IstiodDouble) -> None:
    result = await call(ops, "get-istiod-syncz", NO_TOKEN)
    assert result.is_error
    message = text(result)
    assert "401" in message and "kubectl create token higress-gateway -n higress-system --audience istio-ca" in message
    assert "X-Istiod-Token" in message
    assert "authorization" not in istiod.requests[-1].headers
    bad = await call(ops, "get-istiod-configz", CallContext(headers={"x-istiod-token": "forged"}))
    assert bad.is_error and istiod.requests[-1].headers["authorization"] == "Bearer forged"


async def test_config_token_is_the_fallback(make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, istiodToken="good-token")
    assert not (await call(ops, "get-istiod-syncz", NO_TOKEN)).is_error
    header_wins = await call(ops, "get-istiod-syncz", CallContext(headers={"x-istiod-token": "forged"}))
    assert header_wins.is_error


async def test_a_token_with_a_control_character_is_refused_before_sending(ops: OpsServer,
                                                                          istiod: IstiodDouble) -> None:
    before = len(istiod.requests)
    result = await call(ops, "get-istiod-syncz", CallContext(headers={"x-istiod-token": "good-token\x01"}))
    assert result.is_error and "control character" in text(result) and "good-token" not in text(result)
    assert len(istiod.requests) == before


async def test_upstreams_by_host_name(make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url.replace("127.0.0.1", "localhost"), istiod.url.replace("127.0.0.1", "localhost"))
    assert answer(await call(ops, "get-envoy-ready"))[0]["text"].strip() == "LIVE"
    assert not (await call(ops, "get-istiod-version")).is_error


async def test_the_token_never_reaches_envoy(make_server: Any, istiod: IstiodDouble) -> None:
    from tests.support.istiod import istiod_double

    with istiod_double() as fake_envoy:  # a recording server standing where Envoy's admin would be
        ops = make_server(fake_envoy.url, istiod.url)
        await call(ops, "get-envoy-server-info")
        await call(ops, "get-envoy-stats", filter="x")
        assert [r.path for r in fake_envoy.requests] == ["/server_info", "/stats"]
        assert all("authorization" not in r.headers and "x-istiod-token" not in r.headers
                   for r in fake_envoy.requests)
        assert {r.method for r in fake_envoy.requests} == {"GET"}


@pytest.mark.parametrize(("section", "dump_type"), [
    ("listeners", "ListenersConfigDump"), ("clusters", "ClustersConfigDump"), ("routes", "RoutesConfigDump"),
    ("secrets", "SecretsConfigDump"), ("bootstrap", "BootstrapConfigDump"), ("endpoints", "EndpointsConfigDump"),
    ("scoped_routes", "ScopedRoutesConfigDump"),
])
async def test_config_dump_sections(ops: OpsServer, section: str, dump_type: str) -> None:
    result = await call(ops, "get-envoy-config-dump", resource=section)
    configs = body(result)["configs"]
    assert [c["@type"].rsplit(".", 1)[-1] for c in configs] == [dump_type]


async def test_config_dump_parameters(ops: OpsServer) -> None:
    ecds = await call(ops, "get-envoy-config-dump", resource="ecds")
    assert not ecds.is_error and "no ecds section" in text(ecds)
    field = body(await call(ops, "get-envoy-config-dump", resource="dynamic_active_clusters"))
    names = [c["cluster"]["name"] for c in field["configs"]]
    assert "outbound|8000||httpbin.default.svc.cluster.local" in names and len(names) >= 8
    regex = body(await call(ops, "get-envoy-config-dump", resource="dynamic_active_clusters",
                            name_regex=".*reviews.*"))
    assert sorted(c["cluster"]["name"].split("|")[2] for c in regex["configs"]) == ["v1", "v2"]
    masked = body(await call(ops, "get-envoy-config-dump", resource="bootstrap", mask="bootstrap.node.id"))
    boot = masked["configs"][0]["bootstrap"]
    assert boot == {"node": {"id": boot["node"]["id"]}} and boot["node"]["id"].startswith("router~")
    unknown = await call(ops, "get-envoy-config-dump", resource="no_such_field")
    assert unknown.is_error and "404" in text(unknown)
    bad_regex = await call(ops, "get-envoy-config-dump", name_regex="(")
    assert bad_regex.is_error and "not a valid regular expression" in text(bad_regex)
    with_eds = body(await call(ops, "get-envoy-config-dump", include_eds=True, mask="dynamic_endpoint_configs"))
    assert any(c["@type"].endswith("EndpointsConfigDump") for c in with_eds["configs"])


async def test_listeners_and_clusters_formats(ops: OpsServer) -> None:
    assert "0.0.0.0_443::127.0.0.1:" in text(await call(ops, "get-envoy-listeners"))
    listeners = body(await call(ops, "get-envoy-listeners", format="json"))
    assert {s["name"] for s in listeners["listener_statuses"]} >= {"0.0.0.0_80", "0.0.0.0_443"}
    clusters_text = text(await call(ops, "get-envoy-clusters", format="text"))
    assert "outbound|80||broken.default.svc.cluster.local::" in clusters_text
    clusters = body(await call(ops, "get-envoy-clusters", format="json"))
    assert any(c["name"].startswith("outbound|8000||httpbin") for c in clusters["cluster_statuses"])


async def test_stats_parameters(ops: OpsServer) -> None:
    stats = body(await call(ops, "get-envoy-stats", filter="cluster.*", format="json"))
    assert stats["stats"] and all("cluster" in s["name"] for s in stats["stats"] if "name" in s)
    prom = text(await call(ops, "get-envoy-stats", format="prometheus", filter="server.live"))
    assert "# TYPE envoy_server_live gauge" in prom
    counters = body(await call(ops, "get-envoy-stats", format="json", type="Counters", filter="^server\\."))
    assert counters["stats"] and all(not isinstance(s.get("value"), str) for s in counters["stats"])
    used = text(await call(ops, "get-envoy-stats", usedonly=True, filter="^server\\."))
    everything = text(await call(ops, "get-envoy-stats", filter="^server\\."))
    assert 0 < len(used.splitlines()) < len(everything.splitlines())
    bad = await call(ops, "get-envoy-stats", filter="[")
    assert bad.is_error and "filter" in text(bad)


async def test_status_tools(ops: OpsServer) -> None:
    runtime = await call(ops, "get-envoy-runtime")
    assert runtime.structured is not None and "higress.test.flag" in runtime.structured["entries"]
    memory = await call(ops, "get-envoy-memory")
    assert memory.structured is not None and int(memory.structured["allocated"]) > 0
    info = body(await call(ops, "get-envoy-server-info"))
    assert info["state"] == "LIVE" and info["version"].count("/") >= 3
    assert answer(await call(ops, "get-envoy-ready"))[0]["text"].strip() == "LIVE"
    assert text(await call(ops, "get-envoy-hot-restart-version")).strip()
    certs = await call(ops, "get-envoy-certs")
    assert certs.structured is not None
    sans = json.dumps(certs.structured["certificates"])
    assert "httpbin.example.com" in sans and "days_until_expiration" in sans


async def test_server_info_shows_extensions_by_name_unless_asked_for_all(ops: OpsServer) -> None:
    default = await call(ops, "get-envoy-server-info")
    names = body(default)["node"]["extensions"]
    assert "envoy.filters.http.router" in names["envoy.filters.http"]
    total = sum(len(v) for v in names.values())
    note = answer(default)[-1]["text"]
    assert f"{total} extensions" in note and "extensions=full" in note and total > 300
    full = await call(ops, "get-envoy-server-info", extensions="full")  # ~100 KB: over this server's 64 KB budget
    entries = body(full)["node"]["extensions"]
    assert isinstance(entries, list) and all("type_urls" in e for e in entries)
    assert f"/node/extensions: kept {len(entries)} of {total} items" in answer(full)[-1]["text"]
    assert len(default.content[0]["text"]) * 2 < len(full.content[0]["text"])
    counts = body(await call(ops, "get-envoy-server-info", extensions="counts"))["node"]["extensions"]
    assert counts == {category: len(v) for category, v in names.items()}


async def test_config_dump_summarises_the_bootstrap_extensions_unless_asked_for_all(make_server: Any,
                                                                                     gateway: IstioGateway,
                                                                                     istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=1 << 20)
    default = await call(ops, "get-envoy-config-dump")
    full = await call(ops, "get-envoy-config-dump", extensions="full")
    node = body(default)["configs"][0]["bootstrap"]["node"]
    entries = body(full)["configs"][0]["bootstrap"]["node"]["extensions"]
    assert isinstance(entries, list) and len(entries) > 300
    assert sum(len(v) for v in node["extensions"].values()) == len(entries)
    assert "envoy.filters.http.router" in node["extensions"]["envoy.filters.http"]
    note = next(c["text"] for c in default.content[1:] if "node.extensions" in c["text"])
    assert "bootstrap node.extensions" in note and "extensions=full" in note
    assert len(default.content[0]["text"]) * 2 < len(full.content[0]["text"])  # the list was most of the answer
    assert body(default)["configs"][1:] == body(full)["configs"][1:]  # every other section as Envoy sent it


async def test_every_result_fits_the_budget(make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=4096)
    for name, args in (("get-envoy-config-dump", {}), ("get-envoy-server-info", {}), ("get-envoy-stats", {}),
                       ("get-envoy-clusters", {"format": "json"})):
        result = await call(ops, name, **args)
        assert not result.is_error
        payload = sum(len(part["text"].encode()) for part in answer(result)[:-1])
        assert payload <= 4096, (name, payload)
        assert "maxResponseBytes" in answer(result)[-1]["text"], name


async def test_a_mask_into_a_list_is_explained_with_a_request_that_works(ops: OpsServer) -> None:
    refused = await call(ops, "get-envoy-config-dump", mask="dynamic_active_clusters.cluster.name")
    assert refused.is_error and "cannot select inside lists" in text(refused)
    example = "resource=dynamic_active_clusters mask=cluster.name"
    assert example in text(refused)
    names = body(await call(ops, "get-envoy-config-dump", resource="dynamic_active_clusters", mask="cluster.name"))
    assert names["configs"] and all(set(c["cluster"]) == {"@type", "name"} for c in names["configs"])


async def test_include_eds_with_the_clusters_section_keeps_the_endpoints(ops: OpsServer) -> None:
    dump = body(await call(ops, "get-envoy-config-dump", resource="clusters", include_eds=True))
    kinds = {c["@type"].rsplit(".", 1)[1] for c in dump["configs"]}
    assert kinds == {"ClustersConfigDump", "EndpointsConfigDump"}
