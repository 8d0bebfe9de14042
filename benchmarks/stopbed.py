"""The stopping test bed (issue 19): 40 images from 4 real scans, 4 tasks, 3 noise levels.

    python -m benchmarks.stopbed record [STEPS [TASK]]   # one long fit per image (or TASK's), traces
    python -m benchmarks.stopbed report           # the gap of each stop rule, from the traces

Each image is a 128x128 slice (area-resampled) of one of four real scans in ``../shared/data``
(chest CT, head CT, the 2 mm T1 template, a clinical T1), normalised to [0, 1]. Tasks: denoising
and sparse-view CT (45 parallel views) and 4x Cartesian MRI at three noise levels each, and 50 %
inpainting at the middle level. Each image is fitted once with the library's own fit defaults
for its task and the shipped windowed-variance stopper made patient enough never to fire, with
the clean image as reference: the trace then holds, per step, the data loss, the stopper's
variance and the PSNR of the image that the stopper would return at that step. A stop rule is
judged by the gap between the PSNR at its step and the best PSNR along the run. The rules are
replayed with the library's own code (:meth:`Stopper.replay`,
:func:`medip.engine.stopping.discrepancy_step`), the same code paths ``fit`` runs.
"""

from __future__ import annotations

import datetime
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import medip
from medip.engine.fitting import minimum_stop_step
from medip.engine.metrics import psnr
from medip.engine.stopping import WindowedVariance
from medip.operators import Fourier, Identity, LinearOperator, Mask, Radon, cartesian_mask
from medip.operators import estimate_sigma, estimate_sigma_1d, random_pixel_mask
from medip.tasks import fit_defaults
from medip.tasks.mri import kspace_noise_level

from .common import RESULTS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIZE = 128
LEVELS = (10 / 255, 25 / 255, 50 / 255)  # noise std over the clean image's range
CT_LEVELS = (0.005, 0.01, 0.02)  # noise std over the sinogram's maximum (clinical doses: ~1 %)
TRACES = RESULTS / "stopbed-traces.npz"
NEVER = 10 ** 9


def _slice(name: str, index: int | None = None) -> torch.Tensor:
    """One axial slice of a scan in ``DATA``, area-resampled to SIZE^2 and scaled to [0, 1]."""
    array = medip.load(DATA / name).array
    plane = array[:, :, array.shape[2] // 2 if index is None else index]
    image = F.interpolate(torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))[None, None],
                          size=(SIZE, SIZE), mode="area")
    return unit_range(image)


def unit_range(image: torch.Tensor) -> torch.Tensor:
    """``image`` clipped at its 0.1 % quantile (outliers below the anatomy) and scaled to
    [0, 1]."""
    image = image.clamp(min=float(torch.quantile(image.flatten(), 0.001)))
    return (image - image.min()) / (image.max() - image.min())


SCANS = {"chest CT": lambda: _slice("ct_chest_16slices.nii.gz", 8),
         "head CT": lambda: _slice("ct_head_slice.dcm", 0),
         "T1 2mm": lambda: _slice("mr_brain_t1_2mm.nii.gz"),
         "T1 clinical": lambda: _slice("mr_brain_t1_clinical.nii.gz", 12)}


@dataclass
class Image:
    """One test-bed image: its task, operator, measurement, clean image and true noise level."""

    name: str
    task: str
    operator: LinearOperator
    y: torch.Tensor
    clean: torch.Tensor
    sigma: float  # the root of E|n|^2 per measured sample (complex: both parts), y's units


