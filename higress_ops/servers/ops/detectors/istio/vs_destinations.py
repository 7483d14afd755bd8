"""istioctl's virtualservice.DestinationHostAnalyzer and DestinationRuleAnalyzer: a VirtualService routes (or
mirrors) to a host no Service or ServiceEntry defines (IST0101 host), to a port the service does not have (IST0101
host:port), to a multi-port service without a port (IST0112), or to a subset no DestinationRule defines (IST0101
host+subset); and a subset that gateway requests never use (IST0140).

The services are istiod's registry (Kubernetes Services, ServiceEntries and, for Higress, McpBridge registries),
visible to the VirtualService's namespace by their exportTo, as Istio's GetDestinationHost looks them up. When
this gateway routes to the cluster such a destination becomes and the cluster is missing, the missing-cluster
detector already reports the failure (503 NC) with the ports that exist; the destination is not reported twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.detectors import missing_cluster
from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.codes import go_list, quote
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import Destination, IstioConfig, Resource

NAME = "istio-virtualservice-destinations"


@dataclass(frozen=True)
class Service:
    host: str
    ports: tuple[int, ...]


@dataclass
class Services:
    """Istio's InitServiceEntryHostMap over istiod's registry: `scope/fqdn` -> service, and the wildcard hosts."""

    by_key: dict[str, Service]
    wildcards: list[tuple[str, str, Service]]  # (scope, host without the `*`, service)

    def lookup(self, namespace: str, export_to: list[str], host: str) -> Service | None:
        """Istio's GetDestinationHost."""
        name = configz.fqdn(host, namespace)
        if (found := self.by_key.get(f"*/{name}")) is not None:
            return found
        for e in export_to or [namespace]:
            if (found := self.by_key.get(f"{namespace if e == '.' else e}/{name}")) is not None:
                return found
        bare = host.removeprefix("*")
        return next((svc for s, suffix, svc in self.wildcards if s in ("*", namespace) and bare.endswith(suffix)),
                    None)


def _scopes(export_to: Any, namespace: str) -> list[str]:
    values = list(export_to) if isinstance(export_to, Mapping | list) else []
    return ["*"] if not values or "*" in values else sorted({namespace if v == "." else str(v) for v in values})


def service_map(registry: Iterable[Mapping[str, Any]]) -> Services:
    out = Services({}, [])
    for svc in registry:
        attrs = mapping(svc.get("Attributes"))
        host, ns = str(svc.get("hostname", "")), str(attrs.get("Namespace", ""))
        ports = tuple(int(p["port"]) for p in svc.get("ports") or [] if isinstance(mapping(p).get("port"), int))
        for s in _scopes(attrs.get("ExportTo"), ns):
            name = configz.fqdn(host, ns)
            out.by_key[f"{s}/{name}"] = Service(host, ports)
            if name.startswith("*"):
                out.wildcards.append((s, name[1:], Service(host, ports)))
    return out


def subsets(config: IstioConfig) -> set[tuple[str, str, str]]:
    """(namespace, name, subset) of every DestinationRule subset, hosts named as GetResourceNameFromHost does."""
    out = set()
    for dr in config.of("DestinationRule"):
        ns, name = resource_name(dr.namespace, str(dr.spec.get("host", "")))
        out |= {(ns, name, str(s.get("name", ""))) for s in dr.items("subsets")}
    return out


def resource_name(namespace: str, host: str) -> tuple[str, str]:
    return configz.service_of(host) or (namespace, host)


def cluster_of(d: Destination, vs: Resource, svc: Service | None) -> str:
    """The Envoy cluster istiod builds for a destination (`outbound|port|subset|fqdn`)."""
    port = d.port or (svc.ports[0] if svc is not None and len(svc.ports) == 1 else 0)
    return f"outbound|{port}|{d.subset}|{configz.fqdn(d.host, vs.namespace)}"


def _where(d: Destination) -> str:
    return (f"spec.http[{d.rule_index}].mirror" if d.rule == "http.mirror" else
            f"spec.http[{d.rule_index}].mirrors[{d.index}]" if d.rule == "http.mirrors" else
            f"spec.{d.rule}[{d.rule_index}].route[{d.index}]")


