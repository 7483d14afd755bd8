"""What the verdict and health views read beyond whole dump sections, each as small as Envoy allows: the
routed clusters' configs and response-code counters (one anchored regex per cluster: Envoy compiles them with
RE2's program-size limit of 100, which two escaped names already pass), the ECDS section with its load
counters, and this proxy's NACKs from every istiod. Every fetch reads the call's target (`ctx`)."""

from __future__ import annotations

import contextlib
import re
from typing import Any

from higress_ops.servers.base import CallContext
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import ecds, proxy_status
from higress_ops.servers.ops.views import gateway_health as gh
from higress_ops.servers.ops.views.configdump import DumpError
from higress_ops.servers.ops.views.source import Source, UpstreamError

ECDS_FIELDS = "ecds_filters"


async def ecds_inputs(src: Source, ctx: CallContext) -> tuple[Any, dict[str, int]]:
    """The ECDS section and its load counters (the dump alone cannot tell a rejected config from a loaded one)."""
    try:
        dump = await src.envoy_json("/config_dump", {"mask": ECDS_FIELDS}, ctx)
    except UpstreamError as exc:  # Envoy answers 400 to the mask when no listener uses ECDS at all
        if "HTTP 400" not in str(exc):
            raise
        dump = {"configs": []}
    stats = await src.envoy_json("/stats", {"format": "json", "filter": ecds.STATS_FILTER}, ctx)
    return dump, gh.stat_values(stats)


async def ecds_errors(src: Source, ctx: CallContext) -> list[str]:
    dump, stats = await ecds_inputs(src, ctx)
    return ecds.failures(dump, stats)


async def response_codes(src: Source, ctx: CallContext, names: list[str]) -> dict[str, int]:
    """The routed clusters' `upstream_rq_<code>` counters, one short filter per cluster (RE2 size limit)."""
    found: dict[str, int] = {}
    for name in names[:10]:
        regex = r"^cluster\." + re.escape(name[:40]) + r".*\.upstream_rq_[0-9]+$"
        found.update(gh.stat_values(await src.envoy_json("/stats", {"format": "json", "usedonly": "",
                                                                    "filter": regex}, ctx)))
    return found


async def cluster_configs(src: Source, ctx: CallContext, names: list[str]) -> dict[str, Any]:
    """Just the named clusters' configs (their panic threshold), never the whole clusters section.

    One anchored name_regex per name and section: Envoy compiles it with RE2's default program size limit
    of 100, which two escaped names already exceed, so a long name is matched on its first 60 characters
    and the answer filtered here."""
    wanted = set(names[:50])
    found: dict[str, Any] = {}
    for name in sorted(wanted):
        regex = re.escape(name) if len(name) <= 60 else re.escape(name[:60]) + ".*"
        for field in ("static_clusters", "dynamic_active_clusters"):
            part = await src.envoy_json("/config_dump", {"resource": field, "name_regex": regex}, ctx)
            for entry in part.get("configs", []) if isinstance(part, dict) else []:
                cluster = entry.get("cluster") if isinstance(entry, dict) else None
                if isinstance(cluster, dict) and cluster.get("name") in wanted:
                    found[str(cluster["name"])] = cluster
            if name in found:
                break
    return found


async def istiod_nacks(src: Source, ctx: CallContext) -> tuple[list[str] | None, str]:
    """This proxy's NACKs as istiod recorded them, or None and why istiod was not asked or did not answer."""
    node = await src.envoy_json("/config_dump", {"mask": "bootstrap.node.id"}, ctx)
    node_id = str(cd.section(node, "BootstrapConfigDump").get("bootstrap", {}).get("node", {}).get("id", ""))
    parts = node_id.split("~")
    proxy = parts[2] if len(parts) == 4 else node_id
    found, answered = [], False
    for name, answer in await src.istiod_json_each("/debug/syncz", None, ctx):  # every istiod pod
        if not isinstance(answer, UpstreamError):
            with contextlib.suppress(DumpError):
                found += proxy_status.rows(answer, name)
                answered = True
    if not answered:
        return None, "istiod did not answer syncz: get-istiod-proxy-status says why"
    mine = [r for r in found if r["NAME"] == proxy]
    return [f"{col}: {err}" for r in mine for col, err in r["errors"].items()], ("" if mine else
                                                                                "istiod does not list this proxy")
