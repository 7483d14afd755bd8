"""`higress-ops tools` and `higress-ops call` as an operator types them, with the product README's examples."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.istio_envoy import istio_gateway
from tests.support.istiod import istiod_double


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("cli")
    with istio_gateway(workdir / "gw") as gw, istiod_double() as istiod:
        path = workdir / "c.yaml"
        path.write_text(json.dumps({"mcpServer": {"enable": True, "servers": [
            {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
             "config": {"istiodURL": istiod.url, "envoyAdminURL": gw.admin_url}}]}}))
        yield path


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "higress_ops", *args], capture_output=True, text=True, timeout=60)


def test_tools_lists_every_tool(config: Path) -> None:
    run = cli("tools", "--config", str(config))
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert len(lines) == 26 and lines[0].startswith("get-istiod-configz ")
    assert any(line.startswith("get-envoy-certs ") for line in lines)


@pytest.mark.parametrize(("args", "expect"), [
    (["get-envoy-config-dump", '--resource=listeners'], "ListenersConfigDump"),
    (["get-envoy-clusters", "--format=json"], "cluster_statuses"),
    (["get-envoy-stats", "--filter=cluster.*", "--format=json"], '"stats"'),
    (["get-envoy-stats", "--filter", "server.live", "--usedonly"], "server.live"),
    (["get-istiod-configz", "--istiod-token", "good-token"], "VirtualService"),
    (["get-istiod-syncz", "--istiod-token=good-token"], "higress-gateway"),
    (["get-envoy-ready"], "LIVE"),
])
def test_readme_examples_run_as_written(config: Path, args: list[str], expect: str) -> None:
    tool, *rest = args
    run = cli("call", "--config", str(config), tool, *rest)
    assert run.returncode == 0, run.stderr
    assert expect in run.stdout


def test_errors_have_exit_codes(config: Path) -> None:
    no_token = cli("call", "--config", str(config), "get-istiod-syncz")
    assert no_token.returncode == 1 and "kubectl create token" in no_token.stdout
    bad = cli("call", "--config", str(config), "get-envoy-clusters", "--format=xml")
    assert bad.returncode == 2 and "Invalid arguments for tool get-envoy-clusters" in bad.stderr
    unknown = cli("call", "--config", str(config), "get-nothing")
    assert unknown.returncode == 2 and "unknown tool" in unknown.stderr
    loose = cli("call", "--config", str(config), "get-envoy-ready", "stray")
    assert loose.returncode == 2 and "--name=value" in loose.stderr
