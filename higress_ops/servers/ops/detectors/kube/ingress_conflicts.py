"""Two Ingresses (or two paths of one) claiming the same host and path, and which one Higress keeps.

Higress's rule (alibaba/higress pkg/ingress/config/ingress_config.go, pkg/ingress/kube/ingressv1 ConvertHTTPRoute):
Ingresses are converted oldest first (creation time, then `name.namespace`); a path's key is its host, path type
and path (a Prefix path without its trailing `/`) plus the Ingress's match annotations (`higress.io/match-method`,
`*-match-header-*`, `*-match-pseudo-header-*`, `*-match-query-*`); a later path with a key already taken is dropped
(event DuplicatedRoute), within one Ingress too. So the older Ingress's backend answers, and the later one's path is
not routed at all. Canary Ingresses (`canary: "true"`) share their main Ingress's paths by design and are left
out. Only the API's Ingresses count (the ones rebuilt from Higress's VirtualServices are what was kept), and of
them the classes this gateway serves.
"""

from __future__ import annotations

from collections.abc import Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.kube import higress_annotations as ha
from higress_ops.servers.ops.objects import higress
from higress_ops.servers.ops.objects.model import KUBERNETES, Ingress, IngressPath

NAME = "ingress-conflicts"
PATH_TYPES = {"Exact": "exact", "Prefix": "prefix"}  # ImplementationSpecific: Higress gives it no path type


def _matches(annotations: Mapping[str, str]) -> tuple[str, ...]:
    """The match annotations that are part of a path's key (createRuleKey)."""
    out = []
    for k, v in sorted(annotations.items()):
        found = ha.key(k)
        if found and found[0] == ha.HIGRESS and (found[1] == "match-method" or ha.MATCH.match(found[1])):
            out.append(f"{found[1]}={v}")
    return tuple(out)


def path_key(ing: Ingress, p: IngressPath) -> tuple[str, ...]:
    """Higress's PathFormat (host-pathType-path) with the match annotations."""
    kind = PATH_TYPES.get(p.path_type, "")
    path = p.path.rstrip("/") if kind == "prefix" and p.path != "/" else p.path
    return (p.host, kind, path, *_matches(ing.meta.annotations))


def canary(ing: Ingress) -> bool:
    return any(ing.meta.annotations.get(prefix + "canary", "").lower() == "true" for prefix in (ha.HIGRESS, ha.NGINX))


def order(ing: Ingress) -> tuple[bool, str, str]:
    """SortIngressByCreationTime: oldest first; a tie (or no time) by `name.namespace`."""
    return not ing.meta.created, ing.meta.created, f"{ing.meta.name}.{ing.meta.namespace}"


def conflicts(ingresses: list[Ingress]) -> list[Finding]:
    taken: dict[tuple[str, ...], Ingress] = {}
    findings = []
    for ing in sorted((i for i in ingresses if not canary(i)), key=order):
        mine: set[tuple[str, ...]] = set()
        said: set[tuple[str, ...]] = set()
        for p in ing.paths:
            key = path_key(ing, p)
            winner = taken.get(key) if key not in mine else ing
            if winner is None:
                taken[key] = ing
                mine.add(key)
                continue
            if key in said:
                continue  # `/x` and `/x/` are one Prefix path to Higress: one finding
            said.add(key)
            what = f"host {p.host or '*'} path {p.path} ({p.path_type or 'no path type'})"
            backend = f"Service {p.service}:{p.port}" if p.service else (p.resource or "its backend")
            if winner is ing:
                message = f"claims {what} twice: Higress keeps the first and drops the second ({backend})"
                related: tuple[Ref, ...] = ()
            else:
                message = (f"claims {what} as Ingress {winner.meta.namespace}/{winner.meta.name} does: Higress keeps "
                           f"the older Ingress's path (created {winner.meta.created or '?'}), so this one ({backend}) "
                           "is not routed")
                related = (Ref("Ingress", winner.meta.name, winner.meta.namespace),)
            findings.append(Finding(
                NAME, Severity.WARNING, Ref("Ingress", ing.meta.name, ing.meta.namespace), message,
                "give the path to one Ingress (remove it from the other), or split traffic on purpose with the "
                "canary annotations", (f"created {ing.meta.created or '?'}",), related))
    return findings


def served(ingresses: list[Ingress], route_names: set[str], namespace: str) -> list[Ingress]:
    """The Ingresses of the classes this gateway serves: those of the Ingresses whose routes it has (an nginx
    Ingress next to Higress's is another controller's business). All of them when none has a route here."""
    classes = {i.ingress_class for i in ingresses
               if higress.route_name(i.meta.namespace, i.meta.name, namespace) in route_names}
    return [i for i in ingresses if not classes or i.ingress_class in classes]


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    ingresses = [i for i in await facts.objects.ingresses() if i.meta.source == KUBERNETES]
    if not ingresses:
        facts.note(NAME, "no Ingress read from the Kubernetes API (Higress already dropped any duplicate path from "
                   "its config)")
        return []
    names = {str(route.get("name", "")) for _, _, _, route in await facts.routes()}
    return await facts.compute(conflicts, served(ingresses, names, facts.src.namespace))


DETECTOR = Detector(NAME, "Ingresses claiming the same host and path (Higress keeps the older)", detect,
                    next_tool="what-changed kinds=Ingress", sources=("kubernetes",))
