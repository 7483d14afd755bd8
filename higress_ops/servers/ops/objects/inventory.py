"""The objects behind Envoy's config for one tool call (`facts.objects`): a detector or a view asks for "the
Ingresses", "the Service shop/cart", "the endpoints of that Service" and gets them in model.py's shape from the
source that can answer, without knowing which:

- `ingresses()`, `ingress(ns, name)`: the API's Ingresses; else rebuilt from Higress's generated VirtualServices
  (each http route is named after its Ingress);
- `service(ns, name)`, `service_by_host(host)`: the API's Service (target ports, appProtocol); else istiod's
  registryz entry, with the target ports its endpointz uses (ServiceEntries are only there);
- `endpoints(service)`: its EndpointSlices (ready, serving, terminating); else istiod's endpoint shards;
- `pods(ns, selector)`, `warnings(ns)`, `wasm_plugins()`, `mcp_bridges()`, `objects(kinds)`: the API only;
- `istio(kind)`, `destination_rule(host)`, `cluster_patches(cluster)`: istiod's configz only.

The API is read in the namespaces of the server config's `kubernetes.namespaces`.

Every document is read once per call (through Facts); what could not be read is in `gaps` (one line each, naming
the missing right or the source that did not answer) and the answer goes on with the other source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from higress_ops.servers.ops.kubeapi import KubeError, Listed
from higress_ops.servers.ops.objects import higress
from higress_ops.servers.ops.objects import istio as ist
from higress_ops.servers.ops.objects import kubernetes as k8s
from higress_ops.servers.ops.objects.model import (
    ISTIOD,
    Endpoint,
    Event,
    Ingress,
    IngressPath,
    IstioConfig,
    KubeObject,
    Meta,
    Pod,
    Service,
)
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.source import UpstreamError

if TYPE_CHECKING:
    from higress_ops.servers.ops.detectors.facts import Facts


class Inventory:
    """One call's objects; every answer is made once per call (Facts.once) and `gaps` collects what was not read."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.higress_namespace = facts.src.namespace
        self.namespaces = tuple(facts.src.kube_namespaces)
        self.gaps: list[str] = []
        if not self.namespaces:
            self._gap("the Kubernetes API is not read (no kubernetes.namespaces in the server config): Ingresses come "
                      "from istiod's generated VirtualServices, Services and endpoints from its registry")

    def _gap(self, text: str) -> None:
        if text not in self.gaps:
            self.gaps.append(text)

    # ------------------------------------------------------------------ istiod

    async def _istiod(self, path: str) -> Any:
        try:
            return await self.facts.istiod(path)
        except UpstreamError as exc:
            self._gap(f"istiod {path}: {exc}")
            return None

    async def istio(self, kind: str = "") -> list[IstioConfig]:
        """istiod's Istio resources (configz), of one kind or all."""
        found = await self.facts.once(("configz",), lambda: self._configs())
        return [c for c in found if not kind or c.meta.kind == kind]

    async def _configs(self) -> list[IstioConfig]:
        return await self.facts.compute(ist.configs, await self._istiod("/debug/configz"))

    async def registry(self) -> list[Service]:
        """istiod's services (registryz), with the target ports its endpoints use."""
        async def make() -> list[Service]:
            registryz, endpointz = await self._istiod("/debug/registryz"), await self.endpointz()
            return await self.facts.compute(ist.registry_services, registryz, endpointz)
        return await self.facts.once(("registry",), make)

    async def endpointz(self) -> Any:
        return await self.facts.once(("endpointz",), lambda: self._istiod("/debug/endpointz"))

    async def destination_rule(self, host: str, service_namespace: str = "") -> IstioConfig | None:
        """The DestinationRule istiod applies to `host` at this gateway (Higress's namespace is also the root)."""
        ns = self.higress_namespace
        return ist.destination_rule_for(await self.istio("DestinationRule"), host, ns, service_namespace, ns)

    async def cluster_patches(self, cluster: str, hosts: Iterable[str] = ()) -> list[ist.Patch]:
        ns = self.higress_namespace
        return ist.cluster_patches(await self.istio("EnvoyFilter"), cluster, ns, ns, hosts)

    # ------------------------------------------------------------------ Kubernetes API

    def reads(self, namespace: str) -> bool:
        """Whether the API is read for this namespace (a gap says so when it is not, and the API is configured)."""
        if namespace in self.namespaces:
            return True
        if self.namespaces and namespace:
            self._gap(f"namespace {namespace} is not in kubernetes.namespaces: its objects come from istiod, or are "
                      "not shown (pods, events)")
        return False

    async def _list(self, kind: str, namespace: str, labels: str = "",
                    fields: str = "") -> list[Mapping[str, Any]] | None:
        """The objects, or None (and a gap) when the API cannot give them."""
        if not self.reads(namespace):
            return None
        try:
            listed: Listed = await self.facts.kube(kind, namespace, labels, fields)
        except KubeError as exc:
            self._gap(str(exc))
            return None
        if listed.cut:
            self._gap(f"{kind} in {namespace}: more than {len(listed.items)} objects, the rest were not read "
                      "(kubernetes.maxObjects)")
        return list(listed.items)

    async def _get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | KubeError | None:
        try:
            found: Mapping[str, Any] | None = await self.facts.kube_object(kind, namespace, name)
            return found
        except KubeError as exc:
            self._gap(str(exc))
            return exc

    async def ingresses(self, namespace: str = "") -> list[Ingress]:
        """Every Ingress: from the API in the namespaces it is read for, from istiod's VirtualServices elsewhere."""
        async def make() -> list[Ingress]:
            found: list[Ingress] = []
            unread = set()
            lists = await asyncio.gather(*(self._list("Ingress", ns) for ns in self.namespaces))
            for ns, items in zip(self.namespaces, lists, strict=True):
                if items is None:
                    unread.add(ns)
                else:
                    found += [k8s.ingress(i) for i in items]
            rebuilt = ingresses_from_istio(await self.istio("VirtualService"), self.higress_namespace)
            found += [i for i in rebuilt if i.meta.namespace in unread or not self.reads(i.meta.namespace)]
            return found
        every = await self.facts.once(("ingresses",), make)
        return [i for i in every if not namespace or i.meta.namespace == namespace]

    async def ingress(self, namespace: str, name: str) -> Ingress | None:
        return next((i for i in await self.ingresses(namespace) if i.meta.name == name), None)

    async def service(self, namespace: str, name: str) -> Service | None:
        """The Service from the API when it may be read (None there: it does not exist), else istiod's entry."""
        async def make() -> Service | None:
            if self.reads(namespace):
                obj = await self._get("Service", namespace, name)
                if not isinstance(obj, KubeError):
                    return k8s.service(obj) if obj is not None else None
            return next((s for s in await self.registry() if s.meta.namespace == namespace and s.meta.name == name),
                        None)
        return await self.facts.once(("service", namespace, name), make)

    async def service_by_host(self, host: str) -> Service | None:
        """The service behind a cluster's host: a Kubernetes Service (`name.ns.svc.cluster.local`) or a
        ServiceEntry's host (McpBridge's `legacy.static`), which only istiod knows."""
        parts = host.split(".")
        if len(parts) >= 4 and parts[2] == "svc":
            found = await self.service(parts[1], parts[0])
            if found is not None:
                return found
        return next((s for s in await self.registry() if s.host == host), None)

    async def endpoints(self, service: Service) -> list[Endpoint]:
        """The service's addresses: its EndpointSlices (API), else istiod's endpoint shards."""
        if service.meta.kind == "Service" and self.reads(service.meta.namespace):
            slices = await self._list("EndpointSlice", service.meta.namespace,
                                      labels=f"kubernetes.io/service-name={service.meta.name}")
            if slices is not None:
                return k8s.slice_endpoints(slices)
        return ist.shard_endpoints(await self.endpointz(), service.host)

    async def pods(self, namespace: str, selector: Mapping[str, str]) -> list[Pod] | None:
        """The pods a selector matches (None: the API cannot say)."""
        items = await self._list("Pod", namespace, labels=k8s.selector_text(selector)) if selector else []
        return None if items is None else [k8s.pod(i) for i in items]

    async def warnings(self, namespace: str) -> list[Event]:
        items = await self._list("Event", namespace, fields="type=Warning")
        return [k8s.event(i) for i in items or []]

    async def warnings_for(self, objects: Iterable[tuple[str, str, str]]) -> list[Event]:
        """Recent Warning events about these (kind, namespace, name), newest first (one list per namespace)."""
        wanted = set(objects)
        read = sorted({o[1] for o in wanted} & set(self.namespaces))  # istiod-only objects have no events
        lists = await asyncio.gather(*(self.warnings(ns) for ns in read))
        found = [e for events in lists for e in events if e.regarding in wanted]
        return sorted(found, key=lambda e: e.last, reverse=True)

    async def _higress_kind(self, kind: str) -> list[KubeObject]:
        lists = await asyncio.gather(*(self._list(kind, ns) for ns in self.namespaces))
        return [k8s.kube_object(i) for items in lists for i in items or []]

    async def wasm_plugins(self) -> list[KubeObject]:
        return await self.facts.once(("WasmPlugin",), lambda: self._higress_kind("WasmPlugin"))

    async def mcp_bridges(self) -> list[KubeObject]:
        return await self.facts.once(("McpBridge",), lambda: self._higress_kind("McpBridge"))

    async def objects(self, kinds: Iterable[str]) -> list[Meta]:
        """Metadata of every object of these kinds in the namespaces read (for what-changed)."""
        asks = [(kind, ns) for kind in kinds for ns in self.namespaces]
        lists = await asyncio.gather(*(self._list(kind, ns) for kind, ns in asks))
        return [k8s.meta_of(i, kind) for (kind, _), items in zip(asks, lists, strict=True) for i in items or []]


