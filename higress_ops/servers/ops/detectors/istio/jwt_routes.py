"""istioctl's virtualservice.JWTClaimRouteAnalyzer (IST0149): a VirtualService routes on a JWT claim
(`@request.auth.claims.<name>` headers) through a gateway whose pods no RequestAuthentication applies to, so the
claims are never there and the rule never matches.

A RequestAuthentication applies when it is in the pod's namespace or the root namespace and its selector matches
the pod's labels. Istio's root namespace is `istio-system`; Higress's istiod runs with its own namespace as the
root (the server config's `namespace`, `higress-system` by default), so both count.
"""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.views import configz
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import Resource

NAME = "istio-jwt-claim-routes"
CLAIM = "@request.auth.claims"
ISTIO_ROOT = "istio-system"


def claim_key(vs: Resource) -> str:
    """The first header a rule matches on that names a JWT claim (Istio's routeBasedOnJWTClaimKey)."""
    for rule in vs.items("http"):
        for match in rule.get("match") or []:
            for key in sorted([*mapping(mapping(match).get("headers")), *mapping(mapping(match).get(
                    "withoutHeaders"))]):
                rest = key[len(CLAIM):] if key.lower().startswith(CLAIM) else ""
                if (rest.startswith(".") and len(rest) > 1) or (rest.startswith("[") and rest.endswith("]")
                                                                 and len(rest) > 2):
                    return key
    return ""


def check(vs: Resource, mesh: scope.Mesh, root: str) -> list[Finding]:
    """`root`: Higress's namespace, its istiod's root namespace."""
    key = claim_key(vs)
    if not key:
        return []
    authns = mesh.config.of("RequestAuthentication")
    out: list[Finding] = []
    for name in vs.strings("gateways"):
        if name == configz.MESH:
            continue
        full = name if "/" in name else f"{vs.namespace}/{name}"
        gw = mesh.config.find("Gateway", *full.split("/", 1))
        if gw is None:
            continue
        selector = configz.string_map(gw.spec.get("selector"))
        for pod in mesh.pods:
            if not configz.selects(selector, pod.labels):
                continue
            covered = any(ra.namespace in (ISTIO_ROOT, root, pod.namespace) and configz.selects(
                configz.string_map(mapping(ra.spec.get("selector")).get("matchLabels")), pod.labels) for ra in authns)
            if not covered:
                out += scope.finding(NAME, vs, "IST0149", (key, full, pod.name),
                                     f"apply a RequestAuthentication (with the JWT issuer) to the gateway pods, in "
                                     f"namespace {pod.namespace} or {root}, selecting "
                                     f"{configz.selector_text(selector)}", (f"header match {key}",),
                                     (scope.ref(gw),))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    root = facts.src.namespace
    return await facts.compute(lambda: [f for vs in mesh.config.of("VirtualService") for f in check(vs, mesh, root)])


DETECTOR = Detector(NAME, "JWT-claim routes without request authentication (istioctl IST0149)", detect,
                    next_tool="get-istiod-configz kind=RequestAuthentication", sources=("istiod", "envoy"))