def check(vs: Resource, services: Services, drs: set[tuple[str, str, str]],
          reported: set[str]) -> list[Finding]:
    """`reported`: the missing clusters this gateway routes to (the missing-cluster detector's)."""
    out: list[Finding] = []
    export_to = vs.strings("exportTo")
    for d in [*configz.route_destinations(vs), *configz.mirror_destinations(vs)]:
        mirror = d.rule.startswith("http.mirror")
        svc = services.lookup(vs.namespace, export_to, d.host)
        here = not mirror and cluster_of(d, vs, svc) in reported
        evidence = (f"{_where(d)}: {d.host}" + (f":{d.port}" if d.port else "") + (f" subset {d.subset}"
                                                                                   if d.subset else ""),)
        ns, name = resource_name(vs.namespace, d.host)
        if d.subset and (ns, name, d.subset) not in drs and not here:
            out += scope.finding(NAME, vs, "IST0101", ("mirror+subset in destinationrule" if mirror else
                                                       "host+subset in destinationrule", quote(f"{d.host}+{d.subset}")),
                                 f"define subset {d.subset} in a DestinationRule for {d.host}, or drop the subset",
                                 evidence)
        if svc is None:
            if not here:
                out += scope.finding(NAME, vs, "IST0101", ("mirror host" if mirror else "host", quote(d.host)),
                                     "route to a host a Service or ServiceEntry defines", evidence)
            continue
        if not d.port and len(svc.ports) > 1:
            out += scope.finding(NAME, vs, "IST0112", (quote(d.host), go_list(list(svc.ports))),
                                 f"set {_where(d)}.destination.port to one of {', '.join(map(str, svc.ports))}",
                                 evidence)
        elif d.port and d.port not in svc.ports and not here:
            out += scope.finding(NAME, vs, "IST0101", ("host:port", quote(f"{d.host}:{d.port}")),
                                 f"use a port the service has ({', '.join(map(str, svc.ports)) or 'none'}), or add "
                                 f"port {d.port} to it", evidence)
    return out


def ingress_subsets(config: IstioConfig) -> list[Finding]:
    """IST0140: a gateway VirtualService routes to a host without a subset while some VirtualService routes to
    that host's subsets: those subsets do not apply to the gateway's requests."""
    with_subsets: dict[str, set[str]] = {}  # host -> VirtualServices routing to its subsets (and defining it)
    for vs in config.of("VirtualService"):
        for d in configz.route_destinations(vs):
            if d.rule == "http" and d.subset and d.host in vs.strings("hosts"):
                with_subsets.setdefault(d.host, set()).add(vs.full_name)
    out: list[Finding] = []
    for vs in config.of("VirtualService"):
        if not vs.strings("gateways"):
            continue
        hosts = {d.host for d in configz.route_destinations(vs) if d.rule == "http" and not d.subset}
        others: dict[str, set[str]] = {}
        for h in hosts & with_subsets.keys():
            for other in with_subsets[h]:
                others.setdefault(other, set()).add(h)
        for other, shared in sorted(others.items()):
            out += scope.finding(NAME, vs, "IST0140", (other, vs.full_name),
                                 "name the subset in this VirtualService's route if the gateway's requests should use "
                                 "it", (f"hosts: {', '.join(sorted(shared))}",))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    known = {str(c.get("name", "")) for c in eps.cluster_statuses(await facts.clusters_json())}
    reported = set(await facts.compute(missing_cluster.missing, await facts.dump("routes"), known, None))
    services = service_map(mesh.registry)
    drs = subsets(mesh.config)
    return await facts.compute(lambda: [f for vs in mesh.config.of("VirtualService")
                                        for f in check(vs, services, drs, reported)] + ingress_subsets(mesh.config))


DETECTOR = Detector(NAME, "VirtualService destinations: hosts, ports and subsets that do not exist (istioctl IST0101, "
                    "IST0112, IST0140)", detect, next_tool="get-istiod-registryz", sources=("istiod", "envoy"))
