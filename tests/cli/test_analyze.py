"""`higress-ops analyze` as an operator (or a CI step) runs it: every finding at once, istioctl's thresholds,
suppression and exit code 79."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from higress_ops.cli import main
from higress_ops.servers.ops.detectors import ANALYZE
from tests.support.lint_world import lint_world


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("cli-analyze")
    with lint_world(workdir / "world") as world:
        path = workdir / "c.yaml"
        path.write_text(json.dumps({"mcpServer": {"enable": True, "servers": [
            {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
             "config": {"istiodURL": world.istiod.url, "envoyAdminURL": world.gateway.admin_url}}]}}))
        yield path


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str) -> Run:
    """The command in this process (main() as the console script calls it): what it prints and its exit code."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["analyze", *args])
    return Run(code, out.getvalue(), err.getvalue())


def test_every_finding_and_exit_79_on_errors(config: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "higress_ops", "analyze", "--config", str(config), "--istiod-token",
                          "good-token", "-o", "json"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 79, run.stderr
    out = json.loads(run.stdout)
    assert len(out["findings"]) == sum(out["counts"].values()) > 40 and out["counts"]["error"] > 0
    assert out["not_checked"] == {}
    assert run.stderr.strip().endswith("[analyzed the Envoy at envoyAdminURL]")
    text = cli("--config", str(config), "--istiod-token", "good-token")
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"analyze: {len(out['findings'])} finding(s): ")
    assert sum(line.startswith("[") for line in lines) == len(out["findings"])  # no paging: all of them


def test_thresholds_and_suppression(config: Path) -> None:
    token = ("--config", str(config), "--istiod-token", "good-token")
    # Errors exist but are not printed; the exit code still sees them, as istioctl's does.
    infos = cli(*token, "--detector", "istio-service-port-names", "--detector", "istio-envoyfilters",
                "--output-threshold", "warning")
    assert infos.returncode == 79 and "IST0118" not in infos.stdout and "IST0153" in infos.stdout
    only_info = cli(*token, "--detector", "istio-service-port-names")
    assert only_info.returncode == 0 and "[info IST0118] Service shop/inventory" in only_info.stdout
    assert cli(*token, "--detector", "istio-service-port-names", "--failure-threshold", "info").returncode == 79
    quiet = cli(*token, "--detector", "istio-envoyfilters", "-S", "*=EnvoyFilter higress-system/bad-*")
    assert quiet.returncode == 0 and "bad-" not in quiet.stdout and "IST0151" in quiet.stdout


def test_list_detectors_and_bad_arguments(config: Path) -> None:
    listed = cli("--list-detectors")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == len(ANALYZE)
    assert any(line.startswith("istio-gateway-ports ") and "(reads istiod, envoy)" in line
               for line in listed.stdout.splitlines())
    unknown = cli("--config", str(config), "--detector", "nope")
    assert unknown.returncode == 2 and "unknown detector(s) nope" in unknown.stderr
    bad_rule = cli("--config", str(config), "-S", "IST0101")
    assert bad_rule.returncode == 2 and "'suppress' rules look like CODE=Kind namespace/name" in bad_rule.stderr


def test_nothing_checked_is_not_a_pass(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"mcpServer": {"enable": True, "servers": [
        {"name": "ops", "path": "/higress-ops", "type": "higress-ops",
         "config": {"istiodURL": "http://127.0.0.1:9", "envoyAdminURL": "http://127.0.0.1:9"}}]}}))
    run = cli("--config", str(path))
    assert run.returncode == 1 and "Envoy admin at http://127.0.0.1:9 is unreachable" in run.stderr, run.stderr
    assert not run.stdout  # no "no problems found" for a gateway that was never read
