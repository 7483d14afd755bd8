"""list-gateway-pods and compare-gateway-pods: every gateway pod's Envoy at once, so drift shows at a glance.

A pod's xDS state is summarised per type (listeners, routes, clusters, secrets) as a short digest of its
resources, each resource's own config hashed without version_info or last_updated (those differ between pods
that agree). Two pods with the same digest serve the same config of that type; compare-gateway-pods names the
resources behind a difference.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from higress_ops.servers.base import CallContext, ToolResult, ToolSpec
from higress_ops.servers.ops.targets import Target
from higress_ops.servers.ops.upstream import UpstreamError, Upstreams
from higress_ops.servers.ops.views import proxy_status
from higress_ops.servers.ops.views.paging import DEFAULT_LIMIT, fit, page, structured_rows
from higress_ops.servers.ops.views.table import Table

XDS_TYPES = {  # type -> the config dump fields holding it (one FieldMask request each)
    "listeners": "static_listeners,dynamic_listeners",
    "routes": "static_route_configs,dynamic_route_configs",
    "clusters": "static_clusters,dynamic_active_clusters,dynamic_warming_clusters",
    "secrets": "static_secrets,dynamic_active_secrets,dynamic_warming_secrets",
}
_RESOURCE_KEYS = ("listener", "route_config", "cluster", "secret")
MISSING = "-"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]


def resources(dump: Any) -> dict[str, str]:
    """name -> digest of every resource in a (masked) config dump, wherever Envoy keeps it."""
    found: dict[str, str] = {}
    configs = dump.get("configs", []) if isinstance(dump, Mapping) else []
    for config in configs:
        for items in (config.values() if isinstance(config, Mapping) else ()):
            if not isinstance(items, list):
                continue
            for item in items:
                resource = _resource(item)
                if resource is not None:
                    name = str(resource.get("name") or item.get("name") or "")
                    found[name] = digest(resource)
    return found


def _resource(item: Any) -> Mapping[str, Any] | None:
    if not isinstance(item, Mapping):
        return None
    for holder in (item, item.get("active_state"), item.get("warming_state")):
        if isinstance(holder, Mapping):
            for key in _RESOURCE_KEYS:
                if isinstance(holder.get(key), Mapping):
                    return holder[key]  # type: ignore[no-any-return]
    return None


def type_digest(named: Mapping[str, str]) -> str:
    return digest(sorted(named.items())) if named else MISSING


@dataclass
class PodState:
    target: Target
    xds: dict[str, dict[str, str]]  # type -> name -> digest
    info: Mapping[str, Any]
    error: str = ""


async def read(upstreams: Upstreams, target: Target, ctx: CallContext, kinds: tuple[str, ...],
               with_info: bool) -> PodState:
    """One pod's state; a pod that fails is a row with its error, never a failed call."""
    try:
        info: Any = {}
        if with_info:
            info = await upstreams.fetch_json("envoy", "/server_info", (), ctx, via=target.upstream)
        xds: dict[str, dict[str, str]] = {}
        for kind in kinds:
            dump = await upstreams.fetch_json("envoy", "/config_dump", [("mask", XDS_TYPES[kind])], ctx,
                                              via=target.upstream)
            xds[kind] = await anyio.to_thread.run_sync(resources, dump)
        return PodState(target, xds, info if isinstance(info, Mapping) else {})
    except UpstreamError as exc:
        return PodState(target, {}, {}, str(exc))


async def read_all(upstreams: Upstreams, ctx: CallContext, kinds: tuple[str, ...], *, with_info: bool,
                   names: tuple[str, ...] = ()) -> list[PodState]:
    targets = await upstreams.gateways.targets()
    if names:
        unknown = sorted(set(names) - {t.name for t in targets})
        if unknown:
            raise UpstreamError(f"no gateway pod named {', '.join(unknown)}; list-gateway-pods shows them")
        targets = [t for t in targets if t.name in names]
    return list(await asyncio.gather(*(read(upstreams, t, ctx, kinds, with_info) for t in targets)))


def _version(info: Mapping[str, Any]) -> str:
    parts = str(info.get("version", "")).split("/")
    return parts[1] if len(parts) > 1 else parts[0]


