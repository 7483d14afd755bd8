"""A cluster's settings in words, each value as the config has it or Envoy's default said to be one.

Defaults from Envoy's API (envoy/config/cluster/v3/cluster.proto, circuit_breaker.proto, outlier_detection.proto,
core/v3/health_check.proto, extensions/upstreams/http/v3/http_protocol_options.proto): circuit breakers 1024
connections, 1024 pending requests, 1024 requests, 3 retries; outlier detection 5 consecutive 5xx, interval 10s,
base ejection time 30s, max ejection 10%, max ejection time 300s; an HTTP health check expects 200 alone unless
`expected_statuses` says otherwise; a cluster without protocol options speaks HTTP/1.1 upstream.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from higress_ops.servers.ops.views import configdump as cd

HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
CIRCUIT_DEFAULTS = {"max_connections": 1024, "max_pending_requests": 1024, "max_requests": 1024, "max_retries": 3}
OUTLIER_DEFAULTS = {"consecutive_5xx": "5", "interval": "10s", "base_ejection_time": "30s",
                    "max_ejection_percent": "10", "max_ejection_time": "300s", "consecutive_gateway_failure": "5"}


def _value(v: Any) -> Any:
    """A wrapped protobuf value ({"value": 3}) or a plain one."""
    return v.get("value") if isinstance(v, Mapping) else v


def setting(config: cd.Json, key: str, defaults: Mapping[str, Any]) -> str:
    """`key value`, or `key value (default)` when the config leaves it unset."""
    if key in config:
        return f"{key} {_value(config[key])}"
    return f"{key} {defaults[key]} (default)"


def transport(config: cd.Json | None) -> str:
    """plaintext, or `TLS (SNI x, ALPN h2,http/1.1)`; Istio's transport_socket_matches say `TLS or plaintext`."""
    if config is None:
        return "unknown (config not read)"
    socket = cd.mapping(config.get("transport_socket"))
    if not socket:
        if config.get("transport_socket_matches"):
            return "per endpoint (transport_socket_matches: TLS to endpoints labelled for it, else plaintext)"
        return "plaintext"
    typed = cd.mapping(socket.get("typed_config"))
    kind = str(typed.get("@type", socket.get("name", ""))).rsplit(".", 1)[-1]
    if "UpstreamTlsContext" not in kind and "tls" not in str(socket.get("name", "")):
        return f"{socket.get('name', kind)}"
    ctx = cd.mapping(typed.get("common_tls_context"))
    alpn = ",".join(str(a) for a in ctx.get("alpn_protocols") or []) or "none"
    return f"TLS (SNI {typed.get('sni') or 'none'}, ALPN {alpn})"


def speaks_tls(config: cd.Json | None) -> bool:
    return transport(config).startswith("TLS")


def protocol(config: cd.Json | None) -> str:
    """The upstream HTTP protocol: HTTP/1.1 (Envoy's default), HTTP/2, the downstream's, or ALPN-negotiated."""
    if config is None:
        return "unknown (config not read)"
    options = cd.mapping(cd.mapping(config.get("typed_extension_protocol_options")).get(HTTP_OPTIONS))
    explicit = cd.mapping(options.get("explicit_http_config"))
    if "http2_protocol_options" in explicit:
        return "HTTP/2 (explicit_http_config)"
    if "http3_protocol_options" in explicit:
        return "HTTP/3 (explicit_http_config)"
    if "http_protocol_options" in explicit:
        return "HTTP/1.1 (explicit_http_config)"
    if "use_downstream_protocol_config" in options:
        return "the downstream's (use_downstream_protocol_config)"
    if "auto_config" in options:
        return "negotiated by ALPN (auto_config)"
    if "http2_protocol_options" in config:
        return "HTTP/2 (http2_protocol_options)"
    if config.get("protocol_selection") == "USE_DOWNSTREAM_PROTOCOL":
        return "the downstream's (protocol_selection)"
    return "HTTP/1.1 (default)"


def health_checks(config: cd.Json | None) -> list[str]:
    """One line per active health check: what it sends, what counts as healthy, how often, after how many."""
    out = []
    for hc in (config or {}).get("health_checks") or []:
        if not isinstance(hc, Mapping):
            continue
        if isinstance(hc.get("http_health_check"), Mapping):
            http = hc["http_health_check"]
            ranges = [f"[{r.get('start')}, {r.get('end')})" for r in http.get("expected_statuses") or []
                      if isinstance(r, Mapping)]
            what = (f"HTTP {http.get('method', 'GET')} {http.get('path', '')} expecting "
                    + (", ".join(ranges) if ranges else "200 (default)"))
        elif isinstance(hc.get("grpc_health_check"), Mapping):
            what = f"gRPC health service {hc['grpc_health_check'].get('service_name', '') or '(all)'}"
        elif "tcp_health_check" in hc:
            what = "TCP connect" + (" and send/receive" if hc["tcp_health_check"] else "")
        else:
            what = "custom"
        out.append(f"{what}; interval {hc.get('interval', '?')}, timeout {hc.get('timeout', '?')}, unhealthy after "
                   f"{_value(hc.get('unhealthy_threshold', '?'))} failure(s), healthy after "
                   f"{_value(hc.get('healthy_threshold', '?'))} success(es)")
    return out


def thresholds(cluster_status: cd.Json | None) -> dict[str, int]:
    """The default-priority circuit breaker thresholds from /clusters?format=json (Envoy fills in its defaults)."""
    for t in cd.mapping((cluster_status or {}).get("circuit_breakers")).get("thresholds") or []:
        if isinstance(t, Mapping) and t.get("priority", "DEFAULT") == "DEFAULT":
            return {k: int(t.get(k, v)) for k, v in CIRCUIT_DEFAULTS.items()}
    return dict(CIRCUIT_DEFAULTS)
