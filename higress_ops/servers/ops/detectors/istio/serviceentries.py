"""istioctl's serviceentry.ProtocolAddressesAnalyzer (IST0134) and ConflictingServiceEntryProtocolAnalyzer
(IST0177): a ServiceEntry with TCP ports (or ports of no protocol) and no address, so Envoy cannot tell its
traffic apart from other TCP traffic on the port; and ServiceEntries that give one host and port different
protocols.

Addresses count when the spec lists them or istiod allocated them (`status.addresses`). Istio also skips the
first check when the mesh's DNS capture auto-allocates addresses (proxyMetadata ISTIO_META_DNS_AUTO_ALLOCATE);
the mesh config is not in configz, so that case shows as a finding here. Higress's McpBridge registries become
ServiceEntries in namespace `mcp`, checked like any other.
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.codes import quote
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import IstioConfig, Resource

NAME = "istio-serviceentries"


def addresses(se: Resource) -> list[Finding]:
    if se.spec.get("addresses") or mapping(se.status).get("addresses"):
        return []
    out: list[Finding] = []
    for i, port in enumerate(se.items("ports")):
        if str(port.get("protocol", "")).upper() in ("", "TCP"):
            out += scope.finding(NAME, se, "IST0134", (), "add spec.addresses (a VIP for these hosts), or declare "
                                 f"spec.ports[{i}].protocol (HTTP, HTTPS, TLS, ...) if it is not plain TCP",
                                 (f"spec.ports[{i}]: {port.get('number')} {port.get('protocol') or '(no protocol)'}; "
                                  f"hosts {', '.join(se.strings('hosts'))}",))
    return out


def _scopes(se: Resource) -> list[str]:
    export = se.strings("exportTo")
    return ["*"] if configz.exported_everywhere(export) else sorted({se.namespace if e == "." else e for e in export})


def conflicting_protocols(config: IstioConfig) -> list[Finding]:
    index: dict[tuple[str, str, int], list[tuple[str, Resource]]] = {}
    for se in config.of("ServiceEntry"):
        for s in _scopes(se):
            for h in se.strings("hosts"):
                for p in se.items("ports"):
                    if isinstance(p.get("number"), int):
                        index.setdefault((s, h, p["number"]), []).append((str(p.get("protocol", "")), se))
    out: list[Finding] = []
    reported: set[str] = set()
    for (s, host, port), entries in sorted(index.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if s != "*":
            entries = entries + index.get(("*", host, port), [])
        protocols = sorted({p.upper() for p, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({se.full_name for _, se in entries}))
        for _, se in entries:
            if se.full_name not in reported:
                reported.add(se.full_name)
                out += scope.finding(NAME, se, "IST0177", (names, quote(host), port, ", ".join(protocols)),
                                     f"give port {port} of {host} one protocol in every ServiceEntry")
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    entries = mesh.config.of("ServiceEntry")
    return await facts.compute(lambda: [f for se in entries for f in addresses(se)]
                               + conflicting_protocols(mesh.config))


DETECTOR = Detector(NAME, "ServiceEntry address and protocol problems (istioctl IST0134, IST0177)", detect,
                    next_tool="get-istiod-configz kind=ServiceEntry", sources=("istiod", "envoy"))
