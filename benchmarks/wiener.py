"""Issue 19: the empirical Wiener refinement of medip's denoised result (:mod:`medip.engine.wiener`).

    python -m benchmarks.wiener [bed|held-out]

Two sets of 2D images, each denoised once with medip's defaults (``fit`` with the denoise task's
options and the noise level it estimates, the shipped stop live: the fit the volume driver runs
for one slice), then refined with the shrink Stein's estimate picks, as ``reconstruct_volume``
does by default:

- ``bed``: the stop test bed's 12 denoising images (4 scans, 128^2 area-resampled, noise 10, 25
  and 50/255), on which the refinement was designed;
- ``held-out``: 12 images it never saw: other slices of the scans at their native resolution
  (a 256^2 crop of another chest CT slice, another clinical T1 slice at 256^2, an axial slice of
  the 2 mm T1 at 91x109), and a slice of the EPI series (128x96) the bed does not use, at the
  same three noise levels with other noise seeds.

Each refined image is then filtered by the block-matched Wiener filter as denoising runs it on a
single image (``medip.tasks.restore.refine_denoised``: patches matched in the DIP result,
weighed by the refinement; the ``matched`` columns, against the refinement alone).

Beside them BM3D as the scoreboard runs it (sigma from scikit-image's estimate; and the true
sigma, an upper bound no user has).
"""

from __future__ import annotations

import sys
import time
import numpy as np
import torch

import medip
from medip.engine.metrics import psnr, ssim
from medip.engine.nets import center_crop
from medip.engine.wiener import wiener_refine
from medip.operators import Identity, estimate_sigma
from medip.tasks import fit_defaults
from medip.tasks.restore import refine_denoised

from .cases import _skimage
from .common import non_commercial, write_results
from .stopbed import DATA, LEVELS, images, unit_range


def _scaled(plane: np.ndarray, crop: int | None = None) -> torch.Tensor:
    """A plane (its central ``crop``^2) as ``(1, 1, H, W)`` in [0, 1], as the stop test bed
    scales its slices."""
    image = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    if crop is not None:
        image = center_crop(image, (crop, crop))
    return unit_range(image)[None, None]


HELD_OUT = {
    "chest CT slice 3, 256^2 crop": lambda: _scaled(
        medip.load(DATA / "ct_chest_16slices.nii.gz").array[:, :, 3], crop=256),
    "T1 clinical slice 16, 256^2": lambda: _scaled(
        medip.load(DATA / "mr_brain_t1_clinical.nii.gz").array[:, :, 16]),
    "T1 2mm axial 30, 91x109": lambda: _scaled(
        medip.load(DATA / "mr_brain_t1_2mm.nii.gz").array[:, :, 30]),
    "EPI slice 12, 128x96": lambda: _scaled(
        medip.load(DATA / "mr_epi_example4d.nii.gz", frame=0).array[:, :, 12]),
}


def held_out() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    """(name, noisy, clean, sigma) of the held-out images; noise seeds 100 and up."""
    out = []
    for k, (name, load) in enumerate(HELD_OUT.items()):
        clean = load()
        for j, level in enumerate(LEVELS):
            noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(100 + 3 * k + j))
            out.append((f"{name} {round(level * 255)}/255", clean + level * noise, clean, level))
    return out


def bed() -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    return [(i.name, i.y, i.clean, i.sigma) for i in images() if i.task == "denoise"]


