"""get-gateway-health: "what is broken on this gateway right now", in one short answer.

Built from what Envoy already counts, so it costs a few admin reads: /clusters?format=json (hosts and
their flags), one /stats request filtered to the counters that mean trouble, /certs with the SDS secrets,
and the listeners section (which listener and SNI serve a secret); the detectors (servers/ops/detectors) add
a section each, from the same call's documents. Lists are ranked worst first and paged, every section heading
names the tool to call next (its placeholders filled from the section's lines), and the whole answer stays
within a small byte budget (2,000 tokens) however big the gateway is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from higress_ops.servers.ops.views import host_health as hh

if TYPE_CHECKING:
    from higress_ops.servers.ops.detectors import Detector, Report

BUDGET_BYTES = 6000  # 2,000 tokens at 3 bytes a token, a conservative rate for this mix of names and numbers
STATES = {0: "LIVE", 1: "DRAINING", 2: "PRE_INITIALIZING", 3: "INITIALIZING"}
CLUSTER_FLAGS = {  # response flag -> the cluster counter that counts it (UO: max_requests, then the pending queue)
    "UF": "upstream_cx_connect_fail", "UH": "upstream_cx_none_healthy", "UT": "upstream_rq_timeout",
    "URX": "upstream_rq_retry_limit_exceeded", "UO": "upstream_rq_active_overflow",
    "UO(pending)": "upstream_rq_pending_overflow"}
ISTIO_BY_DESIGN = ("BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster")  # no hosts on purpose
_SUBSCOPES = ("external", "internal", "canary")  # Envoy's own sub-scopes of a cluster's request counters
LISTENER_FLAGS = {"NR": "no_route", "NC": "no_cluster", "DC": "downstream_cx_destroy_remote_active_rq"}
_SERVER = ("state", "uptime", "memory_allocated", "memory_heap_size", "hot_restart_epoch")
STATS_FILTER = (
    r"^(server\.(" + "|".join(_SERVER) + r")"
    r"|cluster\..+\.(upstream_rq_5xx|" + "|".join(CLUSTER_FLAGS.values()) + ")"
    r"|http\..+\.(downstream_rq_5xx|" + "|".join(LISTENER_FLAGS.values()) + ")"
    r"|vhost\..+\.route\..+\.upstream_rq_5xx)$")


def stat_values(stats_json: Any) -> dict[str, int]:
    """name -> value from /stats?format=json (histograms skipped)."""
    out: dict[str, int] = {}
    for s in (stats_json or {}).get("stats") or [] if isinstance(stats_json, Mapping) else []:
        if isinstance(s, Mapping) and "name" in s and isinstance(s.get("value"), int | float):
            out[str(s["name"])] = int(s["value"])
    return out


def _split(name: str, prefix: str, suffixes: Mapping[str, str] | tuple[str, ...]) -> tuple[str, str] | None:
    """('middle', suffix) of `prefix.<middle>.<suffix>`; cluster names contain dots, so match the suffix."""
    if not name.startswith(prefix):
        return None
    for suffix in suffixes.values() if isinstance(suffixes, Mapping) else suffixes:
        if name.endswith("." + suffix):
            return name[len(prefix):-len(suffix) - 1], suffix
    return None


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)  # worst first
    next_tool: str = ""
    note: str = ""  # said after the count, whether or not there are lines
    name: str = ""  # a detector's name: an empty detector section is named in one line with the others


def _troubled(health: hh.ClusterHealth) -> bool:
    """Hosts unhealthy or failing; a cluster without hosts is the empty-cluster detector's (when routes use it)."""
    c = health.counts
    return bool(health.hosts) and (c["healthy"] + c["degraded"] < len(health.hosts)
                                   or any(h["failing"] for h in health.hosts))


def _rank(health: hh.ClusterHealth) -> tuple[float, str]:
    """Worst first: the smallest share of healthy hosts, then by name."""
    c = health.counts
    return ((c["healthy"] + c["degraded"]) / len(health.hosts) if health.hosts else 0.0), health.name


def troubled_clusters(healths: Iterable[hh.ClusterHealth]) -> list[hh.ClusterHealth]:
    """The clusters the report lists, worst first, so the caller can fetch the configs (panic threshold) of
    just the page it shows (Facts.with_own_thresholds)."""
    return sorted((h for h in healths if not h.name.startswith(ISTIO_BY_DESIGN) and _troubled(h)), key=_rank)


def _unhealthy_clusters(troubled: list[hh.ClusterHealth]) -> Section:
    sec = Section("Clusters with unhealthy or failing hosts",
                  next_tool="get-envoy-proxy-config type=endpoints cluster=<name>")
    for health in troubled:
        c = health.counts
        reasons: dict[str, int] = {}
        for h in health.hosts:
            for f in h["flags"]:
                reasons[f] = reasons.get(f, 0) + 1
            if h["failing"]:
                reasons[h["failing"]] = reasons.get(h["failing"], 0) + 1
        why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
        sec.lines.append(f"{health.name}: {c['healthy'] + c['degraded']}/{len(health.hosts)} healthy ({why})"
                         + (", PANIC" if health.hosts and health.panic else ""))
    return sec


