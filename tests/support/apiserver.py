"""A Kubernetes API server test double for one namespace's ConfigMaps, Secrets and Pods, speaking what the
`kubernetes` Python client uses: GET of an object, list (pods by labelSelector), `?watch=true` streaming
chunked JSON lines (ADDED, MODIFIED, DELETED, BOOKMARK, and ERROR with a 410 Status for an expired
resourceVersion), and `pods/{name}/portforward` over WebSocket to the real process behind a pod's port.

Tests change objects (`put`, `delete`), send bookmarks, drop open watches and expire old versions; add pods
(`add_pod`), flip their readiness, and make them vanish with their open port-forwards.

The read-only kinds the ops server's object views use (Ingresses, Services, EndpointSlices, Pods, Events,
WasmPlugins, McpBridges) live in `store` (apiobjects.py: paging, selectors, RBAC refusals as the real server
words them); `store.add(manifest)` puts one there, tests/support/shop.py a whole scenario.

TokenReviews honour audiences as kube-apiserver's service-account authenticator does: a token is good for the
audiences it was minted for (`users[token]["audiences"]`, by default the API server's own), the review asks for
`spec.audiences` (by default the API server's own), and without a common one the answer is authenticated false
with the authenticator's error; with one, `status.audiences` names the common ones. `audience_aware = False`
answers like an authenticator that knows no audiences (a webhook): it ignores them and names none. `review_latency`
delays every TokenReview and SubjectAccessReview, as a loaded API server would (`store.delay`: reads).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.apiobjects import ObjectStore, Refused, status
from tests.support.portforward import PROTOCOL, Forward, accept_key
from tests.support.procs import http_server

KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}
API_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]  # kube-apiserver --api-audiences' usual default


def go_strings(values: list[str]) -> str:
    """A []string as Go's %q prints it, as the API server's error messages do."""
    return "[" + " ".join(json.dumps(v) for v in values) + "]"


@dataclass
class ApiServer:
    port: int = 0
    rv: int = 100
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)  # (kind, ns, name)
    events: list[tuple[int, str, str, dict[str, Any]]] = field(default_factory=list)  # (rv, kind, type, obj)
    oldest: int = 0  # a watch from a version older than this gets 410 Gone
    watches: int = 0  # watch requests served so far
    cond: threading.Condition = field(default_factory=threading.Condition)
    generation: int = 0  # bumped to drop every open watch
    # TokenReview / SubjectAccessReview: token -> user info, and the (user, verb, resource, subresource,
    # namespace) rights granted. Review requests must carry the server's own token, as the real one demands.
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    grants: set[tuple[str, str, str, str, str]] = field(default_factory=set)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    client_token: str = "test-token"
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> Pod object
    pod_ports: dict[str, dict[int, int]] = field(default_factory=dict)  # name -> pod port -> real loopback port
    forwards: dict[str, list[Forward]] = field(default_factory=dict)  # name -> open port-forward streams
    portforwards: int = 0  # port-forward streams opened so far
    pod_lists: int = 0  # pod list requests served so far
    store: ObjectStore = field(default_factory=ObjectStore)  # the read-only kinds (apiobjects.py)
    review_latency: float = 0.0  # seconds each TokenReview and SubjectAccessReview takes
    audience_aware: bool = True
    reviewing: int = 0  # TokenReviews being answered right now
    peak_reviewing: int = 0  # the most at once so far

    def add_pod(self, name: str, labels: dict[str, str], ports: dict[int, int], *, namespace: str = "higress-system",
                ip: str = "127.0.0.1", node: str = "node-a", ready: bool = True,
                annotations: dict[str, str] | None = None) -> None:
        """A running pod whose `ports` (pod port -> loopback port of a real process) port-forward reaches."""
        with self.cond:
            self.rv += 1
            self.pods[name] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations or {},
                             "resourceVersion": str(self.rv), "uid": f"uid-{name}"},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "test"}]},
                "status": {"phase": "Running", "podIP": ip, "startTime": "2026-11-26T10:00:00Z",
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
            self.pod_ports[name] = dict(ports)

    def set_ready(self, name: str, ready: bool) -> None:
        with self.cond:
            self.pods[name]["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]

    def remove_pod(self, name: str) -> None:
        """The pod is gone: no longer listed, and its open port-forward streams end."""
        with self.cond:
            self.pods.pop(name, None)
            self.pod_ports.pop(name, None)
            forwards = self.forwards.pop(name, [])
        for forward in forwards:
            forward.cut()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, kind: str, namespace: str, name: str, data: dict[str, str]) -> int:
        with self.cond:
            self.rv += 1
            key = (kind, namespace, name)
            event = "MODIFIED" if key in self.objects else "ADDED"
            obj = {"apiVersion": "v1", "kind": KINDS[kind],
                   "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(self.rv),
                                "uid": f"uid-{name}"}, "data": data}
            self.objects[key] = obj
            self.events.append((self.rv, kind, event, obj))
            self.cond.notify_all()
            return self.rv

    def delete(self, kind: str, namespace: str, name: str) -> None:
        with self.cond:
            self.rv += 1
            obj = self.objects.pop((kind, namespace, name))
            obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
            self.events.append((self.rv, kind, "DELETED", obj))
            self.cond.notify_all()

    def bookmark(self) -> None:
        with self.cond:
            self.rv += 1
            self.events.append((self.rv, "*", "BOOKMARK", {"kind": "ConfigMap", "apiVersion": "v1",
                                                           "metadata": {"resourceVersion": str(self.rv)}}))
            self.cond.notify_all()

    def expire_history(self) -> None:
        """Compact: every version seen so far is too old to watch from."""
        with self.cond:
            self.rv += 1
            self.oldest = self.rv
            self.cond.notify_all()

    def drop_watches(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}))
        return path


def _handler(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _status(self, code: int, reason: str, message: str) -> dict[str, Any]:
            return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                    "reason": reason, "code": code}

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            segments = parts.path.strip("/").split("/")
            if len(segments) >= 5 and segments[:3] == ["api", "v1", "namespaces"] and segments[4] == "pods":
                self._pods(segments[3], segments[5:], query)
                return
            if segments[:2] == ["api", "v1"] and len(segments) in (5, 6) and segments[4] in ("services", "events"):
                self._object("", "v1", segments[4], segments[3], segments[5:], query)
                return
            if segments[0] == "apis" and len(segments) in (6, 7) and segments[3] == "namespaces":
                self._object(segments[1], segments[2], segments[5], segments[4], segments[6:], query)
                return
            # /api/v1/namespaces/{ns}/{kind}[/{name}]
            if len(segments) < 5 or segments[:3] != ["api", "v1", "namespaces"] or segments[4] not in KINDS:
                self._json(404, self._status(404, "NotFound", "no such path"))
                return
            namespace, kind = segments[3], segments[4]
            if len(segments) == 6:
                obj = api.objects.get((kind, namespace, segments[5]))
                if obj is None:
                    self._json(404, self._status(404, "NotFound", f'{kind} "{segments[5]}" not found'))
                else:
                    self._json(200, obj)
                return
            selector = query.get("fieldSelector", "")
            name = selector.removeprefix("metadata.name=") if selector.startswith("metadata.name=") else None
            if query.get("watch") in ("true", "1", "True"):
                self._watch(kind, namespace, name, query)
                return
            items = [o for (k, ns, n), o in api.objects.items() if k == kind and ns == namespace
                     and (name is None or n == name)]
            self._json(200, {"kind": KINDS[kind] + "List", "apiVersion": "v1",
                             "metadata": {"resourceVersion": str(api.rv)}, "items": items})

        def _object(self, group: str, version: str, plural: str, namespace: str, rest: list[str],
                    query: dict[str, str], extra: list[dict[str, Any]] | None = None) -> None:
            """A read of the store's kinds: 404 for a kind not served, else the store's answer or refusal."""
            time.sleep(api.store.delay)
            if not api.store.serves(group, version, plural):
                self._json(404, status(404, "NotFound", "the server could not find the requested resource", {}))
                return
            try:
                if rest:
                    self._json(200, api.store.get(group, version, plural, namespace, rest[0], extra or ()))
                else:
                    self._json(200, api.store.list(group, version, plural, namespace, query, extra or ()))
            except Refused as refused:
                self._json(refused.code, refused.body)

        def _pods(self, namespace: str, rest: list[str], query: dict[str, str]) -> None:
            with api.cond:
                gateway_pods = [p for p in api.pods.values() if p["metadata"]["namespace"] == namespace]
            if not rest:
                api.pod_lists += 1
                self._object("", "v1", "pods", namespace, [], query, gateway_pods)
                return
            name = rest[0]
            pod = api.pods.get(name)
            if pod is None or pod["metadata"]["namespace"] != namespace or rest[1:] != ["portforward"]:
                self._object("", "v1", "pods", namespace, rest[:1], query, gateway_pods)
                return
            port = int(query.get("ports", "0").split(",")[0] or 0)
            target = api.pod_ports.get(name, {}).get(port)
            if self.headers.get("Upgrade", "").lower() != "websocket" or target is None:
                self._json(400, self._status(400, "BadRequest", f"cannot forward port {port} of pod {name}"))
                return
            self.send_response(101, "Switching Protocols")
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", accept_key(self.headers["Sec-WebSocket-Key"]))
            self.send_header("Sec-WebSocket-Protocol", PROTOCOL)
            self.end_headers()
            self.wfile.flush()
            forward = Forward(self.rfile, self.connection, port, target)
            with api.cond:
                api.portforwards += 1
                api.forwards.setdefault(name, []).append(forward)
            try:
                forward.run()
            finally:
                with api.cond:
                    if forward in api.forwards.get(name, []):
                        api.forwards[name].remove(forward)
                self.close_connection = True

        def _chunk(self, event: dict[str, Any]) -> None:
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, kind: str, namespace: str, name: str | None, query: dict[str, str]) -> None:
            api.watches += 1
            since = int(query.get("resourceVersion") or api.rv)
            timeout = float(query.get("timeoutSeconds") or 300)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            generation = api.generation
            try:
                if since < api.oldest:
                    self._chunk({"type": "ERROR", "object": self._status(
                        410, "Expired", f"too old resource version: {since} ({api.oldest})")})
                else:
                    self._stream(kind, namespace, name, since, timeout, generation)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            if generation != api.generation:
                self.close_connection = True

        def _stream(self, kind: str, namespace: str, name: str | None, since: int, timeout: float,
                    generation: int) -> None:
            sent = since
            with api.cond:
                deadline = timeout
                while deadline > 0 and generation == api.generation:
                    for rv, event_kind, event_type, obj in api.events:
                        if rv <= sent:
                            continue
                        sent = rv
                        if event_type == "BOOKMARK" or (event_kind == kind and obj["metadata"]["namespace"] ==
                                                        namespace and (name is None or
                                                                       obj["metadata"]["name"] == name)):
                            self._chunk({"type": event_type, "object": obj})
                    api.cond.wait(0.2)
                    deadline -= 0.2
            if generation != api.generation:  # dropped: end the connection without the final chunk
                raise ConnectionResetError

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if self.headers.get("Authorization") != f"Bearer {api.client_token}":
                self._json(401, self._status(401, "Unauthorized", "Unauthorized"))
                return
            path = urlsplit(self.path).path
            api.reviews.append({"path": path, "body": body})
            spec = body.get("spec") or {}
            if path == "/apis/authentication.k8s.io/v1/tokenreviews":
                with api.cond:
                    api.reviewing += 1
                    api.peak_reviewing = max(api.peak_reviewing, api.reviewing)
                time.sleep(api.review_latency)
                with api.cond:
                    api.reviewing -= 1
                self._json(201, {**body, "status": _token_status(api, spec)})
            elif path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
                time.sleep(api.review_latency)
                attrs = spec.get("resourceAttributes") or {}
                right = (spec.get("user", ""), attrs.get("verb", ""), attrs.get("resource", ""),
                         attrs.get("subresource") or "", attrs.get("namespace", ""))
                allowed = right in api.grants
                self._json(201, {**body, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC"})}})
            else:
                self._json(404, self._status(404, "NotFound", "no such path"))

        def log_message(self, *args: Any) -> None:
            return None

    return Handler


def _token_status(api: ApiServer, spec: dict[str, Any]) -> dict[str, Any]:
    user = api.users.get(spec.get("token", ""))
    if user is None:
        return {"authenticated": False, "error": "[invalid bearer token, token lookup failed]"}
    info = {k: v for k, v in user.items() if k != "audiences"}
    if not api.audience_aware:
        return {"authenticated": True, "user": info}
    minted_for = user.get("audiences", API_AUDIENCES)
    wanted = spec.get("audiences") or API_AUDIENCES
    common = [a for a in minted_for if a in wanted]
    if not common:
        return {"authenticated": False, "error": f"[invalid bearer token, token audiences {go_strings(minted_for)} "
                                                 f"is invalid for the target audiences {go_strings(wanted)}]"}
    return {"authenticated": True, "user": info, "audiences": common}


@contextmanager
def api_server() -> Iterator[ApiServer]:
    api = ApiServer()
    with http_server(_handler(api)) as api.port:
        try:
            yield api
        finally:
            api.drop_watches()
