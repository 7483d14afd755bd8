"""A real Envoy with one fault per failure class of the detectors, each behind its own route.

The verdict gateway (verdict_envoy.py) covers host health; this one covers what the config gets wrong: a circuit
breaker of one request in front of a slow backend, TLS towards a plaintext backend and the reverse, HTTP/2 towards
an HTTP/1.1-only backend, a route shadowed by an earlier prefix, a route behind header and query conditions,
redirect loops, a direct response, empty clusters, a route configuration served over file-based RDS (so a test
can make Envoy reject an update), a TLS listener with three SNI filter chains (the third serves a certificate
expiring in 5 days, and checks client certificates against a CA from the bootstrap's static secrets), a route
to a cluster that does not exist (its service's cluster is on another port) and a backend that outlier
detection ejects after one 503. Every listener writes an access log with Envoy's response flags, so a test
compares find-route's verdict with what Envoy did, flag and all.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tests.support.envoy import Envoy
from tests.support.istio_envoy import (
    HCM,
    ROUTER,
    T,
    TestCert,
    Upstream,
    _Named,
    b64,
    cluster_of,
    lb_endpoint,
    make_cert,
    path_source,
    upstreams,
    write_xds,
)
from tests.support.procs import free_port

EMPTY = "outbound|80||empty.shop.svc.cluster.local"  # istiod knows endpoints: not delivered to the proxy
NOPODS = "outbound|80||nopods.shop.svc.cluster.local"  # istiod knows none: the Service selects no pods
UPSTREAM_TLS = T + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
DOWNSTREAM_TLS = T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
SECRET = T + "envoy.extensions.transport_sockets.tls.v3.Secret"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
ROUTE_CONFIG = T + "envoy.config.route.v3.RouteConfiguration"
# the path as the client sent it (before a prefix_rewrite), the status, the response flags, the cluster
LOG_FORMAT = "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_CLUSTER%\n"
SNI_NAMES = ("a.example.com", "b.example.com", "pay.example.com")
EXPIRING_DAYS = 5  # the pay chain's certificate (kubernetes://pay-tls)
CLIENT_CA = "pay-client-ca"  # a static secret: the pay chain's validation context
ORDERS_80, ORDERS_8080 = "outbound|80||orders.shop.svc.cluster.local", "outbound|8080||orders.shop.svc.cluster.local"


def _access_log(path: Path) -> list[dict[str, Any]]:
    return [{"name": "envoy.access_loggers.file", "typed_config": {
        "@type": T + "envoy.extensions.access_loggers.file.v3.FileAccessLog", "path": str(path),
        "log_format": {"text_format_source": {"inline_string": LOG_FORMAT}}}}]


def _route(prefix: str, cluster: str, **match: Any) -> dict[str, Any]:
    return {"name": prefix.strip("/"), "match": {"prefix": prefix, **match}, "route": {"cluster": cluster}}


ROUTES: list[dict[str, Any]] = [
    _route("/cb", "cb"),  # max_requests 1 in front of a slow backend: the second concurrent request is 503 UO
    _route("/tls-to-plain", "tls-to-plain"),  # the cluster speaks TLS, the backend plaintext
    _route("/plain-to-tls", "plain-to-tls"),  # the reverse
    _route("/h2", "h2-to-h1"),  # HTTP/2 towards an HTTP/1.1-only backend
    _route("/api", "api-v1"),  # shadows the next route: every /api/v2 request matches /api first
    _route("/api/v2", "api-v2"),
    _route("/hdr", "ok", headers=[{"name": "x-api-version", "string_match": {"exact": "2026-04"}}],
           query_parameters=[{"name": "debug", "present_match": True}]),
    {"name": "loop", "match": {"prefix": "/loop"}, "redirect": {"https_redirect": True}},
    {"name": "self", "match": {"path": "/self"}, "redirect": {"path_redirect": "/self", "response_code": "FOUND"}},
    {"name": "teapot", "match": {"path": "/teapot"},
     "direct_response": {"status": 418, "body": {"inline_string": "I'm a teapot: short and stout"}}},
    _route("/empty", EMPTY),
    _route("/nopods", NOPODS),
    _route("/orders", ORDERS_80),  # the service's cluster is on port 8080: 503 NC
    {"name": "eject", "match": {"prefix": "/eject"}, "route": {"cluster": "outlier", "prefix_rewrite": "/healthz"}},
    _route("/ok", "ok"),
]


def route_config(name: str = "faults") -> dict[str, Any]:
    # validate_clusters false, as Istio sends it: a route to a missing cluster loads and answers 503 NC
    return {"name": name, "validate_clusters": False,
            "virtual_hosts": [{"name": "shop", "domains": ["shop.example.com"], "routes": ROUTES},
                              {"name": "auth", "domains": ["auth.example.com"], "routes": [_route("/", "ok")]}]}


def rds_config(cluster: str = "ok") -> dict[str, Any]:
    """The route configuration served over RDS; `cluster` is where /rds goes in this version."""
    return {"name": "rds-routes", "virtual_hosts": [{"name": "rds", "domains": ["rds.example.com"],
                                                     "routes": [_route("/rds", cluster)]}]}


def _hcm(prefix: str, log: Path, **route: Any) -> dict[str, Any]:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": prefix, "http_filters": [ROUTER], "access_log": _access_log(log), **route}}


def _listener(name: str, port: int, chains: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": chains, **extra}


@dataclass
class FaultGateway:
    envoy: Envoy
    ports: dict[str, int]  # listener name -> port: http, rds, tls
    backends: dict[str, Upstream]
    log: Path  # the access log of every listener: `path status flags cluster` per request
    rds_file: Path
    certs: dict[str, TestCert]  # the TLS listener's, by secret name
    workdir: Path

    @property
    def admin_url(self) -> str:
        return self.envoy.admin_url

    def send(self, path: str, host: str = "shop.example.com", listener: str = "http",
             headers: dict[str, str] | None = None) -> tuple[int, str]:
        """(status, response flags) of GET path as Envoy answered and logged it."""
        before = self._log_lines()
        url = f"http://127.0.0.1:{self.ports[listener]}{path}"
        status = requests.get(url, headers={"host": host, **(headers or {})}, timeout=10,
                              allow_redirects=False).status_code
        return status, self.flags_of(path, before)

    def served_certificate(self, sni: str) -> bytes | None:
        """The certificate (DER) the TLS listener presents for this server name, or None when Envoy resets the
        connection (no filter chain takes it)."""
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        try:
            with socket.create_connection(("127.0.0.1", self.ports["tls"]), timeout=5) as raw, \
                    ctx.wrap_socket(raw, server_hostname=sni) as tls:
                return tls.getpeercert(binary_form=True)
        except (ConnectionResetError, ssl.SSLError):
            return None

    def _log_lines(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def flags_of(self, path: str, after_line: int = 0) -> str:
        """The response flags Envoy logged for the first request to `path` after line `after_line` (Envoy
        flushes its access log on a timer: wait for the line rather than guess)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = self.log.read_text().splitlines()[after_line:] if self.log.exists() else []
            for line in lines:
                logged_path, _, flags, _ = line.split(" ", 3)
                if logged_path == path:
                    return flags
            time.sleep(0.05)
        raise TimeoutError(f"Envoy logged no request to {path}")

    def stat(self, name: str) -> int:
        stats = requests.get(f"{self.admin_url}/stats", params={"format": "json", "filter": f"^{name}$"},
                             timeout=5).json()["stats"]
        return int(next((s["value"] for s in stats if s.get("name") == name), 0))

    def publish_rds(self, config: dict[str, Any]) -> None:
        """A new RDS version, moved into place as file-based xDS needs (Envoy watches the rename)."""
        tmp = self.rds_file.with_suffix(".tmp")
        version = str(time.monotonic_ns())
        tmp.write_text(json.dumps({"version_info": version, "resources": [{"@type": ROUTE_CONFIG, **config}]}))
        os.replace(tmp, self.rds_file)


