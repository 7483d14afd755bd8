"""istioctl's gateway.IngressGatewayPortAnalyzer: a Gateway server listens on a port the gateway's Service does
not expose (IST0162), or the Gateway's selector matches no pod (IST0101).

Istio's rule: a server port is exposed when it is the targetPort of a TCP port of a Service (in the pod's
namespace) whose selector matches a pod the Gateway selects, or that Service port itself. The Services come from
istiod's registry (its `LabelSelectors` and ports; the target ports from istiod's endpoints, `EndpointPort` per
`ServicePortName`, since registryz has none). Without the pods of the cluster only this gateway's own pod is known,
so a Gateway that selects it is checked, and "selects no pod" is not concluded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.codes import quote
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping

NAME = "istio-gateway-ports"
Port = tuple[int, int, str]  # (service port, target port or 0, protocol)


def target_ports(endpointz: Any, hostname: str, namespace: str) -> dict[str, int]:
    """ServicePortName -> EndpointPort of a service's endpoints in istiod's endpoint shards."""
    shards = mapping(mapping(mapping(endpointz).get(hostname)).get(namespace)).get("Shards")
    out: dict[str, int] = {}
    for endpoints in mapping(shards).values():
        for ep in endpoints if isinstance(endpoints, list) else []:
            ep = mapping(ep)
            if ep.get("ServicePortName") and isinstance(ep.get("EndpointPort"), int):
                out.setdefault(str(ep["ServicePortName"]), int(ep["EndpointPort"]))
    return out


def services_of(pod: scope.Workload, registry: list[Mapping[str, Any]], endpointz: Any) -> dict[str, list[Port]]:
    """`namespace/name` -> ports of the Kubernetes Services (istiod's registry) that select `pod`."""
    out: dict[str, list[Port]] = {}
    for svc in registry:
        attrs = mapping(svc.get("Attributes"))
        selector = configz.string_map(attrs.get("LabelSelectors"))
        if attrs.get("Namespace") != pod.namespace or not selector or not configz.selects(selector, pod.labels):
            continue
        targets = target_ports(endpointz, str(svc.get("hostname", "")), pod.namespace)
        ports = []
        for p in svc.get("ports") or []:
            p = mapping(p)
            if isinstance(p.get("port"), int) and p.get("protocol") != "UDP":
                ports.append((int(p["port"]), targets.get(str(p.get("name", "")), 0), str(p.get("protocol", ""))))
        out[f"{attrs.get('Namespace')}/{attrs.get('Name')}"] = ports
    return out


def exposed(services: Mapping[str, list[Port]]) -> set[int]:
    """Istio's servicePorts (target ports, or the port when the target is unnamed) and portMapping's keys."""
    return {target or port for ports in services.values() for port, target, _ in ports} | \
        {port for ports in services.values() for port, _, _ in ports}


def _ports_text(services: Mapping[str, list[Port]]) -> str:
    return "; ".join(f"{name} " + ", ".join(f"{p}->{t or p}" for p, t, _ in ports)
                     for name, ports in sorted(services.items())) or "none"


def check(mesh: scope.Mesh, endpointz: Any) -> list[Finding]:
    findings: list[Finding] = []
    services_by_pod = {(p.namespace, p.name): services_of(p, mesh.registry, endpointz) for p in mesh.pods}
    for gw in mesh.config.of("Gateway"):
        selector = configz.string_map(gw.spec.get("selector"))
        pods = [p for p in mesh.pods if configz.selects(selector, p.labels)]
        if not pods:
            if mesh.pods_complete:
                findings += scope.finding(NAME, gw, "IST0101", ("selector", quote(configz.selector_text(selector))),
                                          "set the Gateway's selector to the labels of the gateway pods "
                                          f"(this gateway: {configz.selector_text(mesh.proxy.labels)})")
            continue
        services: dict[str, list[Port]] = {}
        for pod in pods:
            services.update(services_by_pod[(pod.namespace, pod.name)])
        ports = exposed(services)
        for server in gw.items("servers"):
            number = mapping(server.get("port")).get("number")
            if not isinstance(number, int) or number in ports:
                continue
            related = tuple(Ref("Service", n.split("/", 1)[1], n.split("/", 1)[0]) for n in sorted(services))
            findings += scope.finding(
                NAME, gw, "IST0162", (number, configz.selector_text(selector)),
                f"add port {number} (targetPort {number}) to the gateway's Service, or move the Gateway server to "
                "a port the Service exposes",
                (f"Services selecting the gateway pods (port->targetPort, from istiod): {_ports_text(services)}",),
                related)
    return findings


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    return await facts.compute(check, mesh, await facts.istiod("/debug/endpointz"))


DETECTOR = Detector(NAME, "Gateway ports the gateway's Service does not expose (istioctl IST0162)", detect,
                    next_tool="get-istiod-configz kind=Gateway", sources=("istiod", "envoy"))
