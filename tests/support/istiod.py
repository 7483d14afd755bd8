"""An istiod test double: a real HTTP server with istiod's debug paths, JSON shapes and auth rule.

Facts (design.md section 3, istio 1.27 pilot/pkg/xds/debug.go): debug paths need `Authorization: Bearer
<token>` (audience istio-ca) unless the caller is on loopback, else 401 with an EMPTY body; /version
and /metrics need none; /debug/vars does not exist (404). Unlike istiod, loopback callers are not
trusted by default, so tests exercise the token path. Every request is recorded, and faults can be set
per path for the hardening tests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
GATEWAY = "higress-gateway-7d9c-abcde.higress-system"


def service(host: str, name: str, namespace: str, ports: list[tuple[str, int, str]],
            selector: dict[str, str] | None = None, registry: str = "Kubernetes", vip: str = "10.96.0.10",
            labels: dict[str, str] | None = None, service_type: str = "ClusterIP") -> dict[str, Any]:
    """A /debug/registryz entry as istiod writes model.Service (pilot/pkg/model/service.go): `Attributes` without
    JSON tags (ServiceAttributes with K8sAttributes embedded), the rest by their tags; `clusterVIPs` an AddressMap
    object, `creationTime` always there (omitempty does not drop a struct)."""
    kube = registry == "Kubernetes"
    return {"Attributes": {"ServiceRegistry": registry, "Name": name, "Namespace": namespace,
                           "Labels": labels if labels is not None else {"app": name}, "ExportTo": None,
                           "LabelSelectors": selector, "Aliases": None, "ClusterExternalAddresses": {"Addresses": None},
                           "ClusterExternalPorts": None, "PassthroughTargetPorts": None,
                           "Type": service_type if kube else "", "ExternalName": "", "NodeLocal": False,
                           "TrafficDistribution": 0, "ObjectName": name, "DNSConnectStrategy": 0,
                           "PublishNotReadyAddresses": False},
            "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
            "creationTime": "2026-11-01T08:00:00Z", "hostname": host,
            "clusterVIPs": {"Addresses": {"Kubernetes": [vip]}} if vip else {"Addresses": None},
            "defaultAddress": vip or "0.0.0.0", "Resolution": 0 if kube else 1, "MeshExternal": not kube,
            "ResourceVersion": "4711"}


def endpoint(address: str, namespace: str, app: str, port_name: str, port: int, labels: dict[str, str] | None = None,
             sidecar: bool = False, healthy: bool = True) -> dict[str, Any]:
    """An IstioEndpoint as /debug/endpointz writes it (no JSON tags: Go field names; HealthStatus 1 healthy, 2
    unhealthy)."""
    return {"Labels": labels if labels is not None else {"app": app}, "Addresses": [address],
            "ServicePortName": port_name, "LegacyClusterPortKey": 0,
            "ServiceAccount": f"spiffe://cluster.local/ns/{namespace}/sa/{app}", "Network": "",
            "Locality": {"Label": "r1/z1", "ClusterID": "Kubernetes"}, "EndpointPort": port, "LbWeight": 0,
            "TLSMode": "istio" if sidecar else "disabled", "Namespace": namespace, "WorkloadName": app,
            "HostName": "", "SubDomain": "", "HealthStatus": 1 if healthy else 2, "SendUnhealthyEndpoints": False,
            "NodeName": "node-a"}


def shards(namespace: str, app: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """endpointz's `namespace -> EndpointShards` (Shards keyed `provider/cluster`, ServiceAccounts a set)."""
    return {namespace: {"Shards": {"Kubernetes/Kubernetes": endpoints},
                        "ServiceAccounts": {f"spiffe://cluster.local/ns/{namespace}/sa/{app}": {}}}}


