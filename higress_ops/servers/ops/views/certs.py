"""check-certs: every certificate the proxy holds, with subject, SANs, days to expiry and warnings.

Reads Envoy's /certs and, when given, the SDS secrets of the config dump (which carry the PEM, so the
subject comes from the certificate itself). Certificates seen in both are listed once (by serial).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.secrets import secret_pem
from higress_ops.servers.ops.views.table import Table
from higress_ops.servers.ops.views.x509info import data_source_text, parse_all, rfc3339

HEADERS = ("SOURCE", "SUBJECT", "SANS", "SERIAL NUMBER", "NOT AFTER", "DAYS LEFT", "STATUS")


def _status(days: int, not_before: str, now: dt.datetime, warn_days: int) -> str:
    if days < 0:
        return "EXPIRED"
    if not_before and not_before > rfc3339(now):
        return "NOT YET VALID"
    if days < warn_days:
        return "EXPIRING"
    return "OK"


def _secret_rows(dump: cd.Json, now: dt.datetime, warn_days: int) -> list[dict[str, Any]]:
    out = []
    entries = [(state, e.get("name", ""), e.get("secret")) for state, e in cd.dynamic_secrets(dump)]
    entries += [("STATIC", s.get("name", ""), s) for s in cd.static_secrets(dump)]
    for state, name, secret in entries:
        pems = [secret_pem(secret)]
        if isinstance(secret, Mapping) and (secret.get("tls_certificate") or {}).get("certificate_chain"):
            pems.append(data_source_text((secret.get("validation_context") or {}).get("trusted_ca")))
        for pem in filter(None, pems):
            try:
                certs = parse_all(pem)
            except ValueError:
                continue
            for c in certs:
                days = c.days_left(now)
                out.append({"SOURCE": f"secret {name} ({state.lower()})", "secret": name, "SUBJECT": c.subject,
                            "SANS": ",".join(c.sans), "SERIAL NUMBER": c.serial_hex,
                            "NOT AFTER": rfc3339(c.not_after), "DAYS LEFT": days,
                            "STATUS": _status(days, rfc3339(c.not_before), now, warn_days)})
    return out


def _san_text(san: Any) -> str:
    if isinstance(san, Mapping):
        return ",".join(str(v) for v in san.values())
    return str(san)


def _admin_rows(certs_json: Any, now: dt.datetime, warn_days: int) -> list[dict[str, Any]]:
    if not isinstance(certs_json, Mapping) or not isinstance(certs_json.get("certificates", []), list):
        raise cd.DumpError("not Envoy /certs output: expected an object with 'certificates'")
    out = []
    for group in certs_json.get("certificates") or []:
        if not isinstance(group, Mapping):
            continue
        for kind in ("cert_chain", "ca_cert"):
            for c in group.get(kind) or []:
                if not isinstance(c, Mapping):
                    continue
                try:
                    days = int(c.get("days_until_expiration", 0))
                except (TypeError, ValueError):
                    days = 0
                not_after = str(c.get("expiration_time", ""))
                if not_after and not_after < rfc3339(now):
                    days = min(days, -1)
                sans = ",".join(_san_text(s) for s in c.get("subject_alt_names") or [])
                serial = str(c.get("serial_number", "")).lower().lstrip("0") or "0"
                out.append({"SOURCE": f"/certs {kind} {c.get('path', '')}", "SUBJECT": "", "SANS": sans,
                            "SERIAL NUMBER": serial, "NOT AFTER": not_after, "DAYS LEFT": days,
                            "STATUS": _status(days, str(c.get("valid_from", "")), now, warn_days)})
    return out


def table(certs_json: Any, dump: cd.Json | None, warn_days: int = 30, now: dt.datetime | None = None) -> Table:
    now = now or dt.datetime.now(dt.UTC)
    rows = _secret_rows(dump, now, warn_days) if dump else []
    seen = {r["SERIAL NUMBER"] for r in rows}
    rows += [r for r in _admin_rows(certs_json, now, warn_days) if r["SERIAL NUMBER"] not in seen]
    order = {"EXPIRED": 0, "EXPIRING": 1, "NOT YET VALID": 2, "OK": 3}
    rows.sort(key=lambda r: (order[r["STATUS"]], r["DAYS LEFT"], r["SOURCE"]))
    return Table(HEADERS, rows)


def warnings(t: Table, warn_days: int) -> list[str]:
    out = []
    for r in t.rows:
        who = r["SUBJECT"] or r["SANS"] or r["SERIAL NUMBER"]
        if r["STATUS"] == "EXPIRED":
            out.append(f"EXPIRED: {who} ({r['SOURCE']}) expired {r['NOT AFTER']}")
        elif r["STATUS"] == "EXPIRING":
            out.append(f"EXPIRING: {who} ({r['SOURCE']}) expires in {r['DAYS LEFT']} days "
                       f"(< {warn_days}), at {r['NOT AFTER']}")
        elif r["STATUS"] == "NOT YET VALID":
            out.append(f"NOT YET VALID: {who} ({r['SOURCE']})")
    return out
