"""Non-Cartesian k-space trajectories for simulation, ``(shots, samples, 2)`` in cycles per pixel.

Both follow :mod:`medip.operators.nufft`'s convention (``[-0.5, 0.5)``, last coordinate along the
image's last axis) and keep every shot's samples in acquisition order, so undersampling by shots
(:func:`keep_shots`) is what dropping spokes or interleaves on the scanner does.
"""

from __future__ import annotations

import math

import torch

#: The golden angle for spokes through the centre, pi / phi (about 111.25 degrees).
GOLDEN_ANGLE = math.pi * 2 / (1 + math.sqrt(5))


def golden_angle_radial(spokes: int, samples: int) -> torch.Tensor:
    """``spokes`` full diameters of ``samples`` points each, rotated by the golden angle in turn
    (any run of consecutive spokes covers k-space nearly uniformly)."""
    if spokes < 1 or samples < 2:
        raise ValueError(f"golden_angle_radial: need spokes >= 1 and samples >= 2, got "
                         f"{spokes}, {samples}")
    radius = torch.arange(samples, dtype=torch.float64) / samples - 0.5
    angle = torch.arange(spokes, dtype=torch.float64) * GOLDEN_ANGLE
    return torch.stack([radius * torch.sin(angle)[:, None],
                        radius * torch.cos(angle)[:, None]], dim=-1).float()


def variable_density_spiral(interleaves: int, samples: int, turns: float = 8.0,
                            density: float = 1.5) -> torch.Tensor:
    """``interleaves`` rotated copies of an outward spiral ``k(t) = 0.5 t^density e^{2 pi i
    turns t}``, ``t`` in ``[0, 1]``: ``density > 1`` samples the centre more densely (the
    variable-density spirals of Kim et al. 2003, without gradient limits)."""
    if interleaves < 1 or samples < 2 or turns <= 0 or density <= 0:
        raise ValueError("variable_density_spiral: need interleaves >= 1, samples >= 2, turns > 0 "
                         "and density > 0")
    t = torch.linspace(0, 1, samples, dtype=torch.float64)
    radius = 0.5 * (1 - 1 / samples) * t ** density
    phase = 2 * math.pi * turns * t + (2 * math.pi / interleaves) * torch.arange(
        interleaves, dtype=torch.float64)[:, None]
    return torch.stack([radius * torch.sin(phase), radius * torch.cos(phase)], dim=-1).float()


def keep_shots(count: int, acceleration: float) -> torch.Tensor:
    """The indices of the shots kept when ``count`` shots are undersampled by ``acceleration``:
    every ``acceleration``-th one, evenly spread (interleaved spirals and golden-angle spokes
    both stay uniform that way)."""
    if acceleration < 1:
        raise ValueError(f"keep_shots: acceleration must be >= 1, got {acceleration}")
    kept = max(1, round(count / acceleration))
    return torch.unique(torch.round(torch.arange(kept) * (count / kept)).long())
