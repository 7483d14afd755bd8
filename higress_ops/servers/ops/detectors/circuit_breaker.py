"""Circuit breakers that turned requests away (503, response flag UO), or thresholds small enough to.

The thresholds come from /clusters?format=json, where Envoy fills in its defaults (1024 connections, pending
requests and requests, 3 retries). Which counter grows tells which one to raise (checked on Envoy 1.40):
`upstream_rq_active_overflow` for max_requests, `upstream_rq_pending_overflow` for max_pending_requests,
`upstream_cx_overflow` for max_connections (requests then queue as pending), `upstream_rq_retry_overflow` for
max_retries (the retry is skipped and the failure goes to the client).
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import (
    Detector,
    Finding,
    Focus,
    Ref,
    Severity,
    Verdict,
    cluster_pattern,
    counter,
    in_scope,
)
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import cluster_settings as cs
from higress_ops.servers.ops.views import endpoints as eps

OVERFLOWS = {"upstream_rq_active_overflow": "max_requests", "upstream_rq_pending_overflow": "max_pending_requests",
             "upstream_cx_overflow": "max_connections", "upstream_rq_retry_overflow": "max_retries"}
REJECTS = ("upstream_rq_active_overflow", "upstream_rq_pending_overflow")  # these answer the client 503 UO
SMALL = 0.1  # a threshold below a tenth of Envoy's default is worth saying when a request goes through it
GAUGES = ("circuit_breakers.default.rq_open", "circuit_breakers.default.rq_pending_open",
          "circuit_breakers.default.cx_open", "upstream_rq_active", "upstream_rq_pending_active")


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    statuses = {str(c.get("name", "")): c for c in eps.cluster_statuses(await facts.clusters_json())}
    stats = await facts.counters()
    findings = []
    for name in in_scope(statuses, focus):
        limits = cs.thresholds(statuses[name])
        grown = {k: counter(stats, name, k) for k in OVERFLOWS if counter(stats, name, k)}
        small = {k: v for k, v in limits.items() if v < cs.CIRCUIT_DEFAULTS[k] * SMALL}
        if not grown and not (small and focus is not None):
            continue
        evidence = ["thresholds: " + ", ".join(f"{k} {v}" + ("" if v != cs.CIRCUIT_DEFAULTS[k] else " (default)")
                                               for k, v in limits.items())]
        evidence += [f"{k} {v} (limit: {OVERFLOWS[k]} {limits[OVERFLOWS[k]]})" for k, v in grown.items()]
        evidence += [f"{g} {counter(stats, name, g)}" for g in GAUGES if counter(stats, name, g)]
        rejected = sum(grown.get(k, 0) for k in REJECTS)
        if grown:
            raise_ = ", ".join(sorted({OVERFLOWS[k] for k in grown}))
            findings.append(Finding(
                DETECTOR.name, Severity.ERROR if rejected else Severity.WARNING, Ref("cluster", name),
                (f"the circuit breaker turned {rejected} request(s) away (503, UO)" if rejected else
                 "the circuit breaker overflowed (" + ", ".join(grown) + ")"),
                f"raise {raise_} (DestinationRule trafficPolicy.connectionPool) or add backend capacity",
                tuple(evidence), verdict=Verdict(503, "upstream_overflow") if rejected else None))
        else:
            findings.append(Finding(
                DETECTOR.name, Severity.INFO, Ref("cluster", name),
                "small circuit breaker thresholds: " + ", ".join(f"{k} {v}" for k, v in small.items())
                + "; requests beyond them get 503 (UO)", "raise them if the backend can take more",
                tuple(evidence)))
    return findings


DETECTOR = Detector("circuit-breaker", "Circuit breakers overflowing (UO)", detect,
                    next_tool="get-envoy-stats filter=cluster.<cluster>.(upstream_rq_.*overflow|circuit_breakers)",
                    stats=(cluster_pattern((*OVERFLOWS, *GAUGES)),))
