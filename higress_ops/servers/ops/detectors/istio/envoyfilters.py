"""istioctl's envoyfilter.EnvoyPatchAnalyzer: EnvoyFilter patches whose operation Istio ignores or may apply in the
wrong place (IST0151 to IST0155).

- ADD or REMOVE on ROUTE_CONFIGURATION or HTTP_ROUTE: ignored (IST0153, IST0154);
- REPLACE outside HTTP_FILTER, NETWORK_FILTER and VIRTUAL_HOST: invalid (IST0152);
- a relative operation (INSERT_BEFORE, INSERT_AFTER, REPLACE, REMOVE) in an EnvoyFilter without a priority:
  whether its anchor exists when it is applied depends on the order of EnvoyFilters (IST0151), the more so when an
  earlier patch of the same name is limited to some proxy versions (IST0155).
Higress writes EnvoyFilters of its own (from Ingress annotations and its ConfigMap): they are checked like any
other.
"""

from __future__ import annotations

import json

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.views.configdump import mapping
from higress_ops.servers.ops.views.configz import Resource

NAME = "istio-envoyfilters"
ROUTE_LEVEL = ("ROUTE_CONFIGURATION", "HTTP_ROUTE")
REPLACEABLE = ("NETWORK_FILTER", "HTTP_FILTER", "VIRTUAL_HOST")
RELATIVE = ("INSERT_BEFORE", "INSERT_AFTER")


def _instance(patch: dict[str, object]) -> str:
    """The name a patch is about: its value's `name`, else the filter it matches (Istio's instanceName)."""
    value = mapping(mapping(patch.get("patch")).get("value"))
    if value:
        if "name" in value:
            return json.dumps(value["name"])
        return str(mapping(mapping(mapping(mapping(patch.get("match")).get("listener")).get("filterChain")).get(
            "filter")).get("name", ""))
    return ""


def check(ef: Resource, versioned: list[str]) -> list[Finding]:
    """`versioned`: names of earlier patches (of earlier EnvoyFilters too) limited to proxy versions; extended."""
    out: list[Finding] = []
    priority = ef.spec.get("priority", 0)
    for i, patch in enumerate(ef.items("configPatches")):
        if not mapping(patch.get("patch")):
            break  # Istio stops at the first patch without one
        op, apply_to = str(mapping(patch.get("patch")).get("operation", "")), str(patch.get("applyTo", ""))
        name = _instance(dict(patch))
        where = (f"spec.configPatches[{i}]: applyTo {apply_to or 'INVALID'}, operation {op or 'INVALID'}",)
        relative = False
        if op == "ADD" and apply_to in ROUTE_LEVEL:
            out += scope.finding(NAME, ef, "IST0153", (), "use MERGE to change a route configuration or route",
                                 where)
        elif op == "REMOVE":
            if apply_to in ROUTE_LEVEL:
                out += scope.finding(NAME, ef, "IST0154", (), "route configurations and routes cannot be removed by "
                                     "an EnvoyFilter: change the VirtualService instead", where)
            else:
                relative = True
        elif op == "REPLACE":
            if apply_to not in REPLACEABLE:
                out += scope.finding(NAME, ef, "IST0152", (), "use MERGE, or REPLACE on an HTTP or network filter",
                                     where)
            else:
                relative = True
        elif op in RELATIVE:
            relative = True
        if relative and not priority:
            code = "IST0155" if name in versioned else "IST0151"
            out += scope.finding(NAME, ef, code, (), "set spec.priority, or use INSERT_FIRST or ADD", where)
        if mapping(mapping(patch.get("match")).get("proxy")).get("proxyVersion"):
            versioned.append(name)
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    versioned: list[str] = []
    return await facts.compute(lambda: [f for ef in mesh.config.of("EnvoyFilter") for f in check(ef, versioned)])


DETECTOR = Detector(NAME, "EnvoyFilter patches with relative or incorrect operations (istioctl IST0151-IST0155)",
                    detect, next_tool="get-istiod-configz kind=EnvoyFilter", sources=("istiod", "envoy"))
