"""Hosts that outlier detection ejected: which, the detection settings, how long an ejection lasts, whether
max_ejection_percent caps it, and whether panic mode still sends traffic to them.

Envoy's admin API says a host is ejected (`failed_outlier_check`) but not since when nor how often: an ejection
lasts base_ejection_time x the host's ejection count, capped at max(max_ejection_time, base_ejection_time)
(source/common/upstream/outlier_detection_impl.cc), so the answer gives that rule with
the cluster's values and the cluster-wide `outlier_detection.ejections_*` counters.
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
from higress_ops.servers.ops.views import configdump as cd

COUNTERS = ("outlier_detection.ejections_active", "outlier_detection.ejections_enforced_total",
            "outlier_detection.ejections_overflow", "outlier_detection.ejections_enforced_consecutive_5xx",
            "outlier_detection.ejections_enforced_consecutive_gateway_failure")
DETAILED = 10


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    ejected = await facts.flagged_hosts(frozenset({"outlier_ejected"}), focus, DETAILED)
    stats = await facts.counters() if ejected else {}
    findings = []
    for name, health, config, hosts in ejected:
        od = cd.mapping((config or {}).get("outlier_detection"))
        evidence = ["ejected: " + ", ".join(h["address"] for h in hosts[:5])
                    + (f" +{len(hosts) - 5} more" if len(hosts) > 5 else "")]
        if config is not None:
            evidence.append("settings: " + ", ".join(cs.setting(od, k, cs.OUTLIER_DEFAULTS) for k in (
                "consecutive_5xx", "interval", "base_ejection_time", "max_ejection_time", "max_ejection_percent")))
            base = cs.setting(od, "base_ejection_time", cs.OUTLIER_DEFAULTS).split(" ")[1]
            evidence.append(f"each ejection lasts {base} x the host's ejection count (Envoy does not show since "
                            "when); the host comes back on its own after that")
        evidence.append("counters: " + ", ".join(f"{k.split('.', 1)[1]} {counter(stats, name, k)}" for k in COUNTERS
                                                 if counter(stats, name, k)))
        panic = health.panic and health.threshold > 0
        evidence.append(f"panic mode ({health.counts['healthy']}/{len(health.hosts)} healthy, threshold "
                        f"{health.threshold:g}%): " + ("Envoy still sends to the ejected hosts" if panic else
                                                       "ejected hosts get no traffic"))
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR if len(hosts) == len(health.hosts) else Severity.WARNING,
            Ref("cluster", name), f"outlier detection ejected {len(hosts)}/{len(health.hosts)} host(s): they answered "
            "errors", "fix the backends' errors (their 5xx are what ejected them); ejection is the symptom",
            tuple(evidence)))
    return findings


DETECTOR = Detector("outlier-ejection", "Hosts ejected by outlier detection", detect,
                    next_tool="get-envoy-proxy-config type=endpoints cluster=<cluster>",
                    stats=(cluster_pattern(COUNTERS),))
