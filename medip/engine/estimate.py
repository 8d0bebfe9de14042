"""Before a long fit: how much memory and time per step a generator needs for an image size.

Both come from forward/backward passes on a small probe of the same network, scaled by the
voxel count (activations and work grow linearly with it); the memory adds the stopper's maps.
The time is the median of :data:`PROBE_PASSES` timed passes, with their range: a single pass
on a busy machine once said 73.7 s per step for a fit that ran at 1.5 s per step.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from .nets import build_generator

PROBE_EDGE = {2: 64, 3: 32}
PROBE_PASSES = 5


@dataclass(frozen=True)
class Estimate:
    """Peak bytes and seconds per step for one fit, and the memory available to it;
    ``seconds_range`` is the fastest and slowest probe pass, scaled like the median."""

    bytes_needed: int
    seconds_per_step: float
    bytes_available: int
    seconds_range: tuple[float, float] = (0.0, 0.0)

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
                 device: torch.device = torch.device("cpu")) -> Estimate:
    """Estimate one fit of ``preset`` on an image of spatial ``shape``.

    ``stopper_maps`` is how many float64 maps of the image the stopper keeps (3 for ES-EMV;
    ES-WMV adds its window of float32 outputs).
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
        gen(0.0).square().mean().backward()  # counts the activations, warms up
    finally:
        for hook in hooks:
            hook.remove()
    times = []
    for _ in range(PROBE_PASSES):
        start = time.perf_counter()
        gen(0.0).square().mean().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    ratio = math.prod(shape) / math.prod(probe)
    parameters = sum(p.numel() for p in gen.parameters()) * 4 * 4  # weights, grads, Adam moments
    # activations are kept for backward and their gradients live alongside: about twice
    needed = int(2 * sum(saved) * ratio + parameters + stopper_maps * 8 * math.prod(shape))
    return Estimate(needed, statistics.median(times) * ratio, available_memory(device),
                    (min(times) * ratio, max(times) * ratio))
