"""Certificates expired or expiring within `days` (get-gateway-health's argument, 30 by default), by the SNI
and the listener and filter chain that serve them and the secret that holds them; from /certs and the secrets
and listeners sections (check-certs' table)."""

from __future__ import annotations

from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts

SERVED_SHOWN = 3


def serving(served: list[dict[str, Any]]) -> str:
    """`serves SNI a.example.com (listener tls, filter chain #0)`, by SNI first: what a client sees."""
    if not served:
        return "served by no filter chain"
    parts = [f"{','.join(w['sni']) or 'any SNI'} (listener {w['listener']}, filter chain {w['filter_chain']})"
             for w in served[:SERVED_SHOWN]]
    more = f" +{len(served) - SERVED_SHOWN} more" if len(served) > SERVED_SHOWN else ""
    return "serves SNI " + "; ".join(parts) + more


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    findings = []
    for r in await facts.cert_rows():
        if r["STATUS"] not in ("EXPIRED", "EXPIRING"):
            continue
        who = r["SUBJECT"] or r["SANS"] or r["SERIAL NUMBER"]
        secret = str(r.get("secret", ""))
        when = f"expired {r['NOT AFTER']}" if r["STATUS"] == "EXPIRED" else f"expires in {r['DAYS LEFT']} days"
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR if r["STATUS"] == "EXPIRED" else Severity.WARNING,
            Ref("secret", secret) if secret else Ref("certificate", str(r["SOURCE"])),
            f"{r['STATUS']}, {when}: {who}; {serving(r['serving'])}", "renew the certificate in its Secret "
            "(cert-manager, or the Secret the Ingress/Gateway TLS names)",
            (f"source {r['SOURCE']}", f"not after {r['NOT AFTER']}"),
            tuple(dict.fromkeys(Ref("listener", w["listener"]) for w in r["serving"][:SERVED_SHOWN]))))
    return findings


DETECTOR = Detector("certificates", "Certificates expired or expiring", detect, next_tool="check-certs")
