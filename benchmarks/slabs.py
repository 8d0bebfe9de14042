"""Issue 21: where a denoised volume's time goes in ``slices`` mode, and what the warm-started slab
fits can drop. Run on purpose, not in CI:

    python -m benchmarks.slabs    # warm budget x patience x slab stride on three real scans

Each case is 15 slices of a real scan (three scans, three noise levels, so that no choice is
tuned on one volume) denoised through ``medip.reconstruct_volume`` with its defaults except the
knobs under study: the warm fits' step budget (``warm_steps``), the warm stopper's patience
(``medip.reconstruct.WARM_PATIENCE_SHARE``, patience = warm budget / share) and the distance
between slab centres (``medip.reconstruct.SLAB_STRIDE``; 1 fits a slab around every slice, 3
tiles the volume with 3-slice slabs). The cold middle fit is the same for every setting (same
slab, seed and options), so it runs once per case and is reused; the table reports the warm
fits' steps and seconds, the part the knobs change, beside the chunk's PSNR before and after
the Wiener refinement the driver applies (the refinement can restore what shorter warm fits
leave out, so the knobs are judged by the refined PSNR).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from .cases import sigma_of
from .common import peak_rss_mb, write_results
from .stopbed import DATA

import medip
from medip import reconstruct
from medip.engine.metrics import psnr
from medip.operators import gaussian
from medip.tasks import make_task

DEPTH = 15
#: (scan, in-plane size or None for native, noise as a fraction of the range)
CASES = (("mr_brain_t1_2mm.nii.gz", None, 10 / 255),
         ("mr_brain_t1_clinical.nii.gz", 128, 25 / 255),
         ("ct_chest_16slices.nii.gz", 128, 50 / 255))
#: (warm budget, patience share, slab stride): the shipped setting first.
SETTINGS = ((500, 4, 1), (500, 10, 1), (200, 4, 1), (100, 4, 1), (500, 4, 3), (200, 4, 3))


def chunk(name: str, size: int | None, frame: int | None = None, first: int | None = None,
          depth: int = DEPTH) -> medip.Volume:
    """``depth`` slices of a scan from slice ``first`` (None: the middle ones; ``frame``: of a
    4D series), area-resampled in-plane to ``size``^2."""
    volume = medip.load(DATA / name, frame=frame)
    if first is None:
        first = volume.shape[2] // 2 - depth // 2
    array = torch.from_numpy(np.ascontiguousarray(volume.array[:, :, first:first + depth],
                                                  dtype=np.float32))
    if size is not None:
        array = F.interpolate(array.permute(2, 0, 1)[None], size=(size, size), mode="area")[0]
        array = array.permute(1, 2, 0).contiguous()
    return volume.with_array(array.numpy())


class _ColdOnce:
    """Wraps the driver's per-fit call: the cold fit of a case runs once and is reused, and the
    warm fits' seconds are summed."""

    def __init__(self) -> None:
        self.fit = reconstruct._fit
        self.cold: dict = {}
        self.warm_seconds = 0.0

    def __call__(self, problem, state, *args, **kwargs):
        if state is None:
            key = (tuple(problem.y.shape), float(problem.y.double().sum()))
            if key not in self.cold:
                self.cold[key] = self.fit(problem, state, *args, **kwargs)
            return self.cold[key]
        result = self.fit(problem, state, *args, **kwargs)
        self.warm_seconds += result.elapsed
        return result


def main() -> None:
    wrapper = _ColdOnce()
    reconstruct._fit = wrapper
    rows = []
    for name, size, level in CASES:
        wrapper.cold.clear()
        volume = chunk(name, size)
        clean = torch.from_numpy(volume.array)
        noisy = volume.with_array(gaussian(clean, sigma_of(clean, level), seed=0).numpy())
        task = make_task("denoise", noisy)
        for warm_steps, share, stride in SETTINGS:
            reconstruct.WARM_PATIENCE_SHARE, reconstruct.SLAB_STRIDE = share, stride
            wrapper.warm_seconds = 0.0
            res = medip.reconstruct_volume(task, warm_steps=warm_steps, wiener=False,
                                           progress=False, check_memory=False)
            start = time.perf_counter()
            refined = task.refine(torch.from_numpy(res.volume.array), task.stack_axis(None))
            refine_seconds = time.perf_counter() - start
            cold = max(res.steps_run)
            warm = sum(res.steps_run) - cold
            case = f"{name.split('.')[0]} {tuple(volume.shape)} {level * 255:.0f}/255"
            rows.append({"case": case,
                         "warm budget": warm_steps,
                         "patience": max(warm_steps // share, 20), "stride": stride,
                         "fits": len(res.steps_run), "cold steps": cold, "warm steps": warm,
                         "warm steps per fit": warm / max(len(res.steps_run) - 1, 1),
                         "warm seconds": wrapper.warm_seconds,
                         "cold seconds": next(iter(wrapper.cold.values())).elapsed,
                         "noisy psnr": psnr(torch.from_numpy(noisy.array), clean),
                         "psnr unrefined": psnr(torch.from_numpy(res.volume.array), clean),
                         "psnr": psnr(refined.image, clean),
                         "window": "x".join(map(str, refined.window[:1] + refined.window)),
                         "refine seconds": refine_seconds,
                         "peak rss mb": peak_rss_mb()})
            print(rows[-1], flush=True)
    write_results("slabs", rows, list(rows[0]))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
