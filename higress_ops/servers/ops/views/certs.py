"""check-certs: every certificate the proxy holds, with its secret, subject, SANs, days to expiry, the listener,
filter chain and SNI that serve it, and warnings.

Reads Envoy's /certs and, when given, the secrets (SDS and static) and listeners sections of the config dump:
the secrets carry the PEM, so the subject comes from the certificate itself, and a filter chain names the
secrets its TLS context uses (`kubernetes://pay-tls`, as SDS names them) or holds its certificate inline.
Certificates seen in both are listed once (by serial).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.secrets import secret_pem
from higress_ops.servers.ops.views.table import Table
from higress_ops.servers.ops.views.x509info import data_source_text, parse_all, rfc3339

HEADERS = ("SOURCE", "SUBJECT", "SANS", "SERIAL NUMBER", "NOT AFTER", "DAYS LEFT", "STATUS", "SERVED BY")
INLINE = "(inline certificate)"


def _tls_context(chain: cd.Json) -> cd.Json:
    socket = cd.mapping(chain.get("transport_socket"))
    return cd.mapping(cd.mapping(socket.get("typed_config")).get("common_tls_context"))


def chain_secrets(chain: cd.Json) -> list[str]:
    """The certificates a filter chain serves: its SDS (or static) secrets by name, `(inline certificate)` for
    certificates written into the chain itself."""
    ctx = _tls_context(chain)
    names = [str(c.get("name", "")) for c in ctx.get("tls_certificate_sds_secret_configs") or []
             if isinstance(c, Mapping)]
    return names + ([INLINE] if ctx.get("tls_certificates") else [])


def _inline_serials(chain: cd.Json) -> list[str]:
    serials = []
    for tc in _tls_context(chain).get("tls_certificates") or []:
        try:
            serials += [c.serial_hex for c in parse_all(data_source_text(cd.mapping(tc).get("certificate_chain")))]
        except ValueError:
            continue
    return serials


def served_by(dump: cd.Json | None) -> dict[str, list[dict[str, Any]]]:
    """secret name (or `serial:<hex>` of an inline certificate) -> the filter chains that serve it, each
    {listener, filter_chain (its name, else #index), sni}: its server names, [] for any; the validation context
    (a CA) counts as served too, for the client certificates it checks."""
    out: dict[str, list[dict[str, Any]]] = {}
    for lst in cd.listeners(dump) if dump else []:
        for i, chain in enumerate(ls.filter_chains(lst)):
            ctx = _tls_context(chain)
            names = [n for n in chain_secrets(chain) if n != INLINE]
            validation = ctx.get("validation_context_sds_secret_config")
            if isinstance(validation, Mapping) and validation.get("name"):
                names.append(str(validation["name"]))
            names += [f"serial:{serial}" for serial in _inline_serials(chain)]
            where = {"listener": str(lst.get("name", "")), "filter_chain": str(chain.get("name") or f"#{i}"),
                     "sni": [str(n) for n in cd.mapping(chain.get("filter_chain_match")).get("server_names") or []]}
            for name in dict.fromkeys(names):
                out.setdefault(name, []).append(where)
    return out


def describe(where: Mapping[str, Any]) -> str:
    """`listener tls, filter chain #2 (SNI pay.example.com)`."""
    return (f"listener {where['listener']}, filter chain {where['filter_chain']} "
            f"({'SNI ' + ','.join(where['sni']) if where['sni'] else 'any SNI'})")


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
    entries += [("STATIC", s.get("name", ""), s.get("secret")) for s in cd.static_secrets(dump)]  # {name, secret}
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
    """The certificates; `dump` holds the secrets section and, for SERVED BY, the listeners section."""
    now = now or dt.datetime.now(dt.UTC)
    rows = _secret_rows(dump, now, warn_days) if dump else []
    seen = {r["SERIAL NUMBER"] for r in rows}
    rows += [r for r in _admin_rows(certs_json, now, warn_days) if r["SERIAL NUMBER"] not in seen]
    chains = served_by(dump)
    for r in rows:
        r["serving"] = chains.get(str(r.get("secret", "")), []) or chains.get(f"serial:{r['SERIAL NUMBER']}", [])
        r["SERVED BY"] = "; ".join(describe(w) for w in r["serving"]) or "-"
    order = {"EXPIRED": 0, "EXPIRING": 1, "NOT YET VALID": 2, "OK": 3}
    rows.sort(key=lambda r: (order[r["STATUS"]], r["DAYS LEFT"], r["SOURCE"]))
    return Table(HEADERS, rows)


def warnings(t: Table, warn_days: int) -> list[str]:
    out = []
    for r in t.rows:
        who = r["SUBJECT"] or r["SANS"] or r["SERIAL NUMBER"]
        where = f", served on {r['SERVED BY']}" if r.get("serving") else ""
        if r["STATUS"] == "EXPIRED":
            out.append(f"EXPIRED: {who} ({r['SOURCE']}) expired {r['NOT AFTER']}{where}")
        elif r["STATUS"] == "EXPIRING":
            out.append(f"EXPIRING: {who} ({r['SOURCE']}) expires in {r['DAYS LEFT']} days "
                       f"(< {warn_days}), at {r['NOT AFTER']}{where}")
        elif r["STATUS"] == "NOT YET VALID":
            out.append(f"NOT YET VALID: {who} ({r['SOURCE']}){where}")
    return out
