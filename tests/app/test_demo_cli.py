"""The demo and the command line on the bundled sample data."""

import json
import subprocess

import pytest

from medip.app.demo import run_demo


def test_demo_denoises_the_sample_slice_and_refuses_to_overwrite(tmp_path, sample_dir):
    report = run_demo(tmp_path / "out", sample_dir, size=64, max_steps=120, progress=False)
    saved = json.loads((tmp_path / "out" / "demo_report.json").read_text())
    assert saved["psnr_denoised_db"] > saved["psnr_noisy_db"] + 2
    assert (tmp_path / "out" / "demo_noisy_denoised_clean.png").stat().st_size > 1000
    assert report["stop_step"] < report["steps_run"] <= 120
    with pytest.raises(FileExistsError, match="overwrite"):
        run_demo(tmp_path / "out", sample_dir, size=64, max_steps=5, progress=False)


def test_cli_info_and_errors(sample_dir, tmp_path):
    out = subprocess.run(["medip", "info", str(sample_dir / "ct_series_tiny")], capture_output=True,
                         text=True, check=True).stdout
    assert "CT" in out and "5 file(s)" in out and "Explicit VR Little Endian" in out
    missing = subprocess.run(["medip", "info", str(tmp_path / "nope")], capture_output=True,
                             text=True)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    usage = subprocess.run(["medip", "info"], capture_output=True, text=True)
    assert usage.returncode == 2


def test_the_readme_states_the_demo_figures_that_the_benchmark_checks():
    """`python -m benchmarks.demo` reruns the full demo against these figures (100-310 s, so not
    here); the README must keep stating them in the form it reads, and plausibly."""
    from benchmarks.demo import readme_figures

    readme = readme_figures()
    assert readme["psnr_denoised_db"] > readme["psnr_noisy_db"] + 5
    assert readme["ssim_denoised"] > readme["ssim_noisy"]
    assert 0 < readme["stop_step"] < readme["steps_run"] <= 1500
    with pytest.raises(ValueError, match="no longer states"):
        readme_figures("PSNR went up")
