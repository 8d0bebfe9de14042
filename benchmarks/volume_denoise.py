"""Issues 19 and 21: denoising whole volumes, medip's default against BM3D slice by slice and
BM4D (both free for non-commercial use only: benchmark extras, never medip dependencies). Run on
purpose, not in CI:

    python -m benchmarks.volume_denoise [CASES]   # CASES: comma-separated names, default all

The cases are 15-slice chunks of three real scans at three noise levels (the chunks of
``python -m benchmarks.slabs``) and the whole 91x109x91 brain at 25/255 of its range (the
volume of ``python -m benchmarks.engine brain-time``). Every method sees the same noisy volume;
BM3D and BM4D run with scikit-image's noise estimate from the noisy volume (what a user can
run) and with the true sigma (an upper bound); TV with scikit-image's self-supervised weight.
medip runs ``reconstruct_volume(noisy, "denoise")`` with its defaults (its own noise estimate);
the same fits without the empirical Wiener refinement are a second row (the refinement applied
by the task after ``wiener=False``, as the driver applies it, so the fits run once).
"""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
import torch

from .cases import _skimage, denoising_baselines, sigma_of
from .common import non_commercial, peak_rss_mb, write_results
from .slabs import CASES as CHUNKS, chunk
from .stopbed import DATA

import medip
from medip.engine.metrics import psnr, ssim
from medip.operators import gaussian
from medip.tasks import make_task

#: name -> (volume loader, noise as a fraction of the range)
CASES: dict[str, tuple[Callable[[], medip.Volume], float]] = {
    **{f"{name.split('_', 1)[1].split('.')[0]} 15 slices {level * 255:.0f}/255":
       (lambda name=name, size=size: chunk(name, size), level) for name, size, level in CHUNKS},
    "brain t1 2mm 91x109x91 25/255": (lambda: medip.load(DATA / "mr_brain_t1_2mm.nii.gz"),
                                      25 / 255)}


def _timed(run: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = run()
    return np.asarray(out, dtype=np.float32), time.perf_counter() - start


def baselines(noisy: np.ndarray, clean: np.ndarray, sigma: float) -> dict[str, tuple]:
    """name -> (denoised volume, seconds) for BM3D slice-wise, BM4D and TV."""
    bm3d, bm4d = non_commercial("bm3d"), non_commercial("bm4d")
    estimated = float(_skimage().estimate_sigma(noisy.astype(np.float64)))
    out = {}
    for label, level in (("estimated sigma", estimated), ("oracle: true sigma", sigma)):
        out[f"BM3D slice-wise ({label})"] = _timed(lambda level=level: np.stack(
            [bm3d.bm3d(noisy[:, :, k].astype(np.float64), level) for k in range(noisy.shape[2])],
            axis=2))
        out[f"BM4D ({label})"] = _timed(lambda level=level: bm4d.bm4d(noisy.astype(np.float64),
                                                                       level))
    start = time.perf_counter()
    tv = denoising_baselines(torch.from_numpy(noisy)[None, None], torch.from_numpy(clean))
    seconds = time.perf_counter() - start
    for name in ("TV (self-tuned)", "TV (oracle weight)"):
        out[name] = (tv[name][0, 0].numpy(), seconds)
    return out


def main(names: list[str]) -> None:
    rows, gaps = [], {}
    for name in names:
        load, level = CASES[name]
        volume = load()
        clean = volume.array.astype(np.float32)
        sigma = sigma_of(torch.from_numpy(clean), level)
        noisy = gaussian(torch.from_numpy(clean), sigma, seed=0).numpy()
        noisy_volume = volume.with_array(noisy)
        start = time.perf_counter()
        res = medip.reconstruct_volume(noisy_volume, "denoise", wiener=False, progress=False)
        fitted = time.perf_counter() - start
        task = make_task("denoise", noisy_volume)
        refined = task.refine(torch.from_numpy(res.volume.array), task.stack_axis(None))
        outputs = {"medip (defaults)": (refined.image.numpy(), time.perf_counter() - start),
                   "medip without the Wiener refinement (wiener=False)": (res.volume.array,
                                                                           fitted),
                   "noisy input": (noisy, 0.0), **baselines(noisy, clean, sigma)}
        reference, scores = torch.from_numpy(clean), {}
        for method, (out, seconds) in outputs.items():
            x = torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
            scores[method] = psnr(x, reference)
            rows.append({"case": name, "method": method, "psnr": scores[method],
                         "ssim": ssim(x, reference), "seconds": seconds})
            print(rows[-1], flush=True)
        runnable = {m: v for m, v in scores.items()
                    if "oracle" not in m and not m.startswith("medip")}
        best = max(runnable, key=runnable.get)
        gaps[name] = {"best user-runnable": best, "medip - it": scores["medip (defaults)"]
                      - runnable[best], "shrink": refined.shrink, "window": refined.window,
                      "refinement dB": scores["medip (defaults)"]
                      - scores["medip without the Wiener refinement (wiener=False)"],
                      "peak_rss_mb": peak_rss_mb()}
        print(gaps[name], flush=True)
    write_results("volume-denoise", rows, ["case", "method", "psnr", "ssim", "seconds"],
                  {"medip against the best user-runnable method": gaps})


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(sys.argv[1].split(",") if len(sys.argv) > 1 else list(CASES))
