"""check-certs names each certificate's secret and the listener, filter chain and SNI that serve it, and the
secrets table lists the bootstrap's static secrets: on the fault gateway, checked against the certificate the
real Envoy serves for each SNI."""

from __future__ import annotations

import pytest
from cryptography import x509

from higress_ops.servers.base import CallContext
from tests.support.fault_envoy import CLIENT_CA, EXPIRING_DAYS, FaultGateway

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def served_serial(fgw: FaultGateway, sni: str) -> str:
    """The serial number of the certificate Envoy presents for this SNI, as check-certs prints it (hex)."""
    der = fgw.served_certificate(sni)
    assert der is not None, sni
    return format(x509.load_der_x509_certificate(der).serial_number, "x")


async def test_each_certificate_names_its_secret_and_the_chain_and_sni_serving_it(fgw: FaultGateway, make_server):
    server = make_server(fgw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("check-certs", {"days": 30}, CallContext())
    assert not result.is_error and result.structured is not None
    rows = {r["source"]: r for r in result.structured["rows"]}
    for i, sni in enumerate(("a.example.com", "b.example.com", "pay.example.com")):
        secret = f"kubernetes://{sni.split('.')[0]}-tls"
        row = rows[f"secret {secret} (active)"]
        assert row["secret"] == secret and row["served_by"] == f"listener tls, filter chain #{i} (SNI {sni})"
        assert row["serial_number"] == served_serial(fgw, sni)  # the certificate Envoy serves there
    pay = rows["secret kubernetes://pay-tls (active)"]
    assert pay["status"] == "EXPIRING" and pay["days_left"] == EXPIRING_DAYS - 1
    ca = rows[f"secret {CLIENT_CA} (static)"]  # the static secret the pay chain checks client certificates with
    assert ca["served_by"] == "listener tls, filter chain #2 (SNI pay.example.com)"
    text = result.content[0]["text"]
    assert "SERVED BY" in text.splitlines()[0]
    [warning] = result.structured["warnings"]
    assert warning.startswith("EXPIRING: O=test,CN=pay.example.com (secret kubernetes://pay-tls (active)) expires "
                              f"in {EXPIRING_DAYS - 1} days") and warning.endswith(
        "served on listener tls, filter chain #2 (SNI pay.example.com)")


async def test_the_secrets_table_lists_static_secrets_after_the_sds_ones(fgw: FaultGateway, make_server):
    server = make_server(fgw.admin_url, "http://127.0.0.1:9")
    result = await server.call_tool("get-envoy-proxy-config", {"type": "secrets"}, CallContext())
    assert result.structured is not None
    rows = result.structured["rows"]
    assert sorted((r["resource_name"], r["status"]) for r in rows[:-1]) == [
        ("kubernetes://a-tls", "ACTIVE"), ("kubernetes://b-tls", "ACTIVE"), ("kubernetes://pay-tls", "ACTIVE")]
    assert (rows[-1]["resource_name"], rows[-1]["status"]) == (CLIENT_CA, "STATIC")  # after Envoy's SDS secrets
    assert rows[-1]["type"] == "CA" and rows[-1]["serial_number"] == f"{fgw.certs[CLIENT_CA].serial:032x}"
    raw = await server.call_tool("get-envoy-proxy-config", {"type": "secrets", "output": "json"}, CallContext())
    assert CLIENT_CA in raw.content[0]["text"] and "private_key" not in raw.content[0]["text"]
