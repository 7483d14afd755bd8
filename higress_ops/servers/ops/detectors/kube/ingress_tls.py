"""Ingress hosts with TLS that no filter chain of this gateway serves: a client's TLS handshake for that SNI matches
no chain and Envoy resets the connection, before any HTTP (tls-listener, issue 21, says so per request once it
happened; this says it from the config, before a client tries).

The TLS hosts come from the Ingresses' `spec.tls` (the Kubernetes API) or, without it, from the HTTPS servers of
the Gateways Higress generated for this gateway (istiod's configz). A host is served when a chain of a TLS
listener names it in `server_names` (exactly, or `*.suffix` for a deeper name) or has no `server_names` at all.
An expired or expiring certificate of a served host is the certificates detector's finding, whose object to edit
analyze resolves to the Ingress whose TLS names that secret.
"""

from __future__ import annotations

from collections.abc import Iterable

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio import scope
from higress_ops.servers.ops.detectors.tls_listener import server_names
from higress_ops.servers.ops.objects.model import KUBERNETES
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.configdump import mapping

NAME = "ingress-tls"
TLS = "envoy.transport_sockets.tls"
Wanted = tuple[Ref, str, str]  # (the Ingress or Gateway, TLS host, secret)


def tls_listeners(dump: cd.Json) -> dict[str, tuple[list[str], bool]]:
    """listener -> (server names, whether a TLS chain takes any name)."""
    out = {}
    for lst in cd.listeners(dump):
        chains = [c for c in ls.filter_chains(lst) if mapping(c.get("transport_socket")).get("name") == TLS]
        if chains:
            catch_all = any(not mapping(c.get("filter_chain_match")).get("server_names") for c in chains)
            out[str(lst.get("name", ""))] = (server_names(lst), catch_all)
    return out


def serves(name: str, host: str) -> bool:
    host, name = host.lower(), name.lower()
    return name == host or (name.startswith("*.") and host.endswith(name[1:]) and len(host) > len(name) - 1)


def unserved(wanted: Iterable[Wanted], listeners: dict[str, tuple[list[str], bool]]) -> list[Finding]:
    served = {n for names, _ in listeners.values() for n in names}
    catch_all = any(any_name for _, any_name in listeners.values())
    out = []
    for subject, host, secret in wanted:
        if host in ("", "*") or catch_all or any(serves(n, host) for n in served):
            continue
        shown = "; ".join(f"{n}: {', '.join(names[:6]) or '(none)'}" for n, (names, _) in sorted(listeners.items()))
        out.append(Finding(
            NAME, Severity.ERROR, subject,
            f"TLS host {host} has no filter chain on this gateway: Envoy resets every TLS connection for it",
            f"istiod did not program it: check that the Secret {secret or '(none named)'} exists in the Ingress's "
            "namespace and holds a valid certificate and key, and that the host is in the Ingress's rules",
            (f"TLS listeners and their server names: {shown or 'none'}",)))
    return out


async def wanted(facts: Facts) -> list[Wanted]:
    if facts.objects.namespaces:
        return [(Ref("Ingress", i.meta.name, i.meta.namespace), h, f"{i.meta.namespace}/{secret}")
                for i in await facts.objects.ingresses() if i.meta.source == KUBERNETES
                for hosts, secret in i.tls for h in hosts]
    mesh = await scope.mesh(facts)  # no istiod either: not checked, and says why
    return [(scope.ref(gw), str(h), str(mapping(s.get("tls")).get("credentialName", "")))
            for gw in mesh.gateways_of_proxy() for s in gw.items("servers")
            if str(mapping(s.get("port")).get("protocol", "")).upper() == "HTTPS" for h in s.get("hosts") or []]


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    hosts = await wanted(facts)
    if not hosts:
        return []
    listeners = await facts.compute(tls_listeners, await facts.dump("listeners"))
    return await facts.compute(unserved, hosts, listeners)


DETECTOR = Detector(NAME, "Ingress TLS hosts no filter chain serves", detect,
                    next_tool="find-route host=<host> sni=<host> port=443", sources=("kubernetes", "istiod", "envoy"))
