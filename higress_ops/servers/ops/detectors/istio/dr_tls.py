"""A DestinationRule's TLS settings: no server certificate verification (istioctl's
destinationrule.CaCertificateAnalyzer, IST0128 and IST0129), and a TLS mode that disagrees with the port.

Mode against port (no Istio code): the port's protocol is what its name prefix or appProtocol declares (istiod's
registry has it), and the endpoints say whether a sidecar is there (`TLSMode` "istio" in istiod's endpoints).
- SIMPLE or MUTUAL towards a port declared plaintext (http, http2, grpc, ...): Envoy starts a TLS handshake with a
  backend that expects HTTP;
- DISABLE towards a port declared https or tls: Envoy sends plaintext to a TLS backend;
- ISTIO_MUTUAL towards endpoints without a sidecar (a Higress backend usually has none): the backend cannot answer
  Istio's mTLS.
Only ports this gateway has a cluster for are checked, before anything failed: once the cluster's TLS or connect
counters grew, upstream-tls (issue 21) reports the failure on the cluster, which names this rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, cluster_pattern, counter
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views.configdump import Json, mapping
from higress_ops.servers.ops.views.configz import Resource

CA = "istio-destinationrule-ca"
MODE = "destinationrule-tls-port"
PLAINTEXT = {"HTTP", "HTTP2", "GRPC", "GRPC-Web", "HTTP_PROXY"}
TLS_PORTS = {"HTTPS", "TLS"}
TLS_STATS = ("ssl.connection_error", "ssl.fail_verify_error", "upstream_cx_connect_fail",
             "upstream_cx_protocol_error")


def _verifies(tls: Json, dr: Resource) -> bool:
    return bool(tls.get("caCertificates")) or (bool(tls.get("credentialName")) and "workloadSelector" in dr.spec)


def ca_findings(dr: Resource) -> list[Finding]:
    out: list[Finding] = []
    policy = mapping(dr.spec.get("trafficPolicy"))
    tls = mapping(policy.get("tls"))
    host = str(dr.spec.get("host", ""))
    fix = "set tls.caCertificates (or a credentialName holding the CA) so Envoy verifies the server's certificate"
    if tls.get("mode") in ("SIMPLE", "MUTUAL") and not _verifies(tls, dr):
        out += scope.finding(CA, dr, "IST0128", (dr.name, dr.namespace, tls["mode"], host), fix)
    for p in policy.get("portLevelSettings") or []:
        ptls = mapping(mapping(p).get("tls"))
        if ptls.get("mode") in ("SIMPLE", "MUTUAL") and not _verifies(ptls, dr):
            number = mapping(mapping(p).get("port")).get("number")
            out += scope.finding(CA, dr, "IST0129", (dr.name, dr.namespace, ptls["mode"], host, f"number:{number}"),
                                 fix)
    return out


def modes(dr: Resource) -> tuple[str, dict[int, str]]:
    """(top-level TLS mode, port -> port-level mode)."""
    policy = mapping(dr.spec.get("trafficPolicy"))
    ports = {}
    for p in policy.get("portLevelSettings") or []:
        number, mode = mapping(mapping(p).get("port")).get("number"), mapping(mapping(p).get("tls")).get("mode")
        if isinstance(number, int) and mode:
            ports[number] = str(mode)
    return str(mapping(policy.get("tls")).get("mode") or ""), ports


def sidecars(endpointz: Any, host: str) -> tuple[int, int]:
    """(endpoints with a sidecar, endpoints) of a host in istiod's endpoint shards."""
    with_sidecar = total = 0
    for shards in mapping(mapping(endpointz).get(host)).values():
        for endpoints in mapping(mapping(shards).get("Shards")).values():
            for ep in endpoints if isinstance(endpoints, list) else []:
                total += 1
                with_sidecar += mapping(ep).get("TLSMode") == "istio"
    return with_sidecar, total


def disagreement(mode: str, protocol: str, endpoints: tuple[int, int]) -> str:
    if mode in ("SIMPLE", "MUTUAL") and protocol in PLAINTEXT:
        return f"tls.mode {mode} originates TLS towards a port declared {protocol} (plaintext)"
    if mode == "DISABLE" and protocol in TLS_PORTS:
        return f"tls.mode DISABLE sends plaintext towards a port declared {protocol}"
    if mode == "ISTIO_MUTUAL" and endpoints[1] and not endpoints[0]:
        return f"tls.mode ISTIO_MUTUAL towards {endpoints[1]} endpoint(s) without a sidecar (none can answer mTLS)"
    return ""


def mode_findings(dr: Resource, svc: Mapping[str, Any], clusters: set[str], endpointz: Any,
                  stats: Mapping[str, int]) -> list[Finding]:
    host = str(svc.get("hostname", ""))
    top, per_port = modes(dr)
    out = []
    for p in svc.get("ports") or []:
        p = mapping(p)
        number, protocol = p.get("port"), str(p.get("protocol", ""))
        cluster = f"outbound|{number}||{host}"
        if not isinstance(number, int) or cluster not in clusters:
            continue
        mode = per_port.get(number, top)
        why = disagreement(mode, protocol, sidecars(endpointz, host))
        if not why:
            continue
        if any(counter(stats, cluster, k) for k in TLS_STATS):
            continue  # it failed already: upstream-tls reports that, from these counters, on the cluster
        field = f"trafficPolicy.portLevelSettings[port {number}].tls.mode" if number in per_port else \
            "trafficPolicy.tls.mode"
        fix = ("set " + field + (" to DISABLE (or SIMPLE only if the backend serves TLS: then rename the port "
                                 "https-*)" if mode != "DISABLE" else " to SIMPLE, or rename the port if it is "
                                 "plaintext"))
        if mode == "ISTIO_MUTUAL":
            fix = f"set {field} to DISABLE: the backend has no sidecar to terminate Istio's mTLS"
        out.append(Finding(MODE, Severity.WARNING, scope.ref(dr), f"{why} (port {number} '{p.get('name', '')}' of "
                           f"{host})", fix, (f"cluster {cluster}: no TLS or connect errors counted yet",),
                           (Ref("cluster", cluster),)))
    return out


async def detect_ca(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    return await facts.compute(lambda: [f for dr in mesh.config.of("DestinationRule") for f in ca_findings(dr)])


async def detect_mode(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    services = mesh.services()
    clusters = {str(c.get("name", "")) for c in eps.cluster_statuses(await facts.clusters_json())}
    checked = []
    for dr in mesh.config.of("DestinationRule"):
        svc = services.get(configz.fqdn(str(dr.spec.get("host", "")), dr.namespace))
        if svc is not None and not dr.suppressed(MODE):
            checked.append((dr, svc))
    if not checked:
        return []
    endpointz = await facts.istiod("/debug/endpointz")
    stats = await facts.counters()
    return await facts.compute(lambda: [f for dr, svc in checked
                                        for f in mode_findings(dr, svc, clusters, endpointz, stats)])


CA_DETECTOR = Detector(CA, "DestinationRules that skip server certificate verification (istioctl IST0128, IST0129)",
                       detect_ca, next_tool="get-istiod-configz kind=DestinationRule", sources=("istiod", "envoy"))
MODE_DETECTOR = Detector(MODE, "DestinationRule TLS modes that disagree with the port or the backend", detect_mode,
                         next_tool="get-envoy-proxy-config type=clusters fqdn=<host>", sources=("istiod", "envoy"),
                         stats=(cluster_pattern(TLS_STATS),))
