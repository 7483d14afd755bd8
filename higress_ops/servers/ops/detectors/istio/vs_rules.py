"""istioctl's VirtualService rule checks (pkg/config/validation analyzeUnreachable{HTTP,TCP,TLS}Rules, reported
through the schema analyzer): a rule no request can reach (IST0130) and a match an earlier one already takes
(IST0131).

- A rule without matches takes everything: later rules are unreachable ("route without matches defined
  before"), and only the last rule may have none.
- A match equal to an earlier one (names aside) is ineffective; a rule whose matches all are is unreachable.
- HTTP only: a URI prefix match is covered by an earlier prefix it starts with, when port, method (GET when
  unset), authority, headers, query parameters and withoutHeaders agree (an earlier exact value, or a prefix of
  the later one's).
The rules of a VirtualService bound to a Gateway of this proxy are Envoy routes here, in that order: the
shadowed-route detector reports those on the routes themselves (with the route that takes their requests), so
this one checks the others (mesh VirtualServices, other gateways').
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.views.configdump import Json, mapping
from higress_ops.servers.ops.views.configz import Resource

NAME = "istio-virtualservice-rules"


@dataclass(frozen=True)
class PrefixMatch:
    """Istio's OverlappingMatchValidationForHTTPRoute."""

    route: str
    match: str
    prefix: str
    port: int
    method: str
    authority: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    without: Mapping[str, str]


def _exact_or_prefix(value: Any) -> str:
    value = mapping(value)
    return f"exact:{value['exact']}" if value.get("exact") else f"prefix:{value['prefix']}" if value.get(
        "prefix") else ""


def _values(value: Any) -> dict[str, str]:
    return {str(k): _exact_or_prefix(v) for k, v in mapping(value).items()}


def _rule_name(rule: Json, i: int, http: bool) -> str:
    return json.dumps(str(rule["name"])) if http and rule.get("name") else f"#{i}"


def _prefix_match(rule: str, match: Json, j: int) -> PrefixMatch | None:
    prefix = str(mapping(match.get("uri")).get("prefix") or "")
    if not prefix:
        return None
    port = match.get("port")
    return PrefixMatch(rule, json.dumps(str(match["name"])) if match.get("name") else f"#{j}", prefix,
                       int(port) if isinstance(port, int) else 0, _exact_or_prefix(match.get("method")) or "exact:GET",
                       _exact_or_prefix(match.get("authority")), _values(match.get("headers")),
                       _values(match.get("queryParams")), _values(match.get("withoutHeaders")))


def _same_or_prefixed(a: str, b: str) -> bool:
    return a == b or a.startswith(b)


def _maps_cover(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    return len(a) == len(b) and all(k in b and _same_or_prefixed(v, b[k]) for k, v in a.items())


def covers(a: PrefixMatch, b: PrefixMatch) -> bool:
    """Istio's coveredValidation: the earlier `a` takes every request the later `b` was written for."""
    return (b.prefix.startswith(a.prefix) and a.port == b.port and _same_or_prefixed(a.method, b.method)
            and _same_or_prefixed(a.authority, b.authority) and _maps_cover(a.headers, b.headers)
            and _maps_cover(a.query, b.query) and _maps_cover(a.without, b.without))


def _key(match: Json) -> str:
    return json.dumps({k: v for k, v in match.items() if k != "name"}, sort_keys=True)


def analyze(rules: list[Json], http: bool, unused: Callable[[str, str], None],
            ineffective: Callable[[str, str, str], None]) -> None:
    seen: dict[str, int] = {}
    catch_all = -1
    prefixes: list[PrefixMatch] = []
    for i, rule in enumerate(rules):
        name = _rule_name(rule, i, http)
        matches = [mapping(m) for m in rule.get("match") or []]
        if not matches:
            if catch_all >= 0:
                unused(name, "only the last rule can have no matches")
            catch_all = i
            continue
        duplicates = 0
        for j, match in enumerate(matches):
            if catch_all >= 0:
                unused(name, "route without matches defined before")
                continue
            key = _key(match)
            if key in seen:
                match_name = json.dumps(str(match["name"])) if http and match.get("name") else f"#{j}"
                ineffective(name, match_name, _rule_name(rules[seen[key]], seen[key], http))
                duplicates += 1
                continue
            seen[key] = i
            if http and (pm := _prefix_match(name, match, j)) is not None:
                prefixes.append(pm)
        if duplicates == len(matches):
            unused(name, "all matches used by prior rules")
    for k, earlier in enumerate(prefixes):
        for later in prefixes[k + 1:]:
            if later.prefix != earlier.prefix and covers(earlier, later):
                ineffective(later.route, f"{later.match} of prefix {later.prefix}",
                            f"{earlier.match} of prefix {earlier.prefix} on {earlier.route}")


def check(vs: Resource) -> list[Finding]:
    out: list[Finding] = []
    for kind in ("http", "tcp", "tls"):
        def unused(rule: str, reason: str, kind: str = kind) -> None:
            nonlocal out
            out += scope.finding(NAME, vs, "IST0130", (rule, reason),
                                 f"reorder spec.{kind} (more specific rules first) or remove the rule")

        def ineffective(rule: str, match: str, dup: str, kind: str = kind) -> None:
            nonlocal out
            out += scope.finding(NAME, vs, "IST0131", (rule, match, dup),
                                 f"remove the match, or move its rule before {dup} in spec.{kind}")
        analyze(vs.items(kind), kind == "http", unused, ineffective)
    return out


def served_here(vs: Resource, gateways: set[str]) -> bool:
    """Bound to a Gateway of this proxy: its rules are Envoy routes here, which shadowed-route checks."""
    return any((g if "/" in g else f"{vs.namespace}/{g}") in gateways for g in vs.strings("gateways"))


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    mesh = await scope.mesh(facts)
    here = {gw.full_name for gw in mesh.gateways_of_proxy()}
    return await facts.compute(lambda: [f for vs in mesh.config.of("VirtualService") if not served_here(vs, here)
                                        for f in check(vs)])


DETECTOR = Detector(NAME, "VirtualService rules no request reaches (istioctl IST0130, IST0131)", detect,
                    next_tool="get-istiod-configz kind=VirtualService", sources=("istiod", "envoy"))