# ---------------------------------------------------------------- list-gateway-pods

LIST_HEADERS = ("NAME", "READY", "NODE", "IP", "ENVOY", "UPTIME", "LISTENERS", "ROUTES", "CLUSTERS", "SECRETS")


async def list_pods(args: Mapping[str, Any], upstreams: Upstreams, ctx: CallContext) -> ToolResult:
    states = await read_all(upstreams, ctx, tuple(XDS_TYPES), with_info=True)
    t = Table(LIST_HEADERS)
    errors = []
    for state in states:
        pod = state.target.pod
        row: dict[str, Any] = {"NAME": state.target.name, "READY": pod.ready if pod else "-",
                               "NODE": (pod.node or "-") if pod else "-", "IP": (pod.ip or "-") if pod else "-"}
        if state.error:
            row.update({"ENVOY": "unreachable", "UPTIME": "-", **{k.upper(): MISSING for k in XDS_TYPES}})
            errors.append(f"{state.target.name}: {state.error}")
        else:
            row.update({"ENVOY": _version(state.info) or "-", "UPTIME": str(state.info.get("uptime_current_epoch",
                                                                                           "-")),
                        **{k.upper(): type_digest(v) for k, v in state.xds.items()}})
        t.rows.append(row)
    if not t.rows:
        t.note = "no gateway pods found."
    drift = [k.upper() for k in XDS_TYPES if len({r[k.upper()] for r in t.rows if r["ENVOY"] != "unreachable"}) > 1]
    extra = (f"\nDrift in {', '.join(drift)}: compare-gateway-pods names the resources.\n" if drift else
             "\nEvery reachable pod serves the same listeners, routes, clusters and secrets.\n" if len(t.rows) > 1
             else "")
    extra += ("\nUnreachable:\n" + "\n".join(errors) + "\n") if errors else ""
    structured: dict[str, Any] = {"rows": structured_rows(t.rows), "total": len(t.rows),
                                  "drift": [d.lower() for d in drift]}
    if not upstreams.gateways.discovers:
        note, known = await istiod_gateways(upstreams, ctx, states[0].info if states else {})
        extra += note
        structured.update(local=True, istiod_gateways=known)
    text = t.render() + extra
    return ToolResult.text(fit(text, upstreams.max_bytes, "the structured content lists every pod"),
                           structured=structured)


LOCAL = ("\nLocal access (no gateways block): this server reads only the Envoy at envoyAdminURL, the row above. "
         "Add a gateways block (access: portforward or direct, docs/config.md) to list and read every gateway "
         "pod.\n")


