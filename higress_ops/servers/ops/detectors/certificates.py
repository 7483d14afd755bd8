"""Certificates expired or expiring within `days` (get-gateway-health's argument, 30 by default), by the
secret that holds them and the listener and SNI that serve it; from /certs and the SDS secrets (check-certs)."""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import certs as cert_view
from higress_ops.servers.ops.views import gateway_health as gh


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    certs_json, secrets, listeners = await facts.certs(), await facts.dump("secrets"), await facts.dump("listeners")
    rows = await facts.compute(lambda: cert_view.table(certs_json, secrets, facts.days).rows)
    servers = await facts.compute(gh.secret_servers, listeners)
    findings = []
    for r in rows:
        if r["STATUS"] not in ("EXPIRED", "EXPIRING"):
            continue
        who = r["SUBJECT"] or r["SANS"] or r["SERIAL NUMBER"]
        secret = str(r.get("secret", ""))
        served = servers.get(secret, [])
        when = f"expired {r['NOT AFTER']}" if r["STATUS"] == "EXPIRED" else f"expires in {r['DAYS LEFT']} days"
        where = f", served on {'; '.join(served[:3])}" if served else ""
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR if r["STATUS"] == "EXPIRED" else Severity.WARNING,
            Ref("secret", secret) if secret else Ref("certificate", str(r["SOURCE"])),
            f"{r['STATUS']} {who}: {when}{where}", "renew the certificate in its Secret (cert-manager, or the "
            "Secret the Ingress/Gateway TLS names)", (f"source {r['SOURCE']}",),
            tuple(Ref("listener", s.split(" (", 1)[0]) for s in served[:3])))
    return findings


DETECTOR = Detector("certificates", "Certificates expired or expiring", detect, next_tool="check-certs")
