"""Before a long fit: how much memory and time per step a generator needs for an image size.

The memory comes from a forward/backward pass on a small probe of the same network, scaled by
the voxel count (activations grow linearly with it), plus the stopper's maps. The time comes from
:data:`PROBE_PASSES` timed optimiser steps of the generator at the real size (their median, with
their range), when the memory allows. Scaling a 64^2 probe's step time by the voxel count said
0.073 s per step for a 91x109 slab of 3 slices, 0.51 s at 256^2 and 1.9 s at 512^2 (2-core
Intel VM, ``fast``), where the fits ran at 0.050, 0.193 and 0.78 s (small convolutions are
overhead-bound); timed at the real size it said 0.050, 0.194 and 0.74 s. A single step on a busy
machine once said 73.7 s per step for a fit that ran at 1.5 s per step, hence the median.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass
from time import perf_counter
from typing import Sequence

import torch

from .device import autocast
from .fitting import adam
from .nets import build_generator

PROBE_EDGE = {2: 64, 3: 32}
PROBE_PASSES = 3


@dataclass(frozen=True)
class Estimate:
    """Peak bytes and seconds per step for one fit, and the memory available to it;
    ``seconds_range`` is the fastest and slowest probe pass, scaled like the median;
    ``expected_seconds``: what the caller expects its fits to take (the volume driver's: every
    fit of every ensemble member)."""

    bytes_needed: int
    seconds_per_step: float
    bytes_available: int
    seconds_range: tuple[float, float] = (0.0, 0.0)
    expected_seconds: float | None = None

    @property
    def fits(self) -> bool:
        return self.bytes_needed <= self.bytes_available


def available_memory(device: torch.device) -> int:
    """Free bytes on a CUDA device, else the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def estimate_fit(preset: str, shape: Sequence[int], channels: int = 1, stopper_maps: int = 3,
                 device: torch.device = torch.device("cpu"), amp: bool = False) -> Estimate:
    """Estimate one fit of ``preset`` on an image of spatial ``shape``.

    ``stopper_maps`` is how many float64 maps of the image the stopper keeps (3 for ES-EMV;
    ES-WMV adds its window of float32 outputs). ``amp``: the fit runs its generator under
    bfloat16 autocast (``fit(amp=)``), and so do the probe passes.
    """
    dims = len(shape)
    probe = (PROBE_EDGE[dims],) * dims
    gen = build_generator(preset, probe, channels).to(device)
    saved = []

    def count(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            saved.append(output.numel() * output.element_size())

    hooks = [m.register_forward_hook(count) for m in gen.modules() if not list(m.children())]
    try:
        _probe_pass(gen, device, amp)  # counts the activations
    finally:
        for hook in hooks:
            hook.remove()
    ratio = math.prod(shape) / math.prod(probe)
    parameters = sum(p.numel() for p in gen.parameters()) * 4 * 4  # weights, grads, Adam moments
    # activations are kept for backward and their gradients live alongside: about twice
    needed = int(2 * sum(saved) * ratio + parameters + stopper_maps * 8 * math.prod(shape))
    available = available_memory(device)
    if needed <= available:  # time real steps at the real size
        gen, ratio = build_generator(preset, shape, channels).to(device), 1.0
    times = _step_times(gen, device, amp)
    return Estimate(needed, statistics.median(times) * ratio, available,
                    (min(times) * ratio, max(times) * ratio))


def _step_times(gen: torch.nn.Module, device: torch.device, amp: bool) -> list[float]:
    """Seconds of :data:`PROBE_PASSES` optimiser steps (forward, backward, Adam), after one
    untimed step."""
    optimizer = adam(gen.parameters(), 1e-3)
    times = []
    for index in range(PROBE_PASSES + 1):
        start = perf_counter()
        optimizer.zero_grad(set_to_none=True)
        _probe_pass(gen, device, amp)
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if index:
            times.append(perf_counter() - start)
    return times


def _probe_pass(gen: torch.nn.Module, device: torch.device, amp: bool) -> None:
    """One forward (under autocast with ``amp``, as ``fit`` runs it) and backward pass."""
    with autocast(device, amp):
        out = gen(0.0)
    out.float().square().mean().backward()
