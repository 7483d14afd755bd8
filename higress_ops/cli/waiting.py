"""`serve --wait-for-config`: until the config (and its redis Secret) can be read and is valid, answer /healthz
(and a 503 /readyz saying what is missing) on the admin port, retrying with backoff; the MCP port opens after.
A sidecar in the gateway pod uses it: a missing or broken ConfigMap must not make the container crash-loop,
which would make the gateway pod NotReady."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import uvicorn

from higress_ops.config import ConfigError, McpServerConfig
from higress_ops.config.sources import ConfigSource

logger = logging.getLogger(__name__)
BACKOFF_MAX = 30.0


class Stopped(Exception):
    """SIGTERM arrived while waiting."""


def _load(source: ConfigSource) -> tuple[McpServerConfig, str | None]:
    config = source.first()
    return config, source.redis_password(config)


def until_loaded(source: ConfigSource, host: str, port: int) -> tuple[McpServerConfig, str | None]:
    """The first valid config and its redis password; serves the waiting answers on host:port (the admin port)
    meanwhile."""
    state: dict[str, Any] = {"problems": []}
    try:
        return _load(source)
    except ConfigError as exc:
        _log(exc, source)
        state["problems"] = [str(p) for p in exc.problems]
    except Exception as exc:  # the API server away
        state["problems"] = [f"cannot read the config ({type(exc).__name__})"]
    server = uvicorn.Server(uvicorn.Config(_app(state), host=host, port=port, log_config=None, access_log=False,
                                           lifespan="off"))
    found: list[tuple[McpServerConfig, str | None]] = []

    def retry() -> None:
        delay = 1.0
        while not server.should_exit:
            try:
                found.append(_load(source))
                server.should_exit = True
                return
            except ConfigError as exc:
                state["problems"] = [str(p) for p in exc.problems]
                _log(exc, source)
            except Exception as exc:  # the API server away: keep waiting
                state["problems"] = [f"cannot read the config ({type(exc).__name__})"]
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX)

    threading.Thread(target=retry, daemon=True, name="wait-for-config").start()
    server.run()
    if not found:
        raise Stopped
    logger.info("config loaded from %s; serving it", source.description)
    return found[0]


def _log(exc: ConfigError, source: ConfigSource) -> None:
    logger.error("waiting for a valid config from %s: %s", source.description,
                 "; ".join(str(p) for p in exc.problems))


def _app(state: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        ok = scope["path"] == "/healthz"
        body = b"ok\n" if ok else json.dumps({"config": "waiting", "problems": state["problems"]}).encode()
        await send({"type": "http.response.start", "status": 200 if ok else 503,
                    "headers": [(b"content-type", b"text/plain" if ok else b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app
