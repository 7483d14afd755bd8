"""Reading istiod's /debug/configz: every Istio resource istiod holds (for Higress, what its controller generated
from Ingresses and McpBridges plus any Istio resources applied directly), with Istio's host semantics.

Shape (istio pilot/pkg/xds/debug.go `configz`, through crd.ConvertConfig): a JSON list of Kubernetes-shaped
objects `{kind, apiVersion, metadata: {name, namespace, resourceVersion, labels, annotations, creationTimestamp,
generation}, spec, status}`; `spec` is gogo jsonpb (camelCase fields, enums by name, defaults left out); a status
that is empty is left out. Higress's generated resources have no creation time (`creationTimestamp: null`).
Nothing here talks to the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from higress_ops.servers.ops.views.configdump import DumpError, Json, mapping

MESH = "mesh"  # the reserved gateway name: sidecars, not a gateway
SUPPRESS = "galley.istio.io/analyze-suppress"  # istioctl analyze's per-resource suppression annotation
CLUSTER_DOMAIN = "svc.cluster.local"
GATEWAY_API = "gateway.networking.k8s.io/"
_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")  # istio analyzers/util/constants.go fqdnPattern


@dataclass(frozen=True)
class Resource:
    """One configz object."""

    kind: str
    namespace: str
    name: str
    spec: Json
    metadata: Json = field(default_factory=dict, compare=False)
    status: Json = field(default_factory=dict, compare=False)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @property
    def labels(self) -> Mapping[str, str]:
        return _strings(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, str]:
        return _strings(self.metadata.get("annotations"))

    @property
    def created(self) -> str:
        """RFC 3339 creation time ('' for generated resources, which have none)."""
        return str(self.metadata.get("creationTimestamp") or "")

    def suppressed(self, code: str) -> bool:
        """istioctl's `galley.istio.io/analyze-suppress: IST0101,IST0118` (or `*`) on the resource."""
        codes = {c.strip() for c in self.annotations.get(SUPPRESS, "").split(",")}
        return code in codes or "*" in codes

    def items(self, key: str) -> list[Json]:
        """spec[key] as a list of objects (routes, servers, subsets, patches); anything else is skipped."""
        value = self.spec.get(key)
        return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []

    def strings(self, key: str) -> list[str]:
        value = self.spec.get(key)
        return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _strings(value: Any) -> Mapping[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, Mapping) else {}


@dataclass
class IstioConfig:
    """configz, indexed by kind and by (kind, namespace, name)."""

    resources: list[Resource] = field(default_factory=list)
    by_kind: dict[str, list[Resource]] = field(default_factory=dict)
    _index: dict[tuple[str, str, str], Resource] = field(default_factory=dict)

    def of(self, kind: str) -> list[Resource]:
        return self.by_kind.get(kind, [])

    def find(self, kind: str, namespace: str, name: str) -> Resource | None:
        return self._index.get((kind, namespace, name))

    def exists(self, kind: str, full_name: str) -> bool:
        namespace, _, name = full_name.rpartition("/")
        return self.find(kind, namespace, name) is not None


def parse(configz: Any) -> IstioConfig:
    """The model of istiod's answer; DumpError when it is not configz's list of objects."""
    if not isinstance(configz, list):
        raise DumpError("not istiod's configz: expected a list of Istio resources")
    config = IstioConfig()
    for item in configz:
        if not isinstance(item, Mapping):
            continue
        meta = mapping(item.get("metadata"))
        kind = str(item.get("kind", ""))
        if kind == "Gateway" and str(item.get("apiVersion", "")).startswith(GATEWAY_API):
            kind = "KubernetesGateway"  # Gateway API's Gateway: configz lists both kinds under `Gateway`
        res = Resource(kind, str(meta.get("namespace", "")), str(meta.get("name", "")),
                       mapping(item.get("spec")), meta, mapping(item.get("status")))
        if not res.kind or not res.name:
            continue
        config.resources.append(res)
        config.by_kind.setdefault(res.kind, []).append(res)
        config._index[(res.kind, res.namespace, res.name)] = res
    for items in config.by_kind.values():
        items.sort(key=lambda r: (r.namespace, r.name))  # istioctl's analysis context walks resources by name
    return config


