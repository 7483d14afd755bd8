"""The secrets table as istioctl prints it for SPIFFE secrets, from a real Envoy's SDS: serials as 32 hex
digits, one ROOTCA row per trust domain, and the TRUST DOMAIN column."""

from __future__ import annotations

import pytest

from higress_ops.servers.base import CallContext
from tests.support.envoy import Envoy, http_listener
from tests.support.procs import free_port
from tests.support.verdict_envoy import VerdictGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


async def test_spiffe_secrets_rows_and_trust_domains(vgw: VerdictGateway, make_server) -> None:
    server = make_server(vgw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("get-envoy-proxy-config", {"type": "secrets"}, CallContext())
    text = result.content[0]["text"]
    rows = {(r["resource_name"], r["trust_domain"]): r for r in result.structured["rows"]}
    assert set(rows) == {("default", "east.local"), ("ROOTCA", "east.local"), ("ROOTCA", "west.local")}
    assert rows[("default", "east.local")]["serial_number"] == "00000000000000000000000000001234"
    assert rows[("default", "east.local")]["type"] == "Cert Chain"
    for td in ("east.local", "west.local"):
        row = rows[("ROOTCA", td)]
        assert row["type"] == "CA" and row["serial_number"] == f"{vgw.certs[td].serial:032x}"
        assert row["status"] == "ACTIVE" and row["valid_cert"] is True
    header = text.splitlines()[0]
    assert header.split() == ["RESOURCE", "NAME", "TYPE", "STATUS", "VALID", "CERT", "SERIAL", "NUMBER", "NOT",
                              "AFTER", "NOT", "BEFORE", "TRUST", "DOMAIN"]
    assert "No active or warming secrets found." not in text


async def test_no_secrets_is_one_line_without_a_header(make_server, tmp_path) -> None:
    envoy = Envoy({"node": {"id": "n", "cluster": "c"}, "static_resources": {"listeners": [http_listener(
        "l", free_port(), {"virtual_hosts": []})]}}, tmp_path).start()
    try:
        server = make_server(envoy.admin_url, "http://127.0.0.1:9")
        result = await server.call_tool("get-envoy-proxy-config", {"type": "secrets"}, CallContext())
        assert result.content[0]["text"] == "No active or warming secrets found.\n"
    finally:
        envoy.stop()
