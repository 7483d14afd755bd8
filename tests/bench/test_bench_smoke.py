"""The benchmark command keeps working: a tiny run produces well-formed JSON with every benchmark in it.
(Benchmarks never gate on their figures; this checks only that they run.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_bench_smoke_run_writes_every_benchmark(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "bench", "--scale", "smoke", "--out", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=170)
    assert run.returncode == 0, run.stderr[-2000:]
    results = json.loads((tmp_path / "latest.json").read_text())
    for key, field in (("P1", "ratio_higress_ops"), ("P2", "ratio_higress_ops"), ("P3", "added_p99_ms"),
                       ("P3_cluster", "added_p99_ms"),
                       ("P4", "rss_per_session_kb"), ("P5", "ratio"), ("P6", "ratio_pooled"), ("P7", "ratio")):
        assert isinstance(results[key][field], float), (key, results[key])
    assert "| P1 latency" in run.stdout
