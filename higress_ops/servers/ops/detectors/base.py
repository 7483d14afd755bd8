"""What a detector is and what it reports: istioctl analyze's shape (an analyzer per failure class, each
reporting messages with a code, the resource and a fix; the CLI, the webhook and the status writer only select
and render them), applied to one tool call's data.

A detector is data: a name, the heading its findings go under, the tool to call next, and one async function
over the call's `Facts` (facts.py). find-route passes a `Focus` (the objects one request goes through) so a
detector looks at those alone; get-gateway-health and analyze pass none and get the whole gateway.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # facts.py imports the views, which import this package's runner
    from higress_ops.servers.ops.detectors.facts import Facts
    from higress_ops.servers.ops.views.matching import Request


class Severity(enum.IntEnum):
    """Ranked worst first (the lowest value sorts first)."""

    ERROR = 0  # requests fail now, or will at the next change of load
    WARNING = 1  # a risk or a degraded path: some requests fail, or a safety net is off
    INFO = 2  # worth knowing while debugging; nothing fails because of it

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, order=True)
class Ref:
    """An object a finding names. Lower-case kinds are Envoy's (`cluster`, `route`, `virtual_host`,
    `route_config`, `listener`, `filter_chain`, `secret`, `extension_config`); capitalised kinds are the API
    objects behind them (`Ingress`, `Service`, `VirtualService`, `DestinationRule`, `EnvoyFilter`, ...).
    `within` places an object that has no name of its own (route #3 of virtual host x in route config 80)."""

    kind: str
    name: str
    namespace: str = ""
    within: str = ""

    def __str__(self) -> str:
        name = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {name}" + (f" ({self.within})" if self.within else "")


@dataclass(frozen=True)
class Verdict:
    """What a finding means for a request that goes through its subject: the status Envoy answers and the
    machine-readable reason find-route's last line carries (`verdict: 503 upstream_overflow`)."""

    status: int | None  # 0: the connection is reset, no HTTP answer; None: the status the route gives, unchanged
    reason: str

    def replaces(self, status: Any) -> bool:
        """Whether this verdict replaces find-route's own: always a success (a request Envoy fails is never
        called routed), and one of the same status (the cause instead of the symptom: `503 upstream_tls_error`
        for the counters' `503 upstream_connect_failure`, `301 redirect_loop` for `301 redirect`)."""
        return (isinstance(status, int) and 200 <= status < 300) or self.status in (None, status)


@dataclass(frozen=True)
class Finding:
    """One thing wrong, with the object to edit, what is wrong, how it shows, and the fix."""

    detector: str  # the detector's name: one per failure class
    severity: Severity
    subject: Ref  # the object that is wrong (the one to edit, when the finding knows it)
    message: str  # what is wrong, one sentence
    fix: str = ""  # what to change, naming the field or the object
    evidence: tuple[str, ...] = ()  # config values and counters that show it, each `name value`
    related: tuple[Ref, ...] = ()  # the other objects involved: the route that points at a cluster, its Ingress
    code: str = ""  # Istio's analyzer message code where one exists (IST0101 ReferencedResourceNotFound)
    verdict: Verdict | None = None  # what a request through `subject` gets, when the finding decides it

    def key(self) -> tuple[int, str, str]:
        return int(self.severity), self.detector, str(self.subject)

    def refs(self) -> tuple[Ref, ...]:
        return (self.subject, *self.related)

    def line(self) -> str:
        """One line: severity, object, what is wrong, the fix."""
        code = f" {self.code}" if self.code else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.severity}{code}] {self.subject}: {self.message}{fix}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"detector": self.detector, "severity": str(self.severity),
                               "object": str(self.subject), "message": self.message}
        if self.code:
            out["code"] = self.code
        if self.fix:
            out["fix"] = self.fix
        if self.evidence:
            out["evidence"] = list(self.evidence)
        if self.related:
            out["related"] = [str(r) for r in self.related]
        if self.verdict is not None:
            out["verdict"] = {"status": self.verdict.status, "reason": self.verdict.reason}
        return out


@dataclass(frozen=True)
class Focus:
    """The objects one request goes through, as find-route matched them: a detector given a focus looks at these
    alone (and may use the request itself: its headers, its scheme), instead of the whole gateway."""

    request: Request | None = None
    listeners: frozenset[str] = frozenset()  # listener names
    route_configs: frozenset[str] = frozenset()
    virtual_hosts: frozenset[str] = frozenset()  # virtual host names
    routes: frozenset[Ref] = frozenset()  # route_ref(...) of the matched routes
    clusters: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # what one detector leaves for the view
    ports: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)  # find-route's match per port
    sni: str = ""  # the TLS server name the client sends ('' for plaintext)

    def covers(self, ref: Ref) -> bool:
        """Whether a finding about `ref` concerns this request (a rejected xDS subscription concerns all)."""
        if ref.kind in GATEWAY_WIDE:
            return True
        names = {"cluster": self.clusters, "listener": self.listeners, "route_config": self.route_configs,
                 "virtual_host": self.virtual_hosts}.get(ref.kind)
        return ref in self.routes if ref.kind == "route" else names is not None and ref.name in names


GATEWAY_WIDE = frozenset({"xds_subscription"})  # kinds whose findings concern every request


def route_within(route_config: str, virtual_host: str) -> str:
    """How a route's Ref places it (routes have no name Envoy requires)."""
    return f"route config {route_config}, virtual host {virtual_host}"


def route_ref(route_config: str, virtual_host: str, index: int, name: str = "") -> Ref:
    """Route #index of a virtual host; its own name (Higress: the Ingress's `namespace/name`) comes after."""
    return Ref("route", f"#{index}" + (f" {name}" if name else ""), within=route_within(route_config, virtual_host))


Detect = Callable[["Facts", Focus | None], Awaitable[list[Finding]]]


@dataclass(frozen=True)
class Detector:
    """One failure class."""

    name: str  # e.g. `missing-cluster`; the findings' `detector`
    title: str  # the heading get-gateway-health and analyze list its findings under
    detect: Detect
    next_tool: str = ""  # what to call for more about one finding (placeholders: <cluster>, <host>, ...)
    sources: tuple[str, ...] = ("envoy",)  # envoy, istiod, kubernetes: which sources it reads
    # The counters it reads, as /stats filters (RE2, partial match; `<cluster>` stands for the focus's clusters,
    # or any cluster): a call fetches the union of every detector's in one request (Facts.counters).
    stats: tuple[str, ...] = ()
    request_only: bool = False  # about one request alone (no route, no virtual host): not in gateway-wide lists


def in_scope(names: Iterable[str], focus: Focus | None) -> list[str]:
    """The names a detector looks at: the focus's clusters, or every one, sorted."""
    return sorted(n for n in names if focus is None or n in focus.clusters)


def counter(stats: Mapping[str, int], cluster: str, suffix: str) -> int:
    return stats.get(f"cluster.{cluster}.{suffix}", 0)


def cluster_pattern(suffixes: Iterable[str]) -> str:
    """A /stats filter for these counters of the `<cluster>` placeholder (the focus's clusters, or any)."""
    return r"^cluster\.<cluster>\.(" + "|".join(s.replace(".", r"\.") for s in suffixes) + ")$"
