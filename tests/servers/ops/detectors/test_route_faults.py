"""Faults in the route configuration, each request sent through the real Envoy first: find-route's verdict is
Envoy's status (and response flag), with the route or domain to fix."""

from __future__ import annotations

import pytest

from tests.servers.ops.detectors.conftest import find_route, findings, health_section
from tests.support.fault_envoy import FaultGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
DOWN = "http://127.0.0.1:9"


async def test_a_shadowed_route_is_named_though_the_request_answers(fgw: FaultGateway, make_server):
    status = fgw.send("/api/v2/users")
    server = make_server(fgw.admin_url, DOWN)
    got, reason, answer = await find_route(server, fgw, "/api/v2/users")
    assert (got, reason) == (str(status[0]), "shadowed_route") and status == (200, "-"), answer["text"]
    [f] = findings(answer, "shadowed-route")
    assert f["message"].startswith("route #4 (/api*) shadows route #5 (/api/v2*)")
    assert "route #4 -> cluster api-v1" in f["evidence"]
    sec = await health_section(server, "shadowed-route")
    assert any("route #5 api/v2" in line and "shadows route #5" in line for line in sec["shown"]), sec


async def test_a_request_for_the_shadowing_route_itself_is_just_routed(fgw: FaultGateway, make_server):
    server = make_server(fgw.admin_url, DOWN)
    assert fgw.send("/api/v1/users") == (200, "-")
    status, reason, answer = await find_route(server, fgw, "/api/v1/users")
    assert (status, reason) == ("200", "routed") and not findings(answer, "shadowed-route"), answer["text"]


async def test_no_route_names_the_condition_that_failed(fgw: FaultGateway, make_server):
    assert fgw.send("/hdr") == (404, "NR")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/hdr")
    assert (status, reason) == ("404", "no_route"), answer["text"]
    [f] = findings(answer, "no-route")
    assert "route #6 hdr (/hdr*): header x-api-version exact 2026-04: not sent" in f["evidence"]
    status, _, answer = await find_route(server, fgw, "/hdr", headers={"x-api-version": "2026-04"})
    assert fgw.send("/hdr", headers={"x-api-version": "2026-04"})[0] == int(status) == 404
    [f] = findings(answer, "no-route")
    assert "route #6 hdr (/hdr*): query debug present: not sent" in f["evidence"]
    assert fgw.send("/hdr?debug", headers={"x-api-version": "2026-04"})[0] == 200
    assert (await find_route(server, fgw, "/hdr?debug", headers={"x-api-version": "2026-04"}))[:2] == \
        ("200", "routed")


async def test_every_route_line_prints_its_header_and_query_conditions(fgw: FaultGateway, make_server):
    server = make_server(fgw.admin_url, DOWN)
    _, _, answer = await find_route(server, fgw, "/hdr?debug=1", headers={"x-api-version": "2026-04"})
    assert "match /hdr* [header x-api-version exact 2026-04, query debug present]" in answer["text"]


async def test_no_virtual_host_suggests_the_nearest_domain(fgw: FaultGateway, make_server):
    assert fgw.send("/", host="auth.exmaple.com") == (404, "NR")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/", host="auth.exmaple.com")
    assert (status, reason) == ("404", "no_virtual_host"), answer["text"]
    [f] = findings(answer, "no-virtual-host")
    assert "did you mean auth.example.com?" in f["message"]


async def test_an_https_redirect_for_a_request_that_came_over_tls_loops(fgw: FaultGateway, make_server):
    headers = {"x-forwarded-proto": "https"}
    assert fgw.send("/loop", headers=headers) == (301, "-")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/loop", headers=headers)
    assert (status, reason) == ("301", "redirect_loop"), answer["text"]
    [f] = findings(answer, "redirect-loop")
    assert "https://shop.example.com/loop is the request's own URL" in f["message"]
    status, reason, answer = await find_route(server, fgw, "/loop")  # plain http: one redirect, no loop
    assert (status, reason) == ("301", "redirect") and "to https://shop.example.com/loop" in answer["text"]


async def test_a_redirect_to_itself_is_a_loop_gateway_wide(fgw: FaultGateway, make_server):
    assert fgw.send("/self") == (302, "-")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, _ = await find_route(server, fgw, "/self")
    assert (status, reason) == ("302", "redirect_loop")
    sec = await health_section(server, "redirect-loop")
    assert any("route #8 self" in line and "/self redirects to itself" in line for line in sec["shown"])


async def test_redirects_and_direct_responses_have_no_timeout(fgw: FaultGateway, make_server):
    server = make_server(fgw.admin_url, DOWN)
    assert fgw.send("/teapot") == (418, "-")
    status, reason, answer = await find_route(server, fgw, "/teapot")
    assert (status, reason) == ("418", "direct_response")
    assert "answers itself with 418, body \"I'm a teapot: short and stout\"" in answer["text"]
    for path in ("/teapot", "/loop", "/self"):
        text = (await find_route(server, fgw, path))[2]["text"]
        assert "timeout" not in text, text
    text = (await find_route(server, fgw, "/ok"))[2]["text"]
    assert "timeout 15s (default)" in text
