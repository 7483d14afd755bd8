"""Routes to a cluster this proxy does not have: Envoy answers 503 with response flag NC (`no_cluster`).

Istio names clusters `outbound|PORT|SUBSET|HOST`, so the usual cause shows in the names: the route wants port 80
of a service whose clusters (and registry entry) say 8080. The finding lists the clusters of the same host that do
exist and, when istiod answers, the service's ports in its registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, Verdict, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views.routes import all_routes, route_targets
from higress_ops.servers.ops.views.source import UpstreamError

ROUTES_SHOWN = 3  # routes named per missing cluster; the count says how many there are


def missing(dump: cd.Json, known: set[str], focus: Focus | None) -> dict[str, list[Ref]]:
    """missing cluster -> the routes that point at it (only the focus's routes, given one)."""
    out: dict[str, dict[Ref, None]] = {}  # ordered sets: inline route configs of several listeners share a name
    for rc_name, vh, i, route in all_routes(dump):
        ref = route_ref(rc_name, str(vh.get("name", "")), i, str(route.get("name", "")))
        if focus is not None and ref not in focus.routes:
            continue
        for cluster, _ in route_targets(route)[1]:
            if cluster and cluster not in known:
                out.setdefault(cluster, {})[ref] = None
    return {cluster: list(refs) for cluster, refs in out.items()}


def by_host(known: set[str]) -> dict[tuple[str, str], list[str]]:
    """(direction, Istio host) -> the clusters of that host on this proxy, so each lookup is one dict get."""
    out: dict[tuple[str, str], list[str]] = {}
    for k in known:
        direction, _, _, host = cd.parse_subset_key(k)
        if host:
            out.setdefault((direction, host), []).append(k)
    return out


def siblings(name: str, index: Mapping[tuple[str, str], list[str]]) -> list[str]:
    """Existing clusters of the same Istio host and direction (other ports or subsets)."""
    direction, _, _, host = cd.parse_subset_key(name)
    return sorted(k for k in index.get((direction, host), []) if k != name) if host else []


def registry_ports(registry: Mapping[str, Any], host: str) -> list[str]:
    """`name port/protocol` of the service `host` in istiod's registryz (by hostname), [] when it is not there."""
    svc = registry.get(host)
    return [f"{p.get('name', '')} {p.get('port', '')}/{p.get('protocol', '')}".strip()
            for p in svc.get("ports") or [] if isinstance(p, Mapping)] if isinstance(svc, Mapping) else []


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    dump = await facts.dump("routes")
    known = {str(c.get("name", "")) for c in eps.cluster_statuses(await facts.clusters_json())}
    found = await facts.compute(missing, dump, known, focus)
    registry: dict[str, Any] | None = None
    if found:
        try:
            answer = await facts.istiod("/debug/registryz")
            registry = {str(s.get("hostname")): s for s in answer if isinstance(s, Mapping)} if isinstance(
                answer, list) else {}
        except UpstreamError:
            registry = None  # the cluster names still tell most of it
    index = await facts.compute(by_host, known) if found else {}
    findings = []
    for cluster, routes in sorted(found.items()):
        host = cd.parse_subset_key(cluster)[3]
        others = siblings(cluster, index)
        ports = registry_ports(registry or {}, host) if host else []
        evidence = [f"routes pointing at it: {len(routes)}"]
        if others:
            evidence.append("clusters of the same host on this proxy: " + ", ".join(others[:5]))
        if ports:
            evidence.append(f"istiod's registry has {host} with ports: " + ", ".join(ports))
        elif host and registry is not None:
            evidence.append(f"istiod's registry has no service {host}")
        fix = (f"point the route at an existing port ({', '.join(others[:3])}), or add the port to the service"
               if others else ("add the service or its port, or point the route at an existing cluster"
                               if host else "point the route at an existing cluster"))
        findings.append(Finding(
            "missing-cluster", Severity.ERROR, Ref("cluster", cluster),
            f"no such cluster (503 NC), used by {len(routes)} route(s)"
            + (f"; same host here: {', '.join(others[:2])}" if others else ""),
            fix, tuple(evidence), tuple(routes[:ROUTES_SHOWN]),
            code="IST0101" if host else "", verdict=Verdict(503, "cluster_not_found")))
    return findings


DETECTOR = Detector("missing-cluster", "Routes to clusters that do not exist", detect,
                    next_tool="find-route host=<host> path=<path>", sources=("envoy", "istiod"))
