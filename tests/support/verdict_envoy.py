"""A real Envoy built so that each find-route rule decides one request's status.

Static listeners and clusters (the bootstrap is the whole config), live backends from
`istio_envoy.upstreams`: some answer, some fail their active health check while still answering traffic
(panic mode), one is slow (route timeout), and some clusters point at closed ports. Each route's path
names the case it exercises, so a test sends `GET /<case>` through a listener and compares. One more
listener takes its HTTP filters from ECDS, one of them a Wasm plugin that fails to load.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.support.envoy import Envoy
from tests.support.istio_envoy import (
    HCM,
    ROUTER,
    TCP,
    T,
    TestCert,
    Upstream,
    b64,
    cluster_of,
    lb_endpoint,
    make_cert,
    path_source,
    upstreams,
    write_xds,
)
from tests.support.procs import free_port

CART_80, CART_8080 = "outbound|80||cart.shop.svc.cluster.local", "outbound|8080||cart.shop.svc.cluster.local"
BACKENDS = ("ok", "sick-a", "sick-b", "half-good", "half-sick", "eds-down", "slow", "tcp", "drain-a", "drain-b")
HC = {"timeout": "1s", "interval": "1s", "no_traffic_interval": "1s", "unhealthy_threshold": 1,
      "healthy_threshold": 1, "http_health_check": {"path": "/healthz"}}


def _ep(port: int, health: str | None = None) -> dict[str, Any]:
    return lb_endpoint(port, health)


def _cluster(name: str, *endpoints: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return cluster_of(name, list(endpoints), connect_timeout="0.5s", **extra)


def _route(case: str, cluster: str, **action: Any) -> dict[str, Any]:
    return {"name": case, "match": {"path": f"/{case}"}, "route": {"cluster": cluster, **action}}


ROUTES: list[dict[str, Any]] = [
    _route("ok", "ok"),
    _route("panic", "panic"),  # every host fails active HC, but answers: panic mode sends traffic anyway
    _route("nopanic", "nopanic"),  # same hosts, healthy_panic_threshold 0: no panic, 503
    _route("half", "half"),  # one of two hosts fails HC: 50% healthy is not below the 50% threshold
    _route("eds-unhealthy", "eds-unhealthy"),  # the only host is EDS UNHEALTHY: panic mode, 200
    _route("closed", "closed"),  # no health check, closed port: 503 once connections have failed
    _route("closed-hc", "closed-hc"),  # closed port with active HC, threshold 0: 503 no healthy upstream
    _route("slow", "slow", timeout="0.3s"),  # the backend takes 2 s: 504
    _route("missing", "missing"),  # no such cluster: 503
    _route("missing-port", CART_80),  # Istio's name of port 80 of a service whose cluster is on port 8080: 503
    _route("outlier", "outlier", prefix_rewrite="/healthz"),  # the host answers 503: ejected, and still 503
    _route("excluded", "excluded"),  # both hosts fail HC with the immediate-fail header: excluded
    {"name": "redirect", "match": {"path": "/redirect"},
     "redirect": {"path_redirect": "/ok", "response_code": "FOUND"}},
    {"name": "https", "match": {"path": "/https"}, "redirect": {"https_redirect": True}},
    {"name": "direct", "match": {"path": "/direct"}, "direct_response": {"status": 418}},
    # RE2 (Envoy's safe_regex): a pattern that would make a backtracking engine run for years on a long path
    {"name": "regex", "match": {"safe_regex": {"regex": "/re/(a+)+b"}}, "direct_response": {"status": 201}},
]


def route_config() -> dict[str, Any]:
    return {"name": "verdicts", "validate_clusters": False, "virtual_hosts": [
        {"name": "app", "domains": ["app.example.com"], "routes": ROUTES}]}


def _hcm_listener(name: str, port: int, **hcm: Any) -> dict[str, Any]:
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": HCM, "stat_prefix": name, "http_filters": [ROUTER], "route_config": route_config(),
                **hcm}}]}]}


WASM = T + "envoy.extensions.filters.http.wasm.v3.Wasm"
HEADER_MUTATION = T + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"


def _ecds_listener(workdir: Path, port: int) -> dict[str, Any]:
    """A listener whose HTTP filters come from ECDS: one that loads, and a Higress-style Wasm plugin whose
    module is missing, so Envoy rejects it and the listener answers 500."""
    tec = T + "envoy.config.core.v3.TypedExtensionConfig"
    ok = write_xds(workdir / "ecds-ok.json", tec, [{"name": "default.add-header", "typed_config": {
        "@type": HEADER_MUTATION,
        "mutations": {"response_mutations": [{"append": {"header": {"key": "x-ecds", "value": "1"}}}]}}}])
    bad = write_xds(workdir / "ecds-wasm.json", tec, [{"name": "higress-system.key-auth", "typed_config": {
        "@type": WASM, "config": {"name": "higress-system.key-auth", "vm_config": {
            "vm_id": "key-auth", "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": str(workdir / "missing-key-auth.wasm")}}}}}}])

    def discovered(name: str, path: Path, type_url: str) -> dict[str, Any]:
        return {"name": name, "config_discovery": {"config_source": path_source(path), "type_urls": [type_url]}}

    return _hcm_listener("ecds", port, http_filters=[
        discovered("default.add-header", ok, HEADER_MUTATION),
        discovered("higress-system.key-auth", bad, WASM), ROUTER])


SECRET = T + "envoy.extensions.transport_sockets.tls.v3.Secret"


def _spiffe_listener(workdir: Path, port: int) -> tuple[dict[str, Any], dict[str, TestCert]]:
    """A TLS listener whose SDS secrets are a SPIFFE workload certificate and a SPIFFE validation context
    with two trust domains (as SPIRE-fed Istio proxies have), and the certificates behind them."""
    certs = {"default": make_cert("workload", serial=0x1234, uris=("spiffe://east.local/ns/a/sa/b",)),
             "east.local": make_cert("East Root CA", days_valid=3650, is_ca=True),
             "west.local": make_cert("West Root CA", days_valid=3650, is_ca=True)}
    chain = write_xds(workdir / "sds-default.json", SECRET, [{"name": "default", "tls_certificate": {
        "certificate_chain": {"inline_bytes": b64(certs["default"].cert_pem)},
        "private_key": {"inline_bytes": b64(certs["default"].key_pem)}}}])
    roots = write_xds(workdir / "sds-rootca.json", SECRET, [{"name": "ROOTCA", "validation_context": {
        "custom_validator_config": {"name": "envoy.tls.cert_validator.spiffe", "typed_config": {
            "@type": T + "envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig",
            "trust_domains": [{"name": td, "trust_bundle": {"inline_bytes": b64(certs[td].cert_pem)}}
                              for td in ("east.local", "west.local")]}}}}])
    listener = _hcm_listener("spiffe", port)
    listener["filter_chains"][0]["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": T + "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {
            "tls_certificate_sds_secret_configs": [{"name": "default", "sds_config": path_source(chain)}],
            "validation_context_sds_secret_config": {"name": "ROOTCA", "sds_config": path_source(roots)}}}}
    return listener, certs


@dataclass
class VerdictGateway:
    envoy: Envoy
    ports: dict[str, int]  # listener name -> port: plain, strip_any, strip_matching, tcp
    backends: dict[str, Upstream]
    closed_port: int
    certs: dict[str, TestCert]  # the SPIFFE listener's: "default", and a root CA per trust domain

    @property
    def admin_url(self) -> str:
        return self.envoy.admin_url

    def send(self, listener: str, host: str, path: str) -> int:
        """The status Envoy itself answers for GET path with that Host on that listener."""
        url = f"http://127.0.0.1:{self.ports[listener]}{path}"
        return requests.get(url, headers={"host": host}, timeout=10, allow_redirects=False).status_code


def _settled(admin_url: str) -> bool:
    """Every active health check has run once (no host still pending its first check)."""
    statuses = requests.get(f"{admin_url}/clusters?format=json", timeout=5).json()["cluster_statuses"]
    return not any((h.get("health_status") or {}).get("pending_active_hc")
                   for c in statuses for h in c.get("host_statuses") or [])


@contextmanager
def verdict_gateway(workdir: Path) -> Iterator[VerdictGateway]:
    workdir.mkdir(parents=True, exist_ok=True)
    healthz = {"sick-a": 503, "sick-b": 503, "half-sick": 503}
    healthz.update({"drain-a": 503, "drain-b": 503})
    with upstreams(*BACKENDS, healthz=healthz, delay={"slow": 2.0}, draining=("drain-a", "drain-b")) as ups:
        closed = free_port()
        ports = {name: free_port() for name in ("plain", "strip_any", "strip_matching", "tcp", "ecds", "spiffe")}
        spiffe, certs = _spiffe_listener(workdir, ports["spiffe"])
        sick = (_ep(ups["sick-a"].port), _ep(ups["sick-b"].port))
        clusters = [
            _cluster("ok", _ep(ups["ok"].port)),
            _cluster(CART_8080, _ep(ups["ok"].port)),
            _cluster("panic", *sick, health_checks=[HC]),
            _cluster("nopanic", *sick, health_checks=[HC],
                     common_lb_config={"healthy_panic_threshold": {"value": 0}}),
            _cluster("half", _ep(ups["half-good"].port), _ep(ups["half-sick"].port), health_checks=[HC]),
            _cluster("eds-unhealthy", _ep(ups["eds-down"].port, "UNHEALTHY")),
            _cluster("closed", _ep(closed)),
            _cluster("closed-hc", _ep(closed), health_checks=[HC],
                     common_lb_config={"healthy_panic_threshold": {"value": 0}}),
            _cluster("slow", _ep(ups["slow"].port)),
            _cluster("tcp", _ep(ups["tcp"].port)),
            _cluster("excluded", _ep(ups["drain-a"].port), _ep(ups["drain-b"].port), health_checks=[HC]),
            _cluster("outlier", _ep(ups["sick-a"].port), outlier_detection={
                "consecutive_5xx": 1, "base_ejection_time": "300s", "max_ejection_percent": 100}),
            # Addresses istioctl prints its own way: an Envoy internal listener and a unix socket.
            {**_cluster("internal", {"endpoint": {"address": {"envoy_internal_address": {
                "server_listener_name": "inner", "endpoint_id": "ep-1"}}}})},
            _cluster("pipe", {"endpoint": {"address": {"pipe": {"path": str(workdir / "backend.sock")}}}}),
        ]
        listeners = [
            _hcm_listener("plain", ports["plain"]),
            _hcm_listener("strip_any", ports["strip_any"], strip_any_host_port=True),
            _hcm_listener("strip_matching", ports["strip_matching"], strip_matching_host_port=True),
            {"name": "tcp", "address": {"socket_address": {"address": "127.0.0.1", "port_value": ports["tcp"]}},
             "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                 "@type": TCP, "stat_prefix": "tcp", "cluster": "tcp"}}]}]},
            _ecds_listener(workdir, ports["ecds"]),
            spiffe,
        ]
        bootstrap = {"node": {"id": "verdicts", "cluster": "verdicts"},
                     "bootstrap_extensions": [{"name": "envoy.bootstrap.internal_listener", "typed_config": {
                         "@type": "type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3"
                                  ".InternalListener"}}],
                     "static_resources": {"clusters": clusters, "listeners": listeners}}
        envoy = Envoy(bootstrap, workdir).start()
        try:
            deadline = time.monotonic() + 15
            while not _settled(envoy.admin_url) and time.monotonic() < deadline:
                time.sleep(0.1)
            yield VerdictGateway(envoy, ports, ups, closed, certs)
        finally:
            envoy.stop()
