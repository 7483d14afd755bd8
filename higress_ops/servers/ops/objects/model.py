"""The objects behind Envoy's config in one shape, whichever source they came from: a detector asks for "the
Service shop/cart" and gets a `Service`, filled from the Kubernetes API when the server may read it, else from
istiod's registry; `source` says which, and what only the other source knows is empty (target ports and
appProtocol from istiod, Istio's inferred protocol from the API is computed the way istiod computes it).

Every object keeps the JSON it was made from (`raw`) for what this shape leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the detectors import this package: Ref is imported where it is used
    from higress_ops.servers.ops.detectors.base import Ref

KUBERNETES, ISTIOD = "kubernetes", "istiod"


@dataclass(frozen=True)
class Change:
    """When an object last changed and who changed it: its newest managedFields entry (creation otherwise)."""

    time: str  # RFC 3339 UTC, as the API server writes it
    manager: str = ""  # kubectl-edit, helm, kube-controller-manager, kubelet, ...
    operation: str = ""  # Update or Apply
    subresource: str = ""  # status, scale, ... ("" for the object itself)

    def describe(self) -> str:
        what = f" ({self.subresource})" if self.subresource else ""
        return f"{self.time} by {self.manager or 'unknown'}{what}"


@dataclass(frozen=True)
class Meta:
    kind: str
    namespace: str
    name: str
    source: str = KUBERNETES
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    created: str = ""
    changed: Change | None = None
    uid: str = ""

    @property
    def ref(self) -> Ref:
        from higress_ops.servers.ops.detectors.base import Ref

        return Ref(self.kind, self.name, self.namespace)


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    protocol: str  # as Istio sees it: HTTP, HTTP2, GRPC, TCP, ... (istiod's registry, or inferred the same way)
    target_port: str = ""  # a number or a container port name; "" when only istiod answered and had no endpoint
    app_protocol: str = ""
    transport: str = "TCP"  # the Kubernetes protocol: TCP, UDP, SCTP


@dataclass(frozen=True)
class Service:
    meta: Meta
    host: str  # cart.shop.svc.cluster.local
    ports: tuple[ServicePort, ...]
    selector: Mapping[str, str] | None  # None: no selector (endpoints are managed by hand or by a registry)
    type: str = ""  # ClusterIP, NodePort, LoadBalancer, ExternalName ("" for a ServiceEntry)
    cluster_ip: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.port == number), None)


@dataclass(frozen=True)
class Endpoint:
    """One address behind a service port: from an EndpointSlice, or istiod's endpoint shards."""

    address: str
    port: int  # the target (container) port
    port_name: str
    ready: bool
    serving: bool
    terminating: bool
    pod: str = ""  # targetRef name
    node: str = ""
    zone: str = ""
    source: str = KUBERNETES  # EndpointSlice name, or "istiod"

    @property
    def state(self) -> str:
        return "ready" if self.ready else ("terminating" if self.terminating else
                                           "serving, not ready" if self.serving else "not ready")


@dataclass(frozen=True)
class IngressPath:
    host: str  # "" matches every host
    path: str
    path_type: str  # Prefix, Exact, ImplementationSpecific
    service: str = ""  # backend Service name (in the Ingress's namespace)
    port: str = ""  # a number or a port name, as written
    resource: str = ""  # a resource backend: `Kind/name` (Higress: McpBridge/default)


@dataclass(frozen=True)
class Ingress:
    meta: Meta
    ingress_class: str
    paths: tuple[IngressPath, ...]
    tls: tuple[tuple[tuple[str, ...], str], ...] = ()  # (hosts, secret name): Secrets are only ever named
    default_backend: IngressPath | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def annotations(self) -> dict[str, str]:
        """The ones Higress reads: `higress.io/` and `nginx.ingress.kubernetes.io/`."""
        return {k: v for k, v in self.meta.annotations.items()
                if k.startswith(("higress.io/", "nginx.ingress.kubernetes.io/"))}


@dataclass(frozen=True)
class Container:
    name: str
    ready: bool
    restarts: int
    ports: tuple[tuple[str, int], ...]  # (name, containerPort)
    state: str  # running, waiting: CrashLoopBackOff, terminated: Error, ...


@dataclass(frozen=True)
class Pod:
    meta: Meta
    phase: str
    ready: bool
    ip: str
    node: str
    containers: tuple[Container, ...]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def restarts(self) -> int:
        return sum(c.restarts for c in self.containers)


@dataclass(frozen=True)
class Event:
    namespace: str
    regarding: tuple[str, str, str]  # (kind, namespace, name) of the object the event is about
    type: str  # Warning, Normal
    reason: str
    message: str
    count: int
    last: str  # RFC 3339


@dataclass(frozen=True)
class IstioConfig:
    """One entry of istiod's configz (`{kind, apiVersion, metadata, spec, status}`): an Istio resource, written by
    someone or generated (Higress stamps its own with `internal.higress.io/cluster-id`)."""

    meta: Meta
    api_version: str
    spec: Mapping[str, Any]
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def generated_by_higress(self) -> bool:
        return "internal.higress.io/cluster-id" in self.meta.annotations or self.meta.name.startswith(
            "istio-autogenerated-k8s-ingress-")

    @property
    def path(self) -> str:
        """The `filter_metadata.istio.config` path Istio stamps on what it builds from this resource."""
        kebab = "".join("-" + c.lower() if c.isupper() else c for c in self.meta.kind).lstrip("-")
        return f"/apis/{self.api_version}/namespaces/{self.meta.namespace}/{kebab}/{self.meta.name}"


@dataclass(frozen=True)
class KubeObject:
    """A Kubernetes object this layer does not reshape (WasmPlugin, McpBridge): its metadata and JSON."""

    meta: Meta
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.raw.get("spec")
        return spec if isinstance(spec, Mapping) else {}
