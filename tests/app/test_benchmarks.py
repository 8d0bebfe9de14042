"""Smoke test of the benchmark suite (issue 8): tiny sizes, 3 steps, every case and method."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_suite_quick_run_writes_every_case(tmp_path):
    subprocess.run([sys.executable, "-m", "benchmarks.suite", "--quick", "--out", str(tmp_path)],
                   cwd=ROOT, check=True, capture_output=True, text=True)
    (result,) = tmp_path.glob("*.json")
    assert result.with_suffix(".md").exists()
    data = json.loads(result.read_text())
    cases = {row["case"] for row in data["rows"]}
    assert len(cases) == 6
    for case in cases:
        methods = [row for row in data["rows"] if row["case"] == case]
        medip = [row for row in methods if row["method"].startswith("medip")]
        assert len(medip) == 1 and math.isfinite(medip[0]["psnr"]) and medip[0]["seconds"] > 0
        assert any(not row["method"].startswith(("medip", "deepinv", "plain")) for row in methods)
    assert any(row["method"].startswith("plain skip") for row in data["rows"])
    assert {f["method"].split(" ")[0] for f in data["floors"]} >= {"medip", "plain"}
    assert any(t["target"].startswith("stopping gap") for t in data["targets"])
