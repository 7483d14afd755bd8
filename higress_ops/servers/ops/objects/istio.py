"""istiod's view of the objects (configz, registryz, endpointz) in this package's shape, and the Istio rules
that decide what a gateway cluster gets from them, each as istio/istio implements it:

- protocol of a Service port: `pkg/config/kube/conversion.go` ConvertProtocol (appProtocol, else the port name's
  prefix before `-`; `grpc-web` first; UDP; TCP for the well-known ports 25, 53, 3306, 27017);
- the DestinationRule of a host for a gateway: exact host before wildcards, then the proxy's namespace, the
  service's, the root namespace (Higress's own: its chart sets meshConfig.rootNamespace to the release namespace);
- the effective traffic policy of `outbound|PORT|SUBSET|HOST` (`util.MergeSubsetTrafficPolicy`): a
  portLevelSettings entry for PORT REPLACES the top-level policy (its omitted fields fall back to defaults, they are
  not inherited); a subset's policy then overrides field by field, and a subset port-level entry replaces all four;
- the EnvoyFilter patches that touch a cluster (`envoyfilter/cluster_patch.go` clusterMatch): applyTo CLUSTER,
  context ANY or GATEWAY, `match.cluster` absent (every cluster), or its name equal, or its service, subset and
  portNumber (0: any) agreeing with the cluster name; an ADD whose value is named after the cluster made it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.objects.model import ISTIOD, Endpoint, IstioConfig, Meta, Service, ServicePort
from higress_ops.servers.ops.views import configdump as cd

POLICY_FIELDS = ("tls", "connectionPool", "outlierDetection", "loadBalancer")
_WELL_KNOWN_TCP = {25, 53, 3306, 27017}
_PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web", "http": "HTTP",
              "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS", "mongo": "Mongo",
              "redis": "Redis", "mysql": "MySQL"}
_HEALTH = {1: "healthy", 2: "unhealthy", 3: "draining", 4: "terminating"}  # model.HealthStatus



def port_protocol(port: int, name: str, transport: str = "TCP", app_protocol: str = "") -> str:
    """The protocol istiod gives a Kubernetes Service port."""
    if transport == "UDP":
        return "UDP"
    label = name
    if app_protocol:
        label = app_protocol
        special = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP", "kubernetes.io/wss": "HTTPS"}
        if label in special:
            return special[label]
    if label[:8].lower() == "grpc-web":
        return "GRPC-Web"
    found = _PROTOCOLS.get(label.split("-", 1)[0].lower())
    if found is None:
        return "TCP" if port in _WELL_KNOWN_TCP else "UnsupportedProtocol"
    return found


def config(entry: Mapping[str, Any]) -> IstioConfig:
    meta = cd.mapping(entry.get("metadata"))
    return IstioConfig(
        Meta(str(entry.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")), ISTIOD,
             dict(cd.mapping(meta.get("labels"))), dict(cd.mapping(meta.get("annotations"))),
             str(meta.get("creationTimestamp") or "")),
        str(entry.get("apiVersion", "")), cd.mapping(entry.get("spec")), entry)


def configs(configz: Any) -> list[IstioConfig]:
    return [config(e) for e in configz if isinstance(e, Mapping)] if isinstance(configz, list) else []


# ---------------------------------------------------------------- registry and endpoints

def shard_endpoints(endpointz: Any, host: str, namespace: str = "") -> list[Endpoint]:
    """istiod's endpoints of `host` (every shard: one per registry and cluster)."""
    out = []
    for ns, shards in cd.mapping(cd.mapping(endpointz).get(host)).items():
        if namespace and ns != namespace:
            continue
        for key, eps in cd.mapping(cd.mapping(shards).get("Shards")).items():
            for ep in eps if isinstance(eps, list) else []:
                ep = cd.mapping(ep)
                health = _HEALTH.get(int(ep.get("HealthStatus") or 1), "healthy")
                zone = str(cd.mapping(ep.get("Locality")).get("Label", ""))
                for address in ep.get("Addresses") or []:
                    out.append(Endpoint(str(address), int(ep.get("EndpointPort") or 0), str(ep.get("ServicePortName")),
                                        ready=health == "healthy", serving=health in ("healthy", "draining"),
                                        terminating=health == "terminating", node=str(ep.get("NodeName", "")),
                                        zone=zone, source=f"istiod {key}"))
    return out


