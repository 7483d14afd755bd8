"""Hosts whose every connection attempt failed (503, response flag UF): the backend refuses or drops connections,
or nothing listens there. A TLS handshake failure counts as a connect failure in Envoy too; when the cluster's
`ssl.connection_error` grows, upstream-tls names that cause instead, so it is not reported twice."""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import (
    Detector,
    Finding,
    Focus,
    Ref,
    Severity,
    cluster_pattern,
    counter,
    in_scope,
)
from higress_ops.servers.ops.detectors.facts import Facts


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    healths = await facts.cluster_healths()
    stats = await facts.counters()
    findings = []
    for name in in_scope(healths, focus):
        bad = [h for h in healths[name].hosts if h["failing"] == "connect_failure"]
        if not bad or counter(stats, name, "ssl.connection_error"):
            continue
        n, total = sum(h["cx_connect_fail"] for h in bad), sum(h["cx_total"] for h in bad)
        everyone = len(bad) == len(healths[name].hosts)
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR if everyone else Severity.WARNING, Ref("cluster", name),
            f"connections to {len(bad)}/{len(healths[name].hosts)} host(s) fail ({n} of {total} attempts)",
            "check that the backend listens on that address and port (and that the endpoint list is current)",
            (*(f"{h['address']}: connect failures {h['cx_connect_fail']} of {h['cx_total']}" for h in bad[:5]),
             f"upstream_cx_connect_fail {counter(stats, name, 'upstream_cx_connect_fail')}")))
    return findings


DETECTOR = Detector("connect-failure", "Connect failures (UF)", detect,
                    next_tool="get-envoy-proxy-config type=endpoints cluster=<cluster>",
                    stats=(cluster_pattern(("upstream_cx_connect_fail", "ssl.connection_error")),))
