"""What istiod itself says in its resources' status: the messages of its own analysis (`status.validationMessages`,
written when istiod runs with analysis on) and negative conditions (istioctl's conditions.ConditionAnalyzer,
IST0171: a Gateway API Gateway or HTTPRoute not Accepted, not Programmed, or whose references do not resolve;
Higress serves the Gateway API and reports these the same way).

A status message carries only the code and level (istio.io/api analysis.v1alpha1.AnalysisMessageBase); when an
analyzer here reports the same code for the same resource, its finding, which says why, is the one kept
(`redundant`).
"""

from __future__ import annotations

from collections.abc import Iterable

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.istio.codes import CODES, LEVELS, NAMES
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import IstioConfig, Resource

NAME = "istiod-status"
NEGATIVE = {  # kind -> condition types reported when False
    "Service": ("istio.io/WaypointBound",), "ServiceEntry": ("istio.io/WaypointBound",),
    "WorkloadEntry": ("istio.io/WaypointBound",), "AuthorizationPolicy": ("ZtunnelAccepted", "WaypointAccepted"),
    "KubernetesGateway": ("Accepted", "Programmed", "ResolvedRefs"), "HTTPRoute": ("Accepted", "Programmed",
                                                                                   "ResolvedRefs"),
    "GRPCRoute": ("Accepted", "Programmed", "ResolvedRefs")}


def _conditions(res: Resource) -> Iterable[dict[str, str]]:
    status = res.status
    found = list(status.get("conditions") or [])
    for parent in status.get("parents") or []:  # HTTPRoute / GRPCRoute: per parent Gateway
        found += mapping(parent).get("conditions") or []
    return [{k: str(v) for k, v in mapping(c).items()} for c in found]


def messages(res: Resource) -> list[Finding]:
    out: list[Finding] = []
    for m in res.status.get("validationMessages") or []:
        kind = mapping(mapping(m).get("type"))
        code = str(kind.get("code", ""))
        known = CODES.get(code)
        severity = LEVELS.get(str(mapping(m).get("level", "")).upper(), known.severity if known else LEVELS["INFO"])
        if res.suppressed(code):
            continue
        name = str(kind.get("name") or NAMES.get(code, "")) or "a message"
        url = str(mapping(m).get("documentationUrl", ""))
        out.append(Finding(NAME, severity, scope.ref(res), f"istiod's own analysis reports {name} on this resource",
                           "see the message's documentation" + (f": {url}" if url else ""),
                           (f"status.validationMessages: {code} {mapping(m).get('level', '')}",), code=code))
    return out


def conditions(res: Resource) -> list[Finding]:
    out: list[Finding] = []
    for c in _conditions(res):
        bad = c.get("status") == "False" and c.get("type") in NEGATIVE.get(res.kind, ())
        partly = res.kind == "AuthorizationPolicy" and c.get("type") == "WaypointAccepted" and \
            c.get("reason") == "PartiallyInvalid"
        if bad or partly:
            out += scope.finding(NAME, res, "IST0171", (c.get("type", ""), c.get("reason", ""), c.get("message", "")),
                                 "fix what the condition's message names (for an HTTPRoute: its parentRefs and "
                                 "backendRefs)", (f"status condition {c.get('type')}={c.get('status')}",))
    return out


def check(config: IstioConfig) -> list[Finding]:
    return [f for res in config.resources for f in (*messages(res), *conditions(res))]


def redundant(findings: list[Finding]) -> list[Finding]:
    """The findings without the status messages an analyzer here also reports (same code, same resource)."""
    ours = {(f.code, f.subject) for f in findings if f.detector != NAME and f.code}
    return [f for f in findings if f.detector != NAME or (f.code, f.subject) not in ours]


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    return await facts.compute(check, (await scope.mesh(facts)).config)


DETECTOR = Detector(NAME, "istiod's own analysis messages and negative status conditions (IST0171)", detect,
                    next_tool="get-istiod-configz", sources=("istiod", "envoy"))
