"""Clusters without endpoints that routes use (503, response flag UH). istiod tells the two causes apart when it
answers: it knows endpoints for the service (they were not delivered to this proxy: an EDS or sync problem) or
it knows none (the Service selects no ready pods); for a subset's cluster, whether the DestinationRule's subset
labels select any of them. Istio's BlackHoleCluster and PassthroughCluster have no
endpoints by design and are never reported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, Verdict, in_scope, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.configz import Resource
from higress_ops.servers.ops.views.routes import route_targets
from higress_ops.servers.ops.views.source import UpstreamError

ISTIO_BY_DESIGN = ("BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster")


def istiod_endpoints(endpointz: Any, host: str) -> int | None:
    """How many endpoints istiod's endpointz lists for `host` (every namespace and shard), None if absent."""
    entry = endpointz.get(host) if isinstance(endpointz, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    return sum(len(eps) for ns in entry.values() if isinstance(ns, Mapping)
               for eps in cd.mapping(ns.get("Shards")).values() if isinstance(eps, list))


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    healths = await facts.cluster_healths()
    empty = [n for n in in_scope(healths, focus) if not healths[n].hosts and not n.startswith(ISTIO_BY_DESIGN)]
    if not empty:
        return []
    used: dict[str, list[Ref]] = {}
    for rc, vh, i, route in await facts.routes():
        for cluster, _ in route_targets(route)[1]:
            if cluster in empty:
                ref = route_ref(rc, str(vh.get("name", "")), i, str(route.get("name", "")))
                used.setdefault(cluster, []).append(ref)
    empty = [n for n in empty if n in used or focus is not None]
    endpointz: Any = None
    if any(cd.parse_subset_key(n)[3] for n in empty):
        try:
            endpointz = await facts.istiod("/debug/endpointz")
        except UpstreamError as exc:
            facts.note(DETECTOR.name, f"istiod did not answer endpointz ({str(exc)[:80]})")
    findings = []
    for name in empty:
        _, _, subset, host = cd.parse_subset_key(name)
        known = istiod_endpoints(endpointz, host) if host and endpointz is not None else None
        rule = await _subset_cause(facts, endpointz, host, subset) if known and subset else None
        if rule is not None:
            why, fix = (f"subset {subset} of DestinationRule {rule[0].full_name} ({rule[1]}) selects none of the "
                        f"{known} endpoint(s) istiod knows of {host}",
                        f"fix the subset's labels in DestinationRule {rule[0].full_name}, or route without the subset")
        elif known:
            why, fix = (f"istiod knows {known} endpoint(s) of {host}: they were not delivered to this proxy",
                        "check this proxy's EDS sync (get-istiod-proxy-status) and istiod's logs")
        elif host and endpointz is not None:
            why, fix = (f"istiod knows no endpoints of {host}: the Service selects no ready pods",
                        "check the Service's selector against the pods' labels, and that the pods are ready")
        else:
            why, fix = "no endpoints", "check the service's pods and this proxy's EDS (get-istiod-endpointz)"
        routes = used.get(name, [])
        rules = (Ref("DestinationRule", rule[0].name, rule[0].namespace),) if rule is not None else ()
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, Ref("cluster", name), f"{why}; Envoy answers 503 (UH)", fix,
            (f"routes using it: {len(routes)}",), (*rules, *routes[:3]), verdict=Verdict(503, "no_endpoints")))
    return findings


async def _subset_cause(facts: Facts, endpointz: Any, host: str, subset: str) -> tuple[Resource, str] | None:
    """The DestinationRule subset whose labels select none of the host's endpoints, when istiod's config says so
    (istio/dr_subsets.py, the check istioctl's IST0173 makes)."""
    from higress_ops.servers.ops.detectors.istio import dr_subsets, scope  # they build on this package

    try:
        mesh = await scope.mesh(facts)
    except (UpstreamError, DumpError):
        return None
    return dr_subsets.subset_selecting_none(mesh, endpointz, host, subset)


DETECTOR = Detector("empty-cluster", "Clusters without endpoints that routes use", detect,
                    next_tool="get-istiod-endpointz hostname=<host>", sources=("envoy", "istiod"))