def _tls_backend(cert: TestCert, workdir: Path, name: str) -> ThreadingHTTPServer:
    """An HTTPS-only backend: plaintext requests towards it fail the TLS handshake on its side."""
    (workdir / f"{name}.crt").write_text(cert.cert_pem)
    (workdir / f"{name}.key").write_text(cert.key_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(workdir / f"{name}.crt", workdir / f"{name}.key")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
    server.daemon_threads = True
    server.name = name  # type: ignore[attr-defined]
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _sds_chain(workdir: Path, secret: str, cert: TestCert, sni: str, log: Path, ca: str = "") -> dict[str, Any]:
    """A chain serving `secret` over SDS for `sni`; `ca` names a static secret that checks client certificates
    (a validation context without sds_config is looked up in static_resources.secrets)."""
    sds = write_xds(workdir / f"sds-{sni}.json", SECRET, [{"name": secret, "tls_certificate": {
        "certificate_chain": {"inline_bytes": b64(cert.cert_pem)},
        "private_key": {"inline_bytes": b64(cert.key_pem)}}}])
    tls: dict[str, Any] = {"tls_certificate_sds_secret_configs": [{"name": secret, "sds_config": path_source(sds)}]}
    if ca:
        tls["validation_context_sds_secret_config"] = {"name": ca}
    return {"filter_chain_match": {"server_names": [sni]},
            "transport_socket": {"name": "envoy.transport_sockets.tls", "typed_config": {
                "@type": DOWNSTREAM_TLS, "common_tls_context": tls}},
            "filters": [_hcm("tls", log, route_config=route_config("tls-routes"))]}


@contextmanager
def fault_gateway(workdir: Path) -> Iterator[FaultGateway]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "access.log"
    with upstreams("ok", "slow", "plain", "api-v1", "api-v2", "sick", delay={"slow": 1.5},
                   healthz={"sick": 503}) as ups:
        tls_cert = make_cert("backend.local", sans=("backend.local",))
        tls_backend = _tls_backend(tls_cert, workdir, "tls-backend")
        ports = {name: free_port() for name in ("http", "rds", "tls")}
        tls_port = int(tls_backend.server_address[1])
        clusters = [
            cluster_of("ok", [lb_endpoint(ups["ok"].port)]),
            cluster_of("api-v1", [lb_endpoint(ups["api-v1"].port)]),
            cluster_of("api-v2", [lb_endpoint(ups["api-v2"].port)]),
            cluster_of("cb", [lb_endpoint(ups["slow"].port)], circuit_breakers={"thresholds": [
                {"max_requests": 1, "max_pending_requests": 1, "max_retries": 0}]}),
            cluster_of("tls-to-plain", [lb_endpoint(ups["plain"].port)], transport_socket={
                "name": "envoy.transport_sockets.tls", "typed_config": {
                    "@type": UPSTREAM_TLS, "sni": "plain.shop.svc.cluster.local",
                    "common_tls_context": {"alpn_protocols": ["h2", "http/1.1"]}}}),
            cluster_of("plain-to-tls", [lb_endpoint(tls_port)]),
            cluster_of("h2-to-h1", [lb_endpoint(ups["plain"].port)], typed_extension_protocol_options={
                HTTP_OPTIONS: {"@type": T + HTTP_OPTIONS, "explicit_http_config": {"http2_protocol_options": {}}}}),
            cluster_of(EMPTY, []),
            cluster_of(NOPODS, []),
            cluster_of(ORDERS_8080, [lb_endpoint(ups["ok"].port)]),
            cluster_of("outlier", [lb_endpoint(ups["sick"].port)], outlier_detection={
                "consecutive_5xx": 1, "base_ejection_time": "300s", "max_ejection_percent": 100}),
        ]
        rds_file = workdir / "rds.json"
        certs = {f"kubernetes://{sni.split('.')[0]}-tls": make_cert(
            sni, sans=(sni,), days_valid=EXPIRING_DAYS + 1 if sni.startswith("pay.") else 90) for sni in SNI_NAMES}
        certs[CLIENT_CA] = make_cert("Pay Client CA", days_valid=3650, is_ca=True)
        listeners = [
            _listener("http", ports["http"], [{"filters": [_hcm("http", log, route_config=route_config())]}]),
            _listener("rds", ports["rds"], [{"filters": [_hcm("rds", log, rds={
                "route_config_name": "rds-routes", "config_source": path_source(rds_file)})]}]),
            _listener("tls", ports["tls"], [_sds_chain(workdir, f"kubernetes://{sni.split('.')[0]}-tls",
                                                       certs[f"kubernetes://{sni.split('.')[0]}-tls"], sni, log,
                                                       CLIENT_CA if sni.startswith("pay.") else "")
                                            for sni in SNI_NAMES],
                      listener_filters=[{"name": "envoy.filters.listener.tls_inspector", "typed_config": {
                          "@type": T + "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"}}]),
        ]
        static_ca = {"name": CLIENT_CA, "validation_context": {"trusted_ca": {
            "inline_bytes": b64(certs[CLIENT_CA].cert_pem)}}}
        gw = FaultGateway(Envoy({"node": {"id": "faults", "cluster": "faults"},
                                 "static_resources": {"clusters": clusters, "listeners": listeners,
                                                      "secrets": [static_ca]}}, workdir,
                                args=("--file-flush-interval-msec", "20")),
                          ports, ups, log, rds_file, certs, workdir)
        gw.publish_rds(rds_config())
        gw.envoy.start()
        try:
            yield gw
        finally:
            gw.envoy.stop()
            tls_backend.shutdown()
            tls_backend.server_close()
