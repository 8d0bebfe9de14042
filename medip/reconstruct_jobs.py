"""The reconstruction behind each job task: image restoration, CT from sinograms, MRI from k-space.

Each returns an :class:`Outcome`: what was measured (as a viewable volume), the result and its
variance map as volumes, and the stop steps, so that writing and reporting are task-agnostic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .ct import MU_WATER_70KEV, mu_to_hu
from .fit import Result, average_results, member_seeds, pick_device
from .io import Volume, load, load_kspace, load_sinogram
from .reconstruct import fit_slices, reconstruct_volume, variance_image


@dataclass
class Outcome:
    measured: Volume
    result: Volume
    variance: Volume
    stop_steps: list[int]
    steps_run: list[int]
    histories: list[dict]
    device: str
    inputs: list[Path] = field(default_factory=list)
    interrupted: bool = False

    @property
    def summary(self) -> str:
        return f"stopped at step {int(np.median(self.stop_steps))} (median)"


def reconstruct(source: Path, options, reference: Volume | None = None) -> Outcome:
    """Run ``options.task`` on ``source`` (see :class:`medip.jobs.JobOptions`); a ``reference``
    adds PSNR/SSIM per step to the histories of image tasks."""
    device = str(pick_device(options.device))
    if options.task == "ct":
        return _ct(source, options, device)
    if options.task == "mri":
        return _mri(source, options, device)
    measured = load(source, series=options.series, frame=options.frame)
    inputs = [source]
    mask = None
    if options.task == "inpaint":
        if not options.mask:
            raise ValueError("inpaint needs --mask FILE (nonzero = known voxels)")
        mask = load(options.mask).array != 0
        inputs.append(Path(options.mask))
    result = reconstruct_volume(
        measured, options.task, options.mode, mask=mask, factors=options.factor,
        kernel=options.kernel, axis=options.axis, generator=options.preset,
        stopper=options.stopper_value(), max_steps=options.max_steps,
        warm_steps=options.warm_steps, slab=options.slab, patch=options.patch,
        lr=options.learning_rate(), seed=options.seed, device=device, threads=options.threads,
        progress=options.progress, reference=reference, noise_free=options.noise_free,
        ensemble=options.ensemble)
    return Outcome(measured, result.volume, result.variance, result.stop_steps, result.steps_run,
                   result.histories, device, inputs, result.interrupted)


def _fit_stack(operators: list, measurements: list[torch.Tensor], shape, options, device: str
               ) -> list[Result]:
    """:func:`fit_slices` once per ensemble member (seeds ``seed`` onwards), averaged per slice."""
    runs = [fit_slices(operators, measurements, shape, options.stopper_value(), options.max_steps,
                       options.warm_steps, options.progress,
                       dict(generator=options.preset, lr=options.learning_rate(), seed=seed,
                            device=device, threads=options.threads))
            for seed in member_seeds(options.seed, options.ensemble)]
    return runs[0] if len(runs) == 1 else [average_results(list(fits)) for fits in zip(*runs)]


def _stack_volume(planes: list[torch.Tensor], spacing: tuple[float, float, float], like: Volume
                  | None, **fields) -> Volume:
    """2D images ``(H, W)`` per slice -> an ``(i, j, k)`` volume on ``like``'s or a plain grid."""
    array = np.stack([p.detach().cpu().numpy().T for p in planes], axis=-1)
    if like is not None:
        return like.with_array(array, **fields)
    return Volume(array, np.diag([*spacing, 1.0]), **fields)


def _ct(source: Path, options, device: str) -> Outcome:
    from .operators import Radon

    like, inputs = None, [source]
    if options.simulate_from:
        like = load(options.simulate_from, series=options.series, frame=options.frame)
        inputs = [Path(options.simulate_from)]
        from .simulate import simulate_ct

        sinograms, geometry = simulate_ct(like, options.angles, options.photons, options.seed)
    else:
        sinograms, geometry = load_sinogram(source, options.geometry)
        sinograms = sinograms.reshape(-1, *sinograms.shape[-2:])
    A = Radon.from_geometry(geometry)
    ys = [torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32))[None, None]
          for s in sinograms]
    results = _fit_stack([A] * len(ys), ys, A.image_shape, options, device)
    pixel = float(geometry.get("pixel_size", 1.0))
    spacing = (pixel, pixel, pixel)
    fbp = [mu_to_hu(A.pinv(y)[0, 0]) for y in ys]
    hu = [mu_to_hu(r.image[0, 0]) for r in results]
    fields = dict(modality="CT", units="HU")
    measured = _stack_volume(fbp, spacing, like, **fields)
    hu_per_mu = 1000 / MU_WATER_70KEV
    variance = [variance_image(r.variance_map, A.image_shape) * hu_per_mu ** 2 for r in results]
    return Outcome(measured, _stack_volume(hu, spacing, like, **fields),
                   _stack_volume(variance, spacing, like, modality="CT", units="HU^2"),
                   [r.stop_step for r in results], [r.steps_run for r in results],
                   [r.history for r in results], device, inputs)


def _mri(source: Path, options, device: str) -> Outcome:
    from .operators import Fourier, acs_lines, cartesian_mask, estimate_sensitivities

    kspace = load_kspace(source)
    if kspace.ndim != 3:
        raise ValueError(f"{source}: 2D multi-coil k-space (coils, H, W) is needed, got "
                         f"{tuple(kspace.shape)}")
    shape = tuple(kspace.shape[1:])
    inputs = [source]
    if options.acceleration:
        mask = cartesian_mask(shape, options.acceleration, options.center_fraction,
                              seed=options.seed).mask
    elif options.mask:
        mask = torch.from_numpy(np.load(options.mask) != 0)
        inputs.append(Path(options.mask))
    else:  # already undersampled: acquired samples are the nonzero ones
        mask = kspace.abs().sum(0) > 0
    y = (kspace * mask)[None]
    maps = estimate_sensitivities(y[0], acs_lines(mask))
    A = Fourier(shape, mask, maps.sensitivities)
    [result] = _fit_stack([A], [y], shape, options, device)
    image = result.image[0, 0].abs() * maps.support
    zero_filled = Fourier(shape, mask).pinv(y)[0, 0]  # root-sum-of-squares of the coil images
    spacing = (1.0, 1.0, 1.0)
    variance = (result.variance_map[0].sum(0) if result.variance_map is not None
                else torch.zeros(shape))
    return Outcome(_stack_volume([zero_filled], spacing, None, modality="MR"),
                   _stack_volume([image], spacing, None, modality="MR"),
                   _stack_volume([variance], spacing, None, modality="MR"),
                   [result.stop_step], [result.steps_run], [result.history], device, inputs)
