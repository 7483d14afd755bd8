"""No answer is cut silently at the object the caller asked for: the note names what was left out (the item the
cut went into, by name) and a request that gets it, and that request works (real Envoy, istiod double)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops.catalog import CATALOG
from higress_ops.servers.ops.views.tools import TOOLS
from tests.support.istio_envoy import BROKEN, HTTPBIN, IstioGateway
from tests.support.istiod import IstiodDouble

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})


def cut_note(result: ToolResult) -> str:
    [note] = [c["text"] for c in result.content if c["text"].startswith("[cut to the ")]
    return note


def asked(note: str, tool: str) -> dict[str, str]:
    """The arguments of the first `Ask with k=v ...` request the note names for `tool`."""
    ask = note.split("Ask with ", 1)[1].split(" for ", 1)[0]
    assert tool, ask
    return dict(re.findall(r"(\w+)=(\S+)", ask))


async def test_a_cut_inside_one_resource_names_it_and_the_mask_that_gets_that_part(
        make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=450)
    name_regex = re.escape(BROKEN)
    result = await ops.call_tool("get-envoy-config-dump", {"resource": "dynamic_active_clusters",
                                                           "name_regex": name_regex}, CallContext())
    note = cut_note(result)
    assert f"/configs/0 ({BROKEN})/cluster/" in note, note  # the cut names the cluster it went into
    follow = asked(note, "get-envoy-config-dump")
    assert follow["resource"] == "dynamic_active_clusters" and follow["name_regex"] == name_regex
    assert follow["mask"].startswith("cluster.")
    part = await ops.call_tool("get-envoy-config-dump", follow, CallContext())
    assert not part.is_error and not any(c["text"].startswith("[cut to the ") for c in part.content), part.content
    [config] = json.loads(part.content[0]["text"])["configs"]
    assert follow["mask"] == "cluster.load_assignment.endpoints", note  # the part the cut went into, alone
    hosts = [e["endpoint"]["address"]["socket_address"]["address"]
             for e in config["cluster"]["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert hosts == ["127.0.0.1", "127.0.0.3"]


async def test_a_cut_inside_one_clusters_hosts_points_to_the_paged_endpoints(
        make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=1200)
    result = await ops.call_tool("get-envoy-clusters", {"format": "json", "name_regex": re.escape(BROKEN)},
                                 CallContext())
    note = cut_note(result)
    assert f"/cluster_statuses/0 ({BROKEN})/host_statuses" in note, note
    assert f"Ask get-envoy-proxy-config type=endpoints cluster={BROKEN} for its hosts in pages." in note
    paged = await ops.call_tool("get-envoy-proxy-config", {"type": "endpoints", "cluster": BROKEN, "limit": 1},
                                CallContext())
    assert paged.structured is not None and paged.structured["total"] == 2
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=8000)  # a cluster's text lines fit
    text = await ops.call_tool("get-envoy-clusters", {}, CallContext())
    note = cut_note(text)
    # the cut lands inside a cluster's lines, or (rarely: Envoy's order varies) between two clusters
    cut_in = re.search(r"kept \d+ of \d+ lines; ((\S+) is cut inside \(\d+ of its lines left out\), \d+ more "
                       r"clusters after it|\d+ clusters left out from (\S+))\.", note)
    assert cut_in, note
    name = cut_in[2] or cut_in[3]
    assert "Ask with name_regex=<RE2 of cluster names> for fewer clusters." in note
    follow = asked(note, "get-envoy-clusters")
    assert follow == {"name_regex": re.escape(name)}
    one = await ops.call_tool("get-envoy-clusters", follow, CallContext())
    lines = one.content[0]["text"].splitlines()
    assert {line.split("::")[0] for line in lines} == {name} and len(lines) > 10
    assert not any(c["text"].startswith("[cut to the ") for c in one.content), one.content[1:]


async def test_every_raw_tool_says_how_to_ask_for_less_with_its_own_arguments() -> None:
    params = {e.name: {p.name for p in e.params} for e in CATALOG}
    tools = set(params) | {t.spec.name for t in TOOLS}
    for entry in CATALOG:
        for hint in filter(None, (entry.narrow, *entry.one)):
            named = re.findall(r"(?:Ask|Use|use|ask) (get-[a-z-]+|check-certs)", hint)
            assert set(named) <= tools, (entry.name, hint)
            if not named:  # the entry's own arguments
                assert {k for k in re.findall(r"(\w+)=", hint)} <= params[entry.name], (entry.name, hint)
    assert {e.name for e in CATALOG if not e.narrow} == {
        "get-istiod-clusters", "get-istiod-version", "get-envoy-runtime", "get-envoy-memory", "get-envoy-ready",
        "get-envoy-hot-restart-version"}  # small answers with no narrower form: the note says maxResponseBytes


async def test_istiods_whole_documents_cut_say_which_filter_narrows_them(
        make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=1500)
    result = await ops.call_tool("get-istiod-registryz", {}, TOKEN)
    note = cut_note(result)
    assert "Ask with hostname= or namespace= for fewer services." in note, note
    one = await ops.call_tool("get-istiod-registryz", {"hostname": HTTPBIN.split("|")[3]}, TOKEN)
    assert not any(c["text"].startswith("[cut to the ") for c in one.content), one.content[1:]


async def test_a_table_too_long_for_the_budget_shows_whole_rows_and_the_next_page(
        make_server: Any, gateway: IstioGateway, istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=1500)
    first = await ops.call_tool("get-envoy-proxy-config", {"type": "routes", "limit": 1000}, CallContext())
    text = first.content[0]["text"]
    assert len(text.encode()) <= 1500 and first.structured is not None
    total, shown = first.structured["total"], len(first.structured["rows"])
    page = re.search(r"\[rows 1-(\d+) of (\d+), fewer to stay within maxResponseBytes 1500; next page: "
                     r"offset=(\d+) limit=(\d+)\]", text)
    assert page and int(page[1]) == shown == int(page[3]) == int(page[4]) and int(page[2]) == total > shown, text
    assert len(text.splitlines()) == shown + 2  # the header, the rows, the footer: no row cut in half
    second = await ops.call_tool("get-envoy-proxy-config", {"type": "routes", "offset": shown, "limit": shown},
                                 CallContext())
    assert second.structured is not None and second.structured["rows"] != first.structured["rows"]


async def test_type_all_says_which_tables_were_left_out(make_server: Any, gateway: IstioGateway,
                                                        istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=3000)
    result = await ops.call_tool("get-envoy-proxy-config", {"type": "all"}, CallContext())
    text = result.content[0]["text"]
    assert len(text.encode()) <= 3000 and text.startswith("--- clusters ---")
    partial = re.search(r"\[(\w+): rows 1-(\d+) of (\d+) shown; the rest: type=\1 offset=\2\]", text)
    assert partial and int(partial[2]) < int(partial[3]), text
    order = ["clusters", "listeners", "routes", "endpoints", "secrets"]
    for after in order[order.index(partial[1]) + 1:]:  # every later table: its size and the request that shows it
        assert re.search(rf"--- {after}: \d+ rows left out to stay within maxResponseBytes; ask type={after} ---",
                         text), after


async def test_endpointz_cut_inside_one_service_names_it(make_server: Any, gateway: IstioGateway,
                                                         istiod: IstiodDouble) -> None:
    ops = make_server(gateway.admin_url, istiod.url, maxResponseBytes=900)
    note = cut_note(await ops.call_tool("get-istiod-endpointz", {}, TOKEN))
    follow = asked(note, "get-istiod-endpointz")
    assert set(follow) == {"hostname"} and f"Ask with hostname={follow['hostname']} for that service alone." in note
    one = await ops.call_tool("get-istiod-endpointz", follow, TOKEN)
    assert list(json.loads(one.content[0]["text"])) == [follow["hostname"]]
