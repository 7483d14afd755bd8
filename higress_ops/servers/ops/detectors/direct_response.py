"""A direct response (an error status Envoy answers itself) on a path that has a backend elsewhere on the gateway:
the same host's route on another listener port or route configuration sends that path to a cluster.

The usual cause is a rule written for one Gateway server (or one Ingress class) and not the other: `https` routes
/orders to its Service while `http` answers 404 for it, or a leftover `directResponse` fault. (A direct response
earlier in the same virtual host than a backend route is a shadowed route, reported by shadowed-route.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, route_ref
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views.routes import describe_match, route_targets

NAME = "direct-response-elsewhere"
Path = tuple[str, str]  # (prefix | path | path_separated_prefix | safe_regex, value)


def _path(route: cd.Json) -> Path:
    match = cd.mapping(route.get("match"))
    for key in ("path", "prefix", "path_separated_prefix"):
        if key in match:
            return key, str(match[key])
    return "safe_regex", str(cd.mapping(match.get("safe_regex")).get("regex", ""))


def _virtual_hosts(dump: cd.Json) -> Iterator[tuple[str, cd.Json]]:
    for rc in cd.route_configs(dump):
        for vh in rc.get("virtual_hosts") or []:
            if isinstance(vh, Mapping):
                yield str(rc.get("name", "")), vh


def _domains(vh: cd.Json) -> set[str]:
    return {str(d).lower().rsplit(":", 1)[0] if str(d).rsplit(":", 1)[-1].isdigit() else str(d).lower()
            for d in vh.get("domains") or []}


def find(dump: cd.Json) -> list[Finding]:
    backends: dict[tuple[str, Path], list[tuple[str, str, int, str]]] = {}  # (domain, path) -> where, cluster
    answers: list[tuple[str, cd.Json, int, cd.Json]] = []
    for rc, vh in _virtual_hosts(dump):
        for i, route in enumerate(r for r in vh.get("routes") or [] if isinstance(r, Mapping)):
            direct = cd.mapping(route.get("direct_response"))
            if direct and int(direct.get("status") or 0) >= 400:
                answers.append((rc, vh, i, route))
                continue
            kind, clusters = route_targets(route)
            if kind == "route" and clusters and clusters[0][0]:
                for domain in _domains(vh):
                    backends.setdefault((domain, _path(route)), []).append(
                        (rc, str(vh.get("name", "")), i, clusters[0][0]))
    findings = []
    for rc, vh, i, route in answers:
        elsewhere = {(where, vhost, j, cluster) for d in _domains(vh)
                     for where, vhost, j, cluster in backends.get((d, _path(route)), []) if where != rc}
        if not elsewhere:
            continue
        first = sorted(elsewhere)[0]
        status = int(cd.mapping(route.get("direct_response")).get("status") or 0)
        findings.append(Finding(
            NAME, Severity.WARNING, route_ref(rc, str(vh.get("name", "")), i, str(route.get("name", ""))),
            f"answers {status} itself for {describe_match(route.get('match'))}, while route configuration {first[0]} "
            f"routes the same host and path to cluster {first[3]}",
            "route the path to its backend here too (the Gateway server or VirtualService of this port), or "
            "remove the direct response", tuple(f"{w} route #{j} ({v}) -> {c}" for w, v, j, c in sorted(elsewhere)[:3]),
            tuple(Ref("cluster", c) for c in sorted({e[3] for e in elsewhere}))))
    return findings


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    found = await facts.compute(find, await facts.dump("routes"))
    return [f for f in found if focus is None or focus.covers(f.subject)]


DETECTOR = Detector(NAME, "Direct responses on paths that have a backend on another port", detect,
                    next_tool="find-route host=<host> path=<path> port=<port>")