def config(kind: str, name: str, namespace: str, spec: dict[str, Any], api_version: str = "networking.istio.io/v1",
           status: dict[str, Any] | None = None) -> dict[str, Any]:
    """A /debug/configz entry as crd.ConvertConfig writes it: kind, apiVersion, metadata, spec, and status only
    when not empty."""
    entry = {"kind": kind, "apiVersion": api_version, "metadata": {
        "name": name, "namespace": namespace, "resourceVersion": "4711", "generation": 1,
        "creationTimestamp": "2026-11-01T08:00:00Z"}, "spec": spec}
    if status:
        entry["status"] = status
    return entry


def default_state() -> dict[str, Any]:
    return {
        "/debug/syncz": [
            {"cluster_id": "Kubernetes", "proxy": GATEWAY, "proxy_type": "router", "istio_version": "1.27.0",
             "cluster_sent": "n1", "cluster_acked": "n1", "listener_sent": "n2", "listener_acked": "n2",
             "route_sent": "n3", "route_acked": "n3", "endpoint_sent": "n4", "endpoint_acked": "n4",
             "resources": {CDS: {"sent": "n1", "acked": "n1", "sentTime": "2026-11-24T10:00:00Z"}}},
            {"cluster_id": "Kubernetes", "proxy": "other-gw.team-a", "proxy_type": "router",
             "istio_version": "1.27.0", "cluster_sent": "n9", "cluster_acked": "n8",
             "resources": {CDS: {"sent": "n9", "acked": "n8", "lastError": "cluster outbound|80||x: bad policy"}}},
        ],
        "/debug/configz": [
            config("Gateway", "higress-gateway", "higress-system", {
                "selector": {"higress": "higress-system-higress-gateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["*"]}]}),
            config("VirtualService", "httpbin", "default", {
                "hosts": ["httpbin.example.com"], "gateways": ["higress-system/higress-gateway"],
                "http": [{"route": [{"destination": {"host": "httpbin.default.svc.cluster.local"}}]}]},
                status={"validationMessages": [{"type": {"name": "ReferencedResourceNotFound", "code": "IST0101"},
                                                "level": "ERROR"}], "observedGeneration": "1"}),
            config("VirtualService", "shop", "shop", {"hosts": ["*.shop.example.com"],
                                                       "gateways": ["higress-system/higress-gateway"], "http": [
                {"route": [{"destination": {"host": "cart.shop.svc.cluster.local"}}]}]}),
            config("DestinationRule", "cart", "shop", {"host": "cart.shop.svc.cluster.local",
                                                       "trafficPolicy": {"tls": {"mode": "DISABLE"}}}),
            config("WasmPlugin", "key-auth", "higress-system", {
                "url": "oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/key-auth:1.0.0",
                "matchRules": [{"domain": ["httpbin.example.com"], "config": {"allow": ["consumer1"]}}]},
                api_version="extensions.higress.io/v1alpha1"),
        ],
        "/debug/endpointz": {
            "httpbin.default.svc.cluster.local": shards("default", "httpbin", [
                endpoint("10.0.0.7", "default", "httpbin", "http", 8000)]),
            "cart.shop.svc.cluster.local": shards("shop", "cart", [
                endpoint("10.0.1.4", "shop", "cart", "http", 8080), endpoint("10.0.1.5", "shop", "cart", "http", 8080,
                                                                           healthy=False)]),
        },
        "/debug/clusterz": [{"id": "Kubernetes", "secretName": "", "syncStatus": "synced"}],
        "/debug/registryz": [
            service("httpbin.default.svc.cluster.local", "httpbin", "default", [("http", 8000, "HTTP")],
                    {"app": "httpbin"}),
            service("cart.shop.svc.cluster.local", "cart", "shop", [("http", 8080, "HTTP")], {"app": "cart"},
                    vip="10.96.0.11"),
            service("api.partner.example", "api.partner.example", "shop", [("https", 443, "HTTPS")],
                    registry="External", vip=""),
        ],
        "/debug/push_status": {"Start": "2026-11-24T10:00:00Z", "End": "2026-11-24T10:00:00.1Z",
                               "ProxyStatus": {}, "pilot_xds_pushes": {"cds": 3}},
        "/debug/connections": {"totalClients": 2, "clients": [{"connectionId": GATEWAY + "-1",
                                                               "connectedAt": "2026-11-24T09:00:00Z"}]},
        "/debug/list": ["adsz", "configz", "endpointz", "syncz", "registryz", "push_status", "connections"],
    }


@dataclass
class Fault:
    status: int | None = None  # answer this status (with a small text body)
    delay: float = 0.0  # seconds before answering
    body: bytes | None = None  # answer these bytes (e.g. invalid JSON, or 20 MB)
    close_mid_body: bool = False  # announce a long body, send half, close


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class IstiodDouble:
    tokens: set[str] = field(default_factory=lambda: {"good-token"})
    state: dict[str, Any] = field(default_factory=default_state)
    config_dumps: dict[str, Any] = field(default_factory=dict)  # proxyID -> /debug/config_dump body
    version: str = "1.27.0-3e6a2c1b-Clean"
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> str:
        lines = ["# HELP pilot_xds_pushes Pilot build and send errors for lds, rds, cds and eds.",
                 "# TYPE pilot_xds_pushes counter"]
        lines += [f'pilot_xds_pushes{{type="{t}"}} {n}' for t, n in (("cds", 12), ("eds", 40), ("lds", 9))]
        lines += ["# TYPE pilot_proxy_convergence_time histogram",
                  'pilot_proxy_convergence_time_bucket{le="0.1"} 30', "pilot_proxy_convergence_time_count 31"]
        return "\n".join(lines) + "\n"


def _handler(double: IstiodDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _record(self) -> tuple[str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            double.requests.append(Recorded(self.command, parts.path, query,
                                            {k.lower(): v for k, v in self.headers.items()}))
            return parts.path, query

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path, query = self._record()
            fault = double.faults.get(path)
            if fault is not None and self._fault(fault):
                return
            if path == "/version":
                self._send(200, double.version.encode(), "text/plain; charset=utf-8")
                return
            if path == "/metrics":
                self._send(200, double.metrics().encode(), "text/plain; version=0.0.4")
                return
            if not path.startswith("/debug/") or path == "/debug/vars":
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[len("Bearer "):] not in double.tokens:
                self._send(401, b"")  # istiod's rule: 401, empty body
                return
            body: Any
            if path == "/debug/config_dump":
                proxy = (query.get("proxyID") or [""])[0]
                if proxy not in double.config_dumps:
                    self._send(404, f"proxy not found: {proxy}".encode(), "text/plain")
                    return
                body = double.config_dumps[proxy]
            elif path in double.state:
                body = double.state[path]
                namespace = (query.get("namespace") or [""])[0]
                if path == "/debug/syncz" and namespace:
                    body = [p for p in body if p["proxy"].endswith("." + namespace)]
            else:
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
                return
            self._send(200, json.dumps(body, separators=(",", ":")).encode())

        def _fault(self, fault: Fault) -> bool:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.close_mid_body:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "100000")
                self.end_headers()
                self.wfile.write(b'{"partial": "' + b"x" * 1000)
                self.wfile.flush()
                self.close_connection = True
                return True
            if fault.status is not None:
                self._send(fault.status, b"" if fault.status == 401 else f"fault {fault.status}".encode(),
                           "text/plain")
                return True
            if fault.body is not None:
                self._send(200, fault.body)
                return True
            return False

        def do_POST(self) -> None:
            self._record()
            self._send(405, b"method not allowed", "text/plain")

        do_PUT = do_DELETE = do_POST

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


class _Listener(ThreadingHTTPServer):
    request_queue_size = 128  # istiod (Go) listens with the kernel's full backlog, not socketserver's 5
    daemon_threads = True


@contextmanager
def istiod_double(**options: Any) -> Iterator[IstiodDouble]:
    double = IstiodDouble(**options)
    server = _Listener(("127.0.0.1", 0), _handler(double))
    double.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
