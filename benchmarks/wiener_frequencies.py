"""Issue 19: one shrink per DCT frequency in the empirical Wiener refinement, against one shrink
for every frequency (``medip.engine.wiener.wiener_refine(frequencies=)``). Run on purpose, not
in CI:

    python -m benchmarks.wiener_frequencies

Two sets, each denoised once with medip's defaults and then refined both ways (the window and
the shrink, or the profile's scale, chosen by Stein's estimate as shipped):

- the stop test bed's 12 denoising images (4 scans, 128^2, noise 10, 25 and 50/255), fitted as
  ``benchmarks.wiener`` fits them (one slice through ``fit``);
- the six 15-slice chunks of ``benchmarks.wiener_windows`` (four scans, noise seed 1), through
  ``reconstruct_volume(..., "denoise", wiener=False)``.

The profile was designed on the bed's images and on five other chunks (noise seed 0); the six
chunks here, with their seed and the EPI series, were not looked at before this run.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import medip
from medip.engine.metrics import psnr, ssim
from medip.engine.wiener import wiener_refine
from medip.operators import Identity, estimate_sigma
from medip.tasks import fit_defaults

from .common import write_results
from .wiener import bed
from .wiener_windows import fitted_chunks, window_name


def _images():
    """(set, name, noisy, pilot, clean, sigma): the planes or stacks refined, with the fit's
    result as the pilot and the noise level the task estimates."""
    for name, noisy, clean, _ in bed():
        sigma = estimate_sigma(noisy)
        pilot = medip.fit(Identity(), noisy, noise_level=sigma, **fit_defaults("denoise")).image
        yield "bed (2D)", name, noisy[0, 0], pilot[0, 0], clean[0, 0], sigma
    for case, noisy, pilot, clean, sigma, _ in fitted_chunks():
        yield "volume chunks", case, noisy, pilot, clean, sigma


def _summary(rows: list[dict]) -> dict:
    gains = np.array([r["per frequency - one shrink dB"] for r in rows])
    return {"images": len(rows), "median gain dB": float(np.median(gains)),
            "worst gain dB": float(gains.min()), "best gain dB": float(gains.max()),
            "median ssim gain": float(np.median([r["per frequency ssim"] - r["one shrink ssim"]
                                                 for r in rows])),
            "median time ratio": float(np.median([r["per frequency s"] / r["one shrink s"]
                                                  for r in rows]))}


def main() -> None:
    rows = []
    for label, name, noisy, pilot, clean, sigma in _images():
        row = {"set": label, "image": name, "DIP psnr": psnr(pilot, clean)}
        for key, frequencies in (("one shrink", False), ("per frequency", True)):
            start = time.perf_counter()
            refined = wiener_refine(noisy, pilot, sigma, frequencies=frequencies)
            row.update({f"{key} s": time.perf_counter() - start,
                        f"{key} psnr": psnr(refined.image, clean),
                        f"{key} ssim": ssim(refined.image, clean),
                        f"{key} window": window_name(refined.window),
                        f"{key} shrink": refined.shrink})
        row["per frequency - one shrink dB"] = row["per frequency psnr"] - row["one shrink psnr"]
        rows.append(row)
        print(row, flush=True)
    summary = {label: _summary([r for r in rows if r["set"] == label])
               for label in dict.fromkeys(r["set"] for r in rows)}
    print(summary)
    write_results("wiener-frequencies", rows, list(rows[0]), summary)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
