"""What Envoy does with each upstream host, and with a cluster as a whole, from /clusters?format=json.

Envoy's rules (source/common/upstream/load_balancer_impl.cc `isHostSetInPanic`, upstream_impl.cc health
flags): a host is unhealthy when active health checking failed or timed out, outlier detection ejected it,
or EDS says UNHEALTHY, DRAINING or TIMEOUT; excluded hosts (`excluded_via_immediate_hc_fail`) do not count
toward the healthy share. When (healthy + degraded) / (hosts - excluded) falls below the cluster's
`healthy_panic_threshold` (50% unless configured; 0 turns panic off) Envoy balances over every host, excluded
ones included (checked against a real Envoy). Counters then tell
whether the hosts Envoy would pick actually answer: a host whose every connection attempt failed is
refusing connections; one whose every request timed out is timing out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from higress_ops.servers.ops.views import configdump as cd

DEFAULT_PANIC_THRESHOLD = 50.0
_SHOWN = ("cx_connect_fail", "cx_total", "rq_total", "rq_error", "rq_timeout")  # counters kept per host
_EDS_UNHEALTHY = {"UNHEALTHY": "eds_unhealthy", "DRAINING": "eds_draining", "TIMEOUT": "eds_timeout"}
_UNHEALTHY_FLAGS = (("failed_active_health_check", "failed_active_hc"), ("active_hc_timeout", "active_hc_timeout"),
                    ("failed_outlier_check", "outlier_ejected"))


def counters(host: cd.Json) -> dict[str, int]:
    """A host's counters from /clusters JSON (values are strings; a zero counter has no value at all)."""
    out: dict[str, int] = {}
    for s in host.get("stats") or []:
        if isinstance(s, Mapping) and s.get("value"):
            try:
                out[str(s.get("name"))] = int(s["value"])
            except (TypeError, ValueError):
                continue
    return out


def flags(host: cd.Json) -> list[str]:
    """Why Envoy treats this host as it does, in words for the HEALTH column; empty when healthy."""
    hs = cd.mapping(host.get("health_status"))
    out = [word for key, word in _UNHEALTHY_FLAGS if hs.get(key)]
    eds = str(hs.get("eds_health_status") or "")
    if eds in _EDS_UNHEALTHY:
        out.append(_EDS_UNHEALTHY[eds])
    if hs.get("excluded_via_immediate_hc_fail"):
        out.append("excluded")
    if hs.get("failed_active_degraded_check") or eds == "DEGRADED":
        out.append("degraded")
    if hs.get("pending_dynamic_removal"):
        out.append("pending_removal")
    if hs.get("pending_active_hc"):
        out.append("pending_first_hc")
    return out


_UNHEALTHY = ("failed_active_hc", "active_hc_timeout", "outlier_ejected", *_EDS_UNHEALTHY.values())


def state(host: cd.Json) -> str:
    """healthy | degraded | unhealthy | excluded: the set Envoy's load balancer puts the host in."""
    f = flags(host)
    if "excluded" in f:
        return "excluded"
    if any(w in f for w in _UNHEALTHY):
        return "unhealthy"
    return "degraded" if "degraded" in f else "healthy"


def words(host: cd.Json) -> set[str]:
    """Every word a status filter may use for this host: its state, its flags, and `unhealthy` for any
    unhealthy flag (an excluded host that failed its health check is unhealthy too)."""
    f = flags(host)
    return {state(host), *f} | ({"unhealthy"} if any(w in f for w in _UNHEALTHY) else set())


def health_word(host: cd.Json) -> str:
    """The endpoints view's HEALTH cell: `healthy`, or the flags joined with commas."""
    return ",".join(flags(host)) or "healthy"


def failing(c: Mapping[str, int]) -> str:
    """'' or what a host's counters show: `connect_failure` (every connection attempt failed), `timeout` (no
    request answered, some timed out) or `5xx` (no request answered, some failed: the host answers with errors)."""
    fails, total = c.get("cx_connect_fail", 0), c.get("cx_total", 0)
    if fails and fails >= total:
        return "connect_failure"
    success = c.get("rq_success", 0)
    if c.get("rq_timeout", 0) and not success:
        return "timeout"
    if c.get("rq_error", 0) and not success:
        return "5xx"
    return ""


def panic_threshold(cluster_config: cd.Json | None) -> float:
    lb = (cluster_config or {}).get("common_lb_config")
    value = lb.get("healthy_panic_threshold") if isinstance(lb, Mapping) else None
    if isinstance(value, Mapping):
        try:
            return float(value.get("value", 0) or 0)
        except (TypeError, ValueError):
            return DEFAULT_PANIC_THRESHOLD
    return DEFAULT_PANIC_THRESHOLD


