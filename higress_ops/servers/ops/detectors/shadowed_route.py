"""Routes that never match because an earlier route of the same virtual host takes their requests: Envoy takes
the first route that matches, in order, so `prefix /api` before `prefix /api/v2` sends every /api/v2 request to
the /api route's cluster. The request still gets an answer (the wrong backend's), which is why it misleads.

A route N shadows a later route M when every request M matches also matches N: N's path condition covers M's
(prefix covers longer prefixes and paths under it; path_separated_prefix covers its segment; an exact path or
regex covers an exact path it matches) and N's header and query conditions are a subset of M's.
find-route also says it when the matched route answers a request that a later, more specific route also
matches: that request was evidently written for the later route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Severity, Verdict, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import matching
from higress_ops.servers.ops.views.routes import describe_conditions, describe_match

SHOWN_PER_ROUTE = 3
_EXTRA = ("headers", "query_parameters", "grpc", "runtime_fraction", "tls_context", "dynamic_metadata",
          "filter_state", "cel_matcher")


def _path(match: cd.Json) -> tuple[str, str]:
    for key in ("prefix", "path", "path_separated_prefix"):
        if key in match:
            return key, str(match[key])
    if isinstance(match.get("safe_regex"), Mapping):
        return "safe_regex", str(match["safe_regex"].get("regex", ""))
    return "", ""


def _path_covers(n: tuple[str, str], m: tuple[str, str]) -> bool:
    nk, nv = n
    mk, mv = m
    if not nk or not mk or mk == "safe_regex":
        return False
    if nk == "prefix":
        return mv.startswith(nv)
    if nk == "path_separated_prefix":
        return mv == nv or mv.startswith(nv + "/")
    if nk == "path":
        return mk == "path" and mv == nv
    return mk == "path" and matching._full_match(nv, mv)


def _conditions(match: cd.Json) -> list[str]:
    return [repr(match[k]) for k in _EXTRA if match.get(k)]


def covers(n: cd.Json, m: cd.Json) -> bool:
    """Whether route n matches every request route m matches (so m after n never matches)."""
    nm, mm = cd.mapping(n.get("match")), cd.mapping(m.get("match"))
    if nm.get("case_sensitive", True) is False and mm.get("case_sensitive", True) is not False:
        nm = {**nm, **{k: str(v).lower() for k, v in nm.items() if k in ("prefix", "path")}}
    elif mm.get("case_sensitive", True) is False and nm.get("case_sensitive", True) is not False:
        return False
    if not _path_covers(_path(nm), _path(mm)):
        return False
    if any(k in nm for k in ("runtime_fraction", "cel_matcher")):
        return False
    n_cond = _conditions(nm)
    return all(c in _conditions(mm) for c in n_cond)


def _label(route: cd.Json) -> str:
    cond = describe_conditions(route.get("match"))
    return (describe_match(route.get("match")) or "(any path)") + (f" [{cond}]" if cond else "")


def _specificity(route: cd.Json) -> tuple[int, int]:
    match = cd.mapping(route.get("match"))
    kind, value = _path(match)
    return (1 if kind == "path" else 0) + len(value), len(_conditions(match))


def shadowed(vh: cd.Json) -> list[tuple[int, int]]:
    """(shadowing index, shadowed index) pairs of one virtual host, each shadowed route once (its first).
    Candidates come from an index of the earlier routes' literal paths (the prefixes of M's path), so a virtual
    host of thousands of routes costs a pass, not a comparison of every pair."""
    routes = [r if isinstance(r, Mapping) else {} for r in vh.get("routes") or []]
    by_path: dict[tuple[str, str], list[int]] = {}
    regexes: list[int] = []
    out = []
    for j, m in enumerate(routes):
        kind, value = _path(cd.mapping(m.get("match")))
        if kind and kind != "safe_regex":
            keys = [("prefix", value[:k]) for k in range(len(value) + 1)]
            keys += [("path_separated_prefix", value[:k]) for k in range(len(value) + 1)
                     if k == len(value) or value[k] == "/"]
            keys += [("path", value)]
            candidates = sorted({i for key in keys for i in by_path.get(key, ())} | set(regexes))
            n = next((i for i in candidates if covers(routes[i], m)), None)
            if n is not None:
                out.append((n, j))
        if kind == "safe_regex":
            regexes.append(j)
        elif kind:
            by_path.setdefault((kind, value), []).append(j)
    return out


def _finding(rc: str, vh: cd.Json, n: int, m: int, *, request: bool) -> Finding:
    routes = vh.get("routes") or []
    vh_name = str(vh.get("name", ""))
    rn, rm = routes[n], routes[m]
    ref_n = route_ref(rc, vh_name, n, str(rn.get("name", "")))
    ref_m = route_ref(rc, vh_name, m, str(rm.get("name", "")))
    how = ("this request also matches it, and it is more specific: the request was evidently meant for it"
           if request else f"every request it matches matches route #{n} first")
    return Finding(
        DETECTOR.name, Severity.WARNING, ref_m,
        f"route #{n} ({_label(rn)}) shadows route #{m} ({_label(rm)}): {how}",
        f"move route #{m} before route #{n} (Istio: the order of the VirtualService's http routes; Higress "
        "Ingresses: a more specific path, or the same pathType for both)",
        (f"route #{n} -> {_target(rn)}", f"route #{m} -> {_target(rm)}"), (ref_n,),
        verdict=Verdict(None, "shadowed_route") if request else None)


def _target(route: Any) -> str:
    action = cd.mapping(cd.mapping(route).get("route"))
    if "cluster" in action:
        return f"cluster {action['cluster']}"
    return "weighted clusters" if "weighted_clusters" in action else next(
        (k for k in ("redirect", "direct_response") if k in route), "request-time choice")


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    if focus is not None:
        return await _focused(facts, focus)
    findings = []
    seen: set[tuple[str, str]] = set()
    for rc, vh, _, _ in await facts.routes():
        key = (rc, str(vh.get("name", "")))
        if key in seen:  # one pass per virtual host
            continue
        seen.add(key)
        findings += [_finding(rc, vh, n, m, request=False) for n, m in shadowed(vh)]
    return findings


async def _focused(facts: Facts, focus: Focus) -> list[Finding]:
    if focus.request is None:
        return []
    vhs = {(rc, str(vh.get("name", ""))): vh for rc, vh, _, _ in await facts.routes()}
    findings = []
    for port in focus.ports:
        r = port.get("route")
        vh = vhs.get((port.get("route_config", ""), port.get("virtual_host", "")))
        if not r or vh is None:
            continue
        routes = vh.get("routes") or []
        n = r["index"]
        mine = _specificity(routes[n])
        for m in range(n + 1, len(routes)):
            if isinstance(routes[m], Mapping) and not matching.why_not(routes[m], focus.request) and \
                    _specificity(routes[m]) > mine:
                findings.append(_finding(port["route_config"], vh, n, m, request=True))
                break
    return findings


DETECTOR = Detector("shadowed-route", "Shadowed routes (an earlier route takes their requests)", detect,
                    next_tool="get-envoy-proxy-config type=routes name=<route config>")