# ---------------------------------------------------------------- hosts (istio pkg/config/host)

def host_matches(a: str, b: str) -> bool:
    """Istio's host.Name.Matches: a wildcard (`*.foo.com`, `*`) matches every host it is a suffix of."""
    if a.startswith("*"):
        if b.startswith("*"):
            return b[1:].endswith(a[1:]) if len(a) < len(b) else a[1:].endswith(b[1:])
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def names_for_namespace(hosts: Iterable[str], namespace: str) -> list[str]:
    """Istio's host.NamesForNamespace: `ns/host` entries of other namespaces dropped, the namespace stripped."""
    out = []
    for h in hosts:
        ns, sep, name = h.partition("/")
        if sep:
            if ns not in (namespace, "*"):
                continue
            h = name
        out.append(h)
    return out


def fqdn(host: str, namespace: str) -> str:
    """Istio's ConvertHostToFQDN: a short name (`reviews`) is `reviews.<namespace>.svc.cluster.local`."""
    return host if host.startswith("*") or "." in host else f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def service_of(host: str) -> tuple[str, str] | None:
    """(namespace, name) of a Kubernetes service FQDN (`cart.shop.svc.cluster.local`), None otherwise."""
    m = _FQDN.match(host)
    return (m.group(2), m.group(1)) if m else None


def exported_everywhere(export_to: list[str]) -> bool:
    return not export_to or "*" in export_to


# ---------------------------------------------------------------- selectors

def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A map selector (Gateway.selector, subset labels) against a workload's labels; an empty one selects all."""
    return all(labels.get(k) == v for k, v in selector.items())


def selector_text(selector: Mapping[str, str]) -> str:
    """klabels.SelectorFromSet(...).String(): `k=v` pairs sorted by key, comma-separated."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def string_map(value: Any) -> dict[str, str]:
    return dict(_strings(value))


# ---------------------------------------------------------------- destinations of a VirtualService

@dataclass(frozen=True)
class Destination:
    """One destination of a VirtualService rule (istio analyzers/virtualservice/util.go AnnotatedDestination)."""

    rule: str  # tcp, tls, http, http.mirror, http.mirrors
    rule_index: int
    index: int
    host: str
    subset: str
    port: int  # 0 when the destination names none
    route_name: str = ""  # the http rule's name (Higress: the Ingress's `namespace/name`)


def _destination(rule: str, i: int, j: int, dest: Any, route_name: str = "") -> Destination | None:
    dest = mapping(dest)
    if not dest:
        return None
    port = mapping(dest.get("port")).get("number", 0)
    return Destination(rule, i, j, str(dest.get("host", "")), str(dest.get("subset", "")),
                       int(port) if isinstance(port, int) else 0, route_name)


def route_destinations(vs: Resource) -> Iterator[Destination]:
    """tcp, then tls, then http route destinations, as Istio's getRouteDestinations orders them."""
    for kind in ("tcp", "tls", "http"):
        for i, rule in enumerate(vs.items(kind)):
            for j, rd in enumerate(rule.get("route") or []):
                d = _destination(kind, i, j, mapping(rd).get("destination"), str(rule.get("name", "")))
                if d is not None:
                    yield d


def mirror_destinations(vs: Resource) -> Iterator[Destination]:
    for i, rule in enumerate(vs.items("http")):
        if (d := _destination("http.mirror", i, 0, rule.get("mirror"), str(rule.get("name", "")))) is not None:
            yield d
        for j, m in enumerate(rule.get("mirrors") or []):
            d = _destination("http.mirrors", i, j, mapping(m).get("destination"), str(rule.get("name", "")))
            if d is not None:
                yield d
