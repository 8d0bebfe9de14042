"""Issue 19: the window of the empirical Wiener refinement on volumes (which windows across the
slices :data:`medip.engine.wiener.WINDOWS` offers Stein's estimate). Run on purpose, not in CI:

    python -m benchmarks.wiener_windows

Six 15-slice chunks of four real scans (2 mm T1 at 10 and 50/255, clinical T1 with 6.5 mm
slices at 25/255, chest CT with 5 mm slices at 10 and 50/255, an EPI frame with its 24 slices
at 25/255; noise seed 1, not the seed of ``benchmarks.volume_denoise``), each denoised once by
``reconstruct_volume(..., "denoise", wiener=False)``, then refined with each window of
:data:`COMPARED` alone (the shrink by Stein's estimate), with Stein's choice among all of them,
and with the shipped choice among :data:`medip.engine.wiener.WINDOWS`. The table gives each
refinement's PSNR and SSIM against the clean chunk, its true mean squared error per voxel (in
the chunk's units) and, for each window, the lowest Stein risk over the shrinks, read on the
same voxels for every window (as the choice among all reads them), so that the estimate's
ranking of windows can be read against the truth.
"""

from __future__ import annotations

import time

import numpy as np
import torch

import medip
from medip.engine.metrics import psnr, ssim
from medip.engine.wiener import WINDOWS, wiener_refine
from medip.operators import gaussian
from medip.tasks import make_task

from .cases import sigma_of
from .common import write_results
from .slabs import chunk

#: (scan, in-plane size or None for native, noise as a fraction of the range)
CASES = (("mr_brain_t1_2mm.nii.gz", None, 10 / 255),
         ("mr_brain_t1_2mm.nii.gz", None, 50 / 255),
         ("mr_brain_t1_clinical.nii.gz", 128, 25 / 255),
         ("ct_chest_16slices.nii.gz", 128, 10 / 255),
         ("ct_chest_16slices.nii.gz", 128, 50 / 255),
         ("mr_epi_example4d.nii.gz", None, 25 / 255))
#: the frame read from a 4D series
FRAMES = {"mr_epi_example4d.nii.gz": 0}
#: (depth, in-plane side) of the fixed windows compared
COMPARED = ((1, 8), (2, 8), (3, 8), (4, 8), (5, 8), (4, 4), (4, 6))


def window_name(window: tuple[int, int]) -> str:
    """A (depth, side) window as ``depth x side x side``."""
    return f"{window[0]}x{window[1]}x{window[1]}"


def fitted_chunks():
    """Each case's chunk, fitted once: ``(case, measured, pilot, reference, sigma, seconds)``,
    the noisy chunk, the DIP result (``wiener=False``) and the clean chunk as stacks of planes
    across the task's stack axis, the task's noise estimate and the fit's seconds."""
    for name, size, level in CASES:
        volume = chunk(name, size, FRAMES.get(name))
        clean = torch.from_numpy(volume.array.astype(np.float32))
        noisy = volume.with_array(gaussian(clean, sigma_of(clean, level), seed=1).numpy())
        case = f"{name.split('.')[0]} {'x'.join(map(str, volume.shape))} {level * 255:.0f}/255"
        start = time.perf_counter()
        res = medip.reconstruct_volume(noisy, "denoise", wiener=False, progress=False)
        fitted = time.perf_counter() - start
        task = make_task("denoise", noisy)
        axis = task.stack_axis(None)

        def planes(array: torch.Tensor) -> torch.Tensor:
            return array.movedim(axis, 0).contiguous()

        yield (case, planes(torch.from_numpy(noisy.array)),
               planes(torch.from_numpy(res.volume.array)), planes(clean), task.sigma, fitted)


def main() -> None:
    rows = []
    for case, measured, pilot, reference, sigma, fitted in fitted_chunks():

        def row(label: str, image: torch.Tensor, seconds: float, **extra) -> None:
            rows.append({"case": case, "window": label, "psnr": psnr(image, reference),
                         "ssim": ssim(image, reference), **extra,
                         "true mse": float(((image - reference).double() ** 2).mean()),
                         "seconds": seconds})
            print(rows[-1], flush=True)

        row("DIP (wiener=False)", pilot, fitted)
        # every window's risk read on the same voxels (those no window's padding mirrors)
        start = time.perf_counter()
        among_all = wiener_refine(measured, pilot, sigma, windows=COMPARED)
        seconds = time.perf_counter() - start
        for window in COMPARED:
            start = time.perf_counter()
            refined = wiener_refine(measured, pilot, sigma, windows=(window,))
            row(window_name(window), refined.image, time.perf_counter() - start,
                shrink=refined.shrink, **{"Stein risk": min(
                    risk for (*key, _), risk in among_all.risks.items()
                    if tuple(key) == window)})
        row(f"Stein's choice among these {len(COMPARED)} (chose "
            f"{window_name(among_all.window)})", among_all.image, seconds,
            shrink=among_all.shrink)
        start = time.perf_counter()
        refined = wiener_refine(measured, pilot, sigma)
        row(f"shipped: Stein's choice among {', '.join(map(window_name, WINDOWS))} (chose "
            f"{window_name(refined.window)})", refined.image, time.perf_counter() - start,
            shrink=refined.shrink)
    write_results("wiener-windows", rows, ["case", "window", "psnr", "ssim", "shrink",
                                           "Stein risk", "true mse", "seconds"])


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
