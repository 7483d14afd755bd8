"""A Kubernetes API server test double for one namespace's ConfigMaps and Secrets, speaking what the
`kubernetes` Python client uses: GET of an object, list, and `?watch=true` streaming chunked JSON lines
(ADDED, MODIFIED, DELETED, BOOKMARK, and ERROR with a 410 Status for an expired resourceVersion).

Tests change objects (`put`, `delete`), send bookmarks, drop open watches and expire old versions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}


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
                user = api.users.get(spec.get("token", ""))
                status = {"authenticated": True, "user": user} if user else {"authenticated": False,
                                                                             "error": "invalid bearer token"}
                self._json(201, {**body, "status": status})
            elif path == "/apis/authorization.k8s.io/v1/subjectaccessreviews":
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


@contextmanager
def api_server() -> Iterator[ApiServer]:
    api = ApiServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.port = int(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield api
    finally:
        api.drop_watches()
        server.shutdown()
        server.server_close()
