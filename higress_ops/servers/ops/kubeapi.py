"""The third upstream: the Kubernetes API, read-only, for the objects behind Envoy's config (Ingresses,
Services, EndpointSlices, Pods, Higress's WasmPlugins and McpBridges, Warning events).

Only GET, only the kinds of `KINDS`, only the namespaces of the server config's `kubernetes.namespaces`; never a
Secret (certificates come from Envoy, a Secret is named from the Ingress that references it). Lists are paged
(`limit`/`continue`) and stop at `maxObjects`, saying so; every answer, refusals included, is kept `cacheSeconds`
and shared by concurrent calls, so a burst of tool calls costs one request per list. The kubernetes client blocks,
so each request runs in a worker thread (as targets.py lists pods); the JSON is parsed with orjson, never into
the client's models (500 Ingresses, 538 KB: 4.4 ms against 134 ms, docs/views.md).

A refusal names the right that is missing, from the API server's 403 Status (`details.kind`/`group`), so a tool
can say "grant list ingresses.networking.k8s.io in shop" and go on with what istiod knows.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from higress_ops import jsonfast, kube
from higress_ops.metrics import observe_upstream
from higress_ops.servers.ops.upstream import UpstreamError

DEFAULT_TTL = 5.0
DEFAULT_MAX_OBJECTS = 2000
PAGE = 500  # objects per list request
CACHED_LISTS = 512  # distinct (kind, namespace, selectors) answers kept


@dataclass(frozen=True)
class Kind:
    """One kind this server reads: where the API serves it and the RBAC resource that grants it."""

    name: str
    group: str  # "" for the core group
    version: str
    plural: str
    verbs: tuple[str, ...] = ("list",)  # what this server does with it: deploy/rbac grants exactly these

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """As RBAC and kubectl name it: `ingresses.networking.k8s.io`, `services`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str, name: str = "") -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{root}/namespaces/{quote(namespace, safe='')}/{self.plural}" + (f"/{quote(name, safe='')}"
                                                                                if name else "")


KINDS: Mapping[str, Kind] = {k.name: k for k in (
    Kind("Ingress", "networking.k8s.io", "v1", "ingresses"),
    Kind("Service", "", "v1", "services", ("get", "list")),
    Kind("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices"),
    Kind("Pod", "", "v1", "pods"),
    Kind("Event", "", "v1", "events"),
    Kind("WasmPlugin", "extensions.higress.io", "v1alpha1", "wasmplugins"),
    Kind("McpBridge", "networking.higress.io", "v1", "mcpbridges"),
)}


class KubeError(UpstreamError):
    """The API could not answer one read; the other sources still can."""


class NotConfigured(KubeError):
    """The server config names no namespaces to read (or not this one)."""


class Forbidden(KubeError):
    """The API server refused: `verb resource` in `namespace` is the right to grant, named from the 403 Status
    (`details.kind` is the resource's plural, `details.group` its API group; the message names the user)."""

    def __init__(self, verb: str, kind: Kind, namespace: str, status: Mapping[str, Any]) -> None:
        details: Mapping[str, Any] = status["details"] if isinstance(status.get("details"), Mapping) else {}
        plural, group = str(details.get("kind") or kind.plural), str(details.get("group") or "")
        self.verb, self.namespace = verb, namespace
        self.resource = f"{plural}.{group}" if group else (plural if plural != kind.plural else kind.resource)
        said = str(status.get("message") or "")
        user = re.search(r'User "([^"]{1,253})"', said)
        who = f" as {user.group(1)}" if user else f" ({said[:200]})" if said else ""
        super().__init__(f"forbidden to {self.right}{who}: grant it to the server's ServiceAccount (deploy/rbac, "
                         "docs/security.md)", "forbidden")

    @property
    def right(self) -> str:
        return f"{self.verb} {self.resource} in namespace {self.namespace}"


class NotServed(KubeError):
    """The API server does not serve the kind: its CRD is not installed (a gateway without Higress's CRDs)."""


@dataclass(frozen=True)
class Listed:
    """One list answer: the items (JSON objects as the API server sent them) and whether the list was cut."""

    kind: str
    namespace: str
    items: tuple[Mapping[str, Any], ...]
    cut: bool = False  # more objects exist than maxObjects
    resource_version: str = ""


Answer = Listed | Mapping[str, Any] | None | KubeError
Query = list[tuple[str, str]]


