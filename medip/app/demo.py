"""The demo: denoise the bundled real head CT slice and write before/after previews and a report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from ..engine.fitting import fit
from ..engine.metrics import psnr, ssim
from ..engine.progress import ProgressBar
from ..io.atomic import atomic_write
from ..io.preview import window_to_uint8
from ..operators import Identity, estimate_sigma, gaussian
from ..tasks import fit_defaults
from ..tasks.restore import refine_denoised
from .provenance import versions
from .report import plot_history

DEMO_SLICE = "ct_head_slice.dcm"
#: The demo's torch CPU threads, fixed: the order of a convolution's parallel reductions depends
#: on the thread count, and a DIP fit amplifies that rounding (1 vs 2 threads: up to 342 HU apart
#: after 100 steps on a 128^2 crop), so a fixed count gives every machine the same figures for
#: the same library versions.
DEMO_THREADS = 2


def find_sample_data(path: str | Path | None = None) -> Path:
    """``path``, else ``./sample_data``, else the folder beside the source checkout."""
    candidates = [Path(path)] if path else [Path("sample_data"),
                                            Path(__file__).resolve().parents[2] / "sample_data"]
    for folder in candidates:
        if (folder / DEMO_SLICE).is_file():
            return folder
    raise FileNotFoundError(f"{DEMO_SLICE} not found in {', '.join(map(str, candidates))}; run from "
                            f"the medip checkout or pass --data FOLDER")


def _window_png(images: list[torch.Tensor], path: Path, level: float = 300, width: float = 1600,
                overwrite: bool = False) -> Path:
    """Side-by-side 8-bit preview in a CT window (default L 300 / W 1600 HU: bone and soft tissue)."""
    from PIL import Image

    row = np.concatenate([img.squeeze().cpu().numpy() for img in images], axis=1)
    pixels = window_to_uint8(row, (level, width))
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp), overwrite)


def run_demo(output: str | Path = "medip-demo", data: str | Path | None = None, size: int = 256,
             seed: int = 0, max_steps: int = 1500, overwrite: bool = False,
             progress: bool | None = None) -> dict:
    """Denoise the sample CT slice (Gaussian noise of 25/255 of its display range) and report."""
    source = find_sample_data(data) / DEMO_SLICE
    ds = pydicom.dcmread(source)
    hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # Outside the scanner's field of view the file stores about -4000 HU: that is air.
    clean = torch.from_numpy(hu).clamp(min=-1000)[None, None]
    clean = F.interpolate(clean, size=(size, size), mode="area")
    sigma = 25 / 255 * float(clean.max() - clean.min())
    noisy = gaussian(clean, sigma, seed=seed)
    bar = ProgressBar(max_steps, "denoising", progress)
    # as the denoise task does: the noise level, estimated from the noisy slice alone, sets the
    # floor the stop waits for and the TV prior's weight (the task's fit defaults), and the
    # fit's image is refined by the empirical Wiener filter it implies and the block-matched one;
    # the clean slice only adds PSNR/SSIM to the history (the plot)
    estimated = estimate_sigma(noisy)
    result = fit(Identity(), noisy, seed=seed, max_steps=max_steps, callbacks=[bar], reference=clean,
                 threads=DEMO_THREADS, noise_level=estimated, **fit_defaults("denoise"))
    bar.close()
    refined = refine_denoised(noisy, result.image, estimated)
    denoised = refined.image
    out = Path(output)
    report = {
        "input": str(source), "task": "denoise", "noise_sigma_hu": sigma,
        "noise_sigma_estimated_hu": estimated, "size": size,
        "seed": seed, "stop_step": result.stop_step, "steps_run": result.steps_run,
        "seconds": round(result.elapsed, 2),
        "psnr_noisy_db": psnr(noisy, clean), "psnr_denoised_db": psnr(denoised, clean),
        "ssim_noisy": ssim(noisy, clean), "ssim_denoised": ssim(denoised, clean),
        "psnr_dip_db": psnr(result.image, clean), "ssim_dip": ssim(result.image, clean),
        "wiener_shrink": refined.shrink,
        "data_range_hu": float(clean.max() - clean.min()),
        "threads": DEMO_THREADS, "versions": versions(),
        "preview": str(out / "demo_noisy_denoised_clean.png"),
    }
    _window_png([noisy, denoised, clean], out / "demo_noisy_denoised_clean.png",
                overwrite=overwrite)
    report["curves"] = str(plot_history(result.history, result.stop_step, out / "demo_curves.png",
                                        "medip demo: CT denoising", overwrite))
    atomic_write(out / "demo_report.json", lambda tmp: tmp.write_text(json.dumps(report, indent=1)),
                 overwrite)
    return report
