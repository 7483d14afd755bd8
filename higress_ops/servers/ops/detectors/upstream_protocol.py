"""An upstream HTTP protocol the backend does not speak: HTTP/2 towards an HTTP/1.1-only backend (checked on
Envoy 1.40: 502, response flag UPE, `upstream_cx_protocol_error`) or the reverse. A cluster speaks HTTP/1.1
unless its HttpProtocolOptions (or the deprecated http2_protocol_options) say otherwise."""

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

COUNTERS = ("upstream_cx_protocol_error", "upstream_cx_http1_total", "upstream_cx_http2_total")


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    stats = await facts.counters()
    healths = await facts.cluster_healths()
    broken = [n for n in in_scope(healths, focus) if counter(stats, n, "upstream_cx_protocol_error")]
    configs = await facts.cluster_configs(broken[:10])
    findings = []
    for name in broken:
        spoken = cs.protocol(configs.get(name))
        errors = counter(stats, name, "upstream_cx_protocol_error")
        other = "HTTP/1.1" if spoken.startswith("HTTP/2") else "HTTP/2 (or not HTTP)"
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("cluster", name),
            f"the cluster speaks {spoken.split(' (')[0]} and the backend answers in another protocol "
            f"({errors} protocol error(s)): it likely speaks {other}",
            "set the service port's protocol to what the backend speaks (Istio: the port name or appProtocol, "
            "http vs http2/grpc; Higress: the backend-protocol annotation)",
            (f"upstream protocol: {spoken}", *(f"{k} {counter(stats, name, k)}" for k in COUNTERS
                                                if counter(stats, name, k))),
            verdict=Verdict(502, "upstream_protocol_error")))
    return findings


DETECTOR = Detector("upstream-protocol", "Upstream protocol mismatches (UPE)", detect,
                    next_tool="get-envoy-config-dump resource=dynamic_active_clusters name_regex=<cluster>",
                    stats=(cluster_pattern(COUNTERS),))
