"""The detectors: one per failure class, each a small module with a `DETECTOR`, run by find-route (with the
request's `Focus`), get-gateway-health and analyze (without), which only select and render their findings.

A new failure class is one new module here and one line in `DETECTORS` (or in `LINTS`, for a check of the config
that only analyze runs). Every detector reads the call's `Facts`, so a document two detectors need is fetched
once. A detector whose source does not answer (istiod down, no
Kubernetes API) is reported as skipped with the reason, and the others still run.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from higress_ops.servers.ops.detectors import (
    certificates,
    circuit_breaker,
    connect_failure,
    direct_response,
    empty_cluster,
    extension_config,
    health_check,
    missing_cluster,
    no_route,
    no_virtual_host,
    outlier_ejection,
    redirect_loop,
    rejected_config,
    route_timeout,
    shadowed_route,
    tls_listener,
    traffic_policy,
    upstream_protocol,
    upstream_tls,
)
from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, Verdict, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import (
    dr_subsets,
    dr_tls,
    envoyfilters,
    gateway_conflicts,
    gateway_ports,
    istiod_status,
    jwt_routes,
    service_ports,
    serviceentries,
    vs_destinations,
    vs_gateways,
    vs_hosts,
    vs_rules,
)
from higress_ops.servers.ops.detectors.kube import ingress_conflicts, ingress_tls, service_pods, stray_annotations
from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.source import UpstreamError

__all__ = ["ANALYZE", "DETECTORS", "LINTS", "Detector", "Facts", "Finding", "Focus", "Ref", "Report", "Severity",
           "Verdict", "by_name", "route_ref", "run"]

DETECTORS: tuple[Detector, ...] = (  # the failure classes, in its order; then the other health checks
    missing_cluster.DETECTOR,
    health_check.DETECTOR,
    connect_failure.DETECTOR,
    shadowed_route.DETECTOR,
    no_route.DETECTOR,
    no_virtual_host.DETECTOR,
    route_timeout.DETECTOR,
    circuit_breaker.DETECTOR,
    outlier_ejection.DETECTOR,
    upstream_tls.DETECTOR,
    upstream_protocol.DETECTOR,
    redirect_loop.DETECTOR,
    rejected_config.DETECTOR,
    tls_listener.DETECTOR,
    empty_cluster.DETECTOR,
    certificates.DETECTOR,
    extension_config.DETECTOR,
)
# analyze's alone: lints of the config behind the gateway (istioctl analyze's checks, detectors/istio, and the
# Kubernetes objects'), which find-route and get-gateway-health, about what fails now, leave out.
LINTS: tuple[Detector, ...] = (
    direct_response.DETECTOR,
    traffic_policy.DETECTOR,
    gateway_ports.DETECTOR,
    gateway_conflicts.CONFLICTS_DETECTOR,
    gateway_conflicts.CERTIFICATES_DETECTOR,
    vs_gateways.DETECTOR,
    vs_destinations.DETECTOR,
    vs_rules.DETECTOR,
    vs_hosts.DETECTOR,
    jwt_routes.DETECTOR,
    dr_tls.CA_DETECTOR,
    dr_tls.MODE_DETECTOR,
    dr_subsets.DETECTOR,
    service_ports.DETECTOR,
    serviceentries.DETECTOR,
    envoyfilters.DETECTOR,
    istiod_status.DETECTOR,
    # the Kubernetes objects' (detectors/kube)
    ingress_conflicts.DETECTOR,
    ingress_tls.DETECTOR,
    stray_annotations.DETECTOR,
    service_pods.DETECTOR,
)
ANALYZE = DETECTORS + LINTS


def by_name(name: str) -> Detector:
    return next(d for d in ANALYZE if d.name == name)


@dataclass
class Report:
    """Every finding of one run, worst first, and what could not be checked."""

    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> why it did not run
    notes: dict[str, list[str]] = field(default_factory=dict)  # detector -> what it could not read

    def of(self, detector: str) -> list[Finding]:
        return [f for f in self.findings if f.detector == detector]

    def covering(self, focus: Focus) -> list[Finding]:
        """The findings about an object the request goes through."""
        return [f for f in self.findings if any(focus.covers(r) for r in f.refs())]


def stat_patterns(detectors: Sequence[Detector], focus: Focus | None) -> list[str]:
    """The detectors' /stats filters, `<cluster>` filled with the focus's clusters (or any cluster)."""
    if focus is None:
        clusters = ".+"
    elif focus.clusters:
        clusters = "(" + "|".join(re.escape(c) for c in sorted(focus.clusters)) + ")"
    else:
        clusters = ""
    return [p.replace("<cluster>", clusters) for d in detectors for p in d.stats if clusters or "<cluster>" not in p]


async def run(facts: Facts, focus: Focus | None = None, detectors: Sequence[Detector] = DETECTORS) -> Report:
    """Run the detectors concurrently over one call's facts (each document is still fetched once, the counters
    of all of them in one /stats request). Without a focus, request-only detectors have nothing to say."""
    if focus is None:
        detectors = [d for d in detectors if not d.request_only]
    facts.want(*stat_patterns(detectors, focus))

    async def one(d: Detector) -> list[Finding] | str:
        try:
            return await d.detect(facts, focus)
        except (UpstreamError, DumpError) as exc:
            return str(exc)

    report = Report()
    for d, result in zip(detectors, await asyncio.gather(*(one(d) for d in detectors)), strict=True):
        if isinstance(result, str):
            report.skipped[d.name] = result
        else:
            report.findings += result
    # An inline route configuration on several filter chains is the same object each time: one finding for it.
    report.findings = list({(f.detector, f.subject, f.message): f for f in report.findings}.values())
    report.findings.sort(key=Finding.key)
    report.notes = {k: v for k, v in facts.notes.items() if v}
    return report
