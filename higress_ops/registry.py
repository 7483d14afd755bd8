"""Server types by name: the ones plugin.yaml declares, plus any from the `higress_ops.server_types` group.

plugin.yaml is the single place that names a built-in type, its entry point and its schema. Entry points
are imported only when a server is built, so validating a config never imports server code.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from higress_ops.config.model import ServerEntry
from higress_ops.config.schema import check_schema, load_schema
from higress_ops.paths import data_path
from higress_ops.servers.base import McpServer, ServerFactory, ServerType

ENTRY_POINT_GROUP = "higress_ops.server_types"
MANIFEST = "plugin.yaml"

log = logging.getLogger(__name__)


class RegistryError(Exception):
    """A server type that cannot be registered or built (a packaging problem, not a user's config)."""


class UnknownServerType(RegistryError, KeyError):
    """A `type:` no registered server type has; the message lists the ones that exist."""

    def __str__(self) -> str:
        return str(self.args[0])


class _LazyFactory:
    """`module:attr` imported on first use, so a missing server module only fails the build that needs it."""

    def __init__(self, target: str, type_name: str) -> None:
        self.target = target
        self.type_name = type_name
        self._factory: Callable[[ServerEntry], McpServer] | None = None

    def __call__(self, entry: ServerEntry) -> McpServer:
        if self._factory is None:
            self._factory = _resolve(self.target, self.type_name)
        return self._factory(entry)

    def __repr__(self) -> str:
        return f"<lazy {self.target}>"


def _resolve(target: str, type_name: str) -> Callable[[ServerEntry], McpServer]:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"server type {type_name!r}: cannot load entry point {target!r}: {exc}") from exc
    if not callable(obj):
        raise RegistryError(f"server type {type_name!r}: entry point {target!r} is not callable")
    factory: ServerFactory = obj  # a callable; that it builds an McpServer is checked when the server is built
    return factory


class Registry:
    """An immutable name -> ServerType map."""

    def __init__(self, types: Mapping[str, ServerType]) -> None:
        self._types = MappingProxyType(dict(sorted(types.items())))

    @classmethod
    def load(cls, manifest: Path | None = None, *, include_entry_points: bool = True) -> Registry:
        """Types from plugin.yaml (`manifest` overrides its location), then from installed packages."""
        types = dict(_from_manifest(manifest or data_path(MANIFEST)))
        if include_entry_points:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                server_type = _from_entry_point(ep)
                if server_type is None:
                    continue
                if server_type.name in types:
                    log.warning("server type %r from %s ignored: already registered", server_type.name, ep.value)
                    continue
                types[server_type.name] = server_type
        return cls(types)

    def types(self) -> Mapping[str, ServerType]:
        return self._types

    def names(self) -> list[str]:
        return list(self._types)

    def get(self, name: str) -> ServerType:
        try:
            return self._types[name]
        except KeyError:
            known = ", ".join(self._types) or "none"
            raise UnknownServerType(f"unknown server type {name!r}; registered types: {known}") from None

    def build(self, entry: ServerEntry) -> McpServer:
        """An McpServer for one validated servers[] entry."""
        server_type = self.get(entry.type)
        try:
            return server_type.build(entry)
        except RegistryError:
            raise
        except Exception as exc:
            raise RegistryError(f"server {entry.name!r} (type {entry.type!r}) failed to start: {exc}") from exc


def _from_manifest(path: Path) -> dict[str, ServerType]:
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read plugin manifest: {exc}") from exc
    declared = manifest.get("server_types") if isinstance(manifest, dict) else None
    if not isinstance(declared, list):
        raise RegistryError(f"{path}: expected a mapping with a 'server_types' list")
    types: dict[str, ServerType] = {}
    for index, item in enumerate(declared):
        where = f"{path}: server_types[{index}]"
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("type", "entry_point",
                                                                                         "config_schema")):
            raise RegistryError(f"{where}: needs string keys type, entry_point and config_schema")
        name = item["type"]
        if name in types:
            raise RegistryError(f"{where}: type {name!r} declared twice")
        try:
            schema = load_schema(item["config_schema"])
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{where}: config_schema {item['config_schema']!r}: {exc}") from exc
        types[name] = ServerType(
            name=name,
            build=_LazyFactory(item["entry_point"], name),
            config_schema=schema,
            description=str(item.get("description", "")),
        )
    return types


def _from_entry_point(ep: EntryPoint) -> ServerType | None:
    """A third-party type; a broken plugin is logged and skipped so it cannot take the others down."""
    try:
        server_type = ep.load()
        if not isinstance(server_type, ServerType):
            raise TypeError(f"resolves to {type(server_type).__name__}, not higress_ops.servers.base.ServerType")
        check_schema(server_type.config_schema, origin=f"config_schema of {server_type.name!r}")
    except Exception as exc:
        log.warning("entry point %s = %s (group %s) skipped: %s", ep.name, ep.value, ENTRY_POINT_GROUP, exc)
        return None
    return server_type


@cache
def default_registry() -> Registry:
    """The process-wide registry: plugin.yaml plus installed plugins, read once."""
    return Registry.load()
