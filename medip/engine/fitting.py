"""The DIP fitting loop: one engine for every operator (it never knows which).

``fit(A, y)`` fits a generator ``f_theta(z)`` so that ``A f_theta(z)`` explains ``y``, stopping
automatically (see :mod:`medip.engine.stopping`). Data are normalised by a robust scale of the direct
reconstruction ``A.pinv(y)`` and the result is mapped back to the input's physical units.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from .. import defaults
from ..errors import FitDiverged, InputError
from ..interrupt import raise_if_stop_requested
from ..operators import LinearOperator, channels_to_complex
from ..operators.base import check_tensor
from .device import autocast, cpu_threads, pick_device
from .losses import MSE, Loss, detail_weight, make_loss, preconditioned, total_variation
from .metrics import psnr, ssim
from .nets import Generator, build_generator
from .stopping import Stopper, make_stopper

# A cold start can stall on a plateau near a blurred image before it fits the structure (a 96x96 CT
# crop: steps 25-90), and the variance is lowest there; named stoppers ignore minima before this.
COLD_MIN_STEPS = 128
# A residual fit sits on the interpolated image for a few hundred steps before it learns the
# correction (x4 CT super-resolution at 256^2: about 400), so its variance minima count from here.
RESIDUAL_MIN_STEPS = 500
# Input noise regularises fits to noisy data (the original DIP's 1/30); on exact data it only
# blurs: 50 % CT inpainting reaches 35.9 dB in 3000 steps with it, 41.8 dB without.
REG_NOISE = 1 / 30


@dataclass
class StepInfo:
    """What a callback sees after each step."""

    step: int
    loss: float
    variance: float
    max_steps: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Result:
    """The outcome of :func:`fit`, in the input's physical units."""

    image: torch.Tensor
    stop_step: int
    steps_run: int
    variance_map: torch.Tensor | None
    history: dict[str, list[float]]
    elapsed: float
    scale: float
    interrupted: bool = False
    generator_state: dict | None = None
    member_stops: list[int] | None = None  # each member's stop step (ensemble fits)

    @property
    def seconds_per_step(self) -> float:
        return self.elapsed / max(self.steps_run, 1)


