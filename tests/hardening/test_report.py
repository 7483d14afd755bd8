"""Measured figures go to the build folder during a test run; only `publish` (scripts/reliability) touches docs/."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.hardening import report


def test_a_run_writes_figures_under_build_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, docs = tmp_path / "build" / "reliability", tmp_path / "docs"
    monkeypatch.setattr(report, "SPOOL", build / "spool")
    report.record("Soak", "calls", "10 of 10", test="t::a")
    report.render(build)
    assert not docs.exists()
    assert json.loads((build / "reliability.json").read_text())["Soak::calls"]["value"] == "10 of 10"
    assert "| calls | 10 of 10 | `t::a` |" in (build / "reliability.md").read_text()
    assert not list((build / "spool").glob("*.jsonl")), "spooled lines are consumed"


def test_publish_keeps_older_figures_and_takes_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build, docs = tmp_path / "build", tmp_path / "docs"
    monkeypatch.setattr(report, "SPOOL", build / "spool")
    report.record("Soak", "calls", "old", test="t::a")
    report.record("Faults", "kill", "clean", test="t::b")
    report.render(build)
    assert report.publish(build, docs) == 2
    (build / "reliability.json").unlink()
    report.record("Soak", "calls", "new", test="t::a")
    report.render(build)
    assert report.publish(build, docs) == 1
    store = json.loads((docs / "reliability.json").read_text())
    assert {k: v["value"] for k, v in store.items()} == {"Soak::calls": "new", "Faults::kill": "clean"}
    text = (docs / "reliability.md").read_text()
    assert text.index("## Faults") < text.index("## Soak") and "| calls | new |" in text


def test_publish_with_nothing_measured_changes_nothing(tmp_path: Path) -> None:
    assert report.publish(tmp_path / "build", tmp_path / "docs") == 0
    assert not (tmp_path / "docs").exists()


def test_the_build_folder_is_ignored_by_git() -> None:
    target = report.BUILD.relative_to(report.REPO) / "reliability.md"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(target)], cwd=report.REPO, check=False)
    assert ignored.returncode == 0, f"{target} must be ignored by git: test runs write it"
