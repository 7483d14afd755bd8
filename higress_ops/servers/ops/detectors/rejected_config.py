"""xDS updates this Envoy rejected: it keeps serving the last accepted version of that resource type, so every
other view (find-route included) describes the old config. Evidence from Envoy's `update_rejected` counters,
the rejected update's own error where Envoy keeps it, and istiod's NACKs.

What Envoy 1.40 keeps (checked with file-based xDS): a rejected listener appears in dynamic_listeners with an
`error_state` (the failed configuration, `details`: the error text, `last_update_attempt`); a rejected cluster or
route configuration leaves no trace in the dump, only the counters (and Envoy's log): the error text then comes
from istiod, which records the NACK's error_detail (syncz `lastError`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.views import configdump as cd

STATS = r"\.(update_rejected|update_time)$"
LAST = "it answers from the last accepted version"


def _subject(stat: str, known: Iterable[str] = ()) -> Ref:
    """The resource the counter belongs to: `http.<prefix>.rds.<route config>` a route configuration,
    `sds.<secret>` a secret, `cluster.<name>` a cluster's EDS; the others a whole subscription
    (`cluster_manager.cds`, `listener_manager.lds`), which concerns every request."""
    base = stat.removesuffix(".update_rejected")
    if ".rds." in base:  # stat prefixes and route config names both may hold dots: prefer a name Envoy has
        named = [n for n in known if base.endswith(".rds." + n)]
        return Ref("route_config", max(named, key=len) if named else base.rsplit(".rds.", 1)[1])
    for prefix, kind in (("sds.", "secret"), ("cluster.", "cluster")):
        if base.startswith(prefix):
            return Ref(kind, base.removeprefix(prefix))
    return Ref("xds_subscription", base)


def _since(stats: Mapping[str, int], name: str) -> tuple[str, ...]:
    """When the last accepted update landed (`update_time`, ms since the epoch), as evidence."""
    ms = stats.get(name.removesuffix("update_rejected") + "update_time", 0)
    if not ms:
        return ()
    return (f"last accepted update {dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec='seconds')}",)


def listener_errors(dump: cd.Json) -> list[tuple[str, str, str]]:
    """(listener, error text, when) of every rejected listener update Envoy keeps in the dump."""
    out = []
    for entry in cd.section(dump, cd.LISTENERS).get("dynamic_listeners") or []:
        state = cd.mapping(cd.mapping(entry).get("error_state"))
        if state:
            name = str(entry.get("name") or cd.mapping(state.get("failed_configuration")).get("name", ""))
            out.append((name, str(state.get("details", "")), str(state.get("last_update_attempt", ""))))
    return out


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    stats = await facts.counters()
    rejected = {name: value for name, value in stats.items() if name.endswith(".update_rejected") and value
                and not name.startswith("extension_config_discovery.")}  # extension-config's: it says what failed
    lds = listener_errors(await facts.dump("listeners"))
    known = {rc for rc, _, _, _ in await facts.routes()} if any(".rds." in n for n in rejected) else set()
    findings = []
    for name, value in sorted(rejected.items()):
        subject = _subject(name, known)
        errors = [f"listener {n}: {text[:300]} (at {when})" for n, text, when in lds] if ".lds" in name else []
        findings.append(Finding(
            DETECTOR.name, Severity.ERROR, subject, f"Envoy rejected {value} update(s): {LAST}",
            "fix the resource istiod sends (its error: get-istiod-proxy-status)",
            (f"{name} {value}", *_since(stats, name), *(f"rejected: {e}" for e in errors[:3]))))
    nacks, why = await facts.istiod_nacks()
    facts.note(DETECTOR.name, why)
    findings += [Finding(DETECTOR.name, Severity.ERROR, Ref("xds_subscription", nack.split(":", 1)[0]),
                         f"istiod recorded a NACK: {nack.split(':', 1)[1].strip()}",
                         "fix the config that produces this resource; Envoy keeps the last accepted version",
                         (f"istiod NACK {nack}",)) for nack in nacks or []]
    return findings


DETECTOR = Detector("rejected-config", "xDS updates rejected (Envoy's update_rejected, istiod's NACKs)", detect,
                    next_tool="get-istiod-proxy-status, get-envoy-stats filter=update_rejected",
                    sources=("envoy", "istiod"), stats=(STATS,))
