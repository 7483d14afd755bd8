"""The 18 raw tools of the product README as data: one entry per upstream endpoint.

An entry names the upstream, the allowlisted path, the JSON Schema of its arguments and how each
argument becomes query parameters; `handler.py` runs every entry the same way. Arguments can only
ever add the query keys declared here, URL-encoded: no argument can change the path, the host or the
method. Filters an upstream does not take (istiod's whole debug documents, Envoy's /clusters) are declared
as the entry's `select` and applied here on the parsed answer (selection.py); they are never sent.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from higress_ops.servers.ops import server_info
from higress_ops.servers.ops.selection import By, Select, re2_problem

Query = list[tuple[str, str]]
ToQuery = Callable[[Any, Mapping[str, Any]], Query]
Parse = Callable[[bytes, Mapping[str, Any]], tuple[Any, str]]  # (body, arguments) -> (value, note); ValueError

# README section names -> the config dump section (@type suffix) they select.
SECTIONS = {
    "bootstrap": "BootstrapConfigDump", "clusters": "ClustersConfigDump", "endpoints": "EndpointsConfigDump",
    "listeners": "ListenersConfigDump", "scoped_routes": "ScopedRoutesConfigDump", "routes": "RoutesConfigDump",
    "secrets": "SecretsConfigDump", "ecds": "EcdsConfigDump",
}
FIELD_NAME = r"^[a-z][a-z0-9_]{0,63}$"  # a README section or one of Envoy's repeated field names
_MASK_PATH = r"[a-z_][a-z0-9_]{0,63}(\.[a-z_][a-z0-9_]{0,63}){0,15}"
FIELD_MASK = rf"^{_MASK_PATH}(,{_MASK_PATH}){{0,15}}$"  # protobuf FieldMask paths, comma-separated
MAX_REGEX = 256
# The config dump's repeated fields: a FieldMask cannot select inside a list (Envoy answers 400 "could not be
# successfully applied"); with resource=<field> the mask applies to each element instead (checked on Envoy 1.40).
REPEATED = ("static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters", "static_listeners",
            "dynamic_listeners", "static_route_configs", "dynamic_route_configs", "static_scoped_route_configs",
            "dynamic_scoped_route_configs", "static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets",
            "static_endpoint_configs", "dynamic_endpoint_configs", "ecds_filters")


def mask_through_list(args: Mapping[str, Any]) -> str | None:
    """A mask path that goes into a repeated field, explained with the request that works."""
    for path in str(args.get("mask", "")).split(","):
        head, _, rest = path.partition(".")
        if head in REPEATED and rest:
            inner = "cluster" if "cluster" in head else "listener" if "listener" in head else \
                "route_config" if "route" in head else "secret" if "secret" in head else rest.split(".")[0]
            example = f"resource={head} mask={rest if rest.startswith(inner) else inner + '.name'}"
            return (f"mask {path!r} goes into {head}, a list: Envoy's field masks cannot select inside lists. "
                    f"Ask for the list with the mask applied to each element: {example}")
    return None


def as_is(key: str) -> ToQuery:
    return lambda value, _args: [(key, str(value))]


def presence(key: str) -> ToQuery:
    """Envoy turns these on by the key's presence alone, so false must leave it out."""
    return lambda value, _args: [(key, "")] if value else []


def json_format(value: Any, _args: Mapping[str, Any]) -> Query:
    return [("format", "json")] if value == "json" else []


def stats_format(value: Any, _args: Mapping[str, Any]) -> Query:
    return [] if value == "text" else [("format", str(value))]


def stats_type(value: Any, args: Mapping[str, Any]) -> Query:
    return [] if args.get("format") == "prometheus" else [("type", str(value))]  # Envoy ignores it there


def dump_resource(value: Any, _args: Mapping[str, Any]) -> Query:
    if value == "endpoints":
        return [("include_eds", "")]
    if value in SECTIONS:
        return []  # a whole section: selected from the dump by its type (handler.select_section)
    return [("resource", str(value))]


