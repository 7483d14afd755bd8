"""Services a route of this gateway uses whose selector matches no ready pod, or whose EndpointSlices have no
ready address: istiod then sends the cluster no endpoint and Envoy answers 503 UH (empty-cluster, issue 21, says
that on the cluster; this says why, on the Service, from the Kubernetes objects: which pods, why not ready, their
recent Warning events).
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.objects.kubernetes import selector_text
from higress_ops.servers.ops.objects.model import Pod, Service
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.routes import route_targets

NAME = "service-pods"
SHOWN = 3


def _why(pod: Pod) -> str:
    parts = [f"{c.name} {c.state}" + (f", {c.restarts} restart(s)" if c.restarts else "") for c in pod.containers
             if not c.ready]
    return f"{pod.meta.name} ({pod.phase}; " + ("; ".join(parts) or "not ready") + ")"


async def check(facts: Facts, svc: Service, clusters: list[str]) -> Finding | None:
    if not svc.selector:
        return None  # endpoints are managed by hand (or by a registry): nothing to select
    pods = await facts.objects.pods(svc.meta.namespace, svc.selector)
    if pods is None:
        return None
    endpoints = await facts.objects.endpoints(svc)
    ready_pods = [p for p in pods if p.ready]
    ready_addresses = {e.address for e in endpoints if e.ready}
    if ready_pods and ready_addresses:
        return None
    selector = selector_text(svc.selector)
    if not pods:
        message = f"selector {selector} matches no pod in namespace {svc.meta.namespace}"
        fix = "fix the Service's selector to the pods' labels, or deploy the pods"
    elif not ready_pods:
        message = f"{len(pods)} pod(s) match selector {selector}, none ready"
        fix = "fix what keeps the pods from being ready (their readiness probe, crash loop or image; events below)"
    else:
        message = f"{len(ready_pods)} pod(s) are ready but the EndpointSlices list no ready address"
        fix = "check the EndpointSlice controller (kube-controller-manager) and the Service's ports"
    evidence = [f"not ready: {', '.join(_why(p) for p in pods[:SHOWN])}"] if pods and not ready_pods else []
    evidence.append(f"EndpointSlices: {len(endpoints)} address(es), {len(ready_addresses)} ready")
    events = await facts.objects.warnings_for([("Pod", p.meta.namespace, p.meta.name) for p in pods[:SHOWN]]
                                             + [("Service", svc.meta.namespace, svc.meta.name)])
    evidence += [f"Warning {e.reason} ({e.regarding[2]}, x{e.count}): {e.message[:120]}" for e in events[:2]]
    return Finding(NAME, Severity.ERROR, Ref("Service", svc.meta.name, svc.meta.namespace),
                   message + ": the cluster gets no endpoint, requests get 503 UH", fix, tuple(evidence),
                   tuple(Ref("cluster", c) for c in clusters[:SHOWN]))


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    if not facts.objects.namespaces:
        facts.note(NAME, "the Kubernetes API is not read: empty-cluster tells what istiod knows")
        return []
    used: dict[tuple[str, str], list[str]] = {}
    for _, _, _, route in await facts.routes():
        for cluster, _ in route_targets(route)[1]:
            parts = cd.parse_subset_key(cluster)[3].split(".")
            if len(parts) >= 4 and parts[2] == "svc" and facts.objects.reads(parts[1]):
                used.setdefault((parts[1], parts[0]), []).append(cluster)
    findings = []
    for (ns, name), clusters in sorted(used.items()):
        svc = await facts.objects.service(ns, name)
        if svc is not None and (f := await check(facts, svc, sorted(set(clusters)))) is not None:
            findings.append(f)
    return findings


DETECTOR = Detector(NAME, "Services a route uses with no ready pod or no ready address", detect,
                    next_tool="describe-cluster cluster=<cluster>", sources=("kubernetes", "envoy"))
