"""istioctl's service.PortNameAnalyzer: a Service port whose name (or appProtocol) declares no protocol Istio knows
(IST0118), and a `tcp` port of an ExternalName Service (IST0150).

istiod's registry carries the protocol it derived for each port (kube.ConvertProtocol: appProtocol first, else
the name's prefix before `-`; `UnsupportedProtocol` when neither is one Istio knows, TCP for a few well-known
ports): the ports it could not classify are the ones this reports. Istio then sniffs the protocol per
connection. The Services checked are the ones this gateway has clusters for (its traffic), control-plane
Services (label `istio`, or `release: istio`) aside; the target port comes from istiod's endpoints.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.codes import CODES
from higress_ops.servers.ops.detectors.istio.gateway_ports import target_ports
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views import endpoints as eps
from higress_ops.servers.ops.views.configdump import mapping

NAME = "istio-service-port-names"
MANAGED = "gateway.istio.io/managed"
MANAGED_VALUES = ("istio.io-gateway-controller", "istio.io-mesh-controller", "istio.io-eastwest-controller")
PREFIXES = "http, http2, https, grpc, grpc-web, tcp, tls, mongo, mysql, redis"


def skipped(attrs: Mapping[str, Any]) -> bool:
    labels = configz.string_map(attrs.get("Labels"))
    return "istio" in labels or labels.get("release") == "istio" or labels.get(MANAGED) in MANAGED_VALUES


def check(svc: Mapping[str, Any], endpointz: Any) -> list[Finding]:
    attrs = mapping(svc.get("Attributes"))
    if attrs.get("ServiceRegistry", "Kubernetes") != "Kubernetes" or skipped(attrs):
        return []
    host = str(svc.get("hostname", ""))
    ns, name = str(attrs.get("Namespace", "")), str(attrs.get("Name", ""))
    external = attrs.get("Type") == "ExternalName"
    targets = target_ports(endpointz, host, ns)
    out = []
    for i, p in enumerate(svc.get("ports") or []):
        p = mapping(p)
        port_name, number = str(p.get("name", "")), p.get("port")
        if not (p.get("protocol") == "UnsupportedProtocol" or (port_name == "tcp" and external)):
            continue
        code = CODES["IST0150" if external else "IST0118"]
        text = code.text() if external else code.text(port_name, number, targets.get(port_name, number))
        out.append(Finding(
            NAME, code.severity, Ref("Service", name, ns), text,
            f"name spec.ports[{i}] <protocol>[-suffix] ({PREFIXES}) or set its appProtocol, so Istio does not have "
            "to sniff the protocol", (f"istiod's registry: port {number} '{port_name}' {p.get('protocol')}",),
            code=code.code))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    hosts = {cd.parse_subset_key(str(c.get("name", "")))[3]
             for c in eps.cluster_statuses(await facts.clusters_json())}
    used = [svc for host, svc in sorted(mesh.services().items()) if host in hosts]
    if not any(check(svc, {}) for svc in used):
        return []
    endpointz = await facts.istiod("/debug/endpointz")  # the target ports, for the message
    return await facts.compute(lambda: [f for svc in used for f in check(svc, endpointz)])


DETECTOR = Detector(NAME, "Service ports outside Istio's naming convention (istioctl IST0118)", detect,
                    next_tool="get-istiod-registryz", sources=("istiod", "envoy"))
