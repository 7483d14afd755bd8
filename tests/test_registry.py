"""The registry: plugin.yaml types, third-party types through the entry-point group, lazy building."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from higress_ops.config import load_text
from higress_ops.config.model import ServerEntry
from higress_ops.registry import Registry, RegistryError, UnknownServerType, default_registry

REPO = Path(__file__).resolve().parent.parent


def test_plugin_yaml_types_are_registered_from_the_manifest() -> None:
    manifest = yaml.safe_load((REPO / "plugin.yaml").read_text(encoding="utf-8"))
    registry = Registry.load(include_entry_points=False)
    declared = {t["type"]: t for t in manifest["server_types"]}
    assert list(registry.types()) == sorted(declared)
    ops = registry.get("higress-ops")
    schema = json.loads((REPO / declared["higress-ops"]["config_schema"]).read_text(encoding="utf-8"))
    assert ops.config_schema == schema
    assert ops.description == declared["higress-ops"]["description"]


def test_entry_point_group_adds_the_echo_type() -> None:
    registry = default_registry()
    assert list(registry.types()) == ["echo", "higress-ops"]
    config = load_text("mcpServer:\n  servers:\n    - {name: e, path: /e, type: echo, config: {greeting: hi}}\n")
    server = registry.build(config.servers[0])
    assert server.name == "e"
    assert [tool.name for tool in server.tools()] == ["echo", "whoami", "sleep", "fail"]


def test_unknown_type_lists_registered_types() -> None:
    with pytest.raises(UnknownServerType) as caught:
        default_registry().get("grpc")
    assert str(caught.value) == "unknown server type 'grpc'; registered types: echo, higress-ops"
    assert isinstance(caught.value, KeyError)


def _manifest(tmp_path: Path, entry_point: str, schema: object) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "t.json").write_text(json.dumps(schema), encoding="utf-8")
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "server_types": [
        {"type": "t", "entry_point": entry_point, "config_schema": str(tmp_path / "schemas" / "t.json")}]}))
    return path


def test_entry_points_resolve_lazily(tmp_path: Path) -> None:
    # A manifest naming a module that does not exist still registers (validation works), and building fails
    # with a message naming the entry point.
    registry = Registry.load(_manifest(tmp_path, "no_such_module.anywhere:build", {"type": "object"}),
                             include_entry_points=False)
    assert list(registry.types()) == ["t"]
    with pytest.raises(RegistryError, match=r"cannot load entry point 'no_such_module\.anywhere:build'"):
        registry.build(ServerEntry(name="x", path="/x", type="t"))


def test_bad_schema_in_manifest_is_reported_at_load(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not a valid JSON Schema"):
        Registry.load(_manifest(tmp_path, "m:build", {"type": "no-such-type"}), include_entry_points=False)


def test_manifest_without_server_types(tmp_path: Path) -> None:
    path = tmp_path / "plugin.yaml"
    path.write_text("name: x\n")
    with pytest.raises(RegistryError, match="'server_types' list"):
        Registry.load(path)
