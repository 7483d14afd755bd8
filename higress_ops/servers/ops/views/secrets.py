"""`istioctl proxy-config secret`: RESOURCE NAME, TYPE, STATUS, VALID CERT, SERIAL NUMBER, NOT AFTER, NOT BEFORE,
and TRUST DOMAIN when a secret has one.

As istioctl prints them: serial numbers as 32 zero-padded hex digits (`%032x`); a SPIFFE validation context
(`custom_validator_config` with `trust_domains`) gives one CA row per trust domain under the secret's name;
a certificate chain's trust domain is the one of its spiffe:// SAN. With no secret at all, the table is just
istioctl's "No active or warming secrets found." line. Unlike istioctl (whose sdscompare reads only the warming
and active SDS secrets), the bootstrap's static secrets are listed too, after them, with STATUS STATIC: a
listener can serve one, and its certificate expires like any other."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.table import Table
from higress_ops.servers.ops.views.x509info import data_source_text, parse_first, rfc3339

HEADERS = ("RESOURCE NAME", "TYPE", "STATUS", "VALID CERT", "SERIAL NUMBER", "NOT AFTER", "NOT BEFORE")
TRUST_DOMAIN = "TRUST DOMAIN"


def secret_pem(secret: Any) -> str:
    """The cert chain, or else the trusted CA, of an SDS Secret (istioctl's choice)."""
    if not isinstance(secret, Mapping):
        return ""
    chain = data_source_text((secret.get("tls_certificate") or {}).get("certificate_chain"))
    if chain:
        return chain
    return data_source_text((secret.get("validation_context") or {}).get("trusted_ca"))


def _row(name: str, state: str, pem: str, now: dt.datetime, trust_domain: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"RESOURCE NAME": name, "TYPE": "", "STATUS": state, "VALID CERT": False,
                           "SERIAL NUMBER": "", "NOT AFTER": "", "NOT BEFORE": "", TRUST_DOMAIN: trust_domain}
    if not pem:
        return out
    try:
        cert = parse_first(pem)
    except ValueError:
        return out
    spiffe = next((san for san in cert.sans if san.startswith("spiffe://")), "")
    out.update({"TYPE": "CA" if cert.is_ca else "Cert Chain", "VALID CERT": cert.valid_at(now),
                "SERIAL NUMBER": f"{int(cert.serial_hex, 16):032x}", "NOT AFTER": rfc3339(cert.not_after),
                "NOT BEFORE": rfc3339(cert.not_before),
                TRUST_DOMAIN: trust_domain or spiffe.removeprefix("spiffe://").split("/", 1)[0]})
    return out


def _trust_domains(secret: Any) -> list[tuple[str, str]]:
    """(trust domain, PEM bundle) of a SPIFFE validation context; empty for any other secret."""
    vc = secret.get("validation_context") if isinstance(secret, Mapping) else None
    custom = vc.get("custom_validator_config") if isinstance(vc, Mapping) else None
    typed = custom.get("typed_config") if isinstance(custom, Mapping) else None
    domains = typed.get("trust_domains") if isinstance(typed, Mapping) else None
    return [(str(d.get("name", "")), data_source_text(d.get("trust_bundle")))
            for d in domains or [] if isinstance(d, Mapping)]


def rows(name: str, state: str, secret: Any, now: dt.datetime) -> list[dict[str, Any]]:
    """A secret's rows: one per SPIFFE trust domain, else one for its cert chain or trusted CA."""
    domains = _trust_domains(secret)
    if domains:
        return [_row(name, state, pem, now, td) for td, pem in domains]
    return [_row(name, state, secret_pem(secret), now)]


def _all_secrets(dump: cd.Json) -> list[tuple[str, cd.Json]]:
    """(state, entry) of the warming, then active SDS secrets (istioctl's order), then the static ones."""
    return [*cd.dynamic_secrets(dump), *(("STATIC", s) for s in cd.static_secrets(dump))]


def table(dump: cd.Json, now: dt.datetime | None = None) -> Table:
    now = now or dt.datetime.now(dt.UTC)
    found = [r for state, entry in _all_secrets(dump)
             for r in rows(str(entry.get("name", "")), state, entry.get("secret"), now)]
    if not found:  # istioctl prints only this line, never above rows
        return Table((), note="No active or warming secrets found.")
    headers = HEADERS + ((TRUST_DOMAIN,) if any(r[TRUST_DOMAIN] for r in found) else ())
    return Table(headers, found)


def matching(dump: cd.Json) -> list[cd.Json]:
    """Raw secrets (SDS and static) without key material (Envoy already redacts keys; we drop them anyway)."""
    out: list[cd.Json] = []
    for _, entry in _all_secrets(dump):
        clean = dict(entry)
        secret = entry.get("secret")
        if isinstance(secret, Mapping) and isinstance(secret.get("tls_certificate"), Mapping):
            tls = {k: v for k, v in secret["tls_certificate"].items() if k != "private_key"}
            clean["secret"] = {**secret, "tls_certificate": tls}
        out.append(clean)
    return out
