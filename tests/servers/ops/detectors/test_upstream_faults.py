"""Faults between Envoy and the backend, each sent through the real Envoy first: find-route's verdict must be the
status and response flag Envoy answered, and gateway-health must list the cluster."""

from __future__ import annotations

import threading

import pytest

from tests.servers.ops.detectors.conftest import find_route, findings, health_section
from tests.support.fault_envoy import EMPTY, NOPODS, FaultGateway
from tests.support.istiod import endpoint, istiod_double, shards
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
DOWN = "http://127.0.0.1:9"  # no istiod


async def test_circuit_breaker_overflow_is_503_uo_with_the_threshold_to_raise(fgw: FaultGateway, make_server):
    first: list[tuple[int, str]] = []
    slow = threading.Thread(target=lambda: first.append(fgw.send("/cb?n=1")))
    slow.start()
    wait_until(lambda: fgw.stat("cluster.cb.upstream_rq_active") >= 1, 10, "the first request is in flight")
    assert fgw.send("/cb?n=2") == (503, "UO")  # the second one, while the first holds the only request slot
    slow.join()
    assert first == [(200, "-")]
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/cb")
    assert (status, reason) == ("503", "upstream_overflow"), answer["text"]
    [f] = findings(answer, "circuit-breaker")
    assert "max_requests 1" in f["evidence"][0] and "raise max_requests" in f["fix"]
    assert "upstream_rq_active_overflow 1 (limit: max_requests 1)" in f["evidence"]
    sec = await health_section(server, "circuit-breaker")
    assert any(line.startswith("[error] cluster cb: the circuit breaker turned 1 request(s) away") for line in
               sec["shown"])


async def test_tls_towards_a_plaintext_backend(fgw: FaultGateway, make_server):
    assert fgw.send("/tls-to-plain") == (503, "UF")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/tls-to-plain")
    assert (status, reason) == ("503", "upstream_tls_error"), answer["text"]
    [f] = findings(answer, "upstream-tls")
    assert "speaks TLS" in f["message"] and "transport: TLS (SNI plain.shop.svc.cluster.local, ALPN h2,http/1.1)" in \
        f["evidence"]
    assert not findings(answer, "connect-failure")  # the handshake is the cause, said once
    assert "connections to" not in answer["matches"][0]["verdict"]  # no endpoint blamed
    sec = await health_section(server, "upstream-tls")
    assert any("cluster tls-to-plain: the cluster speaks TLS" in line for line in sec["shown"])


async def test_plaintext_towards_a_tls_backend(fgw: FaultGateway, make_server):
    assert fgw.send("/plain-to-tls") == (503, "UC")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/plain-to-tls")
    assert (status, reason) == ("503", "upstream_plaintext_to_tls"), answer["text"]
    [f] = findings(answer, "upstream-tls")
    assert "speaks plaintext" in f["message"] and "transport: plaintext" in f["evidence"]


async def test_http2_towards_an_http1_backend(fgw: FaultGateway, make_server):
    assert fgw.send("/h2") == (502, "UPE")
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/h2")
    assert (status, reason) == ("502", "upstream_protocol_error"), answer["text"]
    [f] = findings(answer, "upstream-protocol")
    assert "speaks HTTP/2" in f["message"] and "upstream protocol: HTTP/2 (explicit_http_config)" in f["evidence"]
    assert "HTTP/2 (explicit_http_config)" in answer["text"]  # the cluster line says what the cluster speaks
    sec = await health_section(server, "upstream-protocol")
    assert any("cluster h2-to-h1:" in line for line in sec["shown"])


@pytest.mark.parametrize(("path", "cluster", "known", "cause"), [
    ("/empty", EMPTY, [endpoint("10.1.0.4", "shop", "empty", "http", 80)], "not delivered to this proxy"),
    ("/nopods", NOPODS, None, "the Service selects no ready pods")])
async def test_empty_cluster_tells_the_cause_from_istiods_endpoints(fgw, make_server, path, cluster, known, cause):
    assert fgw.send(path) == (503, "UH")
    with istiod_double() as istiod:
        host = cluster.split("|")[3]
        if known:
            istiod.state["/debug/endpointz"][host] = shards("shop", "empty", known)
        server = make_server(fgw.admin_url, istiod.url)
        status, reason, answer = await find_route(server, fgw, path)
        assert (status, reason) == ("503", "no_endpoints"), answer["text"]
        [f] = findings(answer, "empty-cluster")
        assert cause in f["message"], f
        sec = await health_section(server, "empty-cluster")
    assert any(line.startswith(f"[error] cluster {cluster}: ") for line in sec["shown"])
    assert not any("BlackHole" in line or "Passthrough" in line for line in sec["shown"])
