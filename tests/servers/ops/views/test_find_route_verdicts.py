"""find-route's `verdict:` line equals the status the real Envoy answers, one case per rule.

Each case first sends the real request through the listener (so counters such as connect failures are
what an on-call engineer would see after the first failures), then asks find-route through the ops server
and compares the machine-readable last line with Envoy's status.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.views.find_route import find_route, render, verdict_line
from higress_ops.servers.ops.views.matching import Request
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def ask(make_server: Any, gw: VerdictGateway, **args: Any) -> tuple[str, str, dict[str, Any]]:
    """(status, reason) from find-route's last line, and the structured answer."""
    server = make_server(gw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("find-route", args, CallContext())
    text = result.content[0]["text"]
    last = text.rstrip("\n").splitlines()[-1]
    assert last.startswith("verdict: "), text
    _, status, reason = last.split(" ", 2)
    return status, reason, {"text": text, **(result.structured or {})}


# (listener, Host header, path, expected reason): the status is always Envoy's own.
CASES = [
    ("plain", "app.example.com", "/ok", "routed"),
    ("plain", "app.example.com:9999", "/ok", "no_virtual_host"),  # the port is part of the host here
    ("strip_any", "app.example.com:9999", "/ok", "routed"),  # strip_any_host_port
    ("strip_matching", "app.example.com:9999", "/ok", "no_virtual_host"),  # another port: kept
    ("strip_matching", "app.example.com:{port}", "/ok", "routed"),  # the listener's own port: stripped
    ("plain", "app.example.com", "/panic", "panic_mode"),  # every host fails HC, all still answer
    ("plain", "app.example.com", "/nopanic", "no_healthy_upstream"),  # same, panic threshold 0
    ("plain", "app.example.com", "/half", "routed"),  # 1 of 2 healthy: 50% is not below 50%
    ("plain", "app.example.com", "/eds-unhealthy", "panic_mode"),
    ("plain", "app.example.com", "/closed", "upstream_connect_failure"),
    ("plain", "app.example.com", "/closed-hc", "no_healthy_upstream"),
    ("plain", "app.example.com", "/slow", "route_timeout"),  # every host times out: the route's timeout
    ("plain", "app.example.com", "/missing", "cluster_not_found"),
    ("plain", "app.example.com", "/missing-port", "cluster_not_found"),
    ("plain", "app.example.com", "/outlier", "upstream_5xx"),  # the host's own 503, ejected or not
    ("plain", "app.example.com", "/excluded", "panic_mode"),  # every host excluded: panic still uses them
    ("plain", "app.example.com", "/redirect", "redirect"),
    ("plain", "app.example.com", "/https", "redirect"),
    ("plain", "app.example.com", "/direct", "direct_response"),
    ("plain", "other.example.com", "/ok", "no_virtual_host"),
    ("plain", "app.example.com", "/re/aaab", "direct_response"),  # safe_regex, full match
    ("plain", "app.example.com", "/re/" + "a" * 900 + "c", "no_route"),  # linear in RE2; years in Python's re
    ("tcp", "anything", "/x", "tcp_proxy"),
]


@pytest.mark.parametrize(("listener", "host", "path", "reason"), CASES)
async def test_verdict_is_the_status_envoy_answered(vgw, make_server, listener, host, path, reason):
    host = host.format(port=vgw.ports[listener])
    answered = vgw.send(listener, host, path)
    status, got_reason, answer = await ask(make_server, vgw, host=host, path=path, port=vgw.ports[listener])
    assert (status, got_reason) == (str(answered), reason), answer["text"]


async def test_unreachable_endpoint_names_the_failing_address(vgw, make_server):
    vgw.send("plain", "app.example.com", "/closed")
    _, _, answer = await ask(make_server, vgw, host="app.example.com", path="/closed", port=vgw.ports["plain"])
    assert f"connections to 127.0.0.1:{vgw.closed_port} failing" in answer["text"]


async def test_endpoint_lines_never_say_healthy_for_a_host_envoy_will_not_pick(vgw, make_server):
    _, _, answer = await ask(make_server, vgw, host="app.example.com", path="/nopanic", port=vgw.ports["plain"])
    [cluster] = answer["matches"][0]["clusters"]
    assert cluster["healthy"] == 0 and cluster["total"] == 2
    assert [e["flags"] for e in cluster["endpoints"]] == [["failed_active_hc"]] * 2
    assert "0/2 hosts healthy" in answer["text"] and "HEALTHY" not in answer["text"]
    lines = [line.strip() for line in answer["text"].splitlines() if line.startswith("    127.0.0.1:")]
    assert len(lines) == 2 and all(line.endswith(" unhealthy (failed_active_hc)") for line in lines)


async def test_slow_route_shows_its_timeout(vgw, make_server):
    vgw.send("plain", "app.example.com", "/slow")
    _, _, answer = await ask(make_server, vgw, host="app.example.com", path="/slow", port=vgw.ports["plain"])
    assert "timeout 0.300s" in answer["text"] and "retries none" in answer["text"]


async def test_without_port_one_verdict_per_listener_port_the_likely_one_first(vgw, make_server):
    _, _, answer = await ask(make_server, vgw, host="app.example.com:9999", path="/ok")
    ports = [m["port"] for m in answer["matches"]]
    assert sorted(ports) == sorted(vgw.ports.values())
    assert answer["matches"][0]["port"] == vgw.ports["strip_any"]  # the only one whose virtual host matches
    assert answer["text"].rstrip().endswith("verdict: 200 routed")


async def test_an_ejected_host_says_so_and_panic_mode_still_reaches_it(vgw, make_server):
    for _ in range(2):
        assert vgw.send("plain", "app.example.com", "/outlier") == 503
    status, reason, answer = await ask(make_server, vgw, host="app.example.com", path="/outlier",
                                       port=vgw.ports["plain"])
    assert (status, reason) == ("503", "upstream_5xx")
    [cluster] = answer["matches"][0]["clusters"]
    assert cluster["panic"] and cluster["endpoints"][0]["flags"] == ["outlier_ejected"]
    assert "outlier_ejected" in answer["text"] and "codes {503: " in answer["text"]


@pytest.fixture(scope="module")
def vgw_inputs(vgw: VerdictGateway) -> tuple[Any, Any]:
    admin = vgw.admin_url
    return requests.get(f"{admin}/config_dump", timeout=10).json(), \
        requests.get(f"{admin}/clusters?format=json", timeout=10).json()


@settings(deadline=None, derandomize=True, max_examples=400, database=None, suppress_health_check=list(HealthCheck))
@given(host=st.sampled_from(["app.example.com", "app.example.com:9999", "[::1]:80", "", ":", "a:99999"])
       | st.text(max_size=30),
       path=st.sampled_from(["/ok", "/panic", "/closed", "/redirect", "/"]) | st.text(max_size=20),
       headers=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
       port=st.none() | st.integers(0, 65535))
def test_any_request_gets_one_verdict_line(vgw_inputs: tuple[Any, Any], host: str, path: str,
                                           headers: dict[str, str], port: int | None) -> None:
    dump, clusters_json = vgw_inputs
    answer = find_route(dump, clusters_json, Request(host, path, "GET", headers), port or None)
    last = render(answer).rstrip("\n").splitlines()[-1]
    assert last == verdict_line(answer) and last.startswith("verdict: ")
