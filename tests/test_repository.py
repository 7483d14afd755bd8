"""The repository stands on its own: its tracked files alone pass the config tests, and its docs link inside it."""

from __future__ import annotations

import ast
import asyncio
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


def _digests(root: Path, names: list[str]) -> dict[str, str]:
    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in names}


def test_tracked_files_alone_pass_the_config_tests(tmp_path: Path) -> None:
    """A clone has nothing beside it (no ../shared): copy exactly the tracked files, run the config tests there."""
    copy = tmp_path / "clone"
    names = _tracked()
    for name in names:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, copy / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clone"]
    before = _digests(copy, names)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/config"],
                         cwd=copy, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert re.search(r"\d+ passed", run.stdout) and " skipped" not in run.stdout, run.stdout[-1000:]
    assert _digests(copy, names) == before, "a test run rewrote tracked files"


def test_doc_links_resolve_inside_the_repository() -> None:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    broken = []
    for doc in docs:
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue  # a web address or an anchor on the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.is_relative_to(REPO) or not path.exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert not broken, broken



def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    return {_canonical(re.split(r"[\s<>=!~;\[]", name, maxsplit=1)[0]) for name in names}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_package_the_tests_import_is_declared() -> None:
    """A package that arrives only as someone else's dependency can vanish in their next release."""
    local = {"higress_ops", "tests", "bench", "echo_plugin"}  # echo_plugin: tests/plugins, installed by bootstrap
    owners = importlib.metadata.packages_distributions()
    missing: dict[str, set[str]] = {}
    for folder in ("tests", "bench"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for top in {module.split(".")[0] for module in modules} - local - set(sys.stdlib_module_names):
                    dists = {_canonical(d) for d in owners.get(top, [top])}
                    if not dists & _declared():
                        missing.setdefault(top, set()).add(str(path.relative_to(REPO)))
    assert not missing, f"imported but not in [project] dependencies or the test extra: {missing}"


def _pins(lock: str) -> dict[str, str]:
    """name -> the pinned line with its hashes, from a `uv pip compile --generate-hashes` file."""
    text = (REPO / "requirements" / lock).read_text()
    blocks = re.findall(r"^([A-Za-z0-9][\w.\-]*)==(\S+)((?:[^\n]*\\\n)*[^\n]*)", text, flags=re.M)
    return {_canonical(name): version + " " + " ".join(sorted(re.findall(r"sha256:\w+", rest)))
            for name, version, rest in blocks}


def test_locks_pin_every_declared_dependency_with_hashes() -> None:
    """pyproject.toml changed without scripts/lock would let an install resolve on its own: fail here instead."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime, test = _pins("runtime.txt"), _pins("test.txt")
    name = lambda spec: _canonical(re.split(r"[\s<>=!~;\[]", spec, maxsplit=1)[0])  # noqa: E731
    assert {name(s) for s in project["dependencies"]} <= set(runtime)
    assert {name(s) for s in project["optional-dependencies"]["test"]} <= set(test)
    assert all("sha256:" in pin for pin in test.values())
    assert {k: test.get(k) for k in runtime} == runtime, "the image must run the versions CI tested"


def test_bootstrap_and_dockerfile_install_from_the_locks() -> None:
    bootstrap, dockerfile = (REPO / "scripts" / "bootstrap.sh").read_text(), (REPO / "Dockerfile").read_text()
    assert "--require-hashes -r \"$LOCK\"" in bootstrap and "LOCK=requirements/test.txt" in bootstrap
    assert "--require-hashes -r /tmp/runtime.txt" in dockerfile and "COPY requirements/runtime.txt" in dockerfile
    assert "--no-deps /wheels/" in dockerfile, "the wheel must not resolve its dependencies past the lock"


def _table_tools(doc: str) -> list[str]:
    """The first column of a doc's tables, where it names a tool (get-..., find-route, check-certs, ...); a one-word
    name (`analyze`) counts in a table whose first column is headed `tool`."""
    text = (REPO / "docs" / doc).read_text(encoding="utf-8")
    found, heading = [], ""
    for line in text.splitlines():
        if not line.startswith("|"):
            heading = ""
            continue
        first = line.split("|")[1].strip()
        heading = heading or first.lower()
        tool = re.fullmatch(r"`?([a-z][a-z0-9]*(?:-[a-z0-9]+)+)`?", first) or (
            re.fullmatch(r"`([a-z][a-z0-9]*)`", first) if heading == "tool" else None)
        if tool:
            found.append(tool.group(1))
    return found


def test_tool_docs_list_exactly_the_tools_the_server_has() -> None:
    """docs/tools.md opens with the 18 raw tools in catalog order; tools.md and views.md together name every tool
    the server lists, each once, and no tool it does not have."""
    from higress_ops.config import load_file
    from higress_ops.registry import default_registry
    from higress_ops.servers.ops.catalog import CATALOG

    server = default_registry().build(load_file(REPO / "examples" / "local.yaml").servers[0])
    served = [spec.name for spec in server.tools()]
    prompts = {spec.name for spec in server.prompts()}  # tools.md's prompt table uses the same row shape
    asyncio.run(server.aclose())
    raw = [entry.name for entry in CATALOG]
    assert len(raw) == 18 and "the 18 raw tools" in (REPO / "README.md").read_text()
    assert _table_tools("tools.md")[:18] == raw
    documented = [name for name in _table_tools("tools.md") + _table_tools("views.md") if name not in prompts]
    assert sorted(documented) == sorted(served)