def host_address(host: cd.Json) -> tuple[str, int]:
    """(address, port) as istioctl's endpoints writer prints them: socket addresses as they are, Envoy
    internal addresses as envoy://<listener>/<endpoint id> and pipes as unix://<path>, both without a port."""
    addr = cd.mapping(host.get("address"))
    internal = addr.get("envoy_internal_address")
    if isinstance(internal, Mapping):
        return f"envoy://{internal.get('server_listener_name', '')}/{internal.get('endpoint_id', '')}", 0
    if isinstance(addr.get("pipe"), Mapping):
        return f"unix://{addr['pipe'].get('path', '')}", 0
    return cd.socket_address(addr)


def endpoint(host: cd.Json) -> str:
    addr, port = host_address(host)
    return f"{addr}:{port}" if port else addr


@dataclass
class ClusterHealth:
    """One cluster as Envoy's load balancer sees it now."""

    name: str
    found: bool
    hosts: list[dict[str, Any]] = field(default_factory=list)  # address, state, flags, failing, counters
    threshold: float = DEFAULT_PANIC_THRESHOLD
    codes: dict[int, int] = field(default_factory=dict)  # upstream response code -> count (cluster stats)

    @property
    def counts(self) -> dict[str, int]:
        out = {"healthy": 0, "degraded": 0, "unhealthy": 0, "excluded": 0}
        for h in self.hosts:
            out[h["state"]] += 1
        return out

    @property
    def panic(self) -> bool:
        c = self.counts
        eligible = len(self.hosts) - c["excluded"]
        pct = 100.0 * (c["healthy"] + c["degraded"]) / eligible if eligible else 0.0
        return pct < min(self.threshold, 100.0)

    def candidates(self) -> list[dict[str, Any]]:
        """The hosts Envoy would pick from: healthy (and degraded) ones, or in panic every host, excluded ones
        too (a real Envoy 1.40 routes to a cluster whose hosts are all excluded)."""
        if self.panic:
            return list(self.hosts)
        return [h for h in self.hosts if h["state"] in ("healthy", "degraded")]

    def verdict(self) -> tuple[int, str, str]:
        """(status, reason code, explanation) for a request Envoy routes to this cluster."""
        if not self.found:
            return 503, "cluster_not_found", f"cluster {self.name!r} does not exist on this proxy"
        if not self.hosts:
            return 503, "no_healthy_upstream", f"cluster {self.name!r} has no endpoints"
        picks = self.candidates()
        c = self.counts
        if not picks:  # only without panic mode: in panic every host is a candidate
            return 503, "no_healthy_upstream", (f"cluster {self.name!r}: 0/{len(self.hosts)} hosts healthy and "
                                                "panic mode is off (healthy_panic_threshold 0)")
        # Counters are the evidence: when no host Envoy picks from has answered and some have failed, the
        # next request most likely fails the same way (hosts nobody has tried yet are no evidence either way).
        tried = [h for h in picks if h["cx_total"] or h["rq_total"]]
        failed = [h for h in tried if h["failing"]]
        if failed and len(failed) == len(tried):
            where = ", ".join(h["address"] for h in failed[:3]) + (f" (+{len(failed) - 3} more)" if len(failed) > 3
                                                                    else "")
            if all(h["failing"] == "timeout" for h in failed):
                n, total = sum(h["rq_timeout"] for h in failed), sum(h["rq_total"] for h in failed)
                return 504, "upstream_timeout", f"504 likely: requests to {where} time out ({n} of {total})"
            if all(h["failing"] == "5xx" for h in failed):
                errors = {code: n for code, n in self.codes.items() if code >= 500}
                code = max(errors, key=lambda k: errors[k]) if errors else 503
                n, total = sum(h["rq_error"] for h in failed), sum(h["rq_total"] for h in failed)
                return code, "upstream_5xx", (f"{code} likely: {where} answer with errors ({n} of {total} "
                                              f"requests; codes {errors or 'not counted'})")
            n, total = sum(h["cx_connect_fail"] for h in failed), sum(h["cx_total"] for h in failed)
            return 503, "upstream_connect_failure", f"503 likely: connections to {where} failing ({n} of {total})"
        if self.panic:
            return 200, "panic_mode", (f"cluster {self.name!r}: {c['healthy'] + c['degraded']}/{len(self.hosts)} "
                                       f"hosts healthy, below the {self.threshold:g}% panic threshold: Envoy "
                                       f"balances over all {len(picks)} hosts")
        return 200, "routed", f"cluster {self.name!r}: {len(picks)}/{len(self.hosts)} hosts take traffic"


def cluster_health(status: cd.Json | None, name: str, config: cd.Json | None = None) -> ClusterHealth:
    """A ClusterHealth from one /clusters?format=json cluster_statuses entry (None: not on this proxy)."""
    if status is None:
        return ClusterHealth(name, False)
    hosts = []
    for h in status.get("host_statuses") or []:
        if not isinstance(h, Mapping):
            continue
        c = counters(h)
        hosts.append({"address": endpoint(h), "state": state(h), "flags": flags(h), "failing": failing(c),
                      **{k: c.get(k, 0) for k in _SHOWN}})
    return ClusterHealth(name, True, hosts, panic_threshold(config))
