"""The methods the suite compares on each case: medip, deepinv's DIP, the plain skip network and
the classical baselines. Each runner returns one result row (a dict) for the results file.

Times are wall-clock seconds from the call, including the per-step PSNR logging the curves need
(medip also logs SSIM each step, which only slows medip down).
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

import medip
from medip.engine.fitting import robust_scale
from medip.operators import channels_to_complex, complex_to_channels

from .cases import Case
from .plain_skip import PlainSkip

CURVE_POINTS = 60  # (seconds, PSNR) pairs kept per curve in the results file


def curve_summary(psnrs: list[float], seconds: list[float]) -> dict:
    """Peak PSNR along a run, when it was first within 0.5 dB of it, and a thinned curve."""
    peak = max(range(len(psnrs)), key=psnrs.__getitem__)
    near = next(i for i, p in enumerate(psnrs) if p >= psnrs[peak] - 0.5)
    every = max(1, len(psnrs) // CURVE_POINTS)
    return {"peak_psnr": psnrs[peak], "peak_step": peak, "seconds_to_0.5dB": seconds[near],
            "curve": [[round(seconds[i], 2), round(psnrs[i], 3)] for i in range(0, len(psnrs), every)]}


def first_time_at(psnrs: list[float], seconds: list[float], level: float) -> float | None:
    """Seconds until a curve first reaches ``level`` dB (None: never)."""
    return next((t for p, t in zip(psnrs, seconds) if p >= level), None)


def _timed_fit(case: Case, **options) -> tuple[medip.Result, float, list[float]]:
    """``medip.fit`` on the case with PSNR logged; its wall time and each step's timestamp."""
    stamps: list[float] = []
    start = time.perf_counter()
    result = medip.fit(case.operator, case.y, reference=case.clean, **options,
                       callbacks=[lambda info: stamps.append(time.perf_counter() - start)])
    return result, time.perf_counter() - start, stamps


def run_medip(case: Case, max_steps: int | None) -> dict:
    """medip as a user runs it: default preset, automatic stopping, the task's documented options."""
    limit = {"max_steps": max_steps} if max_steps else {}
    if case.volume is not None:
        start = time.perf_counter()
        result = medip.reconstruct_volume(case.volume, "denoise", progress=False, **limit)
        seconds = time.perf_counter() - start
        steps = sum(result.steps_run)
        image = torch.from_numpy(result.volume.array)[None, None]
        return {"method": "medip (fast, slices, auto stop)", **case.score(image), "seconds": seconds,
                "steps": steps, "s_per_step": seconds / steps, "stop_step": "per slice"}
    result, seconds, stamps = _timed_fit(case, **limit, **case.fit_options)
    summary = curve_summary(result.history["psnr"], stamps)
    scores = case.score(result.image)
    return {"method": f"medip (fast, {_options_label(case.fit_options)}auto stop)", **scores,
            "seconds": seconds, "steps": result.steps_run, "s_per_step": result.seconds_per_step,
            "stop_step": result.member_stops or result.stop_step,
            "gap_db": summary["peak_psnr"] - scores["psnr"], **summary}


def _options_label(options: dict) -> str:
    """The documented options a case passes, as the row's name shows them."""
    ensemble = options.get("ensemble", 1)
    return (f"{ensemble}-seed ensemble, " if ensemble > 1 else "") + \
        ("noise-free, " if options.get("noise_free") else "")


def run_skip(case: Case, steps: int) -> dict:
    """The plain re-implementation of the original skip network, in medip's loop, fixed steps."""
    result, seconds, stamps = _timed_fit(case, generator=PlainSkip(), stopper=steps)
    return {"method": "plain skip (original DIP)", **case.score(result.image),
            "seconds": seconds, "steps": result.steps_run,
            "s_per_step": result.seconds_per_step, "stop_step": f"fixed {steps}",
            **curve_summary(result.history["psnr"], stamps)}


class _OutOfTime(Exception):
    """Raised from the generator hook to end a deepinv run at its time budget."""


def _deepinv_physics(case: Case, dinv, is_complex: bool):
    if case.deepinv_physics == "denoising":
        return dinv.physics.Denoising()
    if case.deepinv_physics == "inpainting":
        return dinv.physics.Inpainting(img_size=tuple(case.y.shape[1:]), mask=case.operator.mask.float())
    op = case.operator  # deepinv's conventions differ (angles, scaling, coils): wrap medip's
    if not is_complex:
        return dinv.physics.LinearPhysics(A=op.forward, A_adjoint=op.adjoint)
    return dinv.physics.LinearPhysics(
        A=lambda x: torch.view_as_real(op.forward(channels_to_complex(x))),
        A_adjoint=lambda k: complex_to_channels(op.adjoint(torch.view_as_complex(k.contiguous()))))


def deepinv_network(dinv, image_shape: tuple[int, ...], channels: int) -> torch.nn.Module:
    """deepinv's ConvDecoder with its defaults (7 layers, 4x4 input) at ``channels`` wide."""
    return dinv.models.ConvDecoder(img_size=image_shape, in_size=(4,) * (len(image_shape) - 1),
                                   channels=channels)


def run_deepinv(case: Case, level: float, budget_s: float, channels: int,
                iterations: int = 2500) -> dict:
    """deepinv's ``DeepImagePrior`` (Adam, lr 1e-2, MSE, ``iterations``) on ``y`` normalised by
    medip's robust scale, timed by a forward hook on its generator and ended at ``budget_s``."""
    import deepinv as dinv

    torch.manual_seed(0)
    x0 = case.operator.pinv(case.y)
    is_complex = x0.is_complex()
    scale = robust_scale(x0)
    y = case.y / scale
    y = torch.view_as_real(y) if y.is_complex() else y
    shape = (2 if is_complex else 1, *x0.shape[2:])
    net = deepinv_network(dinv, shape, channels)
    model = dinv.models.DeepImagePrior(net, img_size=(channels, 4, 4), iterations=iterations,
                                       learning_rate=1e-2)
    psnrs, stamps, logging = [], [], [0.0]
    last: list[torch.Tensor] = []
    start = time.perf_counter()

    def record(module, inputs, output):
        now = time.perf_counter()
        image = output.detach() * scale
        last[:] = [channels_to_complex(image) if is_complex else image]
        psnrs.append(case.score(last[0])["psnr"])
        stamps.append(now - start - logging[0])
        logging[0] += time.perf_counter() - now
        if stamps[-1] > budget_s:
            raise _OutOfTime

    net.register_forward_hook(record)
    finished = True
    try:
        model(y, _deepinv_physics(case, dinv, is_complex))
    except _OutOfTime:
        finished = False
    seconds = stamps[-1]
    steps = len(stamps) - (1 if finished else 0)  # the finished run ends with one more forward
    return {"method": f"deepinv DIP (ConvDecoder {channels} ch, {iterations} it)",
            **case.score(last[0]), "seconds": seconds, "steps": steps,
            "s_per_step": seconds / max(steps, 1),
            "stop_step": "all iterations" if finished else f"time budget {budget_s:.0f} s",
            "seconds_to_medip_level": first_time_at(psnrs, stamps, level),
            **curve_summary(psnrs, stamps)}


def run_baselines(case: Case) -> list[dict]:
    """Every classical baseline of the case, scored."""
    return [{"method": name, **case.score(image)} for name, image in case.baselines().items()]


def step_flops(output: Callable[[], torch.Tensor]) -> float:
    """FLOPs of one training step (forward and backward) of whatever ``output()`` computes."""
    with FlopCounterMode(display=False) as counter:
        output().square().mean().backward()
    return float(counter.get_total_flops())
