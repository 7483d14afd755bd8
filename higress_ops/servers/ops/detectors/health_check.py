"""Hosts failing their active health check: the check itself (what it sends, what counts as healthy, interval,
thresholds), the health-check counters and what the panic threshold does with the result.

Envoy takes a host out of the load-balancing set after `unhealthy_threshold` failed checks; when the healthy
share falls below the cluster's panic threshold it balances over every host anyway (host_health.py), so a
failing check hurts only with panic mode off (503 UH) or while some hosts still pass.
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import (
    Detector,
    Finding,
    Focus,
    Ref,
    Severity,
    cluster_pattern,
    counter,
)
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import cluster_settings as cs

COUNTERS = ("health_check.attempt", "health_check.success", "health_check.failure", "health_check.network_failure",
            "health_check.passive_failure", "health_check.verify_cluster", "health_check.healthy")
FLAGS = frozenset({"failed_active_hc", "active_hc_timeout"})
DETAILED = 10  # clusters whose health-check config is read (two small config requests each); the rest are counted


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    failing = await facts.flagged_hosts(FLAGS, focus, DETAILED)
    stats = await facts.counters() if failing else {}
    findings = []
    for name, health, config, bad in failing:
        c = health.counts
        up = c["healthy"] + c["degraded"]
        evidence = [f"check: {line}" for line in cs.health_checks(config)] or (
            [f"check: not read (get-envoy-config-dump resource=dynamic_active_clusters name_regex={name})"])
        evidence.append("counters: " + ", ".join(f"{k.split('.', 1)[1]} {counter(stats, name, k)}" for k in COUNTERS
                                                 if counter(stats, name, k) or k == "health_check.failure"))
        evidence.append("failing: " + ", ".join(f"{h['address']} ({','.join(h['flags'])})" for h in bad[:3])
                        + (f" +{len(bad) - 3} more" if len(bad) > 3 else ""))
        default = " (default)" if config is None or "common_lb_config" not in config else ""
        if health.panic and health.threshold > 0:
            effect = (f"{up}/{len(health.hosts)} healthy is below the panic threshold {health.threshold:g}%{default}: "
                      "Envoy sends to every host, failing ones included")
            severity = Severity.WARNING
        elif not up:
            effect = f"no host passes and the panic threshold is {health.threshold:g}%: Envoy answers 503 (UH)"
            severity = Severity.ERROR
        else:
            effect = (f"{up}/{len(health.hosts)} hosts take the traffic (panic threshold "
                      f"{health.threshold:g}%{default})")
            severity = Severity.WARNING
        evidence.append(effect)
        findings.append(Finding(
            DETECTOR.name, severity, Ref("cluster", name),
            f"{len(bad)}/{len(health.hosts)} host(s) fail the active health check",
            "make the check's path answer an expected status on the backends, or fix the check (path, port, "
            "expected_statuses)", tuple(evidence)))
    return findings


DETECTOR = Detector("health-check", "Active health checks failing", detect,
                    next_tool="get-envoy-proxy-config type=endpoints cluster=<cluster>",
                    stats=(cluster_pattern(COUNTERS),))
