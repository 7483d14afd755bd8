"""TLS towards a plaintext backend, or plaintext towards a TLS one.

Checked on Envoy 1.40: a cluster with an UpstreamTlsContext towards a plaintext backend answers 503 UF, counting
`ssl.connection_error` and `upstream_cx_connect_fail` (the handshake is part of connecting); a plaintext cluster
towards a TLS backend answers 503 UC, the backend closing each connection with the request in flight
(`upstream_cx_destroy_remote_with_active_rq`), or relays the 400 a web server sends for plain HTTP on its TLS port.
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
from higress_ops.servers.ops.views.routes import route_targets

SSL = ("ssl.connection_error", "ssl.fail_verify_error", "ssl.fail_verify_san", "ssl.fail_verify_no_cert",
       "ssl.handshake")
PLAIN = ("upstream_cx_destroy_remote_with_active_rq", "upstream_rq_completed", "upstream_rq_2xx")


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    stats = await facts.counters()
    healths = await facts.cluster_healths()
    names = in_scope(healths, focus)
    tls_errors = [n for n in names if counter(stats, n, "ssl.connection_error")
                  and not counter(stats, n, "ssl.handshake")]
    # A TCP proxy counts each connection as a request, and a backend that closes first as "remote with active
    # rq" whatever it speaks: only clusters HTTP routes send to say anything about HTTP to a TLS backend.
    http = {c for _, _, _, route in await facts.routes() for c, _ in route_targets(route)[1]}
    closed = [n for n in names if n in http and not counter(stats, n, "ssl.handshake")
              and not counter(stats, n, "upstream_rq_2xx")
              and counter(stats, n, "upstream_cx_destroy_remote_with_active_rq") >= max(
                  counter(stats, n, "upstream_rq_completed"), 1)]
    configs = await facts.cluster_configs((tls_errors + closed)[:10])
    findings = []
    for name in tls_errors:
        config = configs.get(name)
        evidence = (f"transport: {cs.transport(config)}",
                    *(f"{k} {counter(stats, name, k)}" for k in SSL if counter(stats, name, k)),
                    "ssl.handshake 0: no handshake ever completed")
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("cluster", name),
            "the cluster speaks TLS and no handshake completes: the backend speaks plaintext (or another TLS "
            "setup)", "use plaintext towards this backend (DestinationRule trafficPolicy.tls.mode DISABLE, or "
            "Higress's backend-protocol annotation), or enable TLS on the backend", evidence,
            verdict=Verdict(503, "upstream_tls_error")))
    for name in closed:
        config = configs.get(name)
        if config is not None and cs.speaks_tls(config):
            continue
        n = counter(stats, name, "upstream_cx_destroy_remote_with_active_rq")
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("cluster", name),
            f"the cluster speaks plaintext and the backend closed every connection before answering ({n} of "
            f"{counter(stats, name, 'upstream_rq_completed')} requests): it likely expects TLS",
            "originate TLS towards it (DestinationRule trafficPolicy.tls.mode SIMPLE, or Higress's "
            "backend-protocol: HTTPS annotation), or serve plaintext on that port",
            (f"transport: {cs.transport(config)}", f"upstream_cx_destroy_remote_with_active_rq {n}",
             "upstream_rq_2xx 0"), verdict=Verdict(503, "upstream_plaintext_to_tls")))
    return findings


DETECTOR = Detector("upstream-tls", "Upstream TLS mismatches", detect,
                    next_tool="get-envoy-config-dump resource=dynamic_active_clusters name_regex=<cluster>",
                    stats=(cluster_pattern((*SSL, *PLAIN)),))
