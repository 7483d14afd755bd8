"""analyze: a lint of the live configuration, like `istioctl analyze` but from the running gateway.

It runs every detector (detectors.ANALYZE: the failure classes find-route and get-gateway-health use, and the
lints of the config behind them) over one call's documents and lists the findings worst first: severity, Istio's
message code where one exists, the object to edit, what is wrong and the fix. The tool pages them so the first
page stays within 2,000 tokens however big the gateway is; the CLI (`higress-ops analyze`) prints them all.

Selection follows istioctl's flags: `severity` is its --output-threshold, `suppress` its --suppress
(`CODE=Kind name`, `*` for any part), `detectors` its --analyzer; resources can also suppress codes with the
`galley.istio.io/analyze-suppress` annotation.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from higress_ops.servers.base import CallContext, ToolResult
from higress_ops.servers.ops import detectors
from higress_ops.servers.ops.detectors import Detector, Facts, Finding, Severity
from higress_ops.servers.ops.detectors.istio import istiod_status
from higress_ops.servers.ops.views import edits
from higress_ops.servers.ops.views.gateway_health import BUDGET_BYTES
from higress_ops.servers.ops.views.source import Source
from higress_ops.servers.ops.views.toolkit import PAGING, S, ViewTool, int_arg, spec

SEVERITIES = ("error", "warning", "info")
DEFAULT_LIMIT = 20
LINE_BYTES = 400  # a finding's line (object, message, fix) is cut here; its evidence line at half that
_SUPPRESS = re.compile(r"^(IST\d{4}|\*|[a-z0-9-]+)=(.+)$")
_CODE = re.compile(r"^IST\d{4}$")


@dataclass(frozen=True)
class Selection:
    """What to run and what to show (validated tool arguments)."""

    severity: Severity = Severity.INFO
    detectors: tuple[Detector, ...] = detectors.ANALYZE
    codes: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    namespace: str = ""
    name: str = ""
    suppress: tuple[tuple[str, str], ...] = ()  # (code or detector or '*', resource glob)
    days: int = 30  # certificates expiring within this many days are findings

    def shows(self, f: Finding) -> bool:
        s = f.subject
        return (f.severity <= self.severity and (not self.codes or f.code in self.codes)
                and (not self.kinds or s.kind.lower() in self.kinds) and (not self.namespace or
                                                                           s.namespace == self.namespace)
                and self.name in s.name and not any(self._suppressed(f, rule) for rule in self.suppress))

    @staticmethod
    def _suppressed(f: Finding, rule: tuple[str, str]) -> bool:
        what, resource = rule
        name = f"{f.subject.namespace}/{f.subject.name}" if f.subject.namespace else f.subject.name
        return what in ("*", f.code, f.detector) and (fnmatch.fnmatchcase(f"{f.subject.kind} {name}", resource)
                                                     or fnmatch.fnmatchcase(f"{f.subject.kind} {f.subject.name}",
                                                                            resource))


def _list(args: Mapping[str, Any], key: str) -> list[str]:
    value = args.get(key, [])
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= 300 for v in value) or len(value) > 50:
        raise ValueError(f"'{key}' must be a list of at most 50 strings (or one comma-separated string)")
    return [v.strip() for v in value]


def selection(args: Mapping[str, Any]) -> Selection:
    """The arguments as a Selection; ValueError names the argument that is wrong."""
    severity = args.get("severity", "info")
    if severity not in SEVERITIES:
        raise ValueError(f"'severity' must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    names = _list(args, "detectors")
    known = {d.name: d for d in detectors.ANALYZE}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; analyze runs: {', '.join(known)}")
    codes = _list(args, "codes")
    if bad := [c for c in codes if not _CODE.match(c)]:
        raise ValueError(f"'codes' takes Istio message codes like IST0101, got {', '.join(bad)}")
    suppress = []
    for rule in _list(args, "suppress"):
        m = _SUPPRESS.match(rule)
        if not m:
            raise ValueError(f"'suppress' rules look like CODE=Kind namespace/name (istioctl's --suppress, '*' for "
                             f"any part, e.g. IST0118=Service shop/*), got {rule!r}")
        suppress.append((m.group(1), m.group(2)))
    for key in ("namespace", "name"):
        if not isinstance(args.get(key, ""), str) or len(args.get(key, "")) > 253:
            raise ValueError(f"'{key}' must be a string of at most 253 characters")
    days = args.get("days", 30)
    if not isinstance(days, int) or isinstance(days, bool) or not 0 <= days <= 3650:
        raise ValueError(f"'days' must be a whole number of days from 0 to 3650, got {days!r}")
    return Selection(Severity[str(severity).upper()], tuple(known[n] for n in names) or detectors.ANALYZE,
                     frozenset(codes), frozenset(k.lower() for k in _list(args, "kinds")),
                     str(args.get("namespace", "")), str(args.get("name", "")), tuple(suppress), days)


@dataclass
class Outcome:
    """Every finding shown, worst first, and what could not be checked."""

    findings: list[Finding]
    ran: int  # detectors run
    skipped: dict[str, str] = field(default_factory=dict)  # detector -> why it did not run
    notes: dict[str, list[str]] = field(default_factory=dict)
    facts: Facts | None = field(default=None, repr=False)
    edits: dict[int, list[str]] = field(default_factory=dict)  # finding index -> the objects to edit (edits.py)

    async def link(self, start: int, end: int) -> None:
        """The objects to edit for findings[start:end] (the page shown: each link may read a cluster's config)."""
        wanted = [i for i in range(start, min(end, len(self.findings))) if i not in self.edits]
        if self.facts is not None and wanted:
            found = await edits.edits([self.findings[i] for i in wanted], self.facts)
            self.edits.update(zip(wanted, found, strict=True))

    def counts(self) -> dict[str, int]:
        return {str(s): sum(f.severity == s for f in self.findings) for s in Severity}

    def worst(self) -> Severity | None:
        return min((f.severity for f in self.findings), default=None)


async def outcome(sel: Selection, src: Source, ctx: CallContext) -> Outcome:
    facts = Facts(src, ctx, days=sel.days)
    report = await detectors.run(facts, None, sel.detectors)
    findings = [f for f in istiod_status.redundant(report.findings) if sel.shows(f)]
    return Outcome(findings, len(sel.detectors), report.skipped, report.notes, facts)


# ---------------------------------------------------------------- rendering

def _cut(text: str, limit: int) -> str:
    return text if len(text.encode()) <= limit else text.encode()[:limit - 3].decode("utf-8", "ignore") + "..."


def finding_lines(f: Finding, edit: Sequence[str] = ()) -> list[str]:
    """The finding's line, one with its evidence and the other objects involved, and the objects to edit."""
    more = [*f.evidence, *(f"see {r}" for r in f.related)]
    return [_cut(f.line(), LINE_BYTES)] + ([_cut("    " + "; ".join(more), LINE_BYTES // 2)] if more else []) + (
        [_cut("    edit: " + "; ".join(edit), LINE_BYTES // 2)] if edit else [])


def summary(out: Outcome) -> str:
    counts = out.counts()
    total = len(out.findings)
    head = (f"analyze: {total} finding(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            if total else "analyze: no problems found") + f" ({out.ran} detectors"
    return head + (f"; {len(out.skipped)} could not run: see the end)" if out.skipped else ")")


def trailer(out: Outcome) -> list[str]:
    reasons: dict[str, list[str]] = {}
    for name, why in sorted(out.skipped.items()):
        reasons.setdefault(why, []).append(name)
    lines = [_cut(f"not checked ({why}): {len(names)} detector(s): {', '.join(names)}", LINE_BYTES)
             for why, names in reasons.items()]
    lines += [_cut(f"note ({name}): {'; '.join(texts)}", LINE_BYTES) for name, texts in sorted(out.notes.items())]
    return lines


def render(out: Outcome, offset: int, limit: int, budget: int = BUDGET_BYTES) -> tuple[str, int]:
    """(text within `budget` bytes, how many findings it shows): fewer findings per page until it fits."""
    total = len(out.findings)
    for n in range(max(limit, 1), 0, -1):
        page = out.findings[offset:offset + n]
        lines = [summary(out)] + [line for i, f in enumerate(page, offset)
                                  for line in finding_lines(f, out.edits.get(i, ()))]
        end = offset + len(page)
        if offset or end < total:
            lines.append(f"[findings {offset + 1 if page else offset}-{end} of {total}"
                         + (f"; next page: offset={end} limit={n}]" if end < total else "]"))
        lines += trailer(out)
        text = "\n".join(lines) + "\n"
        if len(text.encode()) <= budget or n == 1:
            return text, len(page)
    raise AssertionError("unreachable")


def structured(out: Outcome, offset: int, shown: int) -> dict[str, Any]:
    end = offset + shown
    return {"total": len(out.findings), "counts": out.counts(), "offset": offset, "shown": shown,
            "next_offset": end if end < len(out.findings) else None,
            "findings": [{**f.to_json(), **({"edit": out.edits[i]} if out.edits.get(i) else {})}
                         for i, f in enumerate(out.findings[offset:end], offset)],
            "by_detector": _by_detector(out.findings), "not_checked": out.skipped, "notes": out.notes}


def _by_detector(findings: Sequence[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.detector] = out.get(f.detector, 0) + 1
    return out


# ---------------------------------------------------------------- the tool

async def _analyze(args: Mapping[str, Any], src: Source, ctx: CallContext) -> ToolResult:
    sel = selection(args)
    offset, limit = int_arg(args, "offset", 0), int_arg(args, "limit", DEFAULT_LIMIT, 1, 200)
    out = await outcome(sel, src, ctx)
    await out.link(offset, offset + limit)
    text, shown = await anyio.to_thread.run_sync(render, out, offset, limit, min(src.max_bytes, BUDGET_BYTES))
    return ToolResult.text(text, structured=structured(out, offset, shown))


TOOL = ViewTool(spec(
    "analyze",
    "A lint of the live configuration, like istioctl analyze but from the running gateway: every detector over "
    "Envoy, istiod (configz, registryz, endpointz) and the Kubernetes objects when the server reads them. "
    "Findings worst first, each with its severity, Istio's message code where one exists (IST0101, ...), the "
    "object to edit, what is wrong and the fix; the first page stays within 2,000 tokens, offset/limit page on.",
    {"severity": {"type": "string", "enum": list(SEVERITIES), "default": "info",
                  "description": "the least severe findings to show (istioctl --output-threshold)"},
     "detectors": {"type": "array", "items": S, "description": "run only these detectors (their names)"},
     "codes": {"type": "array", "items": S, "description": "only these message codes, e.g. IST0101"},
     "kinds": {"type": "array", "items": S, "description": "only findings about these kinds of object "
                                                               "(VirtualService, Ingress, cluster, ...)"},
     "namespace": {**S, "description": "only objects in this namespace"},
     "name": {**S, "description": "only objects whose name contains this"},
     "suppress": {"type": "array", "items": S, "description": "istioctl --suppress rules: CODE=Kind "
                                                                 "namespace/name, '*' for any part"},
     "days": {"type": "integer", "minimum": 0, "maximum": 3650, "default": 30,
              "description": "certificates expiring within this many days are findings"},
     "offset": PAGING["offset"],
     "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": DEFAULT_LIMIT,
               "description": "Findings per page (fewer when a page would pass 2,000 tokens)."}}), _analyze)
