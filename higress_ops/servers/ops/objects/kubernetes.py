"""Kubernetes API objects (the JSON the API server sends, kubeapi.py) in this package's shape.

Facts followed: an EndpointSlice's `conditions.ready` unset means ready, `serving` unset means what `ready`
says, `terminating` unset means false (discovery.k8s.io/v1 EndpointConditions); a Service's `targetPort` unset
is its `port`; an object's last change is its newest `managedFields[].time` (the API server stamps every write,
status included, with the manager that made it), else its creation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from higress_ops.servers.ops.objects.istio import port_protocol
from higress_ops.servers.ops.objects.model import (
    Change,
    Container,
    Endpoint,
    Event,
    Ingress,
    IngressPath,
    KubeObject,
    Meta,
    Pod,
    Service,
    ServicePort,
)
from higress_ops.servers.ops.views import configdump as cd

DOMAIN = "cluster.local"



def last_change(obj: Mapping[str, Any]) -> Change | None:
    meta = cd.mapping(obj.get("metadata"))
    newest: Change | None = None
    for entry in meta.get("managedFields") or []:
        entry = cd.mapping(entry)
        when = str(entry.get("time") or "")
        if when and (newest is None or when >= newest.time):  # RFC 3339 UTC sorts as text
            newest = Change(when, str(entry.get("manager", "")), str(entry.get("operation", "")),
                            str(entry.get("subresource", "")))
    if newest is None and meta.get("creationTimestamp"):
        return Change(str(meta["creationTimestamp"]), "", "Create")
    return newest


def meta_of(obj: Mapping[str, Any], kind: str = "") -> Meta:
    meta = cd.mapping(obj.get("metadata"))
    return Meta(kind or str(obj.get("kind", "")), str(meta.get("namespace", "")), str(meta.get("name", "")),
                labels=dict(cd.mapping(meta.get("labels"))), annotations=dict(cd.mapping(meta.get("annotations"))),
                created=str(meta.get("creationTimestamp") or ""), changed=last_change(obj),
                uid=str(meta.get("uid", "")))


def service(obj: Mapping[str, Any]) -> Service:
    meta = meta_of(obj, "Service")
    spec = cd.mapping(obj.get("spec"))
    ports = []
    for p in (cd.mapping(p) for p in spec.get("ports") or []):
        number, name = int(p.get("port") or 0), str(p.get("name", ""))
        transport, app = str(p.get("protocol") or "TCP"), str(p.get("appProtocol") or "")
        target = p.get("targetPort")
        ports.append(ServicePort(name, number, port_protocol(number, name, transport, app),
                                 str(target if target not in (None, "", 0) else number), app, transport))
    selector = spec.get("selector")
    return Service(meta, f"{meta.name}.{meta.namespace}.svc.{DOMAIN}", tuple(ports),
                   dict(selector) if isinstance(selector, Mapping) and selector else None,
                   str(spec.get("type") or "ClusterIP"), str(spec.get("clusterIP") or ""), obj)


def slice_endpoints(slices: Iterable[Mapping[str, Any]]) -> list[Endpoint]:
    """Every (address, port) of the slices, with its conditions."""
    out = []
    for sl in slices:
        name = str(cd.mapping(sl.get("metadata")).get("name", ""))
        ports = [cd.mapping(p) for p in sl.get("ports") or []] or [{}]
        for ep in (cd.mapping(e) for e in sl.get("endpoints") or []):
            cond = cd.mapping(ep.get("conditions"))
            ready = cond.get("ready") is not False
            serving = cond.get("serving") if isinstance(cond.get("serving"), bool) else ready
            terminating = cond.get("terminating") is True
            target = cd.mapping(ep.get("targetRef"))
            for address in ep.get("addresses") or []:
                for p in ports:
                    out.append(Endpoint(str(address), int(p.get("port") or 0), str(p.get("name") or ""), ready,
                                        bool(serving), terminating, str(target.get("name", "")),
                                        str(ep.get("nodeName") or ""), str(ep.get("zone") or ""), name))
    return out


def _backend(host: str, path: str, path_type: str, backend: Mapping[str, Any]) -> IngressPath:
    svc = cd.mapping(backend.get("service"))
    port = cd.mapping(svc.get("port"))
    resource = cd.mapping(backend.get("resource"))
    return IngressPath(host, path, path_type, str(svc.get("name", "")),
                       str(port.get("number") or port.get("name") or ""),
                       f"{resource.get('kind', '')}/{resource.get('name', '')}" if resource else "")


def ingress(obj: Mapping[str, Any]) -> Ingress:
    meta = meta_of(obj, "Ingress")
    spec = cd.mapping(obj.get("spec"))
    paths = []
    for rule in (cd.mapping(r) for r in spec.get("rules") or []):
        host = str(rule.get("host") or "")
        for p in (cd.mapping(p) for p in cd.mapping(rule.get("http")).get("paths") or []):
            paths.append(_backend(host, str(p.get("path") or "/"), str(p.get("pathType") or ""),
                                  cd.mapping(p.get("backend"))))
    tls = tuple((tuple(str(h) for h in t.get("hosts") or []), str(t.get("secretName") or ""))
                for t in (cd.mapping(t) for t in spec.get("tls") or []))
    default = cd.mapping(spec.get("defaultBackend"))
    ingress_class = str(spec.get("ingressClassName") or meta.annotations.get("kubernetes.io/ingress.class", ""))
    return Ingress(meta, ingress_class, tuple(paths), tls, _backend("", "/", "", default) if default else None, obj)


def _container_state(status: Mapping[str, Any]) -> str:
    state = cd.mapping(status.get("state"))
    for key in ("waiting", "terminated"):
        if key in state:
            reason = str(cd.mapping(state[key]).get("reason") or "")
            return f"{key}: {reason}" if reason else key
    return "running" if "running" in state else "unknown"


def pod(obj: Mapping[str, Any]) -> Pod:
    meta = meta_of(obj, "Pod")
    spec, status = cd.mapping(obj.get("spec")), cd.mapping(obj.get("status"))
    statuses = {str(s.get("name", "")): s for s in (cd.mapping(s) for s in status.get("containerStatuses") or [])}
    containers = []
    for c in (cd.mapping(c) for c in spec.get("containers") or []):
        st = cd.mapping(statuses.get(str(c.get("name", ""))))
        ports = tuple((str(p.get("name") or ""), int(p.get("containerPort") or 0))
                      for p in (cd.mapping(p) for p in c.get("ports") or []))
        containers.append(Container(str(c.get("name", "")), st.get("ready") is True, int(st.get("restartCount") or 0),
                                    ports, _container_state(st) if st else "not started"))
    ready = any(cd.mapping(c).get("type") == "Ready" and cd.mapping(c).get("status") == "True"
                for c in status.get("conditions") or [])
    deleting = bool(cd.mapping(obj.get("metadata")).get("deletionTimestamp"))
    return Pod(meta, str(status.get("phase") or ""), ready and not deleting,
               str(status.get("podIP") or ""), str(spec.get("nodeName") or ""), tuple(containers), obj)


def event(obj: Mapping[str, Any]) -> Event:
    meta = cd.mapping(obj.get("metadata"))
    regarding = cd.mapping(obj.get("involvedObject"))
    last = str(obj.get("lastTimestamp") or obj.get("eventTime") or meta.get("creationTimestamp") or "")
    return Event(str(meta.get("namespace", "")), (str(regarding.get("kind", "")),
                                                  str(regarding.get("namespace", "")), str(regarding.get("name", ""))),
                 str(obj.get("type", "")), str(obj.get("reason", "")), str(obj.get("message", ""))[:500],
                 int(obj.get("count") or 1), last)


def kube_object(obj: Mapping[str, Any]) -> KubeObject:
    return KubeObject(meta_of(obj), obj)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selector_text(selector: Mapping[str, str]) -> str:
    """A Service selector as a labelSelector query."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
