"""The object to edit for each analyze finding: a finding names what is wrong where it shows (an Envoy route,
cluster or secret, or an Istio resource Higress generated); an operator edits the Ingress, Service or
DestinationRule behind it. The links are the objects layer's (objects/links.py, objects/higress.py):

- a route (the subject, or a route the finding names): its Istio metadata names the VirtualService; a Higress
  VirtualService's route is named after its Ingress;
- a cluster: its Istio metadata names the DestinationRule that applied, its name the Service (with the port the
  cluster is for, and that port's name and appProtocol when the service is known: they decide the protocol Istio
  gives the cluster, so a protocol mismatch upstream-protocol sees in the counters is fixed there);
- a secret: Higress names an Ingress's TLS secret `kubernetes-ingress://<cluster>/<namespace>/<name>`, so the
  Ingresses whose TLS names that secret; Istio's `kubernetes://<name>`, the Gateways whose credentialName it is;
- a VirtualService or Gateway Higress generated: the Ingresses of its routes, or of its host.

Each link costs no extra request beyond the documents the call fetched (the routes, the routed clusters' configs,
istiod's config, the Ingresses and Services the objects layer reads once).
"""

from __future__ import annotations

from collections.abc import Sequence

from higress_ops.servers.ops.detectors.base import Finding, Ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.objects import higress
from higress_ops.servers.ops.objects.links import cluster_link, route_link
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.source import UpstreamError

CONFIGS = 20  # cluster configs fetched for the findings shown, at most
API_KINDS = ("Ingress", "Service", "DestinationRule", "VirtualService", "Gateway", "EnvoyFilter", "ServiceEntry")


def _route_key(ref: Ref) -> tuple[str, str, int] | None:
    """(route config, virtual host, index) of a route_ref."""
    if ref.kind != "route" or not ref.within.startswith("route config "):
        return None
    rc, _, vh = ref.within.removeprefix("route config ").partition(", virtual host ")
    try:
        return rc, vh, int(ref.name.split(" ", 1)[0].lstrip("#"))
    except ValueError:
        return None


async def edits(findings: Sequence[Finding], facts: Facts) -> list[list[str]]:
    """For each finding, the objects to edit (`Kind ns/name (why)`), [] when the subject itself is the one."""
    routes = {(rc, str(vh.get("name", "")), i): route for rc, vh, i, route in await _routes(facts)}
    clusters = sorted({r.name for f in findings for r in f.refs() if r.kind == "cluster"})[:CONFIGS]
    configs = await _configs(facts, clusters)
    ingresses = await _ingresses(facts)
    ports = await _ports(facts, clusters)
    namespace = facts.src.namespace
    out = []
    for f in findings:
        found: dict[str, None] = {}
        for ref in f.refs():
            for text in _links(ref, routes, configs, ingresses, namespace, ports):
                found.setdefault(text, None)
        subject = str(f.subject)
        out.append([t for t in found if not t.startswith(subject + " ") and t != subject][:4])
    return out


def _links(ref: Ref, routes: dict[tuple[str, str, int], cd.Json], configs: dict[str, cd.Json],
           ingresses: list[tuple[str, str, tuple[str, ...], tuple[str, ...]]], namespace: str,
           ports: dict[str, str]) -> list[str]:
    """ingresses: (namespace, name, hosts, TLS secret names); ports: cluster -> its service port, described."""
    key = _route_key(ref)
    if key is not None and key in routes:
        route = route_link(routes[key])
        if route.ingress is not None:
            return ["Ingress {}/{} (its route {})".format(*route.ingress, routes[key].get("name", ""))]
        if route.virtual_service is not None:
            return ["VirtualService {}/{}".format(*route.virtual_service)]
    if ref.kind == "cluster":
        cluster = cluster_link(ref.name, configs.get(ref.name))
        found = []
        if cluster.destination_rule:
            found.append("DestinationRule {}/{} (applied to the cluster)".format(*cluster.destination_rule))
        if cluster.service:
            port = ports.get(ref.name) or (f"port {cluster.port}" if cluster.port else "")
            found.append("Service {}/{}".format(*cluster.service) + (f" ({port})" if port else ""))
        elif cluster.registry:
            found.append(f"McpBridge {namespace}/default (registry {cluster.registry[1] or cluster.registry[0]})")
        return found
    if ref.kind == "secret":
        parts = ref.name.removeprefix("kubernetes-ingress://").split("/")
        if ref.name.startswith("kubernetes-ingress://") and len(parts) == 3:
            ns, secret = parts[1], parts[2]
            names = [f"{i_ns}/{name}" for i_ns, name, _, secrets in ingresses if i_ns == ns and secret in secrets]
            return [f"Ingress {n} (its TLS secret {ns}/{secret})" for n in names] or [f"Secret {ns}/{secret}"]
    if ref.kind in ("VirtualService", "Gateway") and higress.is_generated(ref.name):
        return [f"Ingress {ns}/{name} (Higress generated {ref.kind} {ref.name} from it)"
                for ns, name, hosts, _ in ingresses if any(higress.clean_host(h) in ref.name for h in hosts)][:3]
    return []


async def _routes(facts: Facts) -> list[tuple[str, cd.Json, int, cd.Json]]:
    try:
        return await facts.routes()
    except UpstreamError:
        return []


async def _configs(facts: Facts, clusters: list[str]) -> dict[str, cd.Json]:
    try:
        return await facts.cluster_configs(clusters)
    except UpstreamError:
        return {}


async def _ports(facts: Facts, clusters: list[str]) -> dict[str, str]:
    """cluster -> `port N name[, appProtocol A]: PROTOCOL`, for the clusters whose service port is known: the
    name or appProtocol that made Istio pick the protocol the cluster speaks."""
    out = {}
    for name in clusters:
        _, number, _, host = cd.parse_subset_key(name)
        try:
            svc = await facts.objects.service_by_host(host) if host else None
        except UpstreamError:
            svc = None
        port = svc.port(number) if svc is not None else None
        if port is not None:
            app = f", appProtocol {port.app_protocol}" if port.app_protocol else ""
            out[name] = f"port {number} {port.name or '(unnamed)'}{app}: {port.protocol}"
    return out


async def _ingresses(facts: Facts) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """Every Ingress the objects layer knows (the API's, or rebuilt from Higress's VirtualServices)."""
    try:
        found = await facts.objects.ingresses()
    except UpstreamError:
        return []
    return [(i.meta.namespace, i.meta.name, tuple(sorted({p.host for p in i.paths if p.host})),
             tuple(secret for _, secret in i.tls)) for i in found]