def registry_service(entry: Mapping[str, Any], endpointz: Any = None) -> Service:
    """A registryz entry; target ports come from the endpoints istiod holds for each port name (the registry has
    none of its own)."""
    attrs = cd.mapping(entry.get("Attributes"))
    host = str(entry.get("hostname", ""))
    targets: dict[str, set[int]] = {}
    for ep in shard_endpoints(endpointz, host) if endpointz is not None else []:
        targets.setdefault(ep.port_name, set()).add(ep.port)
    ports = tuple(ServicePort(str(p.get("name", "")), int(p.get("port") or 0), str(p.get("protocol", "")),
                              ",".join(str(t) for t in sorted(targets.get(str(p.get("name", "")), ()))))
                  for p in (cd.mapping(p) for p in entry.get("ports") or []))
    selector = attrs.get("LabelSelectors")
    addresses = cd.mapping(cd.mapping(entry.get("clusterVIPs")).get("Addresses"))
    vip = next((str(a[0]) for a in addresses.values() if isinstance(a, list) and a), "")
    return Service(Meta("Service" if attrs.get("ServiceRegistry") == "Kubernetes" else "ServiceEntry",
                        str(attrs.get("Namespace", "")), str(attrs.get("Name", "")), ISTIOD,
                        dict(cd.mapping(attrs.get("Labels"))), created=str(entry.get("creationTime") or "")),
                   host, ports, dict(selector) if isinstance(selector, Mapping) else None,
                   str(attrs.get("Type", "")), vip, entry)


def registry_services(registryz: Any, endpointz: Any = None) -> list[Service]:
    entries = registryz if isinstance(registryz, list) else []
    return [registry_service(e, endpointz) for e in entries if isinstance(e, Mapping)]


# ---------------------------------------------------------------- DestinationRules

def _host_matches(pattern: str, host: str) -> bool:
    return pattern == host or (pattern.startswith("*") and host.endswith(pattern[1:])) or pattern == "*"


def destination_rule_for(all_configs: Iterable[IstioConfig], host: str, proxy_namespace: str,
                         service_namespace: str, root_namespace: str) -> IstioConfig | None:
    """The DestinationRule istiod applies to `host` for a gateway in `proxy_namespace`."""
    rules = [c for c in all_configs if c.meta.kind == "DestinationRule"
             and _host_matches(str(c.spec.get("host", "")), host)]
    order = {ns: i for i, ns in reversed(list(enumerate((proxy_namespace, service_namespace, root_namespace))))}
    ranked = [r for r in rules if r.meta.namespace in order]
    ranked.sort(key=lambda r: (r.spec.get("host") != host, order[r.meta.namespace],
                               -len(str(r.spec.get("host", ""))), r.meta.created, r.meta.name))
    return ranked[0] if ranked else None


@dataclass(frozen=True)
class PolicyField:
    name: str  # tls, connectionPool, outlierDetection, loadBalancer
    value: Mapping[str, Any] | None  # None: not set, Istio's default applies
    origin: str  # where the value comes from: "trafficPolicy", "trafficPolicy port 80", "subset v1", ...


def _port_level(policy: Mapping[str, Any] | None, port: int) -> tuple[Mapping[str, Any] | None, bool]:
    if policy is None:
        return None, False
    for entry in policy.get("portLevelSettings") or []:
        if int(cd.mapping(cd.mapping(entry).get("port")).get("number") or 0) == port:
            return cd.mapping(entry), True
    return policy, False


