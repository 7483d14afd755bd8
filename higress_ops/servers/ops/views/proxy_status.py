"""get-istiod-proxy-status: istioctl proxy-status's table from istiod's /debug/syncz.

Per xDS type: SYNCED when acked == sent, STALE when acked differs (STALE (Never Acknowledged) when
nothing was acked), NOT SENT when nothing was sent (istioctl's rules), and ERROR when istiod recorded a
NACK (lastError) for that type, with the error shown. Proxies not fully synced come first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.table import Table

XDS = (  # column, syncz field prefix, type URL
    ("CDS", "cluster", "type.googleapis.com/envoy.config.cluster.v3.Cluster"),
    ("LDS", "listener", "type.googleapis.com/envoy.config.listener.v3.Listener"),
    ("EDS", "endpoint", "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"),
    ("RDS", "route", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"),
    ("ECDS", "extensionconfig", "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"),
)
HEADERS = ("NAME", "CLUSTER", *(c for c, _, _ in XDS), "ISTIOD", "VERSION")  # istioctl's columns


def proxy_name(node_id: str) -> str:
    """The name istiod's syncz gives a proxy (`pod.namespace`), from its Envoy's node id
    (`router~10.0.0.1~pod.namespace~namespace.svc.cluster.local`); another id as it is."""
    parts = node_id.split("~")
    return parts[2] if len(parts) == 4 else node_id


def xds_status(sent: str, acked: str) -> str:
    if not sent:
        return "NOT SENT"
    if sent == acked:
        return "SYNCED"
    if not acked:
        return "STALE (Never Acknowledged)"
    return "STALE"


def _type_status(entry: Mapping[str, Any], prefix: str, type_url: str) -> tuple[str, str]:
    raw = entry.get("resources")
    resources: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    raw = resources.get(type_url)
    res: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    sent = str(entry.get(f"{prefix}_sent") or res.get("sent") or "")
    acked = str(entry.get(f"{prefix}_acked") or res.get("acked") or "")
    error = str(res.get("lastError") or res.get("last_error") or "")
    if error:
        return "ERROR", error
    return xds_status(sent, acked), ""


def rows(syncz: Any, istiod: str = "") -> list[dict[str, Any]]:
    """One row per proxy; `istiod` names the controller that reported it (the one it is connected to)."""
    if not isinstance(syncz, list):
        raise DumpError("istiod /debug/syncz did not return a JSON list")
    out = []
    for entry in syncz:
        if not isinstance(entry, Mapping):
            continue
        row: dict[str, Any] = {"NAME": str(entry.get("proxy", "")), "CLUSTER": str(entry.get("cluster_id", "")),
                               "ISTIOD": istiod, "VERSION": str(entry.get("istio_version", "")), "errors": {}}
        for column, prefix, type_url in XDS:
            status, error = _type_status(entry, prefix, type_url)
            row[column] = status
            if error:
                row["errors"][column] = error
        row["synced"] = all(row[c] in ("SYNCED", "NOT SENT") for c, _, _ in XDS)
        out.append(row)
    out.sort(key=lambda r: (r["synced"], r["NAME"]))
    return out


def table(syncz: Any, istiod: str = "") -> Table:
    return table_of([(istiod, syncz)])


def table_of(answers: list[tuple[str, Any]]) -> Table:
    """The proxies of every istiod in one table, as istioctl proxy-status aggregates its controllers."""
    t = Table(HEADERS, sorted((row for istiod, syncz in answers for row in rows(syncz, istiod)),
                              key=lambda r: (r["synced"], r["NAME"])))
    if not t.rows:
        t.note = "istiod reports no connected proxies."
    return t


def render_errors(rows_: list[dict[str, Any]]) -> str:
    lines = [f"{r['NAME']} {col}: {err}" for r in rows_ for col, err in r["errors"].items()]
    return ("\nNACKs (lastError):\n" + "\n".join(lines) + "\n") if lines else ""
