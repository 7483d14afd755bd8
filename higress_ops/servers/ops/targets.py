"""Which Envoy (or istiod) a call reads, and how it is reached: the one place that knows.

A `Fleet` is a `gateways` or `istiods` block of the server config. With `access: local` it is the one URL of
the config (envoyAdminURL, istiodURL). Otherwise it lists the pods matching `selector` through the Kubernetes
API and reaches each one either through the API server's `pods/portforward` (as istioctl does: Istio binds
Envoy's admin API to the pod's loopback) or at podIP:port. The catalog, the handler and the views get a
`Target` and never know which.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from higress_ops import kube
from higress_ops.config.model import PodFleet
from higress_ops.servers.held import CallBytes
from higress_ops.servers.ops.portforward import PortForward
from higress_ops.servers.ops.upstream import Fetched, Upstream, UpstreamError

LIST_TTL = 2.0  # seconds a pod listing is reused: calls in a burst share one list request
MISS_TTL = 1.0  # a name not in the listing re-lists at most this often, whatever the names: a flood of made-up
                # pod names costs one list request per second, and waits for it, never one each
OWN_POD_ENV = "POD_NAME"  # a sidecar's own pod (downward API): its Envoy is read at the local URL, no port-forward
PORT_ANNOTATION = "higress-ops.io/port"  # a pod that serves its admin/debug API on another port says so here
POD_PARAMETER = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
                 "description": "The gateway pod to read (a name from list-gateway-pods). Default: the pod this "
                                "session was pinned to when it started."}


@dataclass(frozen=True)
class Pod:
    name: str
    ip: str
    node: str
    ready: bool
    phase: str
    port: int  # the admin (or debug) port to reach on this pod
    started: str = ""  # status.startTime


@dataclass(frozen=True)
class Target:
    """One Envoy or istiod a call reads: `name` is the pod's name, or the config key for the local URL."""

    name: str
    upstream: Upstream
    pod: Pod | None = None


