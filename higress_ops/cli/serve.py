"""`higress-ops serve`: serve the configured MCP servers over HTTP until SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType
from typing import Any

import uvicorn

from higress_ops import logs
from higress_ops.config import ConfigError, McpServerConfig
from higress_ops.config.sources import ConfigSource, FileSource
from higress_ops.host import Host, HostSettings, default_replica_id
from higress_ops.registry import RegistryError, default_registry
from higress_ops.transport.app import App

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the configured MCP servers over HTTP",
        description="Serve every servers[] entry of the mcpServer block on all MCP HTTP transports: legacy SSE at "
        "{path}{sse_path_suffix}, streamable HTTP and 2026-07-28 at {path}. Sessions live in memory, or in Redis "
        "when the config has a redis block. /healthz, /readyz and /metrics are served too.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="PATH", help="higress-config ConfigMap manifest or its higress YAML; "
                        "reloaded on SIGHUP and when the file changes")
    source.add_argument("--kube", action="store_true", help="read and watch the ConfigMap from the Kubernetes API "
                        "(in-cluster config, else kubeconfig)")
    parser.add_argument("--namespace", default="higress-system", help="--kube: the ConfigMap's namespace")
    parser.add_argument("--configmap", default="higress-config", help="--kube: the ConfigMap's name")
    parser.add_argument("--context", default=None, help="--kube: kubeconfig context")
    parser.add_argument("--kubeconfig", default=None, metavar="PATH", help="--kube: kubeconfig file")
    parser.add_argument("--secret-poll", type=float, default=30.0, metavar="SECONDS",
                        help="--kube: how often the redis passwordSecret is re-read (default 30)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--replica-id", default=None,
                        help="this replica's id in logs and session records (default: $HIGRESS_OPS_REPLICA_ID, "
                        "else hostname-pid)")
    parser.add_argument("--session-ttl", type=float, default=1800.0, metavar="SECONDS",
                        help="idle time after which a session is gone (default 1800)")
    parser.add_argument("--keepalive", type=float, default=15.0, metavar="SECONDS",
                        help="interval of SSE keep-alive comments (default 15)")
    parser.add_argument("--body-limit", type=int, default=1024 * 1024, metavar="BYTES",
                        help="largest request body accepted (default 1 MiB)")
    parser.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                        help="a browser Origin allowed besides the server's own host (repeatable; '*' for any)")
    parser.add_argument("--drain-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long SIGTERM waits for in-flight calls (default 10)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(handler=run)


def source_from(args: argparse.Namespace) -> ConfigSource:
    if args.kube:
        from higress_ops.config.kube_source import KubeSource

        return KubeSource(namespace=args.namespace, name=args.configmap, context=args.context,
                          kubeconfig=args.kubeconfig, secret_poll=max(0.2, args.secret_poll))
    return FileSource(args.config)


def settings_from(args: argparse.Namespace) -> HostSettings:
    for name in ("session_ttl", "keepalive", "drain_timeout"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"higress-ops serve: --{name.replace('_', '-')} must be > 0")
    return HostSettings(session_ttl=args.session_ttl, keepalive=args.keepalive, body_limit=args.body_limit,
                        allowed_origins=tuple(args.allowed_origin), drain_timeout=args.drain_timeout)


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
    config = uvicorn.Config(App(host), host=args.host, port=args.port, log_config=None, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=int(max(1, host.settings.drain_timeout)),
                            timeout_keep_alive=75)
    server = _Server(config, host)
    server.run()  # uvicorn's own runner: uvloop and httptools when installed
    return 0 if server.started else 1


def run(args: argparse.Namespace) -> int:
    replica_id = args.replica_id or default_replica_id()
    logs.setup(args.log_level, replica_id)
    try:
        source = source_from(args)
        config: McpServerConfig = source.first()
        host = Host(config, registry=default_registry(), replica_id=replica_id, settings=settings_from(args),
                    redis_password=source.redis_password(config))
        host.followers.append(source.follow)
    except ConfigError as exc:
        where = exc.source or args.config or "config"
        print(f"higress-ops serve: {where}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (RegistryError, ValueError) as exc:
        print(f"higress-ops serve: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # e.g. no kubeconfig: say what, not a traceback
        print(f"higress-ops serve: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if not config.enable:
        logger.warning("mcpServer.enable is false; serving anyway (Higress itself would not)")
    return serve(host, args)
