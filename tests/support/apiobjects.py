"""The read-only kinds of the API-server double, answered as kube-apiserver answers them.

Facts followed (Kubernetes API concepts, apimachinery's Status and selector grammar, checked against
kubectl's own requests):
- paths `/api/v1/namespaces/NS/{services,pods,events}` and `/apis/GROUP/VERSION/namespaces/NS/PLURAL[/NAME]`;
- a list is `{kind: <Kind>List, apiVersion, metadata: {resourceVersion, continue, remainingItemCount}, items}`,
  items in key order (namespace/name, as etcd returns them); built-in kinds' items carry no kind/apiVersion,
  custom resources' items do;
- `limit` pages with an opaque `continue` token; `labelSelector` takes `=`, `==`, `!=`, `in (...)`,
  `notin (...)`, `key` and `!key`; `fieldSelector` takes `metadata.name`/`metadata.namespace` on every kind plus
  each kind's own fields (events: `type`, `reason`, `involvedObject.*`; pods: `status.phase`, `spec.nodeName`),
  anything else is a 400 `field label not supported`;
- a refused read is a 403 Status whose message names the user, verb, resource and namespace, with
  `details.kind` (the plural) and `details.group`; a missing object a 404 with `details.name`; a kind the
  server does not serve (CRD not installed) a 404 "the server could not find the requested resource".
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# (group, version, plural) -> Kind: the double's discovery.
RESOURCES = {
    ("networking.k8s.io", "v1", "ingresses"): "Ingress",
    ("", "v1", "services"): "Service",
    ("discovery.k8s.io", "v1", "endpointslices"): "EndpointSlice",
    ("", "v1", "pods"): "Pod",
    ("", "v1", "events"): "Event",
    ("extensions.higress.io", "v1alpha1", "wasmplugins"): "WasmPlugin",
    ("networking.higress.io", "v1", "mcpbridges"): "McpBridge",
}
CUSTOM = {"WasmPlugin", "McpBridge"}
_FIELDS = {  # fieldSelector labels each kind supports beyond metadata.name / metadata.namespace
    "Event": ("type", "reason", "reportingComponent", "involvedObject.kind", "involvedObject.name",
              "involvedObject.namespace", "involvedObject.uid", "involvedObject.apiVersion",
              "involvedObject.resourceVersion", "involvedObject.fieldPath"),
    "Pod": ("status.phase", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "status.podIP", "status.nominatedNodeName"),
    "Service": ("spec.clusterIP", "spec.type"),
}
USER = "system:serviceaccount:higress-system:higress-ops"  # who the double's kubeconfig token is


def plural_of(kind: str) -> tuple[str, str, str]:
    for key, name in RESOURCES.items():
        if name == kind:
            return key
    raise KeyError(kind)


def resource_name(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, **({"details": details} if details is not None else {}), "code": code}


class Refused(Exception):
    def __init__(self, code: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.code, self.body = code, body


@dataclass
class Request:
    verb: str  # get, list
    resource: str  # ingresses.networking.k8s.io
    namespace: str
    name: str
    query: dict[str, str]


@dataclass
class ObjectStore:
    """Objects by (group, plural) then (namespace, name). `rights` None lets every read through; a set of
    (verb, resource, namespace) grants exactly those, as an RBAC Role would. `unserved` kinds answer 404."""

    objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = field(default_factory=dict)
    rights: set[tuple[str, str, str]] | None = None
    unserved: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    rv: int = 1000
    delay: float = 0.0  # seconds every read of these kinds takes (a slow API server)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a manifest-shaped object (kind, apiVersion, metadata, spec/...), stamping the metadata the API
        server adds (uid, resourceVersion, creationTimestamp when absent)."""
        obj = copy.deepcopy(obj)
        group, _, plural = plural_of(obj["kind"])
        meta = obj["metadata"]
        self.rv += 1
        meta.setdefault("uid", f"uid-{obj['kind'].lower()}-{meta['namespace']}-{meta['name']}")
        meta.setdefault("creationTimestamp", "2026-11-01T08:00:00Z")
        meta["resourceVersion"] = str(self.rv)
        self.objects.setdefault((group, plural), {})[(meta["namespace"], meta["name"])] = obj
        return obj

    def add_all(self, objs: Iterable[dict[str, Any]]) -> None:
        for obj in objs:
            self.add(obj)

    def remove(self, kind: str, namespace: str, name: str) -> None:
        group, _, plural = plural_of(kind)
        self.objects.get((group, plural), {}).pop((namespace, name), None)

    def grant(self, verb: str, resource: str, namespace: str) -> None:
        if self.rights is None:
            self.rights = set()
        self.rights.add((verb, resource, namespace))

    def items(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        group, _, plural = plural_of(kind)
        found = self.objects.get((group, plural), {})
        return [found[key] for key in sorted(found) if key[0] == namespace]

    # -- answering --------------------------------------------------------------------------------------

    def serves(self, group: str, version: str, plural: str) -> bool:
        kind = RESOURCES.get((group, version, plural))
        return kind is not None and kind not in self.unserved

    def authorize(self, verb: str, group: str, plural: str, namespace: str, name: str = "") -> None:
        resource = resource_name(group, plural)
        self.requests.append(Request(verb, resource, namespace, name, {}))
        if self.rights is None or (verb, resource, namespace) in self.rights:
            return
        what = f'{resource} "{name}"' if name else resource
        details = {"name": name} if name else {}
        details.update({"group": group} if group else {})
        details["kind"] = plural
        raise Refused(403, status(403, "Forbidden", f'{what} is forbidden: User "{USER}" cannot {verb} resource '
                                                    f'"{plural}" in API group "{group}" in the namespace "{namespace}"',
                                  details))

    def get(self, group: str, version: str, plural: str, namespace: str, name: str,
            extra: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
        self.authorize("get", group, plural, namespace, name)
        found = self.objects.get((group, plural), {}).get((namespace, name))
        found = found or next((o for o in extra if o["metadata"]["name"] == name), None)
        if found is None:
            details = {"name": name, **({"group": group} if group else {}), "kind": plural}
            raise Refused(404, status(404, "NotFound", f'{resource_name(group, plural)} "{name}" not found', details))
        return found

    def list(self, group: str, version: str, plural: str, namespace: str, query: dict[str, str],
             extra: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
        """The list answer for `query` (labelSelector, fieldSelector, limit, continue); `extra` are objects
        the caller keeps elsewhere (the gateway pods of the fleet tests)."""
        self.authorize("list", group, plural, namespace)
        self.requests[-1].query = dict(query)
        kind = RESOURCES[(group, version, plural)]
        candidates = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in extra}
        candidates.update(self.objects.get((group, plural), {}))
        labels = parse_labels(query.get("labelSelector", ""))
        fields = parse_fields(kind, query.get("fieldSelector", ""))
        chosen = [candidates[k] for k in sorted(candidates) if k[0] == namespace
                  and selects(labels, candidates[k]["metadata"].get("labels") or {})
                  and all((_field(candidates[k], f) == v) == eq for f, eq, v in fields)]
        start, snapshot = 0, self.rv
        if query.get("continue"):
            try:
                token = json.loads(base64.b64decode(query["continue"]))
                start, snapshot = int(token["start"]), int(token["rv"])
            except (ValueError, KeyError, TypeError):
                raise Refused(400, status(400, "BadRequest", "continue key is not valid: illegal base64 data"
                                          )) from None
        limit = int(query.get("limit") or 0)
        page = chosen[start:start + limit] if limit > 0 else chosen[start:]
        meta: dict[str, Any] = {"resourceVersion": str(snapshot)}
        rest = len(chosen) - start - len(page)
        if limit > 0 and rest > 0:
            meta["continue"] = base64.b64encode(json.dumps({"rv": snapshot, "start": start + limit}).encode()).decode()
            meta["remainingItemCount"] = rest
        items = [o if kind in CUSTOM else {k: v for k, v in o.items() if k not in ("kind", "apiVersion")}
                 for o in page]
        return {"kind": kind + "List", "apiVersion": f"{group}/{version}" if group else version, "metadata": meta,
                "items": items}


# ---------------------------------------------------------------- selectors

_TERM = re.compile(r"\s*([^,(]+(?:\([^)]*\))?)\s*(?:,|$)")
Label = tuple[str, str, tuple[str, ...]]  # (key, operator, values)


def parse_labels(selector: str) -> list[Label]:
    terms: list[Label] = []
    for raw in _TERM.findall(selector):
        term = raw.strip()
        if not term:
            continue
        set_based = re.fullmatch(r"([A-Za-z0-9._/-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if set_based:
            values = tuple(v.strip() for v in set_based.group(3).split(",") if v.strip())
            terms.append((set_based.group(1), set_based.group(2), values))
        elif "!=" in term:
            key, value = term.split("!=", 1)
            terms.append((key.strip(), "!=", (value.strip(),)))
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            terms.append((key.strip(), "=", (value.strip(),)))
        elif term.startswith("!"):
            terms.append((term[1:].strip(), "!", ()))
        else:
            terms.append((term, "exists", ()))
    return terms


def selects(terms: list[Label], labels: dict[str, str]) -> bool:
    for key, op, values in terms:
        value = labels.get(key)
        ok = {"=": value == values[0] if values else False, "!=": value != values[0] if values else True,
              "in": value in values, "notin": value not in values, "exists": key in labels,
              "!": key not in labels}[op]
        if not ok:
            return False
    return True


def parse_fields(kind: str, selector: str) -> list[tuple[str, bool, str]]:
    out = []
    for term in filter(None, (t.strip() for t in selector.split(","))):
        eq = "!=" not in term
        key, value = term.split("!=" if not eq else ("==" if "==" in term else "="), 1)
        key = key.strip()
        if key not in ("metadata.name", "metadata.namespace", *_FIELDS.get(kind, ())):
            raise Refused(400, status(400, "BadRequest", f'Unable to find "{kind}" that match label selector "", '
                                      f'field selector "{selector}": field label not supported: {key}'))
        out.append((key, eq, value.strip()))
    return out


def _field(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)