def _paths(http: Mapping[str, Any], host: str) -> list[IngressPath]:
    """An Ingress path from one generated http route: Higress turns `/x` Prefix into exact `/x` + prefix `/x/`."""
    dest = cd.mapping(cd.mapping((http.get("route") or [{}])[0]).get("destination"))
    labels = str(dest.get("host", "")).split(".")
    service = labels[0] if len(labels) >= 3 and labels[2] == "svc" else ""
    port = str(cd.mapping(dest.get("port")).get("number") or "")
    resource = "" if service else f"host {dest.get('host', '')}"
    uris = [cd.mapping(cd.mapping(m).get("uri")) for m in http.get("match") or []]
    exact = {str(u["exact"]) for u in uris if "exact" in u}
    out = []
    for u in uris:
        if "prefix" in u:
            path = str(u["prefix"])
            if path != "/" and path.rstrip("/") in exact:
                path = path.rstrip("/")
                exact.discard(path)
            out.append(IngressPath(host, path, "Prefix", service, port, resource))
        elif "regex" in u:
            out.append(IngressPath(host, str(u["regex"]), "ImplementationSpecific", service, port, resource))
    out += [IngressPath(host, p, "Exact", service, port, resource) for p in sorted(exact)]
    return out


def ingresses_from_istio(virtual_services: Iterable[IstioConfig], higress_namespace: str) -> list[Ingress]:
    """The Ingresses Higress's generated VirtualServices were made from: each http route is named after its
    Ingress (objects/higress.py), its match is the path and its destination the backend. No annotations, no TLS."""
    paths: dict[tuple[str, str], list[IngressPath]] = {}
    for vs in virtual_services:
        if not vs.generated_by_higress:
            continue
        host = str((vs.spec.get("hosts") or [""])[0])
        for http in (cd.mapping(h) for h in vs.spec.get("http") or []):
            names = higress.ingress_candidates(str(http.get("name", "")), vs.meta.namespace or higress_namespace)
            if names:
                paths.setdefault(names[-1] if str(http.get("name", "")).endswith("-default") else names[0],
                                 []).extend(_paths(http, "" if host == "*" else host))
    return [Ingress(Meta("Ingress", ns, name, ISTIOD), "", tuple(found)) for (ns, name), found in sorted(paths.items())]
