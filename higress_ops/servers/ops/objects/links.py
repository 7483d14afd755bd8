"""From an Envoy route or cluster to the objects that produced it. What the Envoy object itself says costs no
request (`route_link`, `cluster_link`: find-route and the tables use these); `resolve_*` then checks each link
against istiod and the Kubernetes API (describe-cluster).

How each link is made:
- route -> VirtualService: `metadata.filter_metadata.istio.config`, the path Istio stamps on every route it builds
  from a VirtualService (`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME`, as istioctl reads it);
- route -> Ingress: when that VirtualService is Higress's (generated, in Higress's namespace), the route's name is
  the Ingress's `namespace/name`, or `name` in Higress's namespace (objects/higress.py);
- cluster -> DestinationRule: the cluster's `istio.config` (`.../destination-rule/NAME`), stamped when a rule
  applied; cluster -> Service: its `istio.services` (`[{host, name, namespace}]`), else the host in its name
  (`outbound|PORT|SUBSET|HOST`, `HOST` = `name.namespace.svc.cluster.local`);
- cluster -> McpBridge: a host `<name>.static` / `<name>.dns` is the registry `name` of Higress's McpBridge;
- cluster -> EnvoyFilter: configz's EnvoyFilters whose CLUSTER patches match it (objects/istio.py), since Envoy
  keeps no trace of a patch;
- Ingress -> WasmPlugin: Higress's WasmPlugin `matchRules[].ingress` names `namespace/name`, `matchRules[].domain`
  the hosts; a `defaultConfig` not disabled applies to every route. Higress reads WasmPlugins in its own namespace
  only, and only the McpBridge named `default` there (pkg/ingress/config: AddOrUpdateWasmPlugin, AddOrUpdateMcpBridge):
  others are listed as not applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.objects import higress
from higress_ops.servers.ops.objects.model import Ingress, KubeObject
from higress_ops.servers.ops.views import configdump as cd

KINDS = {"virtual-service": "VirtualService", "destination-rule": "DestinationRule", "gateway": "Gateway",
         "envoy-filter": "EnvoyFilter", "sidecar": "Sidecar", "service-entry": "ServiceEntry"}


def istio_metadata(metadata: Any) -> Mapping[str, Any]:
    return cd.mapping(cd.mapping(cd.mapping(metadata).get("filter_metadata")).get("istio"))


def config_ref(path: Any) -> tuple[str, str, str] | None:
    """(Kind, namespace, name) of an `istio.config` path, None when it is not one."""
    if not isinstance(path, str) or not path.startswith("/apis/networking.istio.io/"):
        return None
    pieces = path.split("/")
    if len(pieces) != 8 or pieces[4] != "namespaces":
        return None
    kind = KINDS.get(pieces[6], "".join(w.capitalize() for w in pieces[6].split("-")))
    return kind, pieces[5], pieces[7]


@dataclass(frozen=True)
class RouteLink:
    virtual_service: tuple[str, str] | None  # (namespace, name)
    ingress: tuple[str, str] | None  # Higress's Ingress behind the route
    generated: bool  # the VirtualService is Higress's own

    def describe(self) -> str:
        if self.virtual_service is None:
            return ""
        vs = "VirtualService {}/{}".format(*self.virtual_service)
        if self.ingress is None:
            return vs
        return "Ingress {}/{} (through Higress's {})".format(*self.ingress, vs)

    def to_json(self) -> dict[str, str]:
        out = {}
        if self.virtual_service:
            out["virtual_service"] = "/".join(self.virtual_service)
        if self.ingress:
            out["ingress"] = "/".join(self.ingress)
        return out


def route_link(route: Mapping[str, Any]) -> RouteLink:
    ref = config_ref(istio_metadata(route.get("metadata")).get("config"))
    if ref is None or ref[0] != "VirtualService":
        return RouteLink(None, None, False)
    _, namespace, name = ref
    generated = higress.is_generated(name)
    ingress = higress.ingress_of_route(str(route.get("name") or ""), namespace) if generated else None
    return RouteLink((namespace, name), ingress, generated)


@dataclass(frozen=True)
class ClusterLink:
    name: str
    direction: str
    port: int
    subset: str
    host: str
    destination_rule: tuple[str, str] | None  # (namespace, name) of the rule that applied
    services: tuple[tuple[str, str, str], ...]  # (namespace, name, host) from istio.services
    registry: tuple[str, str] | None  # McpBridge registry (type, name)

    @property
    def service(self) -> tuple[str, str] | None:
        """(namespace, name) of the Kubernetes Service behind the cluster, when it is one."""
        if self.services:
            return self.services[0][0], self.services[0][1]
        parts = self.host.split(".")
        return (parts[1], parts[0]) if len(parts) >= 4 and parts[2] == "svc" else None

    def describe(self) -> str:
        parts = []
        if self.destination_rule:
            parts.append("DestinationRule {}/{}".format(*self.destination_rule))
        if self.service:
            parts.append("Service {}/{}".format(*self.service))
        elif self.registry:
            parts.append(f"McpBridge registry {self.registry[1] or self.registry[0]} ({self.registry[0]})")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.destination_rule:
            out["destination_rule"] = "/".join(self.destination_rule)
        if self.service:
            out["service"] = "/".join(self.service)
        if self.registry:
            out["mcp_bridge_registry"] = {"type": self.registry[0], "name": self.registry[1]}
        return out


def cluster_link(name: str, config: Mapping[str, Any] | None = None) -> ClusterLink:
    """What a cluster's name and (when given) its config say about the objects behind it."""
    direction, port, subset, host = cd.parse_subset_key(name) if len(name.split("|")) > 3 else ("", 0, "", "")
    meta = istio_metadata((config or {}).get("metadata"))
    ref = config_ref(meta.get("config"))
    rule = (ref[1], ref[2]) if ref and ref[0] == "DestinationRule" else None
    services = tuple((str(s.get("namespace", "")), str(s.get("name", "")), str(s.get("host", "")))
                     for s in (cd.mapping(s) for s in meta.get("services") or []) if s.get("name"))
    return ClusterLink(name, direction, port, subset, host, rule, services, higress.registry_of_host(host))


def _domain_matches(pattern: str, host: str) -> bool:
    return pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))


def wasm_plugins_of(ingress: Ingress, plugins: list[KubeObject], higress_namespace: str) -> list[str]:
    """`namespace/name (why)` of each WasmPlugin that names the Ingress's routes (and whether Higress applies it)."""
    name = f"{ingress.meta.namespace}/{ingress.meta.name}"
    hosts = {p.host for p in ingress.paths if p.host}
    found = []
    for plugin in plugins:
        spec, why = plugin.spec, ""
        for i, rule in enumerate(cd.mapping(r) for r in spec.get("matchRules") or []):
            if rule.get("configDisable") is True:
                continue
            if name in (rule.get("ingress") or []):
                why = f"matchRules[{i}].ingress"
            elif any(_domain_matches(str(d), h) for d in rule.get("domain") or [] for h in hosts):
                why = f"matchRules[{i}].domain"
            if why:
                break
        if not why and spec.get("defaultConfig") is not None and spec.get("defaultConfigDisable") is not True:
            why = "defaultConfig, every route"
        if why:
            ignored = "" if plugin.meta.namespace == higress_namespace else (
                f"; NOT applied: Higress reads WasmPlugins in {higress_namespace} only")
            found.append(f"{plugin.meta.namespace}/{plugin.meta.name} ({why}, phase {spec.get('phase', '-')}, "
                         f"priority {spec.get('priority', '-')}{ignored})")
    return found