class KubeApi:
    """Read-only, bounded, cached reads of `KINDS` in the configured namespaces."""

    def __init__(self, config: Mapping[str, Any], *, timeout: float) -> None:
        block: Mapping[str, Any] = config.get("kubernetes") or {}
        self.namespaces: tuple[str, ...] = tuple(str(n) for n in block.get("namespaces") or ())
        self.ttl = float(block.get("cacheSeconds", DEFAULT_TTL))
        self.max_objects = int(block.get("maxObjects", DEFAULT_MAX_OBJECTS))
        self.timeout = timeout
        self.requests = 0  # API requests sent (the bench and the tests count them)
        self._cache: OrderedDict[tuple[str, ...], tuple[float, Answer]] = OrderedDict()
        self._inflight: dict[tuple[str, ...], asyncio.Future[Answer]] = {}

    @property
    def configured(self) -> bool:
        return bool(self.namespaces)

    def _check(self, kind: str, namespace: str, verb: str = "list") -> Kind:
        if kind not in KINDS:
            raise ValueError(f"not a kind this server reads: {kind!r} (one of {', '.join(KINDS)})")
        if verb not in KINDS[kind].verbs:  # the RBAC of deploy/ grants exactly KINDS' verbs
            allowed = ", ".join(KINDS[kind].verbs)
            raise ValueError(f"this server does not {verb} {KINDS[kind].resource} (only {allowed})")
        if not self.namespaces:
            raise NotConfigured("the Kubernetes API is not read: the server config has no kubernetes.namespaces "
                                "(docs/config.md)", "not_configured")
        if namespace not in self.namespaces:
            raise NotConfigured(f"namespace {namespace} is not in kubernetes.namespaces "
                                f"({', '.join(self.namespaces)}): its objects are not read", "not_configured")
        return KINDS[kind]

    async def list(self, kind: str, namespace: str, *, labels: str = "", fields: str = "") -> Listed:
        """Every object of `kind` in `namespace` matching the selectors, at most maxObjects of them."""
        k = self._check(kind, namespace)
        answer = await self._cached(("list", kind, namespace, labels, fields),
                                    lambda: self._list(k, namespace, labels, fields))
        if isinstance(answer, KubeError):
            raise answer
        assert isinstance(answer, Listed)
        return answer

    async def get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """One object, or None when it does not exist."""
        k = self._check(kind, namespace, "get")
        answer = await self._cached(("get", kind, namespace, name), lambda: self._get(k, namespace, name))
        if isinstance(answer, KubeError):
            raise answer
        assert answer is None or isinstance(answer, Mapping)
        return answer

    async def _cached(self, key: tuple[str, ...], read: Any) -> Answer:
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(key)
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:  # another call is reading it right now: share its answer
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            try:
                answer: Answer = await asyncio.to_thread(read)
            except KubeError as exc:
                answer = exc
            future.set_result(answer)
        except BaseException as exc:  # cancelled, or a bug: waiters get the same
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            del self._inflight[key]
        self._cache[key] = (time.monotonic() + self.ttl, answer)
        while len(self._cache) > CACHED_LISTS:
            self._cache.popitem(last=False)
        return answer

    # -- in a worker thread -----------------------------------------------------------------------------

    def _list(self, kind: Kind, namespace: str, labels: str, fields: str) -> Listed:
        items: list[Mapping[str, Any]] = []
        token, version = "", ""
        while True:
            query: Query = [("limit", str(min(PAGE, self.max_objects - len(items))))]
            query += [("labelSelector", labels)] if labels else []
            query += [("fieldSelector", fields)] if fields else []
            query += [("continue", token)] if token else []
            body = self._request("list", kind, namespace, "", query)
            if body is None:
                return Listed(kind.name, namespace, ())
            page = [i for i in body.get("items") or [] if isinstance(i, Mapping)]
            meta: Mapping[str, Any] = body["metadata"] if isinstance(body.get("metadata"), Mapping) else {}
            version = version or str(meta.get("resourceVersion", ""))
            token = str(meta.get("continue") or "")
            for item in page:  # a list's items carry no kind/apiVersion of their own
                items.append({"kind": kind.name, "apiVersion": kind.api_version, **item})
            if not token:
                return Listed(kind.name, namespace, tuple(items), False, version)
            if len(items) >= self.max_objects:
                return Listed(kind.name, namespace, tuple(items[:self.max_objects]), True, version)

    def _get(self, kind: Kind, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._request("get", kind, namespace, name, [])

    def _request(self, verb: str, kind: Kind, namespace: str, name: str,
                 query: Query) -> Mapping[str, Any] | None:
        started = time.perf_counter()
        try:
            answer = self._answer(verb, kind, namespace, name, query)
        except KubeError as exc:
            observe_upstream("kubernetes", kind.resource, time.perf_counter() - started, exc.reason)
            raise
        observe_upstream("kubernetes", kind.resource, time.perf_counter() - started)
        return answer

    def _answer(self, verb: str, kind: Kind, namespace: str, name: str,
                query: Query) -> Mapping[str, Any] | None:
        what = f"{verb} {kind.resource} in namespace {namespace}"
        try:
            client = kube.core_api().api_client
            method, url, headers, _, _ = client.param_serialize(
                "GET", kind.path(namespace, name), query_params=query, header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"])
            self.requests += 1
            response = client.call_api(method, url, headers, _request_timeout=(5, self.timeout))
            data = response.read()
        except Exception as exc:  # no kubeconfig, API server unreachable, TLS: the reads cannot happen at all
            raise KubeError(f"cannot {what} through the Kubernetes API ({_why(exc)})", "unreachable") from None
        status = int(response.status)
        try:
            body = jsonfast.loads(data) if data else {}
        except ValueError:
            body = {}
        said = str(body.get("message", "")) if isinstance(body, Mapping) else ""
        if status == 200 and isinstance(body, Mapping):
            return body
        if status == 404 and name and isinstance(body, Mapping) and body.get("details", {}).get("name") == name:
            return None  # the object does not exist: an answer, not an error
        if status == 404:
            raise NotServed(f"the API server does not serve {kind.resource} ({kind.api_version}): "
                            f"{said or 'not found'}; is its CRD installed?", "not_served")
        if status == 403:
            raise Forbidden(verb, kind, namespace, body if isinstance(body, Mapping) else {})
        if status == 401:
            raise KubeError(f"the API server refused the server's credentials (401) for {what}: {said}",
                            "unauthorized")
        raise KubeError(f"the API server answered {status} for {what}: {said or data[:160]!r}", "error")


def _why(exc: Exception) -> str:
    """A short cause: the client's messages carry whole URLs and nested reprs."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "certificate verify failed",
                   "Connection reset", "No route to host", "Invalid kube-config", "Service host/port is not set"):
        if marker in text:
            return marker
    return type(exc).__name__ + (f": {text.splitlines()[0][:120]}" if text and "://" not in text else "")
