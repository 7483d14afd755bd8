"""Where views get their JSON: in the view process, `RemoteSource` (remote.py), which has the server process
fetch each body with the call's context and parses it there; in process (the CLI's analyze, tests), the ops
server's own upstream clients (`Upstreams`), which fetch and parse on the event loop. `Source` is the small
surface views need: Envoy's admin API, istiod's debug endpoints and the Kubernetes API (kubeapi.py: read-only,
the configured namespaces only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.kubeapi import Listed
from higress_ops.servers.ops.upstream import DEFAULT_MAX_BYTES, UpstreamError, Upstreams

__all__ = ["DEFAULT_MAX_BYTES", "Listed", "Source", "UpstreamError", "as_source", "http_source"]


@runtime_checkable
class Source(Protocol):
    max_bytes: int
    namespace: str  # Higress's own namespace (the server config's `namespace`): its root for Istio config
    kube_namespaces: tuple[str, ...]  # whose objects the Kubernetes API is read for (empty: it is not)

    async def envoy_json(self, path: str, params: Mapping[str, str] | None = None,
                         ctx: CallContext | None = None) -> Any:
        """Envoy's JSON at `path`, from the call's target (`ctx.target`)."""
        ...

    async def istiod_json(self, path: str, params: Mapping[str, str] | None, ctx: CallContext) -> Any: ...

    async def istiod_json_each(self, path: str, params: Mapping[str, str] | None,
                               ctx: CallContext) -> list[tuple[str, Any]]:
        """(istiod name, JSON or UpstreamError) from every istiod pod, or the one at istiodURL."""
        ...

    async def kube_list(self, kind: str, namespace: str, labels: str = "", fields: str = "") -> Listed:
        """Objects of a kubeapi.KINDS kind; raises kubeapi.KubeError (an UpstreamError) saying what is missing."""
        ...

    async def kube_get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...


def http_source(envoy_url: str, istiod_url: str, *, timeout: float = 15.0,
                max_bytes: int = DEFAULT_MAX_BYTES, **config: Any) -> Upstreams:
    """Upstreams over two URLs, for callers without a server config (tests, scripts)."""
    return Upstreams({"envoyAdminURL": envoy_url, "istiodURL": istiod_url, "timeoutSeconds": timeout,
                      "maxResponseBytes": max_bytes, **config})


def as_source(upstreams: Any) -> Source:
    if isinstance(upstreams, Source):
        return upstreams
    raise TypeError(f"{type(upstreams).__name__} cannot serve the views: it lacks envoy_json/istiod_json")
