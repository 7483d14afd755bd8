"""`higress-ops serve`: serve the configured MCP servers over HTTP until SIGTERM."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn

from higress_ops import logs, spans
from higress_ops.auth import Authenticator, NoAuth
from higress_ops.cli import probe, waiting
from higress_ops.cli.validate import print_problems
from higress_ops.config import ConfigError, McpServerConfig
from higress_ops.config.sources import ConfigSource, FileSource
from higress_ops.host import Host, HostSettings, default_replica_id
from higress_ops.registry import RegistryError, default_registry
from higress_ops.transport.app import App
from higress_ops.transport.peers import parse_networks
from higress_ops.transport.security import is_loopback, parse_public_url
from higress_ops.transport.server import bind, guarded_protocol

logger = logging.getLogger(__name__)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 1-65535")
    return port


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the configured MCP servers over HTTP",
        description="Serve every servers[] entry of the mcpServer block on all MCP HTTP transports: legacy SSE at "
        "{path}{sse_path_suffix}, streamable HTTP and 2026-07-28 at {path}. Sessions live in memory, or in Redis "
        "when the config has a redis block. /healthz, /readyz and /metrics are served on the admin port.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="PATH", help="higress-config ConfigMap manifest or its higress YAML; "
                        "reloaded on SIGHUP and when the file changes")
    source.add_argument("--kube", action="store_true", help="read and watch the ConfigMap from the Kubernetes API "
                        "(in-cluster config, else kubeconfig)")
    parser.add_argument("--namespace", default="higress-system",
                        help="--kube: the ConfigMap's namespace (default higress-system)")
    parser.add_argument("--configmap", default="higress-config",
                        help="--kube: the ConfigMap's name (default higress-config, the one Higress's chart writes)")
    parser.add_argument("--key", default="higress", help="--kube: the ConfigMap data key holding the YAML with the "
                        "mcpServer block (default higress)")
    parser.add_argument("--wait-for-config", action="store_true",
                        help="start even when the config (or its redis Secret) cannot be read or is invalid: answer "
                        "/healthz and a 503 /readyz on the admin port, and retry until it can; for a sidecar that "
                        "must never crash-loop its pod")
    parser.add_argument("--context", default=None, help="kubeconfig context (--kube, --auth kubernetes)")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH",
                        help="kubeconfig file (--kube, --auth kubernetes; default in-cluster, else ~/.kube/config)")
    parser.add_argument("--secret-poll", type=float, default=30.0, metavar="SECONDS",
                        help="--kube: how often the redis passwordSecret is re-read (default 30)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="MCP port (default 8080)")
    parser.add_argument("--admin-port", type=_port, default=8081,
                        help="port of /healthz, /readyz and /metrics, never the MCP port (default 8081)")
    parser.add_argument("--admin-host", default=None, help="address of the admin port (default: --host)")
    parser.add_argument("--replica-id", default=None,
                        help="this replica's id in logs and session records (default: $HIGRESS_OPS_REPLICA_ID, "
                        "else hostname-pid)")
    _security_arguments(parser)
    parser.add_argument("--session-ttl", type=float, default=1800.0, metavar="SECONDS",
                        help="idle time after which a session is gone (default 1800)")
    parser.add_argument("--keepalive", type=float, default=15.0, metavar="SECONDS",
                        help="interval of SSE keep-alive comments (default 15)")
    parser.add_argument("--drain-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long SIGTERM waits for in-flight calls (default 10)")
    parser.add_argument("--strict", action="store_true",
                        help="treat config warnings as errors: a server type no plugin here serves, an unknown key "
                        "under mcpServer (at start and on every reload; default: warn and skip)")
    parser.add_argument("--spans", action="store_true",
                        help="time each step of every MCP request and serve the totals at /spans on the admin port "
                        "(for bench/: a few microseconds per request; off, nothing)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="(default info)")
    parser.set_defaults(handler=run)


def _security_arguments(parser: argparse.ArgumentParser) -> None:
    auth = parser.add_argument_group("client authentication")
    auth.add_argument("--auth", choices=["none", "kubernetes", "oidc"], default=None,
                      help="how MCP clients authenticate (default: none on a loopback --host; any other --host "
                      "needs an explicit choice)")
    auth.add_argument("--auth-verb", default="create", help="kubernetes: the verb a caller needs (default create)")
    auth.add_argument("--auth-resource", default="pods", help="kubernetes: the resource (default pods)")
    auth.add_argument("--auth-subresource", default="portforward",
                      help="kubernetes: the subresource (default portforward; '' for none)")
    auth.add_argument("--auth-namespace", default=None,
                      help="kubernetes: the namespace of that right (default: --namespace, the gateway's)")
    auth.add_argument("--auth-audience", action="append", default=[], metavar="AUDIENCE",
                      help="kubernetes: an audience the TokenReview asks for (repeatable), so only tokens minted for "
                      "this server pass (kubectl create token SA --audience AUDIENCE); default: the API server's own")
    auth.add_argument("--oidc-issuer", default=None, metavar="URL",
                      help="oidc: the issuer; discovery at URL/.well-known/openid-configuration")
    auth.add_argument("--oidc-audience", default=None, help="oidc: the audience (aud) tokens must carry")
    auth.add_argument("--oidc-leeway", type=float, default=30.0, metavar="SECONDS",
                      help="oidc: clock skew allowed on exp/nbf (default 30)")
    guard = parser.add_argument_group("request guards and limits")
    guard.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                       help="a Host name accepted besides loopback names (repeatable; '*.x.com' patterns)")
    guard.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                       help="a browser Origin allowed besides allowed hosts (repeatable; '*' for any)")
    guard.add_argument("--public-url", default=None, metavar="URL",
                       help="scheme://host[:port] clients reach this server at (e.g. https://mcp.example.com behind "
                       "TLS termination): the resource of the OAuth Protected Resource Metadata; without it only a "
                       "Host named by a loopback bind, --allowed-host or domain_list is used")
    guard.add_argument("--trusted-proxy", action="append", default=[], metavar="CIDR",
                       help="a proxy (e.g. the gateway pods) whose X-Forwarded-For is believed (repeatable)")
    guard.add_argument("--body-limit", type=_positive_int, default=1024 * 1024, metavar="BYTES",
                       help="largest request body accepted (default 1 MiB)")
    guard.add_argument("--max-sessions", type=_positive_int, default=10_000,
                       help="sessions this replica opens at most (default 10000)")
    guard.add_argument("--max-sessions-per-identity", type=_positive_int, default=1_000,
                       help="open sessions per identity (or client address with --auth none; default 1000)")
    guard.add_argument("--max-batch", type=_positive_int, default=32, help="messages per JSON-RPC batch (default 32)")
    guard.add_argument("--max-inflight", type=_positive_int, default=8,
                       help="tool calls running at once per session, or per identity for 2026-07-28 calls (default 8)")
    guard.add_argument("--max-queued-calls", type=_positive_int, default=32,
                       help="calls waiting for one of those, first come first served; beyond them -32029 with "
                       "retryAfterSeconds (default 32)")
    guard.add_argument("--max-upstream-bytes", type=_positive_int, default=256 * 1024 * 1024, metavar="BYTES",
                       help="upstream answers all calls in progress may hold together; an answer that would pass "
                       "it is cut as it streams (default 256 MiB; one call holds at most 64 MiB)")
    guard.add_argument("--max-queue-bytes", type=_positive_int, default=4 * 1024 * 1024,
                       help="a stream's unread backlog before its client is disconnected (default 4 MiB)")
    guard.add_argument("--max-connections", type=_positive_int, default=10_000,
                       help="open connections and requests at most; beyond them 503 (default 10000)")
    guard.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="time a client has to send its request headers (default 10)")
    guard.add_argument("--body-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="time a client has to send its request body, plus one second per --body-min-rate "
                       "bytes received (default 10)")
    guard.add_argument("--body-min-rate", type=_positive_int, default=8192, metavar="BYTES",
                       help="bytes per second a request body must keep arriving at (default 8192)")


def bind_problem(host: str, port: int, flag: str, exc: OSError) -> str:
    """One line that names the address and what to do; the flag is --port or --admin-port."""
    where = f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    hint = {errno.EADDRINUSE: f"; another process is listening there: stop it or choose another {flag}",
            errno.EACCES: "; ports below 1024 need privileges: choose a port above 1023",
            errno.EADDRNOTAVAIL: "; the host must be an address of this machine"}.get(exc.errno or 0, "")
    if isinstance(exc, socket.gaierror):
        hint = "; the host must be an IP address or a name this machine resolves"
    return f"higress-ops serve: cannot listen on {where}: {reason}{hint}"


def source_from(args: argparse.Namespace) -> ConfigSource:
    from higress_ops import kube  # imports the kubernetes client: only when serving

    kube.use(args.context, args.kubeconfig)  # the cluster of the gateway and istiod pods, whatever the source
    if args.kube:
        from higress_ops.config.kube_source import KubeSource

        return KubeSource(namespace=args.namespace, name=args.configmap, key=args.key, context=args.context,
                          kubeconfig=args.kubeconfig, secret_poll=max(0.2, args.secret_poll), strict=args.strict)
    return FileSource(args.config, strict=args.strict)


def settings_from(args: argparse.Namespace) -> HostSettings:
    for name in ("session_ttl", "keepalive", "drain_timeout", "header_timeout", "body_timeout"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"higress-ops serve: --{name.replace('_', '-')} must be > 0")
    if args.admin_port == args.port:
        raise SystemExit("higress-ops serve: --admin-port must differ from --port (the admin endpoints never share "
                         "the MCP port)")
    try:
        parse_networks(args.trusted_proxy)
    except ValueError as exc:
        raise SystemExit(f"higress-ops serve: --trusted-proxy: {exc}") from None
    try:
        public_url = parse_public_url(args.public_url) if args.public_url else None
    except ValueError as exc:
        raise SystemExit(f"higress-ops serve: --public-url: {exc}") from None
    return HostSettings(session_ttl=args.session_ttl, keepalive=args.keepalive, body_limit=args.body_limit,
                        allowed_origins=tuple(args.allowed_origin), drain_timeout=args.drain_timeout,
                        admin_port=args.admin_port, loopback=is_loopback(args.host),
                        allowed_hosts=tuple(args.allowed_host), trusted_proxies=tuple(args.trusted_proxy),
                        max_sessions=args.max_sessions, max_sessions_per_identity=args.max_sessions_per_identity,
                        max_batch=args.max_batch, max_inflight=args.max_inflight, max_queued=args.max_queued_calls,
                        max_upstream_bytes=args.max_upstream_bytes, queue_bytes=args.max_queue_bytes,
                        public_url=public_url)


def authenticator_from(args: argparse.Namespace) -> Authenticator:
    mode = args.auth
    if mode is None:
        if not is_loopback(args.host):
            raise SystemExit(f"higress-ops serve: --host {args.host} is not a loopback address, so clients must "
                             "authenticate: pass --auth kubernetes or --auth oidc (or --auth none to serve "
                             "without authentication, on purpose)")
        return NoAuth()
    if mode == "none":
        if not is_loopback(args.host):
            logger.warning("serving without client authentication on a non-loopback address: anyone who reaches "
                           "this port can read Envoy's config and certificates", extra={"host": args.host})
        return NoAuth()
    if mode == "oidc":
        if not args.oidc_issuer or not args.oidc_audience:
            raise SystemExit("higress-ops serve: --auth oidc needs --oidc-issuer and --oidc-audience")
        from higress_ops.auth.oidc import OidcAuth

        return OidcAuth(args.oidc_issuer, args.oidc_audience, leeway=args.oidc_leeway)
    from higress_ops.auth.kubernetes import KubernetesAuth, Right
    from higress_ops.config.kube_source import api_client

    right = Right(verb=args.auth_verb, resource=args.auth_resource, subresource=args.auth_subresource,
                  namespace=args.auth_namespace or args.namespace)
    return KubernetesAuth(api_client(args.context, args.kubeconfig), right, audiences=args.auth_audience)


class _Server(uvicorn.Server):
    """uvicorn, plus: on SIGTERM end the SSE streams at once so the graceful shutdown can complete."""

    def __init__(self, config: uvicorn.Config, host: Host) -> None:
        super().__init__(config)
        self.host = host

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.host.begin_shutdown()
        super().handle_exit(sig, frame)
        captured = getattr(self, "_captured_signals", None)
        if sig == signal.SIGTERM and isinstance(captured, list) and sig in captured:
            captured.remove(sig)  # a graceful stop is a success (exit 0), not a death by SIGTERM


def serve(host: Host, args: argparse.Namespace) -> int:
    sockets: list[socket.socket] = []
    # Bind first: a port in use is one clear line and exit 1, before anything says "serving".
    for where, port, flag in ((args.host, args.port, "--port"),
                              (args.admin_host or args.host, args.admin_port, "--admin-port")):
        try:
            sockets.append(bind(where, port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            print(bind_problem(where, port, flag, exc), file=sys.stderr)
            return 1
    logger.info("listening", extra={"mcp": f"{args.host}:{args.port}", "auth": host.gate.auth.mode,
                                    "admin": f"{args.admin_host or args.host}:{args.admin_port}",
                                    "urls": probe.mcp_urls(host.config, args.host, args.port),
                                    "upstreams": probe.upstreams({n: s.server for n, s in host.servers.items()})})
    config = uvicorn.Config(App(host), log_config=None, access_log=False, lifespan="on",
                            timeout_graceful_shutdown=int(max(1, host.settings.drain_timeout)),
                            timeout_keep_alive=75, limit_concurrency=args.max_connections, ws="none",
                            http=guarded_protocol(args.header_timeout, body_timeout=args.body_timeout,
                                                  body_min_rate=args.body_min_rate),
                            proxy_headers=False)  # X-Forwarded-For is ours to judge (--trusted-proxy), not uvicorn's
    server = _Server(config, host)
    # What start-up made (modules, the config, the servers) lives as long as the process: out of the collector's
    # sight, a full collection on the loop walks only what requests made (12-28 ms each in bench P5's workload).
    gc.collect()
    gc.freeze()
    server.run(sockets=sockets)  # uvicorn's own runner: uvloop when installed
    return 0 if server.started else 1


def run(args: argparse.Namespace) -> int:
    replica_id = args.replica_id or default_replica_id()
    logs.setup(args.log_level, replica_id)
    spans.enable(args.spans)
    try:
        settings = settings_from(args)
        auth = authenticator_from(args)
        source = source_from(args)
        config: McpServerConfig
        if args.wait_for_config:
            config, password = waiting.until_loaded(source, args.admin_host or args.host, args.admin_port)
        else:
            config = source.first()
            password = source.redis_password(config)
        host = Host(config, registry=default_registry(), replica_id=replica_id, settings=settings,
                    redis_password=password, auth=auth)
        host.followers.append(source.follow)
    except waiting.Stopped:
        return 0
    except ConfigError as exc:
        print_problems(exc, args.config or "config", prefix="higress-ops serve: ")
        return 1
    except (RegistryError, ValueError) as exc:
        print(f"higress-ops serve: {exc}", file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as exc:  # e.g. no kubeconfig: say what, not a traceback
        print(f"higress-ops serve: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        logger.warning("config warning: %s", warning)
    if not config.enable:
        logger.warning("mcpServer.enable is false; serving anyway (Higress itself would not)")
    return serve(host, args)
