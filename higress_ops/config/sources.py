"""Where the live config comes from, and how changes reach the running host.

A source gives the first config (serve refuses to start without a valid one), then follows changes: every
valid update goes to `host.apply`, every invalid one to `host.reject` (the last good config keeps serving).
`FileSource` reloads on SIGHUP and when the file's content changes; `KubeSource` (kube_source.py) gets and
watches the ConfigMap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from higress_ops.config.errors import ConfigError
from higress_ops.config.loader import load_file
from higress_ops.config.model import McpServerConfig

if TYPE_CHECKING:
    from higress_ops.host import Host

logger = logging.getLogger(__name__)


class ConfigSource(Protocol):
    description: str

    def first(self) -> McpServerConfig:
        """The config to start with; raises ConfigError."""
        ...

    def redis_password(self, config: McpServerConfig) -> str | None:
        """The password behind `redis.passwordSecret`, when this source can read Secrets."""
        ...

    async def follow(self, host: Host) -> None:
        """Apply changes until cancelled."""
        ...


async def offer(host: Host, load: ConfigError | McpServerConfig, source: str) -> None:
    """One update, valid or not, to the host; never raises, so a watch loop survives any bad update."""
    if isinstance(load, ConfigError):
        host.reject(load)
        return
    for warning in load.warnings:  # e.g. a server of the gateway's own type added: served by it, skipped here
        logger.warning("config warning from %s: %s", source, warning)
    try:
        report = await host.apply(load)
    except Exception as exc:  # a server that fails to build: apply has already rejected the update
        logger.error("config update from %s could not be applied: %s", source, exc)
        return
    logger.info("config reloaded from %s", source, extra={k: v for k, v in report.items() if v})


class FileSource:
    """A config file: reloaded on SIGHUP and whenever its content changes (polled, no extra dependency)."""

    def __init__(self, path: str, *, poll_seconds: float = 1.0, strict: bool = False) -> None:
        self.path = path
        self.strict = strict
        self.poll_seconds = poll_seconds
        self.description = f"file {path}"
        self._digest = b""

    def first(self) -> McpServerConfig:
        config = load_file(self.path, strict=self.strict)
        self._digest = self._read_digest()
        return config

    def redis_password(self, config: McpServerConfig) -> str | None:
        return None  # a file names its password inline; passwordSecret needs --kube

    def _read_digest(self) -> bytes:
        if self.path == "-":
            return b""
        try:
            return hashlib.sha256(Path(self.path).read_bytes()).digest()
        except OSError:
            return b""

    async def follow(self, host: Host) -> None:
        if self.path == "-":
            return  # stdin cannot be read twice
        hup = asyncio.Event()
        loop = asyncio.get_running_loop()
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, hup.set)
        try:
            while True:
                with suppress(TimeoutError):
                    await asyncio.wait_for(hup.wait(), self.poll_seconds)
                forced = hup.is_set()
                hup.clear()
                try:
                    await self._reload(host, forced)
                except Exception as exc:  # whatever went wrong, the loop (and SIGHUP) keeps working
                    logger.exception("reloading %s failed", self.path)
                    host.reject(ConfigError.single("", f"reloading {self.path} failed: {type(exc).__name__}",
                                                   self.description))
        finally:
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGHUP)

    async def _reload(self, host: Host, forced: bool) -> None:
        digest = await asyncio.to_thread(self._read_digest)
        if not forced and (digest == self._digest or not digest):
            return
        self._digest = digest
        logger.info("reloading %s (%s)", self.path, "SIGHUP" if forced else "file changed")
        try:
            config: ConfigError | McpServerConfig = await asyncio.to_thread(
                load_file, self.path, strict=self.strict)
        except ConfigError as exc:
            config = exc
        await offer(host, config, self.description)
