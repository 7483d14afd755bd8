"""istioctl's destinationrule.SubsetSelectPodAnalyzer: a DestinationRule for a host no service defines (IST0174),
and a subset whose labels select no pod (IST0173: requests to it get 503 UH).

Istio matches the subset's labels (with the ServiceEntry's workloadSelector) against every pod; here they are
matched against the endpoints istiod holds for the host, whose labels are the pods' (with istiod's topology
labels), which is what decides the subset's cluster. A host with no endpoints at all is left to the empty-cluster
finding (the Service selects no pod), rather than reported once per subset; so is a subset whose cluster a route
of this gateway uses (empty-cluster reports the 503 and names this rule's subset as the cause).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.vs_destinations import Services, service_map
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import IstioConfig, Resource
from higress_ops.servers.ops.views.routes import route_targets

NAME = "istio-destinationrule-subsets"


def endpoint_labels(endpointz: Any, host: str) -> list[Mapping[str, str]]:
    out: list[Mapping[str, str]] = []
    for shards in mapping(mapping(endpointz).get(host)).values():
        for endpoints in mapping(mapping(shards).get("Shards")).values():
            out += [configz.string_map(mapping(ep).get("Labels")) for ep in endpoints
                    if isinstance(endpoints, list)]
    return out


def workload_selector(config: IstioConfig, host: str) -> dict[str, str]:
    """The ServiceEntry workloadSelector labels of `host` (Kubernetes Services have none)."""
    for se in config.of("ServiceEntry"):
        if host in se.strings("hosts"):
            return configz.string_map(mapping(se.spec.get("workloadSelector")).get("labels"))
    return {}


def unselected(dr: Resource, mesh: scope.Mesh, endpointz: Any) -> list[tuple[str, dict[str, str], int, list[str]]]:
    """(subset, its selector, the host's endpoint count, their values of the selector's labels) of each subset of
    `dr` that selects none of the host's endpoints; [] when the host has no endpoints at all."""
    name = configz.fqdn(str(dr.spec.get("host", "")), dr.namespace)
    subsets = dr.items("subsets")
    labels = endpoint_labels(endpointz, name) if subsets else []
    if not labels:
        return []
    base = workload_selector(mesh.config, name)
    out = []
    for subset in subsets:
        selector = {**base, **configz.string_map(subset.get("labels"))}
        if not any(configz.selects(selector, ep) for ep in labels):
            seen = sorted({f"{k}={v}" for ep in labels for k, v in ep.items() if k in selector})
            out.append((str(subset.get("name", "")), selector, len(labels), seen))
    return out


def subset_selecting_none(mesh: scope.Mesh, endpointz: Any, host: str, subset: str) -> tuple[Resource, str] | None:
    """The DestinationRule whose subset `subset` of `host` selects none of its endpoints, and the selector."""
    for dr in mesh.config.of("DestinationRule"):
        if configz.fqdn(str(dr.spec.get("host", "")), dr.namespace) == host:
            for name, selector, _, _ in unselected(dr, mesh, endpointz):
                if name == subset:
                    return dr, configz.selector_text(selector)
    return None


def check(dr: Resource, mesh: scope.Mesh, services: Services, endpointz: Any,
          reported: set[tuple[str, str]]) -> list[Finding]:
    """`reported`: (host, subset) of the empty subset clusters routes of this gateway use (empty-cluster's)."""
    host = str(dr.spec.get("host", ""))
    if services.lookup(dr.namespace, dr.strings("exportTo"), host) is None:
        return scope.finding(NAME, dr, "IST0174", (host,), "set spec.host to a service's host (istiod's registry "
                             "lists them), or delete the DestinationRule", (f"spec.host: {host}",))
    name = configz.fqdn(host, dr.namespace)
    out: list[Finding] = []
    for subset, selector, count, seen in unselected(dr, mesh, endpointz):
        if (name, subset) in reported:
            continue
        out += scope.finding(NAME, dr, "IST0173", (subset,),
                             f"fix the subset's labels ({configz.selector_text(selector)}) to match the pods of "
                             f"{name}, or deploy pods with them",
                             (f"{count} endpoint(s) of {name}; their values of these labels: "
                              f"{', '.join(seen[:6]) or 'none set'}",))
    return out


async def empty_routed_subsets(facts: Facts) -> set[tuple[str, str]]:
    """(host, subset) of the subset clusters without hosts that a route of this gateway uses."""
    healths = await facts.cluster_healths()
    routed = {c for _, _, _, route in await facts.routes() for c, _ in route_targets(route)[1]}
    return {(host, subset) for n in routed if n in healths and not healths[n].hosts
            for _, _, subset, host in [cd.parse_subset_key(n)] if subset and host}


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    drs = mesh.config.of("DestinationRule")
    if not drs:
        return []
    endpointz = await facts.istiod("/debug/endpointz")
    services = service_map(mesh.registry)
    reported = await empty_routed_subsets(facts)
    return await facts.compute(lambda: [f for dr in drs for f in check(dr, mesh, services, endpointz, reported)])


DETECTOR = Detector(NAME, "DestinationRules for unknown hosts, and subsets that select no pods (istioctl IST0174, "
                    "IST0173)", detect, next_tool="get-istiod-endpointz", sources=("istiod", "envoy"))