async def istiod_gateways(upstreams: Upstreams, ctx: CallContext,
                          info: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """In local access, the gateway proxies istiod knows (its syncz routers), the local Envoy's marked; or why
    istiod could not say."""
    try:
        answers = await upstreams.istiod_json_each("/debug/syncz", None, ctx)
    except UpstreamError as exc:
        answers = [("istiod", exc)]
    failed = [f"{name}: {a}" for name, a in answers if isinstance(a, UpstreamError)]
    routers = [(name, [e for e in a if isinstance(e, Mapping) and e.get("proxy_type") == "router"])
               for name, a in answers if isinstance(a, list)]
    if not routers:
        return LOCAL + ("istiod did not answer /debug/syncz, so the gateway proxies it knows cannot be listed: "
                        + "; ".join(failed or ["not a list"]) + "\n"), []
    t = await anyio.to_thread.run_sync(proxy_status.table_of, routers)
    node = info.get("node")
    local = proxy_status.proxy_name(str(node.get("id", "")) if isinstance(node, Mapping) else "") or "-"
    for row in t.rows:
        row["NAME"] += " (this Envoy)" if row["NAME"] == local else ""
    head = f"\nGateway proxies istiod knows ({len(t.rows)}, from /debug/syncz; get-istiod-proxy-status for all):\n"
    tail = "".join(f"not answering: {f}\n" for f in failed)
    return LOCAL + head + t.render() + tail, structured_rows(t.rows)


# ---------------------------------------------------------------- compare-gateway-pods

async def compare_pods(args: Mapping[str, Any], upstreams: Upstreams, ctx: CallContext) -> ToolResult:
    kind = str(args.get("type", "all"))
    kinds = tuple(XDS_TYPES) if kind == "all" else (kind,)
    names = tuple(str(n) for n in args.get("pods", ()))
    states = await read_all(upstreams, ctx, kinds, with_info=False, names=names)
    failed = [s for s in states if s.error]
    states = [s for s in states if not s.error]
    if len(states) < 2:
        why = "; ".join(f"{s.target.name}: {s.error}" for s in failed)
        return ToolResult.error(f"compare-gateway-pods needs two reachable gateway pods, found {len(states)}"
                                + (f" ({why})" if why else ""))
    pods = [s.target.name for s in states]
    t = Table(("TYPE", "NAME", *pods))
    compared = 0
    for k in kinds:
        names_of_kind = sorted(set().union(*(s.xds[k] for s in states)))
        compared += len(names_of_kind)
        for name in names_of_kind:
            cells = [s.xds[k].get(name, MISSING) for s in states]
            if len(set(cells)) > 1:
                t.rows.append({"TYPE": k, "NAME": name, **dict(zip(pods, cells, strict=True))})
    offset, limit = int(args.get("offset", 0)), int(args.get("limit", DEFAULT_LIMIT))
    shown, footer = page(t.rows, offset, limit)
    head = (f"{len(t.rows)} of {compared} {'/'.join(kinds)} differ between {', '.join(pods)} "
            f"(a digest per pod, {MISSING} where the pod lacks it)\n")
    body = t.render(shown) if t.rows else "every pod serves the same config.\n"
    tail = (footer + "\n" if footer else "") + "".join(f"unreachable: {s.target.name}: {s.error}\n" for s in failed)
    return ToolResult.text(fit(head + body + tail, upstreams.max_bytes, "use type=, pods= or offset/limit"),
                           structured={"rows": [{"type": r["TYPE"], "name": r["NAME"],
                                                 "pods": {p: r[p] for p in pods}} for r in shown],
                                       "total": len(t.rows), "compared": compared, "pods": pods})


# ---------------------------------------------------------------- specs

Run = Callable[[Mapping[str, Any], Upstreams, CallContext], Awaitable[ToolResult]]
ANNOTATIONS = {"readOnlyHint": True, "destructiveHint": False, "idempotentHint": True, "openWorldHint": False}


@dataclass(frozen=True)
class FleetTool:
    spec: ToolSpec
    handler: Run

    async def run(self, arguments: Mapping[str, Any], upstreams: Upstreams, ctx: CallContext) -> ToolResult:
        try:
            return await self.handler(arguments, upstreams, ctx)
        except UpstreamError as exc:
            return ToolResult.error(f"{self.spec.name}: {exc}")


def _spec(name: str, title: str, description: str, props: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name=name, title=title, description=description,
                    input_schema={"type": "object", "properties": props, "additionalProperties": False},
                    annotations={"title": title, **ANNOTATIONS})


TOOLS: tuple[FleetTool, ...] = (
    FleetTool(_spec(
        "list-gateway-pods", "Gateway pods",
        "Every higress-gateway pod: ready, node, pod IP, Envoy version, uptime, and a short digest per xDS type "
        "(listeners, routes, clusters, secrets); pods that differ in a column serve different config of that "
        "type (compare-gateway-pods says which resources). Names here are what the `pod` argument takes. In local "
        "access (no gateways block) it says so and lists the gateway proxies istiod knows.",
        {}), list_pods),
    FleetTool(_spec(
        "compare-gateway-pods", "Compare gateway pods",
        "The listeners, routes, clusters and secrets that differ between gateway pods (missing on some, or "
        "configured differently), one row per resource with a digest per pod.",
        {"type": {"type": "string", "enum": [*XDS_TYPES, "all"], "default": "all"},
         "pods": {"type": "array", "items": {"type": "string", "maxLength": 253}, "maxItems": 20, "uniqueItems": True,
                  "description": "Only these pods (default: every pod)."},
         "offset": {"type": "integer", "minimum": 0, "default": 0},
         "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": DEFAULT_LIMIT}}), compare_pods),
)