def _errors(stats: Mapping[str, int]) -> tuple[Section, Section]:
    clusters: dict[str, dict[str, int]] = {}
    listeners: dict[str, dict[str, int]] = {}
    routes: dict[str, int] = {}
    cluster_suffixes = {"5xx": "upstream_rq_5xx", **CLUSTER_FLAGS}
    listener_suffixes = {"5xx": "downstream_rq_5xx", **LISTENER_FLAGS}
    for name, value in stats.items():
        if not value:
            continue
        if (hit := _split(name, "cluster.", cluster_suffixes)) is not None:
            flag = next(k for k, v in cluster_suffixes.items() if v == hit[1])
            clusters.setdefault(hit[0], {})[flag] = value
        elif (hit := _split(name, "http.", listener_suffixes)) is not None:
            flag = next(k for k, v in listener_suffixes.items() if v == hit[1])
            listeners.setdefault(hit[0], {})[flag] = value
        elif name.startswith("vhost.") and name.endswith(".upstream_rq_5xx"):
            routes[name[len("vhost."):-len(".upstream_rq_5xx")]] = value

    for sub in [k for k in clusters if k.rpartition(".")[2] in _SUBSCOPES and k.rpartition(".")[0] in clusters]:
        del clusters[sub]  # cluster.<name>.external.upstream_rq_5xx repeats cluster.<name>.upstream_rq_5xx

    def ranked(table: Mapping[str, Mapping[str, int]], what: str) -> list[str]:
        order = sorted(table.items(), key=lambda kv: (-kv[1].get("5xx", 0), -sum(kv[1].values()), kv[0]))
        return [f"{what} {name}: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))
                for name, c in order]

    upstream = Section("Clusters by 5xx and response flag since start", ranked(clusters, "cluster"),
                       "find-route host=<host> path=<path> of a failing request")
    downstream = Section("Listeners and routes by 5xx and response flag since start",
                         ranked(listeners, "listener")
                         + [f"route {r}: 5xx {v}" for r, v in sorted(routes.items(), key=lambda kv: -kv[1])],
                         "find-route host=<host> path=<path> (NR: no route, NC: no cluster)")
    return upstream, downstream


def detector_sections(found: Report, detectors: Sequence[Detector]) -> list[Section]:
    """A section per detector: its findings worst first, and what it could not check."""
    out = []
    for d in detectors:
        note = "; ".join(found.notes.get(d.name, []))
        if d.name in found.skipped:
            note = f"not checked: {found.skipped[d.name]}"
        out.append(Section(d.title, [f.line() for f in found.of(d.name)], d.next_tool, note, d.name))
    return out


def server_line(stats: Mapping[str, int]) -> str:
    state = STATES.get(stats.get("server.state", -1), "unknown")
    up = stats.get("server.uptime", 0)
    mib = 1 << 20
    return (f"Envoy {state}, up {up // 86400}d{up % 86400 // 3600}h{up % 3600 // 60}m, memory "
            f"{stats.get('server.memory_allocated', 0) / mib:.1f} MiB allocated of "
            f"{stats.get('server.memory_heap_size', 0) / mib:.1f} MiB heap, hot-restart epoch "
            f"{stats.get('server.hot_restart_epoch', 0)} (details: get-envoy-server-info, get-envoy-memory)")


def report(troubled: list[hh.ClusterHealth], stats: Mapping[str, int],
           findings: list[Section], *, offset: int = 0, limit: int = 10,
           budget: int = BUDGET_BYTES) -> tuple[str, dict[str, Any]]:
    """(text within `budget` bytes, structured counts and the lines shown)."""
    upstream, downstream = _errors(stats)
    sections = [_unhealthy_clusters(troubled), upstream, downstream, *findings]
    for n in range(limit, 0, -1):  # fewer lines per list until the answer fits, rather than cutting lists off
        text, shown = _render(stats, sections, offset, n)
        if len(text.encode()) <= budget:
            break
    if n < limit:
        text += f"[{n} line(s) per list to stay within 2,000 tokens; next page: offset={offset + n} limit={n}]\n"
    structured: dict[str, Any] = {
        "envoy": {k: stats.get(f"server.{k}") for k in _SERVER}, "limit": n,
        "sections": [{"title": sec.title, **({"detector": sec.name} if sec.name else {}), "total": len(sec.lines),
                      "shown": lines} for sec, lines in zip(sections, shown, strict=True)]}
    return _within(text, budget), structured


def _render(stats: Mapping[str, int], sections: list[Section], offset: int,
            limit: int) -> tuple[str, list[list[str]]]:
    lines = [f"Gateway health: {server_line(stats)}"]
    shown_all = []
    quiet = [sec.name for sec in sections if sec.name and not sec.lines and not sec.note]
    for sec in sections:
        shown = [line if len(line) <= 200 else line[:197] + "..." for line in sec.lines[offset:offset + limit]]
        shown_all.append(shown)
        total = len(sec.lines)
        if sec.name in quiet:
            continue
        note = f" ({sec.note})" if sec.note else ""
        lines.append(f"\n{sec.title}: {total or 'none'}{note}" + (f" -> {sec.next_tool}" if total else ""))
        lines += [f"  {line}" for line in shown]
        if total > offset + len(shown):
            lines.append(f"  [{offset + 1}-{offset + len(shown)} of {total}; next page: offset={offset + limit}]")
    if quiet:
        lines.append(f"\nChecked, nothing found: {', '.join(quiet)}")
    return "\n".join(lines) + "\n", shown_all


def _within(text: str, budget: int) -> str:
    """The last resort when even one line per list is too long: shorter lines, then fewer from the end."""
    lines = [line if len(line) <= 200 else line[:197] + "..." for line in text.splitlines()]
    out = "\n".join(lines) + "\n"
    note = "[cut to stay within 2,000 tokens: pass offset to page]\n"
    if len(out.encode()) <= budget:
        return out
    while lines and len(("\n".join(lines) + "\n" + note).encode()) > budget:
        lines.pop()
    return "\n".join(lines) + "\n" + note