def with_pod_parameter(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An input schema plus the optional `pod` argument: the one place it is added, for every Envoy tool."""
    return {**schema, "properties": {**schema.get("properties", {}), "pod": POD_PARAMETER}}


class Fleet:
    """The pods of one block and a pooled way to reach each of them."""

    def __init__(self, who: str, block: PodFleet, local_url: str, local_name: str, *, timeout: float) -> None:
        self.who = who  # "Envoy admin" or "istiod"
        self.block = block
        self.local_name = local_name  # "envoyAdminURL" or "istiodURL"
        self.timeout = timeout
        self.local = Upstream(who, local_url, timeout=timeout)
        self._local_target = Target(local_name, self.local)  # asked for twice on every call of access: local
        self.own_pod = os.environ.get(OWN_POD_ENV, "")
        self._pods: list[Pod] = []
        self._listed = -LIST_TTL
        self._list_lock = asyncio.Lock()
        self._reached: dict[str, tuple[Pod, Upstream, PortForward | None]] = {}

    @property
    def discovers(self) -> bool:
        return self.block.access != "local"

    # -- pods -------------------------------------------------------------------------------------------

    async def pods(self, *, max_age: float = LIST_TTL) -> list[Pod]:
        """The block's pods by name, from a listing at most `max_age` seconds old. Callers that find it stale
        share one list request: whoever waited for the lock reuses the listing made meanwhile."""
        if not self.discovers:
            return []
        if time.monotonic() - self._listed < max_age:
            return list(self._pods)
        async with self._list_lock:
            if time.monotonic() - self._listed >= max_age:
                self._pods = await asyncio.to_thread(self._list)
                self._listed = time.monotonic()
                await self._forget_gone()
            return list(self._pods)

    async def pods_after(self, moment: float) -> list[Pod]:
        """The pods as listed after `moment` (time.monotonic()), waiting for the next listing allowed (MISS_TTL
        after the last one) rather than listing at once: however many calls ask, one request per MISS_TTL."""
        wait = self._listed + MISS_TTL - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return await self.pods(max_age=time.monotonic() - moment)

    def _list(self) -> list[Pod]:
        where = f"pods {self.block.selector!r} in namespace {self.block.namespace}"
        try:
            found = kube.core_api().list_namespaced_pod(self.block.namespace, label_selector=self.block.selector,
                                                        _request_timeout=(5, self.timeout))
        except ApiException as exc:
            hint = " (the ServiceAccount needs get/list on pods: deploy/rbac)" if exc.status in (401, 403) else ""
            raise UpstreamError(f"cannot list {where}: {exc.status} {exc.reason}{hint}") from None
        except Exception as exc:  # no kubeconfig, API server unreachable
            raise UpstreamError(f"cannot list {where} through the Kubernetes API ({type(exc).__name__}); "
                                f"access {self.block.access} needs it") from None
        pods = [_pod(item, self.block.port) for item in found.items or []]
        return sorted((p for p in pods if p.phase not in ("Succeeded", "Failed")), key=lambda p: p.name)

    async def default_name(self) -> str:
        """The target of a call that names none: the first ready pod by name (stable across replicas)."""
        if not self.discovers:
            return self.local_name
        pods = await self.pods()
        ready = [p for p in pods if p.ready and p.ip]
        if not (ready or pods):
            raise UpstreamError(f"no pods match {self.block.selector!r} in namespace {self.block.namespace}")
        if any(p.name == self.own_pod for p in ready):
            return self.own_pod  # a sidecar's own Envoy: no hop through the API server
        return (ready or pods)[0].name

    # -- targets ----------------------------------------------------------------------------------------

    async def target(self, name: str | None) -> Target:
        """The target called `name`, or the default one. Unknown names are an UpstreamError naming them."""
        if not self.discovers:
            if name in (None, "", self.local_name):
                return self._local_target
            raise UpstreamError(f"cannot read pod {name}: this server reads only its {self.local_name} (access is "
                                "local); set gateways.access to portforward or direct to reach every pod")
        name = name or await self.default_name()
        pod = next((p for p in await self.pods() if p.name == name), None)
        if pod is None:  # maybe new since the last listing
            pod = next((p for p in await self.pods(max_age=MISS_TTL) if p.name == name), None)
        if pod is None:
            raise UpstreamError(f"pod {name} is not one of the {self.who} pods ({self.block.selector!r} in "
                                f"{self.block.namespace}); it may have gone away: list-gateway-pods shows them")
        return Target(pod.name, await self._upstream(pod), pod)

    async def targets(self) -> list[Target]:
        """Every pod with an IP (or the local URL): what list/compare/aggregate calls read."""
        if not self.discovers:
            return [self._local_target]
        return [Target(p.name, await self._upstream(p), p) for p in await self.pods() if p.ip]

    async def _upstream(self, pod: Pod) -> Upstream:
        reached = self._reached.get(pod.name)
        if reached is not None and (reached[0].ip, reached[0].port) == (pod.ip, pod.port):
            return reached[1]
        if reached is not None:
            await self._drop(pod.name)
        if pod.name == self.own_pod:
            return self.local
        if not pod.ip:
            raise UpstreamError(f"pod {pod.name} has no IP yet ({pod.phase}); try again when it is running")
        who = f"{self.who} of pod {pod.name}"
        forward: PortForward | None = None
        if self.block.access == "portforward":
            forward = PortForward(self.block.namespace, pod.name, pod.port)
            upstream: Upstream = Forwarded(who, f"http://127.0.0.1:{await forward.start()}", forward,
                                           timeout=self.timeout)
        else:
            host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
            upstream = Upstream(who, f"http://{host}:{pod.port}", timeout=self.timeout, shown="")
        self._reached[pod.name] = (pod, upstream, forward)
        return upstream

    async def _forget_gone(self) -> None:
        live = {p.name for p in self._pods}
        for name in [n for n in self._reached if n not in live]:
            await self._drop(name)

    async def _drop(self, name: str) -> None:
        _, upstream, forward = self._reached.pop(name)
        await upstream.aclose()
        if forward is not None:
            await forward.aclose()

    async def aclose(self) -> None:
        await self.local.aclose()
        for name in list(self._reached):
            await self._drop(name)


class Forwarded(Upstream):
    """An upstream behind a PortForward: failures say the pod's name and why the stream could not open."""

    def __init__(self, who: str, base_url: str, forward: PortForward, *, timeout: float) -> None:
        super().__init__(who, base_url, timeout=timeout, shown="")
        self.forward = forward

    async def get(self, path: str, query: Sequence[tuple[str, str]] = (),
                  headers: Mapping[str, str] | None = None, held: CallBytes | None = None) -> Fetched:
        try:
            return await super().get(path, query, headers, held)
        except UpstreamError:
            why = self.forward.last_error
            if why:
                raise UpstreamError(f"{self.who}: port-forward through the API server failed ({why})") from None
            raise


def _pod(item: Any, default_port: int) -> Pod:
    meta, status = item.metadata, item.status
    annotations = meta.annotations or {}
    try:
        port = int(annotations.get(PORT_ANNOTATION, default_port))
    except ValueError:
        port = default_port
    ready = any(c.type == "Ready" and c.status == "True" for c in (status.conditions or []))
    started = status.start_time.isoformat() if status.start_time is not None else ""
    return Pod(name=meta.name, ip=status.pod_ip or "", node=(item.spec.node_name or "") if item.spec else "",
               ready=ready and meta.deletion_timestamp is None, phase=status.phase or "", port=port,
               started=started)
