"""ingress-tls on the shop scenario: an Ingress TLS host the gateway has no filter chain for, which the real
Envoy resets; and the certificate a real handshake is served, when expiring, is a finding that names the Ingress
whose TLS holds that secret."""

from __future__ import annotations

import datetime as dt
import socket
import ssl

import pytest
from cryptography import x509

from higress_ops.servers.base import CallContext
from tests.support import shop as s
from tests.support.shop_envoy import SECRET

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def handshake(port: int, sni: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as tls:
            return f"ok {tls.version()}"
    except (ssl.SSLError, ConnectionError) as exc:
        return f"reset ({type(exc).__name__})"


async def test_a_tls_host_without_a_filter_chain(shop, lint) -> None:
    [cart] = [o for o in shop.api.store.items("Ingress", s.NS) if o["metadata"]["name"] == "cart"]
    cart["spec"]["tls"] = [{"hosts": [s.HOST, "pay.example.com"], "secretName": "shop-tls"}]
    cart["spec"]["rules"].append({"host": "pay.example.com", "http": cart["spec"]["rules"][0]["http"]})
    shop.api.store.add(cart)
    assert handshake(shop.gateway.https_port, s.HOST).startswith("ok")
    assert handshake(shop.gateway.https_port, "pay.example.com").startswith("reset")  # what Envoy does
    [f] = await lint("ingress-tls")
    assert f["object"] == "Ingress shop/cart" and f["severity"] == "error"
    assert f["message"] == ("TLS host pay.example.com has no filter chain on this gateway: Envoy resets every TLS "
                            "connection for it")
    assert "Secret shop/shop-tls" in f["fix"]
    assert f["evidence"] == ["TLS listeners and their server names: 0.0.0.0_443: shop.example.com"]


async def test_the_scenario_s_tls_host_is_served(lint) -> None:
    assert await lint("ingress-tls") == []


async def test_an_expiring_certificate_names_the_ingress_whose_tls_holds_it(shop, shop_ops) -> None:
    """End to end: the certificate the real Envoy serves for the Ingress's TLS host, read back from a real TLS
    handshake, is the one the certificates finding reports (its expiry to the day) and whose object to edit is the
    Ingress naming that secret. The scenario's certificate is valid for a year: analyze's `days` of 400 makes it
    the expiring one, without a second gateway."""
    served = served_certificate(shop.gateway.https_port, s.HOST)
    result = await shop_ops.call_tool("analyze", {"detectors": ["certificates"], "days": 400}, CallContext())
    assert not result.is_error and result.structured is not None, result.content
    (finding,) = [f for f in result.structured["findings"] if f["object"] == f"secret {SECRET}"]
    days_left = (served["not_after"] - dt.datetime.now(dt.UTC)).days
    assert finding["severity"] == "warning"
    assert finding["message"].startswith((f"EXPIRING, expires in {days_left} days: ",
                                          f"EXPIRING, expires in {days_left - 1} days: ")), (finding, days_left)
    assert f"CN={s.HOST}" in finding["message"] and f"serves SNI {s.HOST}" in finding["message"]
    assert finding["edit"] == ["Ingress shop/cart (its TLS secret shop/shop-tls)"]
    assert served["serial"] == shop.gateway.cert.serial  # the handshake saw the scenario's certificate
    default = await shop_ops.call_tool("analyze", {"detectors": ["certificates"]}, CallContext())
    assert default.structured is not None and default.structured["findings"] == []  # a year left: not in 30 days


def served_certificate(port: int, sni: str) -> dict[str, object]:
    """What a TLS client for `sni` is served: the certificate's serial and notAfter, from the handshake."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return {"serial": cert.serial_number, "not_after": cert.not_valid_after_utc}