def _row(name: str, noisy: torch.Tensor, clean: torch.Tensor, sigma: float) -> dict:
    estimated = estimate_sigma(noisy)
    start = time.perf_counter()
    res = medip.fit(Identity(), noisy, noise_level=estimated, **fit_defaults("denoise"))
    fitted = time.perf_counter() - start
    start = time.perf_counter()
    refined = wiener_refine(noisy, res.image, estimated)
    refine_seconds = time.perf_counter() - start
    start = time.perf_counter()
    both = refine_denoised(noisy, res.image, estimated)
    both_seconds = time.perf_counter() - start
    plane = noisy[0, 0].double().numpy()
    bm3d = non_commercial("bm3d")
    user = torch.from_numpy(bm3d.bm3d(plane, float(_skimage().estimate_sigma(plane)))).float()
    oracle = torch.from_numpy(bm3d.bm3d(plane, sigma)).float()
    scores = {label: (psnr(x.reshape(clean.shape), clean), ssim(x.reshape(clean.shape), clean))
              for label, x in (("DIP", res.image), ("refined", refined.image),
                               ("matched", both.image),
                               ("BM3D", user), ("BM3D oracle", oracle))}
    return {"image": name, "size": "x".join(map(str, clean.shape[2:])),
            "DIP psnr": scores["DIP"][0], "refined psnr": scores["refined"][0],
            "gain dB": scores["refined"][0] - scores["DIP"][0],
            "DIP ssim": scores["DIP"][1], "refined ssim": scores["refined"][1],
            "shrink": refined.shrink, "stop": res.stop_step, "fit s": fitted,
            "refine s": refine_seconds,
            "BM3D (estimated sigma)": scores["BM3D"][0], "BM3D ssim": scores["BM3D"][1],
            "refined - BM3D dB": scores["refined"][0] - scores["BM3D"][0],
            "DIP - BM3D dB": scores["DIP"][0] - scores["BM3D"][0],
            "BM3D oracle psnr": scores["BM3D oracle"][0],
            "matched psnr": scores["matched"][0], "matched ssim": scores["matched"][1],
            "matched - refined dB": scores["matched"][0] - scores["refined"][0],
            "matched - BM3D dB": scores["matched"][0] - scores["BM3D"][0],
            "both stages s": both_seconds}


def _summary(rows: list[dict]) -> dict:
    gains = np.array([r["gain dB"] for r in rows])
    after = np.array([r["refined - BM3D dB"] for r in rows])
    before = np.array([r["DIP - BM3D dB"] for r in rows])
    ssim_gain = np.array([r["refined ssim"] - r["DIP ssim"] for r in rows])
    return {"images": len(rows), "median gain dB": float(np.median(gains)),
            "worst gain dB": float(gains.min()), "best gain dB": float(gains.max()),
            "median ssim gain": float(np.median(ssim_gain)),
            "median DIP - BM3D dB": float(np.median(before)),
            "median refined - BM3D dB": float(np.median(after)),
            "refined ahead of BM3D": int((after > 0).sum()),
            "median refine s / fit s": float(np.median([r["refine s"] / r["fit s"] for r in rows])),
            **_matched(rows)}


def _matched(rows: list[dict]) -> dict:
    """What the block-matched stage adds to the refinement, and where that leaves medip."""
    gains = np.array([r["matched - refined dB"] for r in rows])
    ssim_change = np.array([r["matched ssim"] - r["refined ssim"] for r in rows])
    after = np.array([r["matched - BM3D dB"] for r in rows])
    return {"median matched - refined dB": float(np.median(gains)),
            "worst matched - refined dB": float(gains.min()),
            "best matched - refined dB": float(gains.max()),
            "matched ahead of refined": int((gains > 0).sum()),
            "median matched - refined ssim": float(np.median(ssim_change)),
            "worst matched - refined ssim": float(ssim_change.min()),
            "median matched - BM3D dB": float(np.median(after)),
            "matched ahead of BM3D": int((after > 0).sum()),
            "median both stages s / fit s": float(np.median([r["both stages s"] / r["fit s"]
                                                             for r in rows]))}


def main(which: str | None = None) -> None:
    sets = {"bed": bed, "held-out": held_out}
    rows, summary = [], {}
    for label, load in sets.items():
        if which not in (None, label):
            continue
        part = []
        for name, noisy, clean, sigma in load():
            part.append({"set": label, **_row(name, noisy, clean, sigma)})
            print(part[-1], flush=True)
        summary[label] = _summary(part)
        rows += part
    summary["all"] = _summary(rows)
    print(summary)
    write_results("wiener" if which is None else f"wiener-{which}", rows, list(rows[0]), summary)


if __name__ == "__main__":
    main(*sys.argv[1:2])
