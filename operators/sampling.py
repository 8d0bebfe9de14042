"""Mask generators, deterministic with a seed.

Inpainting masks (True = known pixel): random pixel dropout, scribbles and text overlays.
MRI sampling masks (True = acquired k-space sample): Cartesian phase-encode lines (equispaced
or random, with a fully sampled centre, fastMRI conventions), 2D variable-density (Gaussian
density or Poisson disc) for 3D acquisitions, and radial lines. Sampling masks come back as a
:class:`SamplingMask` carrying the acceleration actually achieved.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import torch


def _rng(seed: int | None) -> np.random.Generator:
    return np.random.default_rng(seed)


def _check_shape(shape: Sequence[int], owner: str) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{owner}: shape must be 2 or 3 positive sizes, got {shape}")
    return shape


# -- inpainting ------------------------------------------------------------------------------

def random_pixel_mask(shape: Sequence[int], missing: float, seed: int | None = 0) -> torch.Tensor:
    """Drop a ``missing`` fraction of pixels/voxels uniformly at random (True = kept)."""
    shape = _check_shape(shape, "random_pixel_mask")
    if not 0 <= missing < 1:
        raise ValueError(f"random_pixel_mask: missing must be in [0, 1), got {missing}")
    return torch.from_numpy(_rng(seed).random(shape) >= missing)


def _draw_2d(shape: tuple[int, int], seed: int | None, painter) -> torch.Tensor:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (shape[1], shape[0]), 0)
    painter(ImageDraw.Draw(canvas), _rng(seed))
    return torch.from_numpy(np.asarray(canvas) == 0)


def scribble_mask(shape: Sequence[int], strokes: int = 8, width: int | None = None,
                  seed: int | None = 0) -> torch.Tensor:
    """Random brush strokes over a 2D image (True = kept), like hand-drawn scribbles."""
    h, w = _check_shape(shape, "scribble_mask")
    width = width or max(2, min(h, w) // 40)

    def paint(draw, rng):
        for _ in range(strokes):
            n = rng.integers(4, 10)
            start = rng.random(2) * (w, h)
            steps = rng.normal(scale=min(h, w) / 8, size=(n, 2)).cumsum(axis=0)
            points = [tuple(p) for p in np.vstack([start, start + steps])]
            draw.line(points, fill=255, width=int(width), joint="curve")

    return _draw_2d((h, w), seed, paint)


def text_mask(shape: Sequence[int], lines: int = 6, font_size: int | None = None,
              seed: int | None = 0) -> torch.Tensor:
    """Random words written over a 2D image (True = kept), the classic DIP text-removal task."""
    from PIL import ImageFont

    h, w = _check_shape(shape, "text_mask")
    size = font_size or max(8, h // 12)
    font = ImageFont.load_default(size=size)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))

    def paint(draw, rng):
        for row in range(lines):
            words = [''.join(rng.choice(letters, rng.integers(3, 9))) for _ in range(6)]
            y = (row + rng.random() * 0.5) * h / lines
            draw.text((rng.random() * w * 0.1, y), " ".join(words), fill=255, font=font)

    return _draw_2d((h, w), seed, paint)


# -- MRI sampling ----------------------------------------------------------------------------

class SamplingMask(NamedTuple):
    """A k-space sampling mask (True = acquired) and the acceleration it achieves."""

    mask: torch.Tensor
    acceleration: float


def _finish(mask: np.ndarray) -> SamplingMask:
    return SamplingMask(torch.from_numpy(mask), float(mask.size / max(mask.sum(), 1)))


def _centre_lines(n: int, center_fraction: float) -> tuple[int, int]:
    n_low = max(1, round(n * center_fraction))
    start = (n - n_low + 1) // 2
    return start, n_low


def cartesian_mask(shape: Sequence[int], acceleration: float, center_fraction: float = 0.08,
                   pattern: str = "equispaced", seed: int | None = 0) -> SamplingMask:
    """Phase-encode line mask over the last axis (lines are full along the read-out axis).

    fastMRI conventions: ``center_fraction`` of the lines around DC are always sampled; the
    ``"random"`` pattern samples each other line with the probability that gives the target
    ``acceleration`` on average, ``"equispaced"`` takes every ``a``-th line with a random offset,
    ``a`` chosen so the total matches ``n / acceleration``. The mask has ``shape`` (read-out
    axes broadcast, i.e. size 1 is not used: the full shape is returned for clarity).
    """
    shape = _check_shape(shape, "cartesian_mask")
    if acceleration < 1:
        raise ValueError(f"cartesian_mask: acceleration must be >= 1, got {acceleration}")
    if not 0 < center_fraction <= 1:
        raise ValueError(f"cartesian_mask: center_fraction must be in (0, 1], got {center_fraction}")
    rng, n = _rng(seed), shape[-1]
    start, n_low = _centre_lines(n, center_fraction)
    lines = np.zeros(n, dtype=bool)
    lines[start:start + n_low] = True
    target = n / acceleration
    if pattern == "random":
        prob = max(target - n_low, 0) / max(n - n_low, 1)
        lines |= rng.random(n) < prob
    elif pattern == "equispaced":
        if target > n_low:
            spacing = (n - n_low) / (target - n_low)
            offset = rng.integers(0, max(1, round(spacing)))
            picks = np.round(np.arange(offset, n - 1, spacing)).astype(int)
            lines[picks[picks < n]] = True
    else:
        raise ValueError(f"cartesian_mask: pattern must be 'equispaced' or 'random', got {pattern!r}")
    return _finish(np.broadcast_to(lines, shape).copy())


def variable_density_mask(shape: Sequence[int], acceleration: float, center_fraction: float = 0.08,
                          method: str = "gaussian", seed: int | None = 0) -> SamplingMask:
    """2D phase-encode mask over the last two axes for 3D acquisitions (read-out along axis 0).

    ``"gaussian"`` draws samples with a Gaussian density around DC; ``"poisson"`` uses
    variable-density Poisson-disc sampling (no two samples closer than a radius that grows with
    the distance from DC). A fully sampled square of ``center_fraction`` per axis is kept.
    """
    shape = _check_shape(shape, "variable_density_mask")
    if acceleration < 1:
        raise ValueError(f"variable_density_mask: acceleration must be >= 1, got {acceleration}")
    ny, nz = shape[-2:]
    rng = _rng(seed)
    ky, kz = np.meshgrid(np.linspace(-1, 1, ny), np.linspace(-1, 1, nz), indexing="ij")
    radius = np.hypot(ky, kz)
    target = ny * nz / acceleration
    if method == "gaussian":
        # Bisect the density width so the expected count matches the target.
        lo, hi = 1e-3, 1e3
        for _ in range(60):
            width = math.sqrt(lo * hi)
            density = np.exp(-(radius / width) ** 2)
            lo, hi = (width, hi) if density.sum() < target else (lo, width)
        plane = rng.random((ny, nz)) < density
    elif method == "poisson":
        plane = _poisson_disc(ny, nz, radius, target, rng)
    else:
        raise ValueError(f"variable_density_mask: method must be 'gaussian' or 'poisson', got {method!r}")
    (sy, ly), (sz, lz) = _centre_lines(ny, center_fraction), _centre_lines(nz, center_fraction)
    plane[sy:sy + ly, sz:sz + lz] = True
    return _finish(np.broadcast_to(plane, shape).copy())


def _poisson_disc(ny: int, nz: int, radius: np.ndarray, target: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Dart throwing with a radius ``r0 (1 + 2 |k|)``; ``r0`` bisected to reach ``target``."""
    order = rng.permutation(ny * nz)
    coords = np.stack(np.unravel_index(order, (ny, nz)), axis=1)
    scale = 1 + 2 * radius.ravel()[order]

    def throw(r0: float) -> np.ndarray:
        plane = np.zeros((ny, nz), dtype=bool)
        for (y, z), s in zip(coords, scale):
            r = r0 * s
            ri = int(math.ceil(r))
            y0, y1, z0, z1 = max(0, y - ri + 1), min(ny, y + ri), max(0, z - ri + 1), min(nz, z + ri)
            window = plane[y0:y1, z0:z1]
            if window.any():
                wy, wz = np.nonzero(window)
                if np.min((wy + y0 - y) ** 2 + (wz + z0 - z) ** 2) < r * r:
                    continue
            plane[y, z] = True
        return plane

    lo, hi = 0.3, 8.0
    best = throw(1.0)
    for _ in range(12):
        r0 = math.sqrt(lo * hi)
        best = throw(r0)
        lo, hi = (lo, r0) if best.sum() < target else (r0, hi)
        if abs(best.sum() - target) < 0.03 * target:
            break
    return best


def radial_mask(shape: Sequence[int], spokes: int, seed: int | None = 0) -> SamplingMask:
    """Radial-like mask: ``spokes`` lines through the centre of the last two axes, golden angle."""
    shape = _check_shape(shape, "radial_mask")
    if spokes < 1:
        raise ValueError(f"radial_mask: spokes must be >= 1, got {spokes}")
    ny, nx = shape[-2:]
    offset = _rng(seed).random() * math.pi
    angles = offset + np.arange(spokes) * math.pi * (math.sqrt(5) - 1) / 2
    t = np.linspace(-1, 1, 2 * max(ny, nx))
    plane = np.zeros((ny, nx), dtype=bool)
    for a in angles % math.pi:
        y = np.clip(np.round((t * math.sin(a) + 1) * (ny - 1) / 2), 0, ny - 1).astype(int)
        x = np.clip(np.round((t * math.cos(a) + 1) * (nx - 1) / 2), 0, nx - 1).astype(int)
        plane[y, x] = True
    return _finish(np.broadcast_to(plane, shape).copy())
