"""what-changed: the objects behind the gateway's config that changed in the last N minutes, newest first, with
who changed them, and the Warning events of that window: most incidents start with a change.

A change is an object's newest `managedFields[].time` (every write the API server accepts is stamped there with
its manager: `kubectl-edit`, `helm`, `kube-controller-manager`, `kubelet` for a pod's status) or its creation.
Deletions leave nothing to list: a deleted object is only visible as what is missing (find-route, describe-cluster).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views.table import Table

KINDS = ("Ingress", "Service", "EndpointSlice", "Pod", "WasmPlugin", "McpBridge")
HEADERS = ("CHANGED", "KIND", "NAMESPACE", "NAME", "BY", "WHAT")


def _ago(when: str, now: dt.datetime) -> str:
    try:
        seconds = (now - dt.datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return when
    if seconds < 120:
        return f"{int(seconds)}s ago"
    return f"{int(seconds // 60)}m ago" if seconds < 7200 else f"{seconds / 3600:.1f}h ago"


def since(minutes: int, now: dt.datetime) -> str:
    """The window's start as the API server writes times (RFC 3339, UTC, seconds): compared as text."""
    return (now - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def changes(facts: Facts, minutes: int, kinds: Sequence[str] = KINDS, namespace: str = "",
                  now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or dt.datetime.now(dt.UTC)
    start = since(minutes, now)
    inv = facts.objects
    rows = []
    objects, _ = await asyncio.gather(inv.objects(kinds), asyncio.gather(*(inv.warnings(ns) for ns in inv.namespaces)))
    for meta in objects:
        change = meta.changed
        if change is None or change.time < start or (namespace and meta.namespace != namespace):
            continue
        what = "created" if change.operation == "Create" else (change.subresource or "object")
        rows.append({"CHANGED": _ago(change.time, now), "KIND": meta.kind, "NAMESPACE": meta.namespace,
                     "NAME": meta.name, "BY": change.manager or "-", "WHAT": what, "time": change.time})
    rows.sort(key=lambda r: (r["time"], r["KIND"], r["NAME"]), reverse=True)
    lists = await asyncio.gather(*(inv.warnings(ns) for ns in inv.namespaces if not namespace or ns == namespace))
    warnings = sorted((e for events in lists for e in events if e.last >= start), key=lambda e: e.last, reverse=True)
    return {"since": start, "minutes": minutes, "rows": rows,
            "warnings": [{"last": e.last, "ago": _ago(e.last, now), "object": "{} {}/{}".format(*e.regarding),
                          "reason": e.reason, "count": e.count, "message": e.message} for e in warnings],
            "namespaces": list(inv.namespaces), "not_read": sorted(inv.gaps)}


def table(answer: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    t = Table(HEADERS, [dict(r) for r in rows])
    head = (f"Changed in the last {answer['minutes']} minutes (since {answer['since']}), newest first, in "
            f"{', '.join(answer['namespaces']) or 'no namespace (kubernetes.namespaces is empty)'}:\n")
    body = t.render() if rows else "nothing changed.\n"
    warnings = answer["warnings"]
    if warnings:
        body += "\nWarning events in that window:\n" + "".join(
            f"  {w['ago']} {w['object']} {w['reason']} (x{w['count']}): {w['message']}\n" for w in warnings[:20])
        if len(warnings) > 20:
            body += f"  ... {len(warnings) - 20} more\n"
    if answer["not_read"]:
        body += "\nNot read:\n" + "".join(f"  {g}\n" for g in answer["not_read"])
    return head + body
