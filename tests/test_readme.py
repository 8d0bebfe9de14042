"""The README states exactly two set-up commands, and CI runs the test one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    commands = _quick_start_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    setup_and_run, setup_and_test = commands
    assert "sample_data" in setup_and_run or "medip demo" in setup_and_run
    assert setup_and_test.rstrip().endswith("pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_and_test in ci
