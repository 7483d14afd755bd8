"""TLS listeners (which filter chain an SNI selects, what it serves, or the reset when none does) and rejected
config updates over file-based xDS, against the real Envoy."""

from __future__ import annotations

import pytest
import requests

from tests.servers.ops.detectors.conftest import find_route, findings, health_section
from tests.support.fault_envoy import FaultGateway, rds_config
from tests.support.procs import wait_until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(90)]
DOWN = "http://127.0.0.1:9"


async def test_the_sni_selects_a_chain_and_its_certificate(fgw: FaultGateway, make_server):
    assert fgw.served_certificate("b.example.com") is not None
    server = make_server(fgw.admin_url, DOWN)
    _, _, answer = await find_route(server, fgw, "/ok", host="b.example.com", listener="tls")
    [f] = findings(answer, "tls-listener")
    assert f["message"].startswith("SNI 'b.example.com' selects filter chain [SNI: b.example.com], serving "
                                   "kubernetes://b-tls")
    assert any(e.startswith("secret kubernetes://b-tls (active): O=test,CN=b.example.com, expires ") for e in
               f["evidence"]), f


async def test_an_sni_no_chain_takes_is_a_reset(fgw: FaultGateway, make_server):
    assert fgw.served_certificate("c.example.com") is None  # reset
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/ok", host="shop.example.com", listener="tls",
                                              sni="c.example.com")
    assert (status, reason) == ("reset", "no_filter_chain"), answer["text"]
    [f] = findings(answer, "tls-listener")
    assert "Envoy resets the connection" in f["message"]
    assert "server names: a.example.com, b.example.com, pay.example.com" in f["evidence"]
    sec = await health_section(server, "tls-listener")
    assert any(line.startswith("[error] listener tls: ") and "matched no filter chain" in line for line in
               sec["shown"])


async def test_a_rejected_route_update_is_said_with_the_last_accepted_version(fgw: FaultGateway, make_server):
    assert fgw.send("/rds", host="rds.example.com", listener="rds") == (200, "-")
    bad = rds_config("api-v2")
    bad["virtual_hosts"].append(dict(bad["virtual_hosts"][0]))  # a duplicate virtual host: Envoy rejects it
    fgw.publish_rds(bad)
    wait_until(lambda: fgw.stat("http.rds.rds.rds-routes.update_rejected") == 1, 10, "Envoy rejected the update")
    text = requests.get(f"{fgw.admin_url}/config_dump", params={"resource": "dynamic_route_configs"}, timeout=5).text
    assert '"cluster": "ok"' in text and "api-v2" not in text and "error_state" not in text  # what Envoy 1.40 keeps
    server = make_server(fgw.admin_url, DOWN)
    status, reason, answer = await find_route(server, fgw, "/rds", host="rds.example.com", listener="rds")
    assert (status, reason) == ("200", "routed") and fgw.send("/rds", host="rds.example.com", listener="rds")[0] == 200
    [f] = findings(answer, "rejected-config")
    assert f["object"] == "route_config rds-routes" and "last accepted version" in f["message"]
    assert any(e.startswith("last accepted update 20") for e in f["evidence"])
    fgw.publish_rds(rds_config())  # put the good version back for the other tests
