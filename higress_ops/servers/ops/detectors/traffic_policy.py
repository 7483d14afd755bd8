"""Traffic policies that fail requests at the next blip, before anything has failed: outlier detection that can eject
every host of a cluster while panic mode is off, and circuit breakers of a few requests.

- Ejection: Envoy ejects at most max_ejection_percent of a cluster's hosts (10% by default) but always at least
  one, so with 100%, or a single host, every host can go, for base_ejection_time x the host's ejection count. Istio
  sets the panic threshold to 0 on every cluster its DestinationRule gives outlier detection (cluster_traffic_policy.go
  applyOutlierDetection; `minHealthPercent` raises it), so then nothing is left to send to: 503, UH. The
  issue-21 detector outlier-ejection reports hosts ejected now; this one the policy that allows it.
- Circuit breakers: max_connections, max_pending_requests or max_requests below FEW (Envoy's defaults are 1024)
  overflow at the first burst: 503, UO. circuit-breaker reports them once they overflowed; this one before.
The values are the ones Envoy holds (/clusters for the thresholds, the cluster's config for outlier detection);
the object to edit is the DestinationRule the cluster's Istio metadata names, when it names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, cluster_pattern, counter
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import cluster_settings as cs
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views import host_health as hh

NAME = "traffic-policy-risk"
FEW = 10
BREAKERS = {"max_connections": "tcp.maxConnections", "max_pending_requests": "http.http1MaxPendingRequests",
            "max_requests": "http.http2MaxRequests"}  # Envoy threshold -> DestinationRule connectionPool field
OVERFLOWS = ("upstream_rq_pending_overflow", "upstream_rq_active_overflow", "upstream_cx_overflow")


def rule_of(config: Mapping[str, Any] | None) -> Ref | None:
    """The DestinationRule in a cluster's `filter_metadata.istio.config`."""
    path = cd.mapping(cd.mapping(cd.mapping((config or {}).get("metadata")).get("filter_metadata")).get(
        "istio")).get("config")
    parts = str(path or "").split("/")
    if len(parts) == 8 and parts[6] == "destination-rule":
        return Ref("DestinationRule", parts[7], parts[5])
    return None


def _value(v: Any, default: float) -> float:
    v = v.get("value", default) if isinstance(v, Mapping) else v
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def _cluster_too(subject: Ref, cluster: str) -> tuple[Ref, ...]:
    return () if subject.kind == "cluster" else (Ref("cluster", cluster),)


def ejection(config: Mapping[str, Any], hosts: int) -> Finding | None:
    od = config.get("outlier_detection")
    if not isinstance(od, Mapping) or not hosts:
        return None
    percent = _value(od.get("max_ejection_percent"), float(cs.OUTLIER_DEFAULTS["max_ejection_percent"]))
    panic = hh.panic_threshold(config)  # a 0% Percent is dumped as `{}`
    if max(1, int(hosts * percent / 100)) < hosts or panic > 0:
        return None
    name = str(config.get("name", ""))
    base = str(od.get("base_ejection_time", cs.OUTLIER_DEFAULTS["base_ejection_time"]))
    subject = rule_of(config) or Ref("cluster", name)
    where = "the DestinationRule's outlierDetection" if subject.kind == "DestinationRule" else "outlier_detection"
    return Finding(
        NAME, Severity.WARNING, subject,
        f"outlier detection can eject all {hosts} host(s) of {name} (max_ejection_percent {percent:g}%, at least one "
        f"host) for {base} x each host's ejection count, and with panic mode off (threshold 0%) Envoy then has no "
        "host to send to: 503 UH",
        f"lower maxEjectionPercent in {where} below 100 (with more than one host), or set minHealthPercent so panic "
        "mode keeps traffic flowing", (
            "outlier_detection: " + ", ".join(f"{k} {od[k]}" for k in ("consecutive_5xx", "consecutive_gateway_failure",
                                                                      "interval", "base_ejection_time",
                                                                      "max_ejection_percent") if k in od),
            f"hosts {hosts}, healthy_panic_threshold {panic:g}%"), _cluster_too(subject, name))


def breakers(status: Mapping[str, Any], config: Mapping[str, Any] | None) -> Finding | None:
    limits = {k: v for k, v in cs.thresholds(status).items() if k in BREAKERS}
    small = {k: v for k, v in limits.items() if v < FEW}
    if not small:
        return None
    name = str(status.get("name", ""))
    subject = rule_of(config) or Ref("cluster", name)
    fields = ", ".join(f"connectionPool.{BREAKERS[k]}" for k in small) if subject.kind == "DestinationRule" else \
        ", ".join(small)
    return Finding(
        NAME, Severity.WARNING, subject,
        f"circuit breakers of {name} let through only " + ", ".join(f"{k} {v}" for k, v in small.items())
        + ": a burst past them gets 503 UO", f"raise {fields} to what the backend takes at peak",
        ("thresholds: " + ", ".join(f"{k} {v}" for k, v in limits.items()),), _cluster_too(subject, name))


def find(statuses: list[Mapping[str, Any]], configs: Mapping[str, Mapping[str, Any]],
         overflowed: set[str]) -> list[Finding]:
    out = []
    for status in statuses:
        name = str(status.get("name", ""))
        config = configs.get(name)
        for f in (ejection(config, len(status.get("host_statuses") or [])) if config else None,
                  None if name in overflowed else breakers(status, config)):
            if f is not None:
                out.append(f)
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    statuses = eps.cluster_statuses(await facts.clusters_json())
    configs = {str(c.get("name", "")): c for c in cd.clusters(await facts.dump("clusters"))}
    stats = await facts.counters()
    overflowed = {n for n in configs if any(counter(stats, n, k) for k in OVERFLOWS)}
    return await facts.compute(find, statuses, configs, overflowed)


DETECTOR = Detector(NAME, "Outlier detection that can eject every host, circuit breakers of a few requests", detect,
                    next_tool="get-envoy-proxy-config type=clusters fqdn=<host> output=json",
                    stats=(cluster_pattern(OVERFLOWS),))
