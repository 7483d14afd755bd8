"""TLS listeners: which filter chain a server name (SNI) selects and the certificate it serves, or that none
matches, in which case Envoy resets the connection (no HTTP answer) and counts the listener's
`no_filter_chain_match`. A chain with `server_names` matches only a TLS ClientHello naming one of them (exact,
or `*.suffix`); a chain without them matches any name; a plaintext connection carries no name at all."""

from __future__ import annotations

from collections.abc import Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity, Verdict
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd
from higress_ops.servers.ops.views import listeners as ls
from higress_ops.servers.ops.views.certs import chain_secrets

STAT = r"^listener\..+\.no_filter_chain_match$"


def stat_name(listener: cd.Json) -> str:
    """Envoy's stat scope of a listener: its stat_prefix, else `<address>_<port>`."""
    prefix = listener.get("stat_prefix") or f"{ls.address(listener)}_{ls.port(listener)}"
    return f"listener.{prefix}.no_filter_chain_match"


def server_names(listener: cd.Json) -> list[str]:
    return sorted({str(n) for c in ls.filter_chains(listener)
                   for n in cd.mapping(c.get("filter_chain_match")).get("server_names") or []})


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    dump = await facts.dump("listeners")
    by_name = {str(lst.get("name", "")): lst for lst in cd.listeners(dump)}
    if focus is not None:
        return await _focused(facts, focus, by_name)
    stats = await facts.counters()
    findings = []
    for name, lst in sorted(by_name.items()):
        n = stats.get(stat_name(lst), 0)
        if n:
            names = server_names(lst)
            findings.append(Finding(
                DETECTOR.name, Severity.ERROR, Ref("listener", name),
                f"{n} connection(s) matched no filter chain: Envoy reset them",
                "add the server name to the Gateway/Ingress TLS hosts, or send a configured SNI",
                (f"server names: {', '.join(names[:10]) or '(none: chains match on something else)'}",
                 f"{stat_name(lst)} {n}")))
    return findings


async def _focused(facts: Facts, focus: Focus, by_name: Mapping[str, cd.Json]) -> list[Finding]:
    findings = []
    rows: list[dict[str, object]] | None = None
    for port in focus.ports:
        lst = by_name.get(port.get("listener", ""))
        if lst is None or not port.get("tls_listener"):
            continue
        names = server_names(lst)
        sni = port.get("sni", "")
        if port.get("reason") == "no_filter_chain":
            findings.append(Finding(
                DETECTOR.name, Severity.ERROR, Ref("listener", port["listener"]),
                f"no filter chain matches SNI {sni!r}: Envoy resets the connection" if sni else
                "no filter chain matches a connection without SNI: Envoy resets it",
                "send one of the server names, or add this one to the Gateway/Ingress TLS hosts",
                (f"server names: {', '.join(names[:10])}",), verdict=Verdict(0, "no_filter_chain")))
            continue
        chains = ls.filter_chains(lst)
        index = int(port.get("chain_index", -1))
        if not 0 <= index < len(chains):
            continue
        chain = chains[index]
        if rows is None:
            rows = await facts.cert_rows()
        secrets = chain_secrets(chain)
        served = [f"{r['SOURCE']}: {r['SUBJECT'] or r['SANS']}, expires {r['NOT AFTER']} ({r['DAYS LEFT']} days, "
                  f"{r['STATUS']})" for r in rows if r.get("secret") in secrets]
        findings.append(Finding(
            DETECTOR.name, Severity.INFO, Ref("listener", port["listener"]),
            f"SNI {sni!r} selects filter chain [{ls.describe_chain_match(chain.get('filter_chain_match'))}], "
            f"serving {', '.join(secrets) or 'no certificate'}", "",
            tuple(served) or tuple(f"secret {s}: not loaded (check-certs)" for s in secrets)))
    return findings


DETECTOR = Detector("tls-listener", "TLS connections matching no filter chain", detect,
                    next_tool="get-envoy-proxy-config type=listeners port=<port>", stats=(STAT,))