def _noisy(A: LinearOperator, clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    exact = A(clean)
    gen = torch.Generator().manual_seed(seed)
    if exact.is_complex():  # sigma per real and imaginary part: E|n|^2 = 2 sigma^2
        noise = torch.complex(torch.randn(exact.shape, generator=gen),
                              torch.randn(exact.shape, generator=gen)) * sigma
    else:
        noise = torch.randn(exact.shape, generator=gen) * sigma
    return A(A.H(exact + noise)) if isinstance(A, Mask) else exact + _measured(A, noise)


def _measured(A: LinearOperator, noise: torch.Tensor) -> torch.Tensor:
    """Noise only where the operator measures (sampled k-space lines)."""
    mask = getattr(A, "mask", None)
    return noise * mask if mask is not None else noise


def estimated_sigma(image) -> float:
    """The noise level medip's task estimates from the measurement alone."""
    if image.task == "denoise":
        return estimate_sigma(image.y)
    if image.task == "inpaint":
        return estimate_sigma(image.y, known=image.operator.mask)
    if image.task == "ct":
        return estimate_sigma_1d(image.y)
    return kspace_noise_level(image.y, None, None)


def images() -> list[Image]:
    out = []
    for seed, (scan, load) in enumerate(SCANS.items()):
        clean = load()
        radon = Radon((SIZE, SIZE), 45)
        fourier = Fourier((SIZE, SIZE), cartesian_mask((SIZE, SIZE), 4, 0.08, seed=seed).mask)
        sino_max = float(radon(clean).max())
        for level, ct_level in zip(LEVELS, CT_LEVELS):
            tag = f"{scan} {round(level * 255)}/255"
            out.append(Image(f"denoise {tag}", "denoise", Identity(), _noisy(
                Identity(), clean, level, seed), clean, level))
            out.append(Image(f"CT 45 views {scan} {ct_level:.1%}", "ct", radon, _noisy(
                radon, clean, ct_level * sino_max, seed), clean, ct_level * sino_max))
            out.append(Image(f"MRI 4x {tag}", "mri", fourier, _noisy(
                fourier, clean.to(torch.complex64), level, seed), clean.to(torch.complex64),
                level * 2 ** 0.5))
        mask = Mask(random_pixel_mask((SIZE, SIZE), 0.5, seed=seed))
        out.append(Image(f"inpaint 50% {scan} 25/255", "inpaint", mask,
                         _noisy(mask, clean, LEVELS[1], seed), clean, LEVELS[1]))
    return out


def record(steps: int, task: str | None = None) -> None:
    """Fit every image once for ``steps`` steps (or only ``task``'s images, keeping the stored
    traces of the others); save the traces."""
    kept = _stored() if task else {}
    traces: dict[str, np.ndarray] = {}
    meta = []
    for image in images():
        key = f"{len(meta):02d}"
        if task and image.task != task:
            traces[key], info = kept[key]
            meta.append(info)
            continue
        options = fit_defaults(image.task)
        min_steps = minimum_stop_step(bool(options.get("residual")), 3000)
        start = time.perf_counter()
        res = medip.fit(image.operator, image.y, stopper=WindowedVariance(patience=NEVER,
                        min_steps=min_steps), max_steps=steps, reference=image.clean,
                        noise_level=estimated_sigma(image), **options)
        traces[key] = np.stack([res.history["loss"], res.history["variance"],
                                res.history["psnr"]])
        meta.append({"key": key, "name": image.name, "task": image.task, "sigma": image.sigma,
                     "scale": res.scale, "seconds": time.perf_counter() - start,
                     "recorded": str(datetime.date.today()),
                     "input_psnr": psnr(image.operator.pinv(image.y).abs()
                                        if image.y.is_complex() else image.operator.pinv(image.y),
                                        image.clean.abs())})
        print(json.dumps(meta[-1]), f"peak {max(res.history['psnr']):.2f}",
              flush=True)
    RESULTS.mkdir(exist_ok=True)
    np.savez_compressed(TRACES, meta=json.dumps(meta), **traces)


def _stored() -> dict[str, tuple[np.ndarray, dict]]:
    """The stored traces and their facts, by key."""
    data = np.load(TRACES)
    return {info["key"]: (data[info["key"]], info) for info in json.loads(str(data["meta"]))}


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "report"
    if command == "record":
        record(int(sys.argv[2]) if len(sys.argv) > 2 else 1500, *sys.argv[3:4])
    elif command == "report":
        from .stopbed_report import report
        report()
    else:
        raise SystemExit(__doc__)
