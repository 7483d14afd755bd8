"""Annotations that do nothing where they are: on Ingresses, the `higress.io/` and `nginx.ingress.kubernetes.io/`
ones Higress does not read under that prefix (higress_annotations.py), and canary settings Higress ignores; on
Services and Pods, Ingress annotations, and Istio's own annotations as istioctl's annotations.K8sAnalyzer checks
them (IST0108 unknown, IST0107 misplaced, IST0135 deprecated; istio_annotations.py).

An nginx user's annotation that Higress does not support (proxy-body-size, configuration-snippet, auth-url, ...) is
the common case: the Ingress is accepted and routes, and the setting silently is not there.
"""

from __future__ import annotations

from collections.abc import Iterable

from higress_ops.servers.ops.detectors.base import Detector, Finding, Focus, Ref, Severity
from higress_ops.servers.ops.detectors.facts import Facts
from higress_ops.servers.ops.detectors.istio.codes import CODES, quote
from higress_ops.servers.ops.detectors.kube import higress_annotations as ha
from higress_ops.servers.ops.detectors.kube import istio_annotations as ia
from higress_ops.servers.ops.objects.model import KUBERNETES, Ingress, Meta

NAME = "stray-annotations"
INJECT = "sidecar.istio.io/inject"


def _finding(meta: Meta, severity: Severity, message: str, fix: str, code: str = "") -> Finding:
    return Finding(NAME, severity, Ref(meta.kind, meta.name, meta.namespace), message, fix, code=code)


def ingress_findings(ing: Ingress) -> list[Finding]:
    out = []
    notes = ing.meta.annotations
    for k in sorted(notes):
        found = ha.key(k)
        if found is None:
            continue
        prefix, name = found
        if prefix == ha.NGINX and (name in ha.HIGRESS_ONLY or ha.MATCH.match(name)):
            out.append(_finding(ing.meta, Severity.WARNING, f"Higress reads {name} only as {ha.HIGRESS}{name}: {k} "
                                "has no effect", f"rename the annotation to {ha.HIGRESS}{name}"))
        elif prefix == ha.HIGRESS and name in ha.SECRET_ONLY:
            out.append(_finding(ing.meta, Severity.WARNING, f"{k} belongs on a Secret (Higress's certificate manager "
                                "sets it): on an Ingress it has no effect", "remove it from the Ingress"))
        elif not ha.reads(prefix, name):
            out.append(_finding(ing.meta, Severity.WARNING, f"Higress does not read {k}: the Ingress is accepted "
                                "without it", "remove it, or do it the Higress way (a higress.io/ annotation, a "
                                "WasmPlugin, or the higress-config ConfigMap)"))
    out += canary_findings(ing)
    return out


def canary_findings(ing: Ingress) -> list[Finding]:
    """Higress's canary parser: nothing without `canary: "true"`; then header-value, header-pattern and cookie win
    over what follows them, and weight only counts when none of them is set."""
    def value(name: str) -> str:
        return next((ing.meta.annotations[p + name] for p in (ha.NGINX, ha.HIGRESS)
                     if p + name in ing.meta.annotations), "")

    set_ = [n for n in ha.CANARY_BY if value(n)] + (["canary-by-header"] if value("canary-by-header") else [])
    if not set_:
        return []
    if value("canary").lower() != "true":
        return [_finding(ing.meta, Severity.WARNING, f"canary settings ({', '.join(sorted(set_))}) without canary: "
                         "\"true\": Higress ignores them and routes this Ingress as a normal one",
                         "set the canary annotation to \"true\", or remove the canary settings")]
    winner = next((n for n in ha.CANARY_BY[:3] if value(n)), "")
    ignored = [n for n in ha.CANARY_BY[ha.CANARY_BY.index(winner) + 1:] if value(n)] if winner else []
    if not ignored:
        return []
    return [_finding(ing.meta, Severity.WARNING, f"{winner} decides the canary: Higress ignores "
                     f"{', '.join(ignored)} when it is set", f"keep one of {winner}, {', '.join(ignored)}")]


def istio_annotation(k: str) -> bool:
    """istioctl's istioAnnotation: `kubernetes.io/ingress.class`, or a key whose prefix ends in istio.io."""
    return k == "kubernetes.io/ingress.class" or k.split("/")[0].endswith("istio.io")


def object_findings(meta: Meta) -> list[Finding]:
    """A Service's or Pod's annotations."""
    out = []
    for k in sorted(meta.annotations):
        if ha.key(k) is not None:
            out.append(_finding(meta, Severity.WARNING, f"{k} is an Ingress annotation: Higress reads it only on "
                                "Ingresses", "move it to the Ingress that routes to this backend"))
            continue
        if not istio_annotation(k) or k in ia.ALWAYS_IGNORED:
            continue
        known = ia.ANNOTATIONS.get(k)
        if known is None:
            out.append(_finding(meta, Severity.WARNING, CODES["IST0108"].text(k), "remove it or fix its name",
                                "IST0108"))
            continue
        kinds, deprecated = known
        if deprecated and not (k == INJECT and INJECT in meta.labels):
            out.append(_finding(meta, Severity.INFO, CODES["IST0135"].text(quote(k), ia.DEPRECATION_EXTRA.get(k, "")),
                                "use what replaces it (istio.io reference: annotations)", "IST0135"))
        if "Any" not in kinds and meta.kind not in kinds:
            out.append(_finding(meta, Severity.WARNING, CODES["IST0107"].text(k, ", ".join(kinds)),
                                f"set it on the {' or '.join(kinds)} instead", "IST0107"))
    return out


def check(ingresses: Iterable[Ingress], metas: Iterable[Meta]) -> list[Finding]:
    return [f for i in ingresses for f in ingress_findings(i)] + [f for m in metas for f in object_findings(m)]


async def detect(facts: Facts, focus: Focus | None) -> list[Finding]:
    if not facts.objects.namespaces:
        facts.note(NAME, "the Kubernetes API is not read: annotations are not visible")
        return []
    ingresses = [i for i in await facts.objects.ingresses() if i.meta.source == KUBERNETES]
    metas = await facts.objects.objects(("Service", "Pod"))
    return await facts.compute(check, ingresses, metas)


DETECTOR = Detector(NAME, "Annotations that do nothing where they are (Higress's, nginx's, Istio's IST0107, IST0108)",
                    detect, next_tool="what-changed kinds=Ingress", sources=("kubernetes",))
