"""The volume driver: a whole scan restored slice by slice, in one 3D fit, or in 3D patches.

- ``slices``: 2D DIP per slice along ``axis``; the middle slice starts cold, then each next
  slice (outwards in both directions) starts from its neighbour's fitted weights with a smaller
  step budget (``warm_steps``), which is where most of the time goes away. With ``slab=k`` each
  fit sees the ``k`` slices around its own as channels (voxel-wise tasks), and every slice is
  the mean of the estimates of all fits that saw it.
- ``3d``: one 3D generator over the whole volume (ES-EMV stopping by default).
- ``patches``: overlapping 3D patches blended with linear ramps, for volumes too large for one
  fit; each patch warm-starts from the previous one. Voxel-wise tasks only (denoise, inpaint).

All slices and patches share one normalisation (a robust scale of the whole scan), so warm
starts carry over and the result is in the input's units and geometry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .estimate import Estimate, estimate_fit
from .fit import fit, member_seeds, pick_device, robust_scale
from .io.volume import Volume
from .nets import build_generator
from .operators import LinearOperator
from .progress import ProgressBar, progress_bar
from .stopping import FinalMean, Fixed, Stopper, WindowedVariance
from .tasks import (POINTWISE, fit_defaults, make_operator, normalise_factors, output_shape,
                    upsampled_affine)

log = logging.getLogger("medip")
MODES = ("slices", "3d", "patches")
# Slices per fit when denoising slice by slice: on 25 slices of the 2 mm T1 brain (noise 25/255 of
# the range) 3 gave +1.2 dB over 1 in the same time, 5 gave +0.6 dB.
DENOISE_SLAB = 3


@dataclass
class VolumeResult:
    """The restored volume and its per-voxel variance (uncertainty), both with full geometry."""

    volume: Volume
    variance: Volume
    stop_steps: list[int]
    steps_run: list[int]
    elapsed: float
    mode: str
    estimate: Estimate | None = None
    histories: list[dict] = field(default_factory=list)
    interrupted: bool = False


def reconstruct_volume(volume: Volume, task: str | LinearOperator = "denoise", mode: str = "slices",
                       *, mask: np.ndarray | None = None, factors: int | Sequence[int] | None = None,
                       kernel: str = "bicubic", axis: int = 2, generator: str = "fast",
                       stopper: str | int = "auto", max_steps: int = 2000,
                       warm_steps: int | None = None, slab: int | None = None, patch: int = 64,
                       overlap: int = 16, lr: float | None = None, seed: int = 0,
                       device: str = "auto",
                       threads: int | None = None, progress: bool | None = None,
                       check_memory: bool = True, residual: bool | None = None,
                       noise_free: bool = False, ensemble: int = 1,
                       reference: Volume | None = None) -> VolumeResult:
    """Restore ``volume`` measured through ``task`` (a name from :data:`medip.tasks.TASKS`, or a
    3D operator for ``mode="3d"``) and return it in the input's units and geometry.

    ``residual`` and ``lr`` default to the task's :func:`medip.tasks.fit_defaults` (super-
    resolution fits the correction to the interpolated scan at lr 0.02, see :func:`medip.fit`).
    ``slab`` (``slices`` mode, voxel-wise tasks): each fit sees that many neighbouring slices as
    channels and each slice is the mean of the fits that saw it; default :data:`DENOISE_SLAB` for
    denoising, 1 otherwise. ``noise_free`` (exact measurements: inpainting, box-kernel
    super-resolution) runs every fit's full budget without input noise and keeps the measured
    values (see :func:`medip.fit`). ``ensemble=N`` restores the volume N times, seeded
    ``seed`` to ``seed + N - 1``, and returns the mean (and mean variance), at N times the time.
    ``reference`` (a clean volume of the result's shape) only adds PSNR/SSIM to each fit's
    history. Raises ``MemoryError`` before starting when the estimated need exceeds the memory
    available, naming the mode that would fit.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if isinstance(task, LinearOperator) and mode != "3d":
        raise ValueError("an operator applies to the whole volume: use mode='3d', or pass a task "
                         "name so medip can cut it into slices or patches")
    if isinstance(task, str) and task not in POINTWISE and mode == "patches":
        raise ValueError(f"mode='patches' needs a voxel-wise task ({', '.join(POINTWISE)}); use "
                         f"mode='slices' or '3d' for {task!r}")
    seeds = member_seeds(seed, ensemble)
    if not bool(np.isfinite(volume.array).all()):
        raise ValueError(f"{volume.source or 'the volume'} contains NaN or infinite values; "
                         f"fix or mask them before reconstruction")
    dev = pick_device(device)
    y = torch.from_numpy(volume.array)
    scale = robust_scale(y)
    defaults = fit_defaults(task)
    residual = defaults["residual"] if residual is None else residual
    lr = defaults["lr"] if lr is None else lr
    shared = dict(generator=generator, lr=lr, device=dev, threads=threads,
                  scale=None if residual else scale, residual=residual, noise_free=noise_free)
    ref = torch.from_numpy(reference.array) if reference is not None else None
    start = time.perf_counter()
    members: list[_Restored] = []
    for member_seed in seeds:
        options = {**shared, "seed": member_seed}
        check = check_memory and not members  # the same need for every member: checked once
        if mode == "3d":
            members.append(_whole(volume, y, task, mask, factors, kernel, stopper, max_steps,
                                  check, progress, options, ref))
        elif mode == "slices":  # an interrupt inside a stack propagates (no partial volume)
            members.append(_by_slices(volume, y, task, mask, factors, kernel, axis, slab, stopper,
                                      max_steps, warm_steps, check, progress, options, ref))
        else:
            members.append(_by_patches(volume, y, task, mask, patch, overlap, stopper, max_steps,
                                       warm_steps, check, progress, options, ref))
        if members[-1].interrupted:
            break
    image = sum(m.image for m in members) / len(members)
    variance = sum(m.variance for m in members) / len(members)
    stops, runs, histories = ([v for m in members for v in getattr(m, name)]
                              for name in ("stops", "runs", "histories"))
    interrupted, estimate = members[-1].interrupted, members[0].estimate
    affine = volume.affine
    if task == "superres" or (isinstance(task, LinearOperator) and image.shape != y.shape):
        affine = upsampled_affine(volume.affine, [a // b for a, b in zip(image.shape, y.shape)])
    out = volume.with_array(image.cpu().numpy(), affine)
    var = volume.with_array(variance.cpu().numpy(), affine,
                            units=f"({volume.units})^2" if volume.units else "")
    return VolumeResult(out, var, stops, runs, time.perf_counter() - start, mode, estimate,
                        histories, interrupted)


@dataclass
class _Restored:
    """One restoration of a whole volume (an ensemble averages several)."""

    image: torch.Tensor
    variance: torch.Tensor
    stops: list[int]
    runs: list[int]
    histories: list[dict]
    estimate: Estimate | None
    interrupted: bool = False


def _whole(volume, y, task, mask, factors, kernel, stopper, max_steps, check_memory, progress,
           options, ref) -> _Restored:
    """``mode="3d"``: one fit over the whole volume (an interrupt keeps the best output so far)."""
    A = task if isinstance(task, LinearOperator) else make_operator(
        task, volume.shape, mask, factors, kernel)
    shape = output_shape(A, volume.shape)
    estimate = _check_budget(options["generator"], shape, options["device"], check_memory, "3d")
    bar = ProgressBar(max_steps, "3d fit", progress)
    result = fit(A, y[None, None], stopper=stopper, max_steps=max_steps, callbacks=[bar],
                 reference=None if ref is None else ref[None, None], **options)
    bar.close()
    return _Restored(result.image[0, 0], variance_image(result.variance_map, image_shape=shape),
                     [result.stop_step], [result.steps_run], [result.history], estimate,
                     result.interrupted)


def variance_image(variance_map: torch.Tensor | None, image_shape: Sequence[int]) -> torch.Tensor:
    """The ``(*image_shape)`` variance of one fit's ``(1, 1, ...)`` map; zeros without one."""
    if variance_map is None:  # Fixed stopping keeps no variance
        return torch.zeros(tuple(image_shape))
    return variance_map[0, 0]


def _check_budget(preset: str, shape: Sequence[int], dev: torch.device, check: bool, mode: str
                  ) -> Estimate | None:
    if not check:
        return None
    estimate = estimate_fit(preset, shape, device=dev)
    log.info("%s mode: one fit of %s needs about %.2f GB and %.3f s per step (%.1f GB available)",
             mode, tuple(shape), estimate.bytes_needed / 1e9, estimate.seconds_per_step,
             estimate.bytes_available / 1e9)
    if not estimate.fits:
        hint = {"3d": "use mode='slices' or mode='patches'",
                "patches": "use a smaller patch= size or mode='slices'",
                "slices": "use a smaller generator preset (e.g. 'fast')"}[mode]
        raise MemoryError(f"{mode} mode needs about {estimate.bytes_needed / 1e9:.1f} GB for "
                          f"{tuple(shape)} but {estimate.bytes_available / 1e9:.1f} GB are "
                          f"available; {hint}")
    return estimate


def _warm_stopper(stopper: str | int | Stopper, warm_steps: int, noise_free: bool) -> Stopper:
    """A started fit is near its optimum: a shorter window and patience find it sooner (noise-
    free data have nothing to overfit: all ``warm_steps`` run, the last 16 outputs averaged)."""
    if isinstance(stopper, int) and not isinstance(stopper, bool):
        return Fixed(warm_steps)
    if noise_free:
        return FinalMean(warm_steps, window=16)
    return WindowedVariance(window=16, patience=max(warm_steps // 4, 20))


def _fit_from(A: LinearOperator, y: torch.Tensor, state: dict | None, out_shape: Sequence[int],
              channels: int, stopper: str | int | Stopper, max_steps: int, warm_steps: int | None,
              options: dict):
    """One fit of a stack: cold with the full budget when ``state`` is None, else started from
    ``state`` (a neighbour's weights) with ``warm_steps`` (default ``max_steps // 4``, at least 50
    and at most ``max_steps``).
    An interrupt propagates, so no partial stack is ever returned."""
    if state is None:
        result = fit(A, y, stopper=stopper, max_steps=max_steps, keep_generator=True, **options)
    else:
        warm_steps = warm_steps or min(max(max_steps // 4, 50), max_steps)
        gen = build_generator(options["generator"], out_shape, channels,
                              seed=options.get("seed", 0))
        gen.load_state_dict(state)
        warm_stopper = _warm_stopper(stopper, warm_steps, options.get("noise_free", False))
        result = fit(A, y, stopper=warm_stopper, max_steps=warm_steps, keep_generator=True,
                     **{**options, "generator": gen})
    if result.interrupted:
        raise KeyboardInterrupt
    return result


def _by_slices(volume, y, task, mask, factors, kernel, axis, slab, stopper, max_steps, warm_steps,
               check_memory, progress, options, ref) -> _Restored:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    depth = volume.shape[axis]
    if slab is None:
        slab = DENOISE_SLAB if task == "denoise" and depth >= DENOISE_SLAB else 1
    if slab < 1 or slab % 2 == 0 or slab > depth:
        raise ValueError(f"slab must be an odd number of slices between 1 and {depth}, got {slab}")
    if slab > 1 and task not in POINTWISE:
        raise ValueError(f"slab={slab} needs a voxel-wise task ({', '.join(POINTWISE)}), not "
                         f"{task!r}; use slab=1")
    in_plane = [n for a, n in enumerate(volume.shape) if a != axis]
    plane_factors = None
    if task == "superres":
        full = normalise_factors(factors if factors is not None else
                                 tuple(2 if a != axis else 1 for a in range(3)), 3)
        if full[axis] != 1:
            raise ValueError(f"factor {full[axis]} along the slice axis {axis} needs mode='3d' "
                             f"(through-plane super-resolution)")
        plane_factors = tuple(f for a, f in enumerate(full) if a != axis)
    starts = [min(max(t - slab // 2, 0), depth - slab) for t in range(depth)]

    def stack(array: np.ndarray, start: int) -> np.ndarray:
        """The ``slab`` slices from ``start`` along ``axis``, as ``(slab, *in_plane)``."""
        return np.moveaxis(np.take(array, range(start, start + slab), axis), axis, 0).copy()

    def operator(start: int) -> LinearOperator:
        known = None if mask is None else stack(mask, start)
        if slab == 1:
            return make_operator(task, in_plane, None if known is None else known[0],
                                 plane_factors, kernel)
        return make_operator(task, (slab, *in_plane), known)

    operators = [operator(s) for s in starts]
    measurements = [torch.from_numpy(stack(y.numpy(), s))[None] for s in starts]
    out_plane = output_shape(operators[0], in_plane)
    estimate = _check_budget(options["generator"], out_plane, options["device"], check_memory,
                             "slices")
    references = None if ref is None else [torch.from_numpy(stack(ref.numpy(), s))[None]
                                           for s in starts]
    results = fit_slices(operators, measurements, out_plane, stopper, max_steps, warm_steps,
                         progress, options, references)
    image, variance, seen = (torch.zeros(depth, *out_plane), torch.zeros(depth, *out_plane),
                             torch.zeros(depth, 1, 1))
    for s, r in zip(starts, results):  # every slice: the mean over the fits that saw it
        image[s:s + slab] += r.image[0].cpu()
        if r.variance_map is not None:
            variance[s:s + slab] += r.variance_map[0].cpu()
        seen[s:s + slab] += 1
    return _Restored((image / seen).movedim(0, axis), (variance / seen).movedim(0, axis),
                     [r.stop_step for r in results], [r.steps_run for r in results],
                     [r.history for r in results], estimate)


def fit_slices(operators: Sequence[LinearOperator], measurements: Sequence[torch.Tensor],
               out_shape: Sequence[int], stopper: str | int = "auto", max_steps: int = 2000,
               warm_steps: int | None = None, progress: bool | None = None,
               options: dict | None = None, references: Sequence[torch.Tensor] | None = None
               ) -> list:
    """Fit a stack of 2D problems: the middle one cold, then outwards in both directions, each
    warm-started from its neighbour's weights with ``warm_steps`` (default ``max_steps // 4``).

    ``options`` are passed to :func:`medip.fit` (``generator`` must be a preset name);
    ``references`` (clean slices) only add metrics to the histories.
    """
    options = dict(options or {})
    options.setdefault("generator", "fast")
    depth = len(measurements)
    middle = depth // 2
    order = list(range(middle, depth)) + list(range(middle - 1, -1, -1))
    results: list = [None] * depth
    states: dict[int, dict] = {}
    bar = progress_bar(depth, "slices", progress, unit="fit")
    for t in order:
        options["reference"] = None if references is None else references[t]
        neighbour = None if t == middle else (t - 1 if t > middle else t + 1)
        result = _fit_from(operators[t], measurements[t], states.get(neighbour), out_shape,
                           _channels(results[neighbour]) if neighbour is not None else 0,
                           stopper, max_steps, warm_steps, options)
        states[t], results[t] = result.generator_state, result
        bar.set_postfix(slice=t, stop=result.stop_step)
        bar.update()
    bar.close()
    return results


def _channels(result) -> int:
    return result.image.shape[1] * (2 if result.image.is_complex() else 1)


def _starts(n: int, size: int, overlap: int) -> list[int]:
    step = max(size - overlap, 1)
    starts = list(range(0, max(n - size, 0) + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def _ramp(size: int, overlap: int) -> torch.Tensor:
    """Blending weights along one axis: rising over ``overlap`` voxels at both ends, never 0."""
    x = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.minimum(torch.ones(size), torch.minimum(x, size - x) / max(overlap, 1))


def _by_patches(volume, y, task, mask, patch, overlap, stopper, max_steps, warm_steps,
                check_memory, progress, options, ref) -> _Restored:
    size = [min(patch, n) for n in volume.shape]
    if overlap >= min(size):
        raise ValueError(f"overlap {overlap} must be smaller than the patch size {min(size)}")
    estimate = _check_budget(options["generator"], size, options["device"], check_memory,
                             "patches")
    weight = _ramp(size[0], overlap)[:, None, None] * _ramp(size[1], overlap)[None, :, None] \
        * _ramp(size[2], overlap)[None, None, :]
    total, var_total, weights = (torch.zeros(volume.shape) for _ in range(3))
    corners = [(a, b, c) for a in _starts(volume.shape[0], size[0], overlap)
               for b in _starts(volume.shape[1], size[1], overlap)
               for c in _starts(volume.shape[2], size[2], overlap)]
    stops, runs, histories, state = [], [], [], None
    bar = progress_bar(len(corners), "patches", progress, unit="fit")
    for a, b, c in corners:
        region = (slice(a, a + size[0]), slice(b, b + size[1]), slice(c, c + size[2]))
        A = make_operator(task, size, None if mask is None else mask[region])
        options["reference"] = None if ref is None else ref[region][None, None].contiguous()
        result = _fit_from(A, y[region][None, None].contiguous(), state, size, 1, stopper,
                           max_steps, warm_steps, options)
        state = result.generator_state
        total[region] += weight * result.image[0, 0].cpu()
        var_total[region] += weight * variance_image(result.variance_map, size).cpu()
        weights[region] += weight
        stops.append(result.stop_step)
        runs.append(result.steps_run)
        histories.append(result.history)
        bar.update()
    bar.close()
    return _Restored(total / weights, var_total / weights, stops, runs, histories, estimate)
