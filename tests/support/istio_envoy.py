"""A real Envoy whose config dump looks like what istiod pushes to a Higress/Istio gateway.

Dynamic resources come from file-based xDS (path_config_source), so the dump has the same sections an
istiod-fed proxy has: dynamic_active_clusters, dynamic_listeners, dynamic_route_configs, EDS endpoints and
dynamic_active_secrets, plus the static clusters and listeners Istio's bootstrap adds. Each upstream is a
tiny HTTP server that answers with its own name, so a test can see which cluster Envoy really used.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.envoy import Envoy
from tests.support.procs import free_port

T = "type.googleapis.com/"
HCM = T + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP = T + "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
ROUTER = {"name": "envoy.filters.http.router",
          "typed_config": {"@type": T + "envoy.extensions.filters.http.router.v3.Router"}}


def istio_meta(kind: str, ns: str, name: str, version: str = "v1") -> dict[str, Any]:
    path = f"/apis/networking.istio.io/{version}/namespaces/{ns}/{kind}/{name}"
    return {"filter_metadata": {"istio": {"config": path}}}


# ---------------------------------------------------------------- certificates

@dataclass
class TestCert:
    cert_pem: str
    key_pem: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    is_ca: bool
    subject: str
    sans: tuple[str, ...]


def make_cert(cn: str, *, days_valid: int = 90, days_ago: int = 1, sans: tuple[str, ...] = (), is_ca: bool = False,
              serial: int | None = None, uris: tuple[str, ...] = ()) -> TestCert:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    not_before = now - dt.timedelta(days=days_ago)
    not_after = not_before + dt.timedelta(days=days_valid)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "test")])
    serial = serial if serial is not None else x509.random_serial_number()
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(serial).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    if sans or uris:
        names = [x509.DNSName(s) for s in sans] + [x509.UniformResourceIdentifier(u) for u in uris]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return TestCert(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode(),
        serial=serial, not_before=not_before, not_after=not_after, is_ca=is_ca, subject=f"CN={cn},O=test", sans=sans,
    )


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# ---------------------------------------------------------------- upstreams

class _Named(BaseHTTPRequestHandler):
    """Answers with the server's name; `/healthz` with the server's `healthz` status (and Envoy's immediate
    health-check failure header when `draining`); `delay` seconds late."""

    def do_GET(self) -> None:
        body = self.server.name.encode()  # type: ignore[attr-defined]
        status = getattr(self.server, "healthz", 200) if self.path == "/healthz" else 200
        time.sleep(getattr(self.server, "delay", 0.0) if self.path != "/healthz" else 0.0)
        self.send_response(status)
        if self.path == "/healthz" and getattr(self.server, "draining", False):
            self.send_header("x-envoy-immediate-health-check-fail", "true")
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # Envoy gave up first (route timeout)
            self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        return None


@dataclass
class Upstream:
    name: str
    port: int
    server: ThreadingHTTPServer


@contextmanager
def upstreams(*names: str, healthz: Mapping[str, int] | None = None, delay: Mapping[str, float] | None = None,
              draining: tuple[str, ...] = (), hosts: Mapping[str, str] | None = None) -> Iterator[dict[str, Upstream]]:
    """HTTP servers on loopback, each answering every request with its own name (and `/healthz` with the
    status `healthz` gives it, 200 by default; `delay` holds answers back, for timeouts). `hosts` binds some to
    another loopback address (127.0.0.11: a pod IP of tests/support/shop.py)."""
    started: dict[str, Upstream] = {}
    try:
        for name in names:
            server = ThreadingHTTPServer(((hosts or {}).get(name, "127.0.0.1"), 0), _Named)
            server.daemon_threads = True
            server.name = name  # type: ignore[attr-defined]
            server.healthz = (healthz or {}).get(name, 200)  # type: ignore[attr-defined]
            server.delay = (delay or {}).get(name, 0.0)  # type: ignore[attr-defined]
            server.draining = name in draining  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            started[name] = Upstream(name, server.server_address[1], server)
        yield started
    finally:
        for up in started.values():
            up.server.shutdown()
            up.server.server_close()


# ---------------------------------------------------------------- the gateway

def _ep(port: int, health: str | None = None, host: str = "127.0.0.1") -> dict[str, Any]:
    ep: dict[str, Any] = {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
    if health:
        ep["health_status"] = health
    return ep


lb_endpoint = _ep  # public names for other gateways built from the same parts (verdict_envoy.py)


def path_source(path: Path) -> dict[str, Any]:
    return {"path_config_source": {"path": str(path)}, "resource_api_version": "V3"}


def write_xds(path: Path, type_url: str, resources: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"version_info": "1", "resources": [{"@type": type_url, **r} for r in resources]}))
    return path


@dataclass
class IstioGateway:
    """Names of what the gateway holds, for tests to write expectations from."""

    envoy: Envoy
    http_port: int
    tls_port: int
    tcp_port: int
    ups: dict[str, Upstream]
    certs: dict[str, TestCert] = field(default_factory=dict)

    @property
    def admin_url(self) -> str:
        return self.envoy.admin_url


HTTPBIN = "outbound|8000||httpbin.default.svc.cluster.local"
REVIEWS_V1 = "outbound|9080|v1|reviews.bookinfo.svc.cluster.local"
REVIEWS_V2 = "outbound|9080|v2|reviews.bookinfo.svc.cluster.local"
BROKEN = "outbound|80||broken.default.svc.cluster.local"
INBOUND = "inbound|8080||"
ECHO_TCP = "outbound|3306||mysql.db.svc.cluster.local"
PENDING = "kubernetes://pending-credential"
UPSTREAM_NAMES = ("httpbin", "reviews-v1", "reviews-v2", "mysql", "wild", "api")
WILD = "outbound|80||wild.default.svc.cluster.local"
API = "outbound|80||api.default.svc.cluster.local"


def route_configuration() -> dict[str, Any]:
    """http.80: several virtual hosts with Istio domain lists and route metadata."""
    def route(match: dict[str, Any], cluster: str, vs: str | None, ns: str = "default", **extra: Any) -> dict[str, Any]:
        r: dict[str, Any] = {"match": match, "route": {"cluster": cluster, "timeout": "0s"}, **extra}
        if vs:
            r["metadata"] = istio_meta("virtual-service", ns, vs)
        return r

    return {
        "name": "http.80",
        "virtual_hosts": [
            {"name": "httpbin.example.com:80", "domains": ["httpbin.example.com", "httpbin.example.com:80"],
             "routes": [
                 route({"prefix": "/get", "case_sensitive": True}, HTTPBIN, "httpbin"),
                 route({"path": "/status/418"}, BROKEN, "httpbin"),
                 route({"safe_regex": {"regex": "/anything/[0-9]+"}}, API, "httpbin"),
             ]},
            {"name": "reviews.bookinfo.svc.cluster.local:80",
             "domains": ["reviews.bookinfo.svc.cluster.local", "reviews.bookinfo.svc.cluster.local:80",
                         "reviews", "reviews:80", "reviews.bookinfo.svc", "reviews.bookinfo.svc:80",
                         "reviews.bookinfo", "reviews.bookinfo:80", "10.96.1.7", "10.96.1.7:80"],
             "routes": [
                 route({"prefix": "/", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
                       REVIEWS_V2, "reviews", "bookinfo"),
                 route({"prefix": "/", "headers": [{"name": "x-canary", "present_match": True}]},
                       REVIEWS_V2, "reviews", "bookinfo"),
                 route({"prefix": "/"}, REVIEWS_V1, "reviews", "bookinfo"),
             ]},
            {"name": "wild:80", "domains": ["*.wild.example.com"],
             "routes": [route({"prefix": "/"}, WILD, "wild")]},
            {"name": "api-prefix:80", "domains": ["api.*"],
             "routes": [route({"prefix": "/v1", "headers": [
                 {"name": ":method", "string_match": {"exact": "POST"}}]}, API, "api"),
                 route({"prefix": "/v1", "headers": [
                     {"name": "x-debug", "string_match": {"exact": "1"}, "invert_match": True}]}, HTTPBIN, "api")]},
            {"name": "empty:80", "domains": ["empty.example.com"], "routes": []},
            {"name": "allow_any", "domains": ["*"],
             "routes": [{"name": "allow_any", "match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}}]},
        ],
    }


def _cluster(name: str, endpoints: list[dict[str, Any]], metadata: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "type": "STATIC", "connect_timeout": "1s",
                         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]}, **extra}
    if metadata:
        c["metadata"] = metadata
    return c


cluster_of = _cluster


@contextmanager
def istio_gateway(workdir: Path) -> Iterator[IstioGateway]:
    """Start the gateway Envoy (and its upstreams); stop both afterwards."""
    workdir.mkdir(parents=True, exist_ok=True)
    with upstreams(*UPSTREAM_NAMES) as ups:
        http_port, tls_port, tcp_port = free_port(), free_port(), free_port()
        certs = {
            "kubernetes://httpbin-credential": make_cert("httpbin.example.com", sans=("httpbin.example.com",
                                                                                    "*.httpbin.example.com")),
            "kubernetes://httpbin-credential-cacert": make_cert("Test Root CA", days_valid=3650, is_ca=True),
            "kubernetes://expiring-credential": make_cert("expiring.example.com", days_valid=11, days_ago=1,
                                                          sans=("expiring.example.com",)),
        }
        secret_type = T + "envoy.extensions.transport_sockets.tls.v3.Secret"

        def tls_secret(name: str) -> dict[str, Any]:
            return {"name": name, "tls_certificate": {
                "certificate_chain": {"inline_bytes": b64(certs[name].cert_pem)},
                "private_key": {"inline_bytes": b64(certs[name].key_pem)}}}

        ca_name = "kubernetes://httpbin-credential-cacert"
        sds_files = {
            name: write_xds(workdir / f"sds-{i}.json", secret_type, [
                {"name": name, "validation_context": {"trusted_ca": {"inline_bytes": b64(certs[name].cert_pem)}}}
                if name == ca_name else tls_secret(name)])
            for i, name in enumerate(certs)
        }
        # SDS takes one secret per response: a file with two never becomes active, so it stays warming.
        sds_files[PENDING] = write_xds(workdir / "sds-pending.json", secret_type, [
            tls_secret("kubernetes://httpbin-credential"), tls_secret("kubernetes://expiring-credential")])
        eds_file = write_xds(workdir / "eds.json", T + "envoy.config.endpoint.v3.ClusterLoadAssignment", [
            {"cluster_name": HTTPBIN, "endpoints": [{
                "locality": {"region": "r1", "zone": "z1"},
                "lb_endpoints": [_ep(ups["httpbin"].port, "HEALTHY"), _ep(1, "UNHEALTHY", "127.0.0.2")]}]},
        ])
        dr = istio_meta("destination-rule", "bookinfo", "reviews")
        cds_file = write_xds(workdir / "cds.json", T + "envoy.config.cluster.v3.Cluster", [
            {"name": HTTPBIN, "type": "EDS", "connect_timeout": "1s",
             "eds_cluster_config": {"service_name": HTTPBIN, "eds_config": path_source(eds_file)}},
            _cluster(REVIEWS_V1, [_ep(ups["reviews-v1"].port, "HEALTHY")], dr),
            _cluster(REVIEWS_V2, [_ep(ups["reviews-v2"].port)], dr),
            _cluster(BROKEN, [_ep(free_port(), "UNHEALTHY"), _ep(free_port(), "DRAINING", "127.0.0.3")]),
            _cluster(WILD, [_ep(ups["wild"].port)]),
            _cluster(API, [_ep(ups["api"].port)]),
            _cluster(ECHO_TCP, [_ep(ups["mysql"].port)]),
            _cluster(INBOUND, [_ep(ups["httpbin"].port)]),
        ])
        rds_file = write_xds(workdir / "rds.json", T + "envoy.config.route.v3.RouteConfiguration",
                             [route_configuration()])

        def hcm(prefix: str) -> dict[str, Any]:
            return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": prefix, "http_filters": [ROUTER],
                "rds": {"route_config_name": "http.80", "config_source": path_source(rds_file)}}}

        tls_socket = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificate_sds_secret_configs": [
                    {"name": name, "sds_config": path_source(sds_files[name])}
                    for name in ("kubernetes://httpbin-credential", "kubernetes://expiring-credential", PENDING)],
                "validation_context_sds_secret_config": {
                    "name": ca_name, "sds_config": path_source(sds_files[ca_name])}}}}
        lds_file = write_xds(workdir / "lds.json", T + "envoy.config.listener.v3.Listener", [
            {"name": "0.0.0.0_80", "address": {"socket_address": {"address": "127.0.0.1", "port_value": http_port}},
             "filter_chains": [{"filters": [hcm("outbound_0.0.0.0_80")]}]},
            {"name": "0.0.0.0_443", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tls_port}},
             "filter_chains": [{"filter_chain_match": {"server_names": ["httpbin.example.com"]},
                                "filters": [hcm("outbound_0.0.0.0_443")], "transport_socket": tls_socket}]},
            {"name": "0.0.0.0_3306", "address": {"socket_address": {"address": "127.0.0.1", "port_value": tcp_port}},
             "filter_chains": [
                 {"filter_chain_match": {"destination_port": tcp_port, "prefix_ranges": [
                     {"address_prefix": "127.0.0.0", "prefix_len": 8}]},
                  "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                      "@type": TCP, "stat_prefix": ECHO_TCP, "cluster": ECHO_TCP}}]},
                 {"filter_chain_match": {"application_protocols": ["http/1.0", "http/1.1", "h2c"]},
                  "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                      "@type": TCP, "stat_prefix": "BlackHoleCluster", "cluster": "BlackHoleCluster"}}]},
             ]},
        ])
        prom_port = free_port()
        bootstrap = {
            "node": {"id": "router~10.0.0.1~higress-gateway-abc.higress-system~higress-system.svc.cluster.local",
                     "cluster": "higress-gateway"},
            "dynamic_resources": {"cds_config": path_source(cds_file), "lds_config": path_source(lds_file)},
            "layered_runtime": {"layers": [
                {"name": "static", "static_layer": {"higress.test.flag": True,
                                                    "overload.global_downstream_max_connections": 50000}},
                {"name": "admin", "admin_layer": {}}]},
            "static_resources": {
                "clusters": [
                    _cluster("prometheus_stats", [_ep(prom_port)]),
                    {"name": "BlackHoleCluster", "type": "STATIC", "connect_timeout": "1s"},
                ],
                "listeners": [{
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": prom_port}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                    "typed_config": {
                        "@type": HCM, "stat_prefix": "stats", "http_filters": [ROUTER],
                        "route_config": {"virtual_hosts": [{"name": "backend", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/stats/prometheus"},
                             "route": {"cluster": "prometheus_stats"}}]}]}}}]}],
                }],
            },
        }
        envoy = Envoy(bootstrap, workdir).start()
        try:
            yield IstioGateway(envoy, http_port, tls_port, tcp_port, ups, certs)
        finally:
            envoy.stop()
