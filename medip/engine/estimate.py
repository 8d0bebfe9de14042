"""Before a long fit: how much memory one fit needs, and how long its steps and set-up take.

The memory comes from a forward/backward pass on a small probe of the same network, scaled by
the voxel count (activations grow linearly with it), plus the stopper's maps. The time comes
from a short real fit (:class:`StepClock`): the median of :data:`PROBE_STEPS` timed steps after
an untimed first one, with the operator, the loss, the priors and the stopper that the fits will
run, and the set-up a fit pays before its first step. Timing the generator alone missed what
the rest of a step costs: on the 91x109 brain's 3-slice slabs it said 0.020 s per step where
the fits ran at 0.028 s (benchmarks/results/2026-12-04-vm-brain-time.md), and a NUFFT's
share of an MRI step (0.060 s against 0.020 s on Cartesian data of the same matrix,
benchmarks/results/2026-12-02-vm-mri-step.md) it could not see at all. A single step on a busy
machine once said 73.7 s per step for a fit that ran at 1.5 s per step, hence the median.
"""

from __future__ import annotations

import math
import os
import statistics
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Sequence

import torch

from .device import autocast
from .fitting import StepInfo
from .nets import build_generator

PROBE_EDGE = {2: 64, 3: 32}
#: Timed steps of the probe fit, after an untimed first one.
PROBE_STEPS = 3


@dataclass(frozen=True)
class Estimate:
    """Peak bytes of one fit and the memory available to it; once timed (:class:`StepClock`),
    the seconds per step (the median probe step, ``seconds_range`` the fastest and slowest) and
    the seconds a fit spends before its first step; ``expected_seconds``: what the caller
    expects its fits to take (the volume driver's: every fit of every ensemble member)."""

    bytes_needed: int
    bytes_available: int
    seconds_per_step: float | None = None
    seconds_range: tuple[float, float] = (0.0, 0.0)
    setup_seconds: float = 0.0
    expected_seconds: float | None = None

    @property
    def fits(self) -> bool:
        return self.bytes_needed <= self.bytes_available

    def seconds(self, steps: float, fits: int = 1) -> float:
        """The time of ``fits`` fits that run ``steps`` steps in all."""
        if self.seconds_per_step is None:
            raise ValueError("this estimate was not timed: time a probe fit with StepClock")
        return fits * self.setup_seconds + steps * self.seconds_per_step


@dataclass
class StepClock:
    """A :func:`~medip.engine.fitting.fit` callback that times a short probe fit: pass it, run
    the fit (started right after the clock was made), then :meth:`timed` fills an
    :class:`Estimate`'s seconds. The first step (graph and allocator warm-up) is not counted
    as a step; the time before the first step ends, less one median step, is the set-up."""

    start: float = field(default_factory=lambda: perf_counter())
    ends: list[float] = field(default_factory=list)

    def __call__(self, info: StepInfo) -> None:
        self.ends.append(perf_counter())

    def timed(self, estimate: Estimate) -> Estimate:
        if len(self.ends) < 2:
            raise ValueError(f"the probe fit ran {len(self.ends)} step(s); at least 2 are needed")
        steps = [b - a for a, b in zip(self.ends, self.ends[1:])]
        median = statistics.median(steps)
        setup = max(self.ends[0] - self.start - median, 0.0)
        return replace(estimate, seconds_per_step=median, seconds_range=(min(steps), max(steps)),
                       setup_seconds=setup)


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
    """The memory one fit of ``preset`` on an image of spatial ``shape`` needs (untimed).

    ``stopper_maps`` is how many float64 maps of the image the stopper keeps (3 for ES-EMV;
    ES-WMV adds its window of float32 outputs). ``amp``: the fit runs its generator under
    bfloat16 autocast (``fit(amp=)``), and so does the probe pass.
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
        with autocast(device, amp):
            out = gen(0.0)
        out.float().square().mean().backward()
    finally:
        for hook in hooks:
            hook.remove()
    ratio = math.prod(shape) / math.prod(probe)
    parameters = sum(p.numel() for p in gen.parameters()) * 4 * 4  # weights, grads, Adam moments
    # activations are kept for backward and their gradients live alongside: about twice
    needed = int(2 * sum(saved) * ratio + parameters + stopper_maps * 8 * math.prod(shape))
    return Estimate(needed, available_memory(device))