def effective_policy(rule: Mapping[str, Any], port: int, subset: str = "") -> list[PolicyField]:
    """What a cluster for `port` (and `subset`) gets from a DestinationRule's spec, field by field."""
    top, top_port = _port_level(cd.mapping(rule.get("trafficPolicy")) or None, port)
    where = "trafficPolicy" + (f".portLevelSettings[port {port}]" if top_port else "")
    fields = {f: PolicyField(f, cd.mapping(top.get(f)) or None if top else None, where if top and top.get(f) else "")
              for f in POLICY_FIELDS}
    spec_subset = next((cd.mapping(s) for s in rule.get("subsets") or [] if cd.mapping(s).get("name") == subset), None)
    if subset and spec_subset is not None:
        sub, sub_port = _port_level(cd.mapping(spec_subset.get("trafficPolicy")) or None, port)
        there = f"subsets[{subset}].trafficPolicy" + (f".portLevelSettings[port {port}]" if sub_port else "")
        if sub is not None:
            for f in POLICY_FIELDS:
                if sub.get(f) or sub_port:
                    fields[f] = PolicyField(f, cd.mapping(sub.get(f)) or None, there if sub.get(f) else "")
    return [fields[f] for f in POLICY_FIELDS]


def subset_labels(rule: Mapping[str, Any], subset: str) -> Mapping[str, str] | None:
    found = next((cd.mapping(s) for s in rule.get("subsets") or [] if cd.mapping(s).get("name") == subset), None)
    return dict(cd.mapping(found.get("labels"))) if found is not None else None


# ---------------------------------------------------------------- EnvoyFilters

@dataclass(frozen=True)
class Patch:
    envoy_filter: IstioConfig
    index: int  # configPatches[index]
    operation: str  # MERGE, REMOVE, ADD, INSERT_*, REPLACE
    match: str  # how it selects the cluster: "every cluster", "service cart... port 80", "name ..."
    selector: Mapping[str, str] | None  # workloadSelector.labels: applies only to gateways with these labels


def _cluster_match(match: Mapping[str, Any] | None, name: str, hosts: Iterable[str]) -> str | None:
    if not match:
        return "every cluster"
    if match.get("name"):
        return f"name {match['name']}" if match["name"] == name else None
    direction, port, subset, host = cd.parse_subset_key(name)
    hostnames = list(hosts) if direction == "inbound" else [host]
    if match.get("subset") and match["subset"] != subset:
        return None
    if match.get("service") and match["service"] not in hostnames:
        return None
    wanted = int(match.get("portNumber") or 0)
    if wanted and wanted != port:
        return None
    parts = [f"service {match['service']}" if match.get("service") else "",
             f"port {wanted}" if wanted else "", f"subset {match['subset']}" if match.get("subset") else ""]
    return " ".join(p for p in parts if p) or "every cluster"


def cluster_patches(all_configs: Iterable[IstioConfig], cluster: str, gateway_namespace: str,
                    root_namespace: str, hosts: Iterable[str] = ()) -> list[Patch]:
    """The EnvoyFilter patches that apply to a gateway's cluster `cluster` (root namespace: every workload; another
    namespace: its own workloads only, so only the gateway's namespace counts)."""
    found = []
    hosts = list(hosts)
    for ef in all_configs:
        if ef.meta.kind != "EnvoyFilter" or ef.meta.namespace not in (gateway_namespace, root_namespace):
            continue
        labels = cd.mapping(cd.mapping(ef.spec.get("workloadSelector")).get("labels"))
        for i, raw in enumerate(ef.spec.get("configPatches") or []):
            patch = cd.mapping(raw)
            match = cd.mapping(patch.get("match"))
            body = cd.mapping(patch.get("patch"))
            operation = str(body.get("operation", ""))
            if patch.get("applyTo") != "CLUSTER" or str(match.get("context") or "ANY") not in ("ANY", "GATEWAY"):
                continue
            if operation == "ADD":
                how = "adds it" if cd.mapping(body.get("value")).get("name") == cluster else None
            else:
                how = _cluster_match(cd.mapping(match.get("cluster")) or None, cluster, hosts)
            if how is not None:
                found.append(Patch(ef, i, operation, how, dict(labels) if labels else None))
    return found
