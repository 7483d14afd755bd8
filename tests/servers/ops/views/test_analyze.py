"""The analyze tool over the lint world: findings worst first and paged, istioctl's selection (threshold, codes,
kinds, suppression rules and annotations), precise errors for bad arguments, and what it says when istiod is
down."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.detectors import ANALYZE, DETECTORS, LINTS
from higress_ops.servers.ops.views.configz import SUPPRESS
from tests.support.lint_world import World

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]
TOKEN = CallContext(headers={"x-istiod-token": "good-token"})
RANK = {"error": 0, "warning": 1, "info": 2}


async def analyze(server: Any, **args: Any) -> Any:
    result = await server.call_tool("analyze", args, TOKEN)
    assert not result.is_error, result.content
    return result


async def every_page(server: Any, **args: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = (await analyze(server, offset=offset, **args)).structured
        found += page["findings"]
        offset = page["next_offset"]
    return found


async def test_findings_come_worst_first_in_pages(world: World, make_server) -> None:
    server = make_server(world.gateway.admin_url, world.istiod.url)
    first = await analyze(server, limit=8)
    text, page = first.content[0]["text"], first.structured
    counts = page["counts"]
    assert page["total"] == sum(counts.values()) > 40 and counts["error"] and counts["warning"] and counts["info"]
    assert text.startswith(f"analyze: {page['total']} finding(s): {counts['error']} error, {counts['warning']} "
                           f"warning, {counts['info']} info ({len(ANALYZE)} detectors)")
    assert page["shown"] == 8 and page["next_offset"] == 8
    assert f"[findings 1-8 of {page['total']}; next page: offset=8 limit=8]" in text
    for f in page["findings"]:  # each line: [severity CODE] object: message Fix: fix
        code = f" {f['code']}" if "code" in f else ""
        assert f"[{f['severity']}{code}] {f['object']}: {f['message'][:60]}" in text
    everything = await every_page(server, limit=8)
    assert len(everything) == page["total"] and everything[:8] == page["findings"]
    assert [RANK[f["severity"]] for f in everything] == sorted(RANK[f["severity"]] for f in everything)
    assert len({(f["detector"], f["object"], f["message"]) for f in everything}) == len(everything)
    # Both kinds of detectors ran: the live ones of find-route and gateway health, and the lints.
    assert {f["detector"] for f in everything} & {d.name for d in DETECTORS}
    assert len({f["detector"] for f in everything} & {d.name for d in LINTS}) >= 12


async def test_threshold_codes_kinds_and_names(world: World, make_server) -> None:
    server = make_server(world.gateway.admin_url, world.istiod.url)
    errors = await every_page(server, severity="error")
    assert errors and {f["severity"] for f in errors} == {"error"}
    warnings = await every_page(server, severity="warning")
    assert {f["severity"] for f in warnings} == {"error", "warning"} and len(warnings) > len(errors)
    codes = await every_page(server, codes=["IST0101", "IST0145"])
    assert {f["code"] for f in codes} == {"IST0101", "IST0145"}
    rules = await every_page(server, kinds=["destinationrule"], namespace="shop", name="or")
    assert {f["object"] for f in rules} == {"DestinationRule shop/orders"}


async def test_suppression_rules_and_annotations(world: World, make_server) -> None:
    server = make_server(world.gateway.admin_url, world.istiod.url)
    every = await every_page(server)
    assert [f for f in every if f["object"] == "Service shop/inventory"]
    quiet = await every_page(server, suppress=["IST0118=Service shop/*"])
    assert not [f for f in quiet if f["object"] == "Service shop/inventory"] and len(quiet) == len(every) - 1
    assert len(await every_page(server, suppress=["*=EnvoyFilter higress-system/bad-*"])) == len(every) - 3
    saved = copy.deepcopy(world.istiod.state["/debug/configz"])
    rules = next(o for o in world.istiod.state["/debug/configz"] if o["metadata"]["name"] == "rules")
    rules["metadata"]["annotations"] = {SUPPRESS: "IST0130, IST0131"}  # istioctl's per-resource annotation
    try:
        annotated = await every_page(server)
    finally:
        world.istiod.state["/debug/configz"] = saved
    assert not [f for f in annotated if f["object"] == "VirtualService shop/rules"]
    assert len(annotated) == len(every) - 4


@pytest.mark.parametrize(("args", "says"), [
    ({"detectors": ["istio-nothing"]}, "unknown detector(s) istio-nothing; analyze runs: missing-cluster, "),
    ({"severity": "fatal"}, "'severity' must be one of error, warning, info, got 'fatal'"),
    ({"codes": ["404"]}, "'codes' takes Istio message codes like IST0101, got 404"),
    ({"suppress": ["IST0101"]}, "'suppress' rules look like CODE=Kind namespace/name"),
    ({"namespace": "x" * 300}, "'namespace' must be a string of at most 253 characters"),
    ({"limit": 500}, "'limit' must be an integer from 1 to 200, got 500"),
])
async def test_bad_arguments_say_what_is_wrong(world: World, make_server, args: dict[str, Any], says: str) -> None:
    server = make_server(world.gateway.admin_url, world.istiod.url)
    result = await server.call_tool("analyze", args, TOKEN)
    assert result.is_error and says in result.content[0]["text"]


async def test_without_istiod_the_envoy_checks_still_run(world: World, make_server) -> None:
    server = make_server(world.gateway.admin_url, "http://127.0.0.1:9")
    result = await analyze(server, limit=200)
    text, page = result.content[0]["text"], result.structured
    needs_istiod = {d.name for d in LINTS if "istiod" in d.sources}
    assert set(page["not_checked"]) == needs_istiod
    envoy_only = {d.name for d in DETECTORS} | {d.name for d in LINTS if d.sources == ("envoy",)}
    assert page["findings"] and {f["detector"] for f in page["findings"]} <= envoy_only
    assert f"; {len(needs_istiod)} could not run: see the end)" in text.splitlines()[0]
    [line] = [line for line in text.splitlines() if line.startswith("not checked (")]
    why = line.split("(", 1)[1].split("): ", 1)[0]
    assert "127.0.0.1:9" in why and f"): {len(needs_istiod)} detector(s): destinationrule-tls-port, " in line
