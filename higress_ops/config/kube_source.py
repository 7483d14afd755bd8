"""The live `higress-config` ConfigMap from the Kubernetes API: get it, then watch it.

The watch follows Kubernetes semantics: it resumes from the last resourceVersion seen (bookmarks move it
forward), a 410 Gone means the version expired so the object is read again, and errors or timeouts
reconnect with capped, jittered backoff. The `kubernetes` client is blocking, so the watch runs in a
thread and hands each update to the event loop, one at a time.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from higress_ops import kube
from higress_ops.config.errors import ConfigError
from higress_ops.config.loader import load_text
from higress_ops.config.model import McpServerConfig, SecretRef
from higress_ops.config.sources import offer
from higress_ops.kube import api_client as api_client  # the auth gate builds its own from the same choice

if TYPE_CHECKING:
    from higress_ops.host import Host

logger = logging.getLogger(__name__)
DATA_KEY = "higress"


class KubeSource:
    def __init__(self, *, namespace: str = "higress-system", name: str = "higress-config", key: str = DATA_KEY,
                 context: str | None = None, kubeconfig: str | None = None, watch_timeout: int = 300,
                 backoff_max: float = 30.0, secret_poll: float = 30.0, strict: bool = False) -> None:
        self.namespace = namespace
        self.name = name
        self.key = key  # the data key holding the YAML with the mcpServer block
        self.description = f"ConfigMap {namespace}/{name}"
        self.watch_timeout = watch_timeout
        self.backoff_max = backoff_max
        self.secret_poll = secret_poll
        self.strict = strict  # warnings (a server type not served here, an unknown key) refuse the update
        kube.use(context, kubeconfig)  # the gateway and istiod targets read the same cluster
        self.api: client.CoreV1Api = kube.core_api()
        self._rv: str | None = None
        self._applied_rv: str | None = None
        self._password: str | None = None
        self._config: McpServerConfig | None = None
        self._stop = threading.Event()

    # -- reading ----------------------------------------------------------------------------------

    def first(self) -> McpServerConfig:
        config = self._read()
        if isinstance(config, ConfigError):
            raise config
        return config

    def _read(self) -> McpServerConfig | ConfigError:
        try:
            obj = self.api.read_namespaced_config_map(self.name, self.namespace, _request_timeout=15)
        except ApiException as exc:
            return ConfigError.single("", f"cannot read {self.description}: {exc.status} {exc.reason}; check that "
                                          "it exists and that the ServiceAccount may get it", self.description)
        self._rv = obj.metadata.resource_version if obj.metadata is not None else None
        return self._parse(obj)

    def _parse(self, obj: Any) -> McpServerConfig | ConfigError:
        self._applied_rv = obj.metadata.resource_version
        text = (obj.data or {}).get(self.key)
        if text is None:
            return ConfigError.single(f"/data/{self.key}", "missing: the ConfigMap must hold the config with the "
                                                           f"mcpServer block under data.{self.key}", self.description)
        try:
            config = self._with_redis_secrets(load_text(text, source=self.description, strict=self.strict))
        except ConfigError as exc:
            return exc
        self._config = config
        return config

    def redis_password(self, config: McpServerConfig) -> str | None:
        ref = config.redis.password_secret if config.redis else None
        if ref is None:
            return None
        self._password = self._secret_value(ref, "/mcpServer/redis/passwordSecret")
        return self._password

    def _with_redis_secrets(self, config: McpServerConfig) -> McpServerConfig:
        """The Sentinels' password and the Redis CA, read from their Secrets into the config. (The data nodes'
        password has its own path, `redis_password`, because it is polled and rotated without a restart.)"""
        redis = config.redis
        if redis is None:
            return config
        changes: dict[str, Any] = {}
        if redis.sentinel_auth.password_secret is not None:
            changes["sentinel_auth"] = replace(redis.sentinel_auth, password=self._secret_value(
                redis.sentinel_auth.password_secret, "/mcpServer/redis/sentinel/passwordSecret"))
        if redis.ca_secret is not None:
            changes["ca_data"] = self._secret_value(redis.ca_secret, "/mcpServer/redis/caSecret")
        return replace(config, redis=replace(redis, **changes)) if changes else config

    def _secret_value(self, ref: SecretRef, pointer: str) -> str:
        namespace = ref.namespace or self.namespace
        try:
            secret = self.api.read_namespaced_secret(ref.name, namespace, _request_timeout=15)
        except ApiException as exc:
            raise ConfigError.single(pointer, f"cannot read Secret {namespace}/{ref.name}: {exc.status} "
                                              f"{exc.reason}", self.description) from None
        value = (secret.data or {}).get(ref.key)
        if value is None:
            raise ConfigError.single(pointer + "/key", f"Secret {namespace}/{ref.name} has no key {ref.key!r}",
                                     self.description)
        return base64.b64decode(value).decode()

    # -- following --------------------------------------------------------------------------------

    async def follow(self, host: Host) -> None:
        loop = asyncio.get_running_loop()
        self._stop.clear()
        threads = [threading.Thread(target=self._watch_forever, args=(loop, host), daemon=True,
                                    name="configmap-watch"),
                   threading.Thread(target=self._poll_secret, args=(loop, host), daemon=True, name="secret-poll")]
        for thread in threads:
            thread.start()
        try:
            await asyncio.Event().wait()
        finally:
            self._stop.set()

    def _hand_over(self, loop: asyncio.AbstractEventLoop, host: Host, update: McpServerConfig | ConfigError) -> None:
        future = asyncio.run_coroutine_threadsafe(offer(host, update, self.description), loop)
        future.result(timeout=120)
        if isinstance(update, McpServerConfig):
            self._check_password(loop, host, update)

    def _watch_forever(self, loop: asyncio.AbstractEventLoop, host: Host) -> None:
        delay = 0.25
        while not self._stop.is_set():
            try:
                self._watch_once(loop, host)
                delay = 0.25  # a watch that ran to its timeout: resume at once
                continue
            except ApiException as exc:
                if exc.status != 410:
                    logger.warning("watch of %s failed: %s %s; retrying in %.1fs", self.description, exc.status,
                                   exc.reason, delay)
                else:
                    logger.info("watch of %s expired (410 Gone); reading it again", self.description)
                    try:
                        self._relist(loop, host)
                        continue
                    except Exception as failure:  # the loop outlives any failure: back off and retry
                        logger.warning("re-reading %s failed (%s); retrying in %.1fs", self.description,
                                       type(failure).__name__, delay)
            except Exception as exc:  # connection refused, reset, read timeout: the API server is away
                logger.warning("watch of %s interrupted (%s); retrying in %.1fs", self.description,
                               type(exc).__name__, delay)
            self._stop.wait(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.backoff_max)

    def _watch_once(self, loop: asyncio.AbstractEventLoop, host: Host) -> None:
        stream = watch.Watch()
        kwargs: dict[str, Any] = {"field_selector": f"metadata.name={self.name}", "allow_watch_bookmarks": True,
                                  "timeout_seconds": self.watch_timeout,
                                  "_request_timeout": (5, self.watch_timeout + 15)}
        if self._rv:
            kwargs["resource_version"] = self._rv
        for event in stream.stream(self.api.list_namespaced_config_map, self.namespace, **kwargs):
            if self._stop.is_set():
                stream.stop()
                return
            kind, obj = event["type"], event["object"]
            if kind == "BOOKMARK":
                self._rv = stream.resource_version or self._rv
                continue
            self._rv = obj.metadata.resource_version
            if kind in ("ADDED", "MODIFIED") and obj.metadata.resource_version != self._applied_rv:
                self._hand_over(loop, host, self._parse(obj))
            elif kind == "DELETED":
                logger.warning("%s was deleted; still serving the last good config", self.description)

    def _relist(self, loop: asyncio.AbstractEventLoop, host: Host) -> None:
        previous = self._applied_rv
        update = self._read()
        if self._applied_rv != previous:
            self._hand_over(loop, host, update)

    def _check_password(self, loop: asyncio.AbstractEventLoop, host: Host, config: McpServerConfig) -> None:
        if config.redis is None or config.redis.password_secret is None:
            return
        before = self._password
        try:
            password = self.redis_password(config)
        except ConfigError as exc:
            logger.warning("%s", exc)
            return
        if password != before:
            logger.info("redis password changed in its Secret; reconnecting the session store")
            asyncio.run_coroutine_threadsafe(host.use_redis_password(password), loop).result(timeout=60)

    def _poll_secret(self, loop: asyncio.AbstractEventLoop, host: Host) -> None:
        while not self._stop.wait(self.secret_poll):
            if self._config is not None:
                try:
                    self._check_password(loop, host, self._config)
                except Exception as exc:
                    logger.warning("reading the redis Secret failed (%s)", type(exc).__name__)

