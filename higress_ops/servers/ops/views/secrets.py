"""`istioctl proxy-config secret`: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table
from higress_ops.servers.ops.views.x509info import data_source_text, parse_first, rfc3339

HEADERS = ("RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")


def secret_pem(secret: Any) -> str:
    """The cert chain, or else the trusted CA, of an SDS Secret (istioctl's choice)."""
    if not isinstance(secret, Mapping):
        return ""
    chain = data_source_text((secret.get("tls_certificate") or {}).get("certificate_chain"))
    if chain:
        return chain
    return data_source_text((secret.get("validation_context") or {}).get("trusted_ca"))


def row(name: str, state: str, secret: Any, now: dt.datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"RESOURCE NAME": name, "TYPE": "", "STATUS": state, "VALID CERT": False,
                           "SERIAL NUMBER": "", "NOT AFTER": "", "NOT BEFORE": ""}
    pem = secret_pem(secret)
    if not pem:
        return out
    try:
        cert = parse_first(pem)
    except ValueError:
        return out
    out.update({"TYPE": "CA" if cert.is_ca else "Cert Chain", "VALID CERT": cert.valid_at(now),
                "SERIAL NUMBER": cert.serial_hex, "NOT AFTER": rfc3339(cert.not_after),
                "NOT BEFORE": rfc3339(cert.not_before)})
    return out


def table(dump: cd.Json, now: dt.datetime | None = None) -> Table:
    now = now or dt.datetime.now(dt.UTC)
    t = Table(HEADERS)
    for state, entry in cd.dynamic_secrets(dump):
        t.rows.append(row(str(entry.get("name", "")), state, entry.get("secret"), now))
    if not t.rows:
        t.note = "No active or warming secrets found."
    return t


def matching(dump: cd.Json) -> list[cd.Json]:
    """Raw dynamic secrets without key material (Envoy already redacts keys; we drop them anyway)."""
    out = []
    for _, entry in cd.dynamic_secrets(dump):
        clean = dict(entry)
        secret = entry.get("secret")
        if isinstance(secret, Mapping) and isinstance(secret.get("tls_certificate"), Mapping):
            tls = {k: v for k, v in secret["tls_certificate"].items() if k != "private_key"}
            clean["secret"] = {**secret, "tls_certificate": tls}
        out.append(clean)
    return out
