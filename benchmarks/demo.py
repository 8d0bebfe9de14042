"""The README's demo figures, reproduced on purpose (not in CI: the full demo takes 100-310 s
on 2 cores, a third of the test suite's time budget).

    python -m benchmarks.demo     # runs `medip demo`'s fit, compares it with the README's figures

It writes ``results/<date>-<machine>-demo.{json,md}`` and exits 1 when the run departs from the
README by more than the README says the CPU family and library versions may move it: the noisy
input exactly (the same noise), the denoised PSNR within 0.5 dB and SSIM within 0.02. CI checks
that the README states the figures in the form this script reads (``tests/app/test_demo_cli.py``).
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from .common import write_results

from medip.app.demo import run_demo

README = Path(__file__).resolve().parents[1] / "README.md"
#: How far the figures may move with the CPU family and library versions (the README says so).
TOLERANCE = {"psnr_noisy_db": 0.01, "psnr_denoised_db": 0.5, "ssim_denoised": 0.02}


def readme_figures(text: str | None = None) -> dict:
    """The demo's figures as the README's quick start states them."""
    text = README.read_text() if text is None else text
    psnr = re.search(r"PSNR (\d+\.\d+) -> (\d+\.\d+) dB,\s+SSIM (\d\.\d+) -> (\d\.\d+)", text)
    step = re.search(r"stopped at step (\d+) after (\d+) of its", text)
    if psnr is None or step is None:
        raise ValueError(f"{README}: the quick start no longer states the demo's figures as "
                         f"'PSNR a -> b dB, SSIM c -> d, stopped at step s after n of its'")
    return {"psnr_noisy_db": float(psnr[1]), "psnr_denoised_db": float(psnr[2]),
            "ssim_noisy": float(psnr[3]), "ssim_denoised": float(psnr[4]),
            "stop_step": int(step[1]), "steps_run": int(step[2])}


def main() -> int:
    readme = readme_figures()
    with tempfile.TemporaryDirectory() as out:
        report = run_demo(Path(out) / "demo", progress=False)
    rows = [{"figure": key, "readme": readme[key], "this_run": report[key],
             "difference": report[key] - readme[key], "tolerance": TOLERANCE.get(key, "")}
            for key in readme]
    departed = [row["figure"] for row in rows
                if row["figure"] in TOLERANCE and abs(row["difference"]) >= TOLERANCE[row["figure"]]]
    write_results("demo", rows, list(rows[0]),
                  {"seconds": report["seconds"], "threads": report["threads"],
                   "psnr_dip_db": report["psnr_dip_db"], "ssim_dip": report["ssim_dip"],
                   "wiener_shrink": report["wiener_shrink"],
                   "versions": report["versions"], "departed": departed})
    if departed:
        print(f"the demo departs from the README in {', '.join(departed)}", file=sys.stderr)
    return 1 if departed else 0


if __name__ == "__main__":
    sys.exit(main())
