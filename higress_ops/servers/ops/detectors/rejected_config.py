"""xDS updates this Envoy rejected: it keeps serving the last accepted version of that resource type, so every
other view describes the old config. Evidence from Envoy's `update_rejected` counters and istiod's NACKs."""

from __future__ import annotations

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts

STATS = r"\.update_rejected$"


def _subject(stat: str) -> Ref:
    """The resource the counter belongs to: `http.<prefix>.rds.<route config>.update_rejected` names a route
    configuration; the others a subscription (`cluster_manager.cds`, `listener_manager.lds`)."""
    base = stat.removesuffix(".update_rejected")
    if ".rds." in base:
        return Ref("route_config", base.split(".rds.", 1)[1])
    return Ref("xds_subscription", base)


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    stats = await facts.stats(STATS)
    findings = [Finding("rejected-config", Severity.ERROR, _subject(name),
                        f"Envoy rejected {value} update(s): it answers from the last accepted version",
                        "fix the resource istiod sends (its error: get-istiod-proxy-status)", (f"{name} {value}",))
                for name, value in sorted(stats.items()) if value]
    nacks, why = await facts.istiod_nacks()
    facts.note(DETECTOR.name, why)
    findings += [Finding("rejected-config", Severity.ERROR, Ref("xds_subscription", nack.split(":", 1)[0]),
                         f"istiod recorded a NACK: {nack.split(':', 1)[1].strip()}",
                         "fix the config that produces this resource; Envoy keeps the last accepted version",
                         (f"istiod NACK {nack}",)) for nack in nacks or []]
    return findings


DETECTOR = Detector("rejected-config", "xDS updates rejected (Envoy's update_rejected, istiod's NACKs)", detect,
                    next_tool="get-istiod-proxy-status, get-envoy-stats filter=update_rejected",
                    sources=("envoy", "istiod"))
