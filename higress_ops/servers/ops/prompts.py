"""Diagnostic playbooks as MCP prompts: which of this server's tools to call, in which order, and what to look
for in each answer. Data only; `get` fills in the arguments. The tool names here are checked against the
catalog by the tests, so a renamed tool cannot leave a playbook pointing nowhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from higress_ops.servers.base import PromptArgument, PromptSpec

_HOST = PromptArgument("host", "Host header (:authority) of the failing request, e.g. api.example.com", True)
_PATH = PromptArgument("path", "Request path, e.g. /v1/orders (default /)")
_METHOD = PromptArgument("method", "HTTP method (default GET)")
_PORT = PromptArgument("port", "Gateway listener port the request arrives on (default: every listener)")


@dataclass(frozen=True)
class Playbook:
    spec: PromptSpec
    template: str  # str.format fields: see _fields


PLAYBOOKS: tuple[Playbook, ...] = (
    Playbook(PromptSpec(
        "diagnose-404", "Find out why a request to the gateway gets 404: no listener, no virtual host for the "
        "host, or no route for the path.", (_HOST, _PATH, _METHOD, _PORT), "Diagnose a 404"), """\
A request {method} {host}{path} through the Higress gateway answers 404. Find out why, using this server's tools:

1. Call `find-route` with {find_route_args}. Read its last line, `verdict: <status> <reason>`:
   - `no_virtual_host`: no virtual host matches the host. Compare the host with the "domains served" list; a port
     in the Host header only matches when the connection manager strips it (strip_any_host_port) or the domain
     lists it. The fix is the Ingress/Gateway host or the port the client sends.
   - `no_route`: the virtual host matched but no route matches {method} {path}; the answer counts the routes
     checked. Call `get-envoy-proxy-config` type=routes name=<route config from find-route> to see each route's
     match, and compare prefixes, exact paths, regexes and header matches with the request.
   - `route_config_missing`: the listener's RDS config never arrived: call `get-istiod-proxy-status` and look at
     the RDS column for this gateway (STALE or ERROR means istiod's push did not land).
   - any other status: the route exists, so the 404 comes from the backend itself, not from the gateway.
2. If find-route reports no listener for the port, call `get-envoy-proxy-config` type=listeners port={port_hint}.
3. If the route should exist but does not, call `get-istiod-config-dump` with compare=true for this proxy to see
   whether istiod generated it (istiod has it, Envoy does not: a push problem; neither has it: the Ingress or
   VirtualService does not select this host).
Answer with the cause, the evidence (quote the verdict line), and the one change that fixes it."""),
    Playbook(PromptSpec(
        "diagnose-503", "Find out why a request to the gateway gets 503 (or 504): missing cluster, no healthy "
        "endpoint, connection failures, or timeouts.", (_HOST, _PATH, _METHOD, _PORT), "Diagnose a 503"), """\
A request {method} {host}{path} through the Higress gateway answers 503 (or 504). Find out why:

1. Call `find-route` with {find_route_args}. The last line is `verdict: <status> <reason>`:
   - `cluster_not_found`: the route names a cluster this proxy does not have. Call `get-istiod-proxy-status`
     (is CDS SYNCED?) and `get-envoy-proxy-config` type=clusters fqdn=<service> to see what exists.
   - `no_healthy_upstream`: no host can take traffic and panic mode is off or every host is excluded. The
     endpoint lines say why per host (failed_active_hc, outlier_ejected, eds_unhealthy, ...).
   - `upstream_connect_failure`: Envoy picks hosts whose connections all fail (counts shown). Check the pods
     behind those addresses, their ports, and network policy.
   - `upstream_timeout` (504): the backend is slower than the route timeout shown on the route line; check the
     timeout and retry policy there.
   - `panic_mode`: fewer hosts are healthy than the cluster's panic threshold, so Envoy sends traffic to every
     host; requests may succeed or fail depending on which host they reach.
2. Call `get-envoy-proxy-config` type=endpoints cluster=<cluster from step 1> for the HEALTH of every host (STATUS
   is what EDS said; HEALTH is what Envoy does with the host).
3. If no endpoints exist, call `get-istiod-endpointz` and look for the service: no endpoints there means no ready
   pods; endpoints there but not in Envoy means EDS did not sync (`get-istiod-proxy-status`, EDS column).
4. For the overall picture, `get-gateway-health` lists every cluster with unhealthy hosts and the top 5xx flags.
   If only some requests fail, the gateway may have several pods that differ: `list-gateway-pods`, then the
   steps above with pod=<name> for each.
Answer with the cause, the evidence (quote the verdict line and the endpoint lines), and the fix."""),
    Playbook(PromptSpec(
        "check-cert-expiry", "Find certificates on the gateway that expired or expire soon, and which listener "
        "and SNI serve them.", (PromptArgument("days", "Warn for certificates expiring within this many days "
                                               "(default 30)"),), "Check certificate expiry"), """\
Check the TLS certificates of the Higress gateway for expiry within {days} days:

1. Call `check-certs` with days={days}. Its Warnings section lists EXPIRED, EXPIRING and NOT YET VALID
   certificates with their secret name, subject, SANs and expiry time, and its SERVED BY column the listener,
   filter chain and SNI that serve each one, i.e. which hosts break when it expires.
2. Call `get-gateway-health` with days={days}: its certificate section lists the same ones by SNI, next to the
   rest of what is broken (a TLS listener resetting connections, rejected secret updates).
3. Call `get-envoy-proxy-config` type=secrets to check that each secret is ACTIVE (a WARMING secret never
   arrived: look at istiod with `get-istiod-proxy-status`) and VALID CERT is true.
Report each affected certificate: secret name, hosts (SNI), days left, and whether it is already failing. For
Kubernetes secrets (kubernetes://<name>) the fix is renewing that Secret in the gateway's namespace."""),
    Playbook(PromptSpec(
        "check-config-sync", "Check that istiod's config reached this gateway: xDS sync state, NACKs, and "
        "differences between istiod's and Envoy's view.",
        (PromptArgument("namespace", "Namespace of the gateway proxies (default: the server's namespace)"),),
        "Check config sync"), """\
Check whether the Higress gateway runs the configuration istiod computed for it (namespace: {namespace}):

1. Call `get-istiod-proxy-status`{namespace_args}. Every column should be SYNCED. STALE means Envoy has not
   acknowledged the latest push; ERROR shows the NACK message Envoy sent back: quote it, it names the bad resource.
2. Call `get-gateway-health`: its xDS section lists the update_rejected counters of this Envoy, and its
   extension section lists ECDS / Wasm plugin configs that failed to load.
3. For this gateway's proxy id (the NAME column of step 1), call `get-istiod-config-dump` with proxyID=<id> and
   compare=true: clusters, listeners and routes present on one side only show what did not sync.
4. For Wasm plugins, call `get-envoy-proxy-config` type=ecds: the Wasm plugins table shows each plugin's load
   state and where its module comes from.
Report: synced or not, each NACK or rejected update with the resource it names, and what to change."""),
    Playbook(PromptSpec(
        "gateway-health", "Survey the gateway for anything broken right now and drill into the worst problem.",
        (), "Gateway health check"), """\
Find out what is broken on the Higress gateway right now:

0. With several gateway pods, `list-gateway-pods` names them: pass pod=<name> to the tools below to look at one
   (each answer ends naming the pod that answered), and `compare-gateway-pods` shows where pods differ.
1. Call `get-gateway-health`. Each section counts one kind of problem and names the tool to call next: clusters
   with unhealthy or failing hosts, clusters and listeners by 5xx and response flag (UF connect failure, UH no
   healthy host, UT timeout, NR no route, NC no cluster), rejected xDS updates and istiod NACKs, failed extension
   configs, and expiring certificates.
2. Pick the problem with the most impact (5xx counts, then clusters with 0 healthy hosts) and follow the tool that
   its line names, e.g. `get-envoy-proxy-config` type=endpoints cluster=<name>, or `find-route` for a host and
   path that uses the cluster.
3. If a list says there is a next page, call `get-gateway-health` again with that offset only when the first page
   does not explain the problem.
Summarise: what is broken, since when if the counters tell, the evidence, and the next step for each problem."""),
)

BY_NAME = {p.spec.name: p for p in PLAYBOOKS}


def specs() -> list[PromptSpec]:
    return [p.spec for p in PLAYBOOKS]


def messages(name: str, arguments: Mapping[str, str]) -> list[dict[str, object]]:
    """The filled-in playbook as one user message. KeyError: unknown prompt; ValueError: bad arguments."""
    playbook = BY_NAME[name]
    known = {a.name for a in playbook.spec.arguments}
    unknown = sorted(set(arguments) - known)
    if unknown:
        raise ValueError(f"prompt {name} takes {', '.join(sorted(known)) or 'no arguments'}; unknown: "
                         f"{', '.join(unknown)}")
    for a in playbook.spec.arguments:
        value = arguments.get(a.name)
        if a.required and not value:
            raise ValueError(f"prompt {name} needs the argument {a.name!r}: {a.description}")
        if value is not None and (not isinstance(value, str) or len(value) > 500):
            raise ValueError(f"prompt {name}: argument {a.name!r} must be a string of at most 500 characters")
    return [{"role": "user", "content": {"type": "text", "text": playbook.template.format(**_fields(arguments))}}]


def _fields(arguments: Mapping[str, str]) -> dict[str, str]:
    host = arguments.get("host", "")
    path = arguments.get("path") or "/"
    method = (arguments.get("method") or "GET").upper()
    port = arguments.get("port", "")
    route_args = f"host={host!r} path={path!r} method={method!r}" + (f" port={port}" if port else "")
    namespace = arguments.get("namespace", "")
    return {"host": host, "path": path, "method": method, "port_hint": port or "<port>",
            "find_route_args": route_args, "days": arguments.get("days") or "30",
            "namespace": namespace or "the server's configured namespace",
            "namespace_args": f" with namespace={namespace!r}" if namespace else ""}