def robust_scale(x: torch.Tensor, quantile: float = 0.995, max_samples: int = 1 << 20) -> float:
    """The ``quantile`` of ``|x|`` (on a strided subsample for large inputs), never zero."""
    values = x.detach().abs().flatten().float()
    if values.numel() > max_samples:
        values = values[:: values.numel() // max_samples + 1]
    scale = float(torch.quantile(values, quantile))
    if not scale > 0:
        scale = float(values.max())
    return scale if scale > 0 else 1.0


def fit(A: LinearOperator, y: torch.Tensor, *, generator: str | nn.Module = defaults.PRESET,
        loss: str | Loss = "mse", tv: float = 0.0, detail: float = 0.0,
        stopper: str | int | Stopper = defaults.STOPPER, max_steps: int = defaults.MAX_STEPS,
        lr: float = 1e-2, reg_noise: float | None = None, seed: int = defaults.SEED,
        device: str | torch.device = defaults.DEVICE, reference: torch.Tensor | None = None,
        callbacks: Iterable[Callable[[StepInfo], None]] = (), amp: bool = False,
        threads: int | None = None, keep_generator: bool = False, scale: float | None = None,
        residual: bool = False, noise_free: bool = False, ensemble: int = defaults.ENSEMBLE,
        noise_level: float | None = None, precondition: bool = True) -> Result:
    """Fit a Deep Image Prior to measurements ``y = A x + noise`` and return the stopped image.

    Args:
        A: any :class:`medip.operators.LinearOperator` (Identity, Mask, Downsample, Radon, ...).
        y: the measurements ``(batch, channel, *A.out_shape)``.
        generator: a preset name (:data:`medip.engine.nets.PRESETS`) or an ``nn.Module`` whose
            output has the image's shape (2 channels per complex image).
        loss: ``"mse"``, ``"l1"`` or a :class:`medip.engine.losses.Loss` object, e.g.
            ``TransmissionPoisson.of(counts)``, the photon counts' likelihood (slow to fit from
            a cold start; low-dose CT fits the log sinogram with mse, as the CT task does).
        tv: strength of a total-variation prior (needs ``noise_level``): the objective adds
            ``tv * (noise_level / scale)^2`` times the normalised image's total variation, the
            maximum-a-posteriori weight of a TV prior under Gaussian noise, so that one value
            holds at every noise level (the penalty fades as the noise does). Denoising's
            default (:data:`medip.tasks.specs.DENOISE_TV`) cites its measurement.
        detail: strength of the fine-detail weight on the residual (needs ``noise_level`` and
            the plain mse loss, on an operator without a preconditioner of its own): the loss
            weighs each spatial frequency of the residual up where ``y`` holds signal above its
            noise (:func:`~medip.engine.losses.detail_weight`), so that a fit learns fine detail
            sooner instead of running out of steps before it has. Denoising's default
            (:data:`medip.tasks.specs.DENOISE_DETAIL`) cites its measurement.
        stopper: ``"auto"`` (ES-WMV in 2D, ES-EMV in 3D), ``"wmv"``, ``"emv"``, a fixed step
            count, or a :class:`medip.engine.stopping.Stopper`.
        max_steps: hard limit on steps.
        lr: Adam's learning rate. reg_noise: std of the fresh noise added to the input each step
            (default :data:`REG_NOISE`, 0 for noise-free data).
        seed: seeds the weights, the input and the per-step noise (deterministic on CPU).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        amp: run the generator under bfloat16 autocast, on CPU or CUDA (its convolutions in
            bfloat16; the operator, the loss, the stopper and the result stay float32). Off by
            default: on a 2-core CPU with AMX a step was 1.15-1.5x faster in 2D and 1.8x
            faster at 48^3 (benchmarks/results/2026-12-03-vm-amp-step-times.md), while the stop
            test bed's 12 denoised 128^2 images came out lower on 8 (median -0.09 dB, worst
            -0.75 dB; benchmarks/results/2026-12-03-vm-amp-denoise.md). CUDA is not measured.
        reference: a clean image in physical units, only to log PSNR/SSIM per step (of the
            image the stopper would return at that step); it never influences stopping or the
            result.
        callbacks: called with a :class:`StepInfo` after every step.
        threads: torch CPU threads for this fit (restored afterwards); default torch's count
            capped at the CPUs this process may use (affinity, cgroup quota, Slurm, OMP).
        keep_generator: also return the generator's final ``state_dict``.
        scale: the normalisation (physical units per network unit); default: a robust scale
            of ``A.pinv(y)``. The volume driver passes one scale for all slices of a volume.
        residual: the generator models the correction to ``A.pinv(y)`` (``x = A.pinv(y) +
            f(z)``) instead of the whole image: much faster where ``pinv`` is already a good
            image (super-resolution: bicubic); wrong for denoising, where ``pinv`` is the noise.
            Named stoppers then ignore variance minima before :data:`RESIDUAL_MIN_STEPS`
            (otherwise before :data:`COLD_MIN_STEPS`), or half of ``max_steps`` if that is less.
        noise_free: the measurements are exact (known pixels without noise): with no noise to
            overfit, the input noise is off, named stoppers run all ``max_steps`` and return the
            mean of the last 64 outputs (:class:`~medip.engine.stopping.FinalMean`), and the
            result reproduces ``y`` exactly (:meth:`~medip.operators.LinearOperator.project`:
            masks, single-coil Fourier sampling, box downsampling; other operators raise).
        ensemble: fit this many generators, seeded ``seed``, ``seed + 1``, ..., and return the
            mean of their stopped images (and variance maps); the histories run end to end. One
            seed's result is partly luck (2D CT denoising, seeds 0-2: 31.6-33.9 dB; their
            pairs: 33.2-34.1 dB); an ensemble is steadier and usually better, at that many
            times the time. Needs a preset name and a named or fixed stopper.
        noise_level: the measurement noise, the root of ``E|n|^2`` per measured sample in
            ``y``'s units (the tasks estimate or know it: denoising and inpainting from the scan,
            MRI from the noise scan or the k-space edge). Named stoppers then take no variance
            minimum before the data loss has fallen to the loss the noise alone leaves (the
            discrepancy principle, :class:`~medip.engine.stopping.LossWatch`): before that the
            fit is still learning structure, and a quiet stretch there is a plateau, not the
            end. For the mse loss; the Poisson likelihood knows its own floor (the saturated
            model's loss plus half a unit of deviance per ray) and takes no noise level.
        precondition: with the plain mse loss, fit the residual weighted by ``A``'s
            :meth:`~medip.operators.LinearOperator.preconditioner` where it offers one
            (:class:`~medip.operators.Radon`: the square root of the ramp filter), so that fine
            detail is learnt as fast as coarse; the noise floor follows the weight. On the stop
            test bed's 12 45-view CT images the returned image beat TV with the discrepancy
            weight by +1.3 to +7.7 dB, stopping at steps 526-2825 where the plain fit ran its
            whole budget (benchmarks/results/2026-12-03-vm-ct-precondition-fast.md); on the real
            spiral, +2.4 and +5.5 dB over the plain fit
            (benchmarks/results/2026-12-03-vm-mri-raw-spiral-2x-spiral-4x.md).

    Raises:
        medip.errors.FitDiverged: the loss became NaN or infinite (lower ``lr``).
    """
    loss = make_loss(loss)
    if precondition:
        loss = preconditioned(loss, A)
    if residual and not loss.residual_ok:
        raise InputError(f"residual=True fits y - A pinv(y), which the {loss.name} loss does not "
                         f"allow; use loss='mse' or residual=False")
    if noise_free and not loss.exact_ok:
        raise InputError(f"noise_free=True contradicts the {loss.name} loss (noisy counts); "
                         f"leave it off")
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive finite number, got {scale}")
    if noise_level is not None and not (math.isfinite(noise_level) and noise_level >= 0):
        raise InputError(f"noise_level must be a finite number >= 0, got {noise_level}")
    if not (math.isfinite(tv) and tv >= 0):
        raise InputError(f"tv must be a finite number >= 0, got {tv}")
    if tv and noise_level is None:
        raise InputError("tv > 0 weighs the TV prior by the noise level: pass noise_level "
                         "(the tasks pass their estimate), or tv=0")
    if not (math.isfinite(detail) and detail >= 0):
        raise InputError(f"detail must be a finite number >= 0, got {detail}")
    check_tensor(y, "y", f"fit({A.name})", A.out_shape)
    if detail:
        loss = _detail_loss(loss, A, y, noise_level, detail)
    loss.floor(y, noise_level, 1.0)  # a loss that cannot take a noise level says so now
    if reg_noise is None:
        reg_noise = 0.0 if noise_free else REG_NOISE
    if max_steps < 1:
        raise InputError(f"max_steps must be >= 1, got {max_steps}")
    seeds = member_seeds(seed, ensemble)
    if ensemble > 1 and (isinstance(generator, nn.Module) or isinstance(stopper, Stopper)):
        raise InputError("ensemble > 1 builds a fresh generator and stopper per member: pass a "
                         "preset name and a named or fixed stopper, not instances")
    dev = pick_device(device)
    y, callbacks = y.to(dev), list(callbacks)  # one list for every member, even from a generator
    with cpu_threads(threads):
        members: list[Result] = []
        for member_seed in seeds:
            members.append(_run(A, y, loss, dev, generator, tv, stopper, max_steps, lr,
                                reg_noise, member_seed, reference, callbacks, amp,
                                keep_generator, scale, residual, noise_free, noise_level))
            if members[-1].interrupted:
                break
        return members[0] if ensemble == 1 else average_results(members)


def _run(A, y, loss, dev, generator, tv, stopper, max_steps, lr, reg_noise, seed,
         reference, callbacks, amp, keep_generator, scale, residual, noise_free, noise_level
         ) -> Result:
    start = time.perf_counter()
    measured = y
    with torch.no_grad():
        x0 = A.pseudo_inverse(y)
        if noise_free:  # raises here, before any step, where A cannot enforce its data
            A.project(x0, y)
        offset = None
        if residual:  # fit what pinv misses: y - A pinv(y), then add pinv(y) back
            offset, y = x0, y - A.forward(x0)
            x0 = A.pseudo_inverse(y)
    is_complex = x0.is_complex()
    scale = scale or robust_scale(x0)
    y_n = y / scale
    tv_weight = tv * (noise_level / scale) ** 2 if tv else 0.0
    spatial = tuple(x0.shape[2:])
    channels = x0.shape[1] * (2 if is_complex else 1)
    gen = build_generator(generator, spatial, channels, batch=x0.shape[0], seed=seed).to(dev)
    gen.noise_generator = torch.Generator(device=dev).manual_seed(seed + 1)
    to_channels = channels_to_complex if is_complex else (lambda t: t)

    def to_image(out: torch.Tensor) -> torch.Tensor:
        """Network output -> image in physical units."""
        image = to_channels(out) * scale
        if offset is not None:
            image = image + offset
        return A.project(image, measured) if noise_free else image

    _check_generator(gen, x0, is_complex)
    stop = stop_rule(stopper, len(spatial), loss=loss, measured=measured,
                     noise_level=noise_level, scale=scale, residual=residual,
                     max_steps=max_steps, noise_free=noise_free)
    data_loss = loss.bind(scale, dev)
    optimizer = adam(gen.parameters(), lr)
    ref = reference.to(dev) if reference is not None else None
    if ref is not None and ref.shape[-len(spatial):] != x0.shape[-len(spatial):]:
        raise InputError(f"the reference has shape {tuple(ref.shape)} but the image is "
                         f"{tuple(x0.shape)}")
    history: dict[str, list[float]] = {"loss": [], "variance": stop.history}
    if ref is not None:
        history.update(psnr=[], ssim=[])
    interrupted, step = False, -1
    try:
        for step in range(max_steps):
            raise_if_stop_requested()
            optimizer.zero_grad(set_to_none=True)
            with autocast(dev, amp):
                out = gen(reg_noise).float()
            objective = data = data_loss(A.forward(to_channels(out)), y_n)
            if tv_weight:
                objective = objective + tv_weight * total_variation(out)
            objective.backward()
            optimizer.step()
            value = float(objective.detach())
            if not math.isfinite(value):
                raise FitDiverged(f"the loss became {value} at step {step}; lower lr "
                                         f"(now {lr}) or check the data's scale")
            history["loss"].append(value)
            stop.observe(float(data.detach()) if tv_weight else value)
            done = stop.update(step, out.detach())
            info = StepInfo(step, value, stop.history[-1], max_steps)
            if ref is not None:
                image = to_image(stop.estimate(out.detach()))
                image, target = (image.abs(), ref.abs()) if is_complex else (image, ref)
                info.metrics = {"psnr": psnr(image, target), "ssim": ssim(image, target)}
                history["psnr"].append(info.metrics["psnr"])
                history["ssim"].append(info.metrics["ssim"])
            for callback in callbacks:
                callback(info)
            if done:
                break
    except KeyboardInterrupt:
        interrupted = True
        if stop.best is None:
            raise
    # no candidate: a run shorter than the stopper's window, or one whose loss never reached
    # the noise floor; the stopper's running mean is then still the better image
    best = stop.best if stop.best is not None else stop.estimate(out.detach())
    image = to_image(best)
    variance = stop.variance_map
    if variance is not None:
        variance = (variance * scale ** 2).float()
    return Result(image=image, stop_step=stop.best_step if stop.best is not None else step,
                  steps_run=step + 1,
                  variance_map=variance, history=history, elapsed=time.perf_counter() - start,
                  scale=scale, interrupted=interrupted,
                  generator_state=gen.state_dict() if keep_generator else None)


def _detail_loss(loss: Loss, A: LinearOperator, y: torch.Tensor, noise_level: float | None,
                 detail: float) -> MSE:
    """The mse loss weighted by :func:`~medip.engine.losses.detail_weight`, or a clear error
    where the options contradict it."""
    if A.preconditioner() is not None:
        raise InputError(f"detail > 0 weighs a residual on the image grid; {A.name} has its own "
                         f"preconditioner: use detail=0")
    if noise_level is None:
        raise InputError("detail > 0 weighs the residual by the signal above the noise level: "
                         "pass noise_level (the tasks pass their estimate), or detail=0")
    if type(loss) is not MSE or loss.weight is not None:
        raise InputError(f"detail > 0 weighs the plain mse loss, not {loss!r}: use detail=0 "
                         f"with it")
    return MSE(detail_weight(y, noise_level, detail))


def adam(parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """The fits' optimiser: Adam with torch's fused kernel, one pass over all the generator's
    weight tensors (90 for ``fast``) instead of a loop of small ops per tensor. On the 2-core
    VM its update took 1.8 ms against 7.8 ms for ``fast`` (2.8 against 16.4 ms for ``skip``),
    and a whole step at 128^2 0.92x the time for ``fast`` and 0.89x for ``skip`` (0.95x and
    0.97x at 256^2; ``python -m benchmarks.engine optimizer-step-times``,
    benchmarks/results/2026-12-03-vm-optimizer-step-times.md). The same update up to rounding.
    torch before 2.4 has no fused CPU kernel: the per-tensor loop then."""
    parameters = list(parameters)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr)


def stop_rule(stopper: str | int | Stopper, spatial_dims: int, *, loss: str | Loss = "mse",
              measured: torch.Tensor | None = None, noise_level: float | None = None,
              scale: float = 1.0, residual: bool = False, max_steps: int = defaults.MAX_STEPS,
              noise_free: bool = False) -> Stopper:
    """The stopping rule :func:`fit` runs with these options: ``stopper`` built by
    :func:`~medip.engine.stopping.make_stopper` with the fit's first stop step
    (:func:`minimum_stop_step`) and the noise floor ``loss`` leaves on ``measured`` at
    ``noise_level`` (``scale``: the fit's normalisation, :attr:`Result.scale`; no floor without
    ``measured``; none either where the rule takes none: a Stopper object, a step count, a
    noise-free fit). Public so that a replay on a recorded history (``Stopper.replay``) runs the
    very rule a fit would, not a copy of it."""
    takes_floor = isinstance(stopper, str) and not noise_free
    floor = (make_loss(loss).floor(measured, noise_level, scale)
             if takes_floor and measured is not None else None)
    return make_stopper(stopper, spatial_dims, minimum_stop_step(residual, max_steps),
                        max_steps if noise_free else None, floor)


def minimum_stop_step(residual: bool, max_steps: int) -> int:
    """The first step a named stopper may return: :data:`RESIDUAL_MIN_STEPS` for residual fits,
    :data:`COLD_MIN_STEPS` otherwise, never past half the budget."""
    return min(RESIDUAL_MIN_STEPS if residual else COLD_MIN_STEPS, max_steps // 2)


def member_seeds(seed: int, ensemble: int) -> range:
    """The seeds of an ensemble's members, ``seed`` to ``seed + ensemble - 1`` (at least one)."""
    if ensemble < 1:
        raise InputError(f"ensemble must be >= 1, got {ensemble}")
    return range(seed, seed + ensemble)


def average_results(members: list[Result]) -> Result:
    """An ensemble's result: the mean image and variance map; histories and steps end to end."""
    maps = [m.variance_map for m in members]
    return Result(image=sum(m.image for m in members) / len(members),
                  stop_step=members[0].stop_step, steps_run=sum(m.steps_run for m in members),
                  variance_map=None if maps[0] is None else sum(maps) / len(maps),
                  history={key: [v for m in members for v in m.history[key]]
                           for key in members[0].history},
                  elapsed=sum(m.elapsed for m in members), scale=members[0].scale,
                  interrupted=members[-1].interrupted,
                  generator_state=members[-1].generator_state,
                  member_stops=[m.stop_step for m in members])


def _check_generator(gen: Generator, x0: torch.Tensor, is_complex: bool) -> None:
    with torch.no_grad():
        out = gen(0.0)
    expected = (x0.shape[0], x0.shape[1] * (2 if is_complex else 1), *x0.shape[2:])
    if tuple(out.shape) != expected:
        raise InputError(f"the generator outputs {tuple(out.shape)} but the operator's image is "
                         f"{expected}" + (" (2 channels per complex image)" if is_complex else ""))
