"""What the Istio analyzers share, built once per call: istiod's config (configz), its service registry
(registryz), and the workloads a Gateway's selector is checked against.

istioctl reads Pods from the cluster. Here they come from the Kubernetes API when the server reads it; without
it, the one workload known for certain is this gateway itself (its pod's labels and namespace are in its
bootstrap node metadata, `LABELS` and `NAMESPACE`, as pilot-agent writes them), so checks that need "no pod
matches" are made only when the pods are known (`pods_complete`) and otherwise said to be skipped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from higress_ops.servers.ops.detectors.base import Finding, Ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio.codes import CODES
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import IstioConfig, Resource


@dataclass(frozen=True)
class Workload:
    """A pod a selector may match."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Mesh:
    config: IstioConfig
    registry: list[Mapping[str, Any]]  # registryz: every service istiod knows (Kubernetes, ServiceEntry, McpBridge)
    proxy: Workload  # this gateway's pod
    pods: list[Workload]  # the pods selectors are checked against
    pods_complete: bool  # False: only this gateway is known, so "no pod matches" cannot be concluded

    def services(self) -> dict[str, Mapping[str, Any]]:
        """hostname -> registry entry."""
        return {str(s.get("hostname", "")): s for s in self.registry}

    def gateways_of_proxy(self) -> list[Resource]:
        """The Gateways whose selector picks this gateway's pod: the ones its config comes from."""
        return [gw for gw in self.config.of("Gateway")
                if configz.selects(configz.string_map(gw.spec.get("selector")), self.proxy.labels)]


def proxy_of(node: Mapping[str, Any]) -> Workload:
    """This Envoy's pod from its bootstrap node: metadata LABELS/NAMESPACE/NAME, else the Istio node id
    (`router~10.0.0.1~<pod>.<namespace>~<namespace>.svc.cluster.local`)."""
    meta = mapping(node.get("metadata"))
    parts = str(node.get("id", "")).split("~")
    pod, _, ns = (parts[2] if len(parts) == 4 else "").partition(".")
    return Workload(str(meta.get("NAMESPACE") or ns), str(meta.get("NAME") or pod),
                    configz.string_map(meta.get("LABELS")))


async def mesh(facts: Facts) -> Mesh:
    """The call's Mesh; raises UpstreamError when istiod does not answer configz (the detector is skipped)."""
    async def build() -> Mesh:
        config = await facts.compute(configz.parse, await facts.istiod("/debug/configz"))
        registry_json = await facts.istiod("/debug/registryz")
        registry = [s for s in registry_json if isinstance(s, Mapping)] if isinstance(registry_json, list) else []
        proxy = proxy_of(await facts.node())
        return Mesh(config, registry, proxy, [proxy], False)
    return await facts.once(("istio-mesh",), build)


def ref(res: Resource) -> Ref:
    return Ref(res.kind, res.name, res.namespace)


def finding(detector: str, res: Resource, code: str, args: Sequence[object], fix: str,
            evidence: Sequence[str] = (), related: Sequence[Ref] = ()) -> list[Finding]:
    """Istio's message for `res` ([] when the resource suppresses the code, as istioctl honours
    `galley.istio.io/analyze-suppress`)."""
    if res.suppressed(code):
        return []
    c = CODES[code]
    return [Finding(detector, c.severity, ref(res), c.text(*args), fix, tuple(evidence), tuple(related), code=code)]