def not_sent(_value: Any, _args: Mapping[str, Any]) -> Query:
    """An argument that shapes the result here and never reaches the upstream."""
    return []


def compiles(value: Any) -> str | None:
    try:
        re.compile(value)
    except (re.error, TypeError, RecursionError) as exc:
        return f"is not a valid regular expression ({exc})"
    return None


@dataclass(frozen=True)
class Param:
    name: str
    schema: dict[str, Any]
    to_query: ToQuery
    check: Callable[[Any], str | None] | None = None  # beyond JSON Schema, e.g. the regex compiles


@dataclass(frozen=True)
class Entry:
    name: str
    title: str
    description: str
    upstream: Literal["envoy", "istiod"]
    path: str
    params: tuple[Param, ...] = ()
    kind: Literal["json", "text", "by-format"] = "json"
    ok_statuses: tuple[int, ...] = (200,)
    output_schema: dict[str, Any] | None = None
    narrow: str = ""  # how to ask for less, a sentence for the budget note (else: maxResponseBytes)
    # how to ask for the part of one item a cut went into, each way a sentence with {name}, {name_re}, {list}
    # and {inner} (handler.how_to_ask; budget.first_item_cut)
    one: tuple[str, ...] = ()
    select: Select | None = None  # filters applied here on the parsed answer (selection.py)
    fallbacks: tuple[str, ...] = field(default=())  # read instead when the path is absent (404)
    parse: Parse | None = None  # instead of a plain JSON parse, e.g. to summarise part of the body
    validate: Callable[[Mapping[str, Any]], str | None] | None = None  # a check across arguments

    def input_schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {p.name: p.schema for p in self.params},
                "additionalProperties": False}


REGEX = {"type": "string", "minLength": 1, "maxLength": MAX_REGEX}
ITEMS = {"type": "object", "properties": {"items": {"type": "array"}}, "required": ["items"]}
TEXT_OR_JSON = {"type": "string", "enum": ["text", "json"], "default": "text",
                "description": "json for machine-readable output with stat values as strings, text for Envoy's "
                               "compact one-line-per-stat form."}


def istiod(name: str, title: str, path: str, what: str, **extra: Any) -> Entry:
    return Entry(name, title, what + " Needs an istio-ca token in the X-Istiod-Token header when istiod is not on "
                 "this host.", "istiod", path, **extra)


NAMESPACE = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
HOSTNAME = {"type": "string", "pattern": r"^[A-Za-z0-9*]([-A-Za-z0-9_.*]{0,252})$",
            "description": "A host, as Envoy's and Istio's names use it: exact, or a *.suffix wildcard that "
                           "matches the hosts under it (a configured wildcard matches the hosts it covers)."}
NAME = {"type": "string", "pattern": r"^[^\s]{1,253}$"}


def here(name: str, schema: dict[str, Any], check: Callable[[Any], str | None] | None = None) -> Param:
    """A filter argument applied here on the parsed answer (the entry's `select`), never sent upstream."""
    return Param(name, schema, not_sent, check)


# istiod serves these documents whole: the filters of the catalog's entries apply here (selection.py).
CONFIGZ = Select("configs", (
    By("kind", ("kind",), "nocase"), By("namespace", ("metadata.namespace",)), By("name", ("metadata.name",)),
    # the hosts a config is about: VirtualService/ServiceEntry hosts, DestinationRule host, Gateway server hosts,
    # Gateway API listener hostnames and route hostnames, Higress WasmPlugin rule domains
    By("host", ("spec.hosts[]", "spec.host", "spec.servers[].hosts[]", "spec.listeners[].hostname",
                "spec.hostnames[]", "spec.matchRules[].domain[]"), "host")))
