"""Packaging: one installed namespace, the console script, no stray top-level modules."""

import importlib.util
import os
import subprocess
import sys

import medip


def test_namespace_imports_from_any_folder(tmp_path):
    code = ("import medip, medip.operators, medip.cli, importlib.util as u;"
            "print(medip.__version__, u.find_spec('operators'), u.find_spec('cli'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == [medip.__version__, "None", "None"]


def test_no_generic_top_level_modules_installed():
    for name in ("operators", "cli"):
        spec = importlib.util.find_spec(name)
        assert spec is None or "site-packages" not in str(spec.origin), spec


def test_console_script_version_and_help(tmp_path):
    env = {**os.environ, "PYTHONPATH": ""}
    version = subprocess.run(["medip", "--version"], capture_output=True, text=True, cwd=tmp_path,
                             env=env, check=True)
    assert medip.__version__ in version.stdout
    helptext = subprocess.run(["medip", "--help"], capture_output=True, text=True, cwd=tmp_path,
                              env=env, check=True)
    assert "info" in helptext.stdout