REGISTRYZ = Select("services", (By("hostname", ("hostname",), "host"), By("namespace", ("Attributes.Namespace",))))
ENDPOINTZ = Select("services", (By("hostname", ("{0}",), "host"), By("namespace", ("{1}",))), items="{}{}")
METRICS = Select("metric names", (By("name_regex", ("{0}",), "re2"),),
                 lines=r"^(?:# (?:HELP|TYPE) )?([A-Za-z_:][A-Za-z0-9_:]*)")
CLUSTERS = Select("clusters", (By("name_regex", ("name", "{0}"), "re2"),), items="cluster_statuses",
                  lines=r"^(.*?)::")
NAME_REGEX = {**REGEX, "description": "Keep the clusters whose name fully matches this RE2 (as Envoy's "
                                      "name_regex), e.g. outbound\\|80\\|\\|.*\\.shop\\.svc\\.cluster\\.local."}

SERVICE_FILTERS = (  # registryz and endpointz: istiod's services, by host and namespace
    here("hostname", {**HOSTNAME, "description": "Only this service host (e.g. httpbin.default.svc.cluster.local, "
                                                 "or *.default.svc.cluster.local)."}),
    here("namespace", {**NAMESPACE, "description": "Only services in this namespace."}))

CATALOG: tuple[Entry, ...] = (
    istiod("get-istiod-configz", "Istiod config status", "/debug/configz",
           "Istio config istiod holds (Gateways, VirtualServices, DestinationRules, WasmPlugins, ...) with their "
           "status and validation errors, from /debug/configz. Use it to check that a resource was accepted; "
           "kind, namespace, name and host pick configs (istiod serves them all; the filter applies here).",
           params=(here("kind", {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9]{0,62}$",
                                 "description": "Only configs of this kind (VirtualService, DestinationRule, "
                                                "Gateway, ServiceEntry, WasmPlugin, ...; any case)."}),
                   here("namespace", {**NAMESPACE, "description": "Only configs in this namespace."}),
                   here("name", {**NAME, "description": "Only configs with this name."}),
                   here("host", {**HOSTNAME, "description": "Only configs about this host (hosts, host, a "
                                                            "Gateway's server hosts, hostnames, domains): "
                                 + str(HOSTNAME["description"])})),
           select=CONFIGZ, narrow="Ask with kind=, namespace=, name= or host= for fewer configs.",
           one=("Ask with name={name} for that config alone.",)),
    istiod("get-istiod-endpointz", "Istiod service endpoints", "/debug/endpointz",
           "Every service endpoint istiod discovered (hostname -> namespace -> shards of endpoints with address, "
           "port, labels, health), from /debug/endpointz. Use it when a route has no healthy upstream; hostname "
           "and namespace pick services (the filter applies here).",
           params=SERVICE_FILTERS,
           select=ENDPOINTZ, narrow="Ask with hostname= or namespace= for fewer services.",
           one=("Ask with hostname={name} for that service alone.",)),
    istiod("get-istiod-clusters", "Istiod remote clusters", "/debug/clusterz",
           "The Kubernetes clusters istiod watches (id, secret, sync status), from /debug/clusterz: remote "
           "clusters of a multi-cluster mesh, not Envoy clusters (see get-envoy-clusters).",
           output_schema=ITEMS),
    istiod("get-istiod-registryz", "Istiod service registry", "/debug/registryz",
           "istiod's service registry: every service with hostname, ports and attributes, from /debug/registryz. "
           "Use it to check that a service is known to the control plane; hostname and namespace pick services "
           "(the filter applies here).",
           params=SERVICE_FILTERS,
           select=REGISTRYZ, narrow="Ask with hostname= or namespace= for fewer services.",
           one=("Ask with hostname={name} for that service alone.",)),
    istiod("get-istiod-syncz", "Istiod xDS sync status", "/debug/syncz",
           "Sync state of every proxy connected to istiod (per xDS type: sent vs acked nonces; synced means "
           "acked == sent), from /debug/syncz. Use it first when a gateway ignores a config change.",
           params=(Param("namespace", {**NAMESPACE, "description": "Only proxies in this namespace."},
                         as_is("namespace")),),
           output_schema=ITEMS, narrow="Ask with namespace= for fewer proxies, or use get-istiod-proxy-status "
                                       "(one line per proxy, paged)."),
    Entry("get-istiod-metrics", "Istiod Prometheus metrics",
          "istiod's own Prometheus metrics (pilot_xds_pushes, pilot_proxy_convergence_time, ...) as Prometheus "
          "text, from /metrics. Use it for control-plane performance questions; name_regex picks metrics.",
          "istiod", "/metrics", kind="text",
          params=(here("name_regex", {**REGEX, "description": "Keep the metrics whose name fully matches this RE2, "
                                      "e.g. pilot_xds.* (a histogram's _bucket, _sum and _count series are "
                                      "metrics of their own name)."}, re2_problem),),
          select=METRICS, narrow="Ask with name_regex=<RE2 of metric names>, e.g. pilot_xds.*."),
    Entry("get-istiod-version", "Istiod version",
          "istiod's version as plain text (<version>-<revision>-<status>), from /version.", "istiod", "/version",
          kind="text"),
    istiod("get-istiod-debug-vars", "Istiod debug variables", "/debug/vars",
           "istiod's debug state. istiod serves no /debug/vars, so this reads its real debug state instead "
           "(/debug/push_status: the last push; /debug/connections: connected proxies) and says what it read.",
           fallbacks=("/debug/push_status", "/debug/connections"),
           narrow="For the proxies alone use get-istiod-proxy-status (paged)."),
    Entry("get-envoy-config-dump", "Envoy config dump",
          "Envoy's full configuration (/config_dump): bootstrap, clusters, listeners, routes, secrets. Large on a "
          "real gateway: select a section with resource (listeners, clusters, routes, endpoints, secrets, "
          "bootstrap, scoped_routes, ecds) or one of Envoy's repeated fields (dynamic_active_clusters, "
          "static_listeners, dynamic_route_configs, ...), and filter with name_regex and mask. For a compact "
          "table use get-envoy-proxy-config.", "envoy", "/config_dump",
          params=(
              Param("resource", {"type": "string", "pattern": FIELD_NAME, "examples": ["listeners",
                                                                                       "dynamic_active_clusters"],
                                 "description": "A section name or an Envoy repeated field name."}, dump_resource),
              Param("mask", {"type": "string", "pattern": FIELD_MASK, "maxLength": 512,
                             "description": "FieldMask of fields to keep, e.g. bootstrap.node.id or "
                                            "cluster.name,cluster.type."}, as_is("mask")),
              Param("name_regex", {**REGEX, "description": "Keep resources whose name fully matches this RE2."},
                    as_is("name_regex"), re2_problem),
              Param("include_eds", {"type": "boolean", "default": False,
                                    "description": "Add EDS endpoints to the dump."}, presence("include_eds")),
              Param("extensions", {"type": "string", "enum": list(server_info.MODES), "default": "names",
                                   "description": "How to show the bootstrap's node.extensions: names by category "
                                                  "(default), counts by category, or Envoy's full entries."},
                    not_sent),
          ), parse=server_info.parse_config_dump, validate=mask_through_list,
          narrow="Ask with resource=<section or field>, name_regex=<names> or mask=<fields>.",
          one=("Ask with resource={list} name_regex={name_re} mask={inner} for that part alone.",)),
    Entry("get-envoy-listeners", "Envoy listeners",
          "Envoy's listeners with their addresses (/listeners); format=json gives listener_statuses.",
          "envoy", "/listeners", params=(Param("format", TEXT_OR_JSON, json_format),), kind="by-format",
          narrow="Use get-envoy-proxy-config type=listeners (port=, address=, paged) for fewer listeners."),
    Entry("get-envoy-clusters", "Envoy clusters and health",
          "Every Envoy cluster with its hosts, health flags, weights and counters (/clusters); format=json gives "
          "cluster_statuses. Use it to see why requests fail upstream; name_regex picks clusters (Envoy serves "
          "them all; the filter applies here).", "envoy", "/clusters",
          params=(Param("format", TEXT_OR_JSON, json_format), here("name_regex", NAME_REGEX, re2_problem)),
          kind="by-format", select=CLUSTERS,
          narrow="Ask with name_regex=<RE2 of cluster names> for fewer clusters.",
          one=("Ask with name_regex={name_re} for that cluster alone.",
               "Ask get-envoy-proxy-config type=endpoints cluster={name} for its hosts in pages.")),
    Entry("get-envoy-stats", "Envoy statistics",
          "Envoy's counters, gauges and histograms (/stats). Filter names with filter (a regex, partial match), "
          "choose format text, json or prometheus, usedonly for stats that changed, and type to pick one kind.",
          "envoy", "/stats", kind="by-format",
          params=(
              Param("filter", {**REGEX, "description": "Regex on stat names (partial match), e.g. cluster.*"},
                    as_is("filter"), compiles),
              Param("format", {"type": "string", "enum": ["text", "json", "prometheus"], "default": "text"},
                    stats_format),
              Param("usedonly", {"type": "boolean", "default": False,
                                 "description": "Only stats Envoy has updated."}, presence("usedonly")),
              Param("type", {"type": "string", "enum": ["All", "Counters", "Gauges", "Histograms", "TextReadouts"],
                             "description": "Only this kind of stat (not with format=prometheus)."}, stats_type),
          ), narrow="Ask with filter=<regex>, usedonly=true or type=Counters|Gauges|Histograms."),
    Entry("get-envoy-runtime", "Envoy runtime", "Envoy's runtime values and layers (/runtime).", "envoy",
          "/runtime", output_schema={"type": "object", "properties": {"entries": {"type": "object"},
                                                                       "layers": {"type": "array"}}}),
    Entry("get-envoy-memory", "Envoy memory", "Envoy's heap statistics in bytes (/memory): allocated, heap_size, "
          "pageheap_unmapped, ...; values are strings.", "envoy", "/memory",
          output_schema={"type": "object", "properties": {"allocated": {"type": "string"},
                                                           "heap_size": {"type": "string"}}}),
    Entry("get-envoy-server-info", "Envoy server info",
          "Envoy's version, state, uptime, command-line options and node (/server_info). The node's 500+ "
          "compiled-in extensions come as names by category (extensions=counts for a tally, extensions=full for "
          "Envoy's complete entries with type URLs).", "envoy", "/server_info",
          (Param("extensions", {"type": "string", "enum": list(server_info.MODES), "default": "names",
                                "description": "How to show node.extensions: names by category (default), "
                                               "counts by category, or Envoy's full entries (~100 KB)."},
                 not_sent),),
          parse=server_info.parse, narrow="Ask with extensions=counts (or names, the default)."),
    Entry("get-envoy-ready", "Envoy readiness",
          "Whether Envoy is ready to serve (/ready): LIVE, or its state (PRE_INITIALIZING, DRAINING) when not.",
          "envoy", "/ready", kind="text", ok_statuses=(200, 503)),
    Entry("get-envoy-hot-restart-version", "Envoy hot restart version",
          "Envoy's hot restart compatibility version (/hot_restart_version).", "envoy", "/hot_restart_version",
          kind="text"),
    Entry("get-envoy-certs", "Envoy certificates",
          "Certificates Envoy has loaded (/certs): CA and chain with serial, SANs, validity and days until "
          "expiration. For expiry warnings in one table use check-certs.", "envoy", "/certs",
          output_schema={"type": "object", "properties": {"certificates": {"type": "array"}}},
          narrow="Use check-certs for every certificate as a paged table (offset=, limit=)."),
)
