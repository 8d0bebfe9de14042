"""Image restoration tasks on a scan: the scan is the measurement ``y`` and the array order is
the volume's own ``(i, j, k)``.

``denoise`` is the identity, ``inpaint`` a mask of known voxels (nonzero = known) and
``superres`` a downsampling by integer ``factors`` per axis (``(1, 1, 2)`` is through-plane for
an ``(i, j, k)`` volume); the result has the shape of the operator's input (larger than the scan
for super-resolution), on the fine grid's geometry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch

from .. import defaults
from ..engine.matched import MIN_SIDE, matched_refine
from ..engine.wiener import Refined, wiener_refine
from ..errors import InputError
from ..io.volume import Volume
from ..operators import Downsample, Identity, LinearOperator, Mask, estimate_sigma
from .base import Problem, Region, Task, cut
from .specs import SPECS


def normalise_factors(factors: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """One positive integer per axis from an int, a sequence, or None (= 2 in-plane)."""
    if factors is None:
        factors = defaults.FACTOR
    factors = (factors,) * ndim if isinstance(factors, int) else tuple(int(f) for f in factors)
    if len(factors) != ndim or any(f < 1 for f in factors):
        raise InputError(f"super-resolution needs {ndim} positive integer factors, got "
                         f"{factors}")
    return factors


def upsampled_affine(affine: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Geometry of the fine grid: fine voxel ``i`` lies at coarse index ``(i - (f - 1) / 2) / f``
    (each coarse voxel is the mean of the ``f`` fine voxels around its centre)."""
    step = np.eye(4)
    for axis, f in enumerate(factors):
        step[axis, axis] = 1 / f
        step[axis, 3] = -(f - 1) / (2 * f)
    return affine @ step


@dataclass
class _ScanTask(Task):
    """A task whose measurement is the scan itself."""

    measured: Volume

    def __post_init__(self) -> None:
        if not bool(np.isfinite(self.measured.array).all()):
            raise InputError(f"{self.measured.source or 'the volume'} contains NaN or infinite "
                             f"values; fix or mask them before reconstruction")

    @property
    def shape(self) -> tuple[int, ...]:
        return self.measured.shape

    def to_volumes(self, image: np.ndarray, variance: np.ndarray) -> tuple[Volume, Volume]:
        """On the scan's grid, or on the finer grid an operator's image lives on."""
        factors = [a // b for a, b in zip(image.shape, self.shape)]
        affine = upsampled_affine(self.measured.affine, factors)
        units = self.measured.units
        return (self.measured.with_array(image, affine),
                self.measured.with_array(variance, affine,
                                         units=f"({units})^2" if units else ""))


#: Planes a scan's noise estimate reads (each plane has thousands of 2x2 blocks).
NOISE_PLANES = 16
#: The noise level, as a fraction of the scan's scale (:meth:`Task.scale`), under which known
#: voxels count as exact: real scans as stored read 0 to 0.0071 of it, the same scans with
#: Gaussian noise of 5/255 of their range 0.0225 to 0.052, and on clean real slices the
#: noise-free fit fills holes better (``python -m benchmarks.engine exact``,
#: benchmarks/results/2026-12-02-vm-exact.md).
EXACT_NOISE = 0.01


def scan_noise(array: np.ndarray, known: np.ndarray | None = None) -> float:
    """The noise level of a scan (:func:`~medip.operators.estimate_sigma` over its planes;
    ``known``: only the known voxels), at most :data:`NOISE_PLANES` planes spread through it."""
    step = max(1, array.shape[-1] // NOISE_PLANES)

    def planes(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a[..., ::step], -1, 0)))

    return estimate_sigma(planes(array), known=None if known is None else planes(known))


def refine_denoised(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float) -> Refined:
    """Denoising's refinement of its DIP result ``pilot`` (``noisy``'s noise of std ``sigma``):
    the empirical Wiener filter it implies (:func:`~medip.engine.wiener.wiener_refine`), then,
    on a single plane of at least :data:`~medip.engine.matched.MIN_SIDE` pixels a side, the
    block-matched collaborative Wiener filter with that as its pilot, matching patches in the DIP
    result (:func:`~medip.engine.matched.matched_refine`). A stack of planes keeps the first
    stage, whose windows span neighbouring slices (block matching was not measured on
    volumes)."""
    refined = wiener_refine(noisy, pilot, sigma)
    single = math.prod(noisy.shape[:-2]) == 1 and min(noisy.shape[-2:]) >= MIN_SIDE
    if not single or not sigma:
        return refined
    return replace(refined, image=matched_refine(noisy, refined.image, sigma, match=pilot),
                   matched=True)


@dataclass
class Denoise(_ScanTask):
    """Gaussian-noise removal: ``A`` is the identity. The noise level is estimated from the scan
    (:func:`scan_noise`) and sets the fit's noise floor (``fit(noise_level=)``); the result is
    refined by the empirical Wiener filter it implies (:meth:`refine`)."""

    spec = SPECS["denoise"]

    def __post_init__(self) -> None:
        super().__post_init__()
        self.sigma = scan_noise(self.measured.array)

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        y = cut(self.measured.array, region, plane_axis)
        return Problem(Identity(), y, tuple(y.shape[2:]), sigma=self.sigma)

    def refine(self, image: torch.Tensor, axis: int) -> Refined:
        """:func:`refine_denoised` of the scan with ``image`` as the pilot, the planes across
        ``axis`` as its stack (windows within a slice or across neighbouring ones), one window
        and one set of shrinks for the whole volume."""
        noisy = torch.from_numpy(np.asarray(self.measured.array, dtype=np.float32))
        refined = refine_denoised(noisy.movedim(axis, 0), image.movedim(axis, 0), self.sigma)
        return replace(refined, image=refined.image.movedim(0, axis).contiguous())


@dataclass
class Inpaint(_ScanTask):
    """Filling unknown voxels: ``A`` keeps the known ones (``mask`` nonzero = known). The noise
    level of the known voxels is estimated (:func:`scan_noise`); under :data:`EXACT_NOISE` of
    the scan's scale they count as exact (:attr:`Task.exact`: keep them, fit noise-free)."""

    spec = SPECS["inpaint"]
    mask: np.ndarray | torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mask is None:
            raise InputError("inpainting needs a mask of the known voxels (nonzero = known): "
                             "mask=ARRAY, --mask FILE")
        self.mask = np.asarray(self.mask) != 0
        if self.mask.shape != self.shape:
            raise InputError(f"the mask has shape {self.mask.shape} but the scan has {self.shape}")
        self.sigma = scan_noise(self.measured.array, self.mask)
        self.exact = self.sigma <= EXACT_NOISE * self.scale()

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        y = cut(self.measured.array, region, plane_axis)
        known = cut(self.mask, region, plane_axis)[0]
        return Problem(Mask(known if plane_axis is not None else known[0]), y,
                       tuple(y.shape[2:]), sigma=self.sigma)


@dataclass
class SuperRes(_ScanTask):
    """Super-resolution: ``A`` downsamples by integer ``factors`` per axis of the scan (default
    2 in-plane: every axis but the slice axis of ``slices`` mode) with an anti-alias
    ``kernel``."""

    spec = SPECS["superres"]
    factors: int | Sequence[int] | None = None
    kernel: str = defaults.KERNEL

    def _factors(self, plane_axis: int | None) -> tuple[int, ...]:
        if self.factors is None:
            return tuple(1 if a == plane_axis else defaults.FACTOR for a in range(3))
        return normalise_factors(self.factors, 3)

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        factors = self._factors(plane_axis)
        y = cut(self.measured.array, region, plane_axis)
        if plane_axis is not None:
            if factors[plane_axis] != 1:
                raise InputError(f"factor {factors[plane_axis]} along the slice axis "
                                 f"{plane_axis} needs mode='3d' (through-plane super-resolution)")
            factors = tuple(f for a, f in enumerate(factors) if a != plane_axis)
        A = Downsample(factors, self.kernel)
        return Problem(A, y, tuple(n * f for n, f in zip(y.shape[2:], factors)))


@dataclass
class OperatorTask(_ScanTask):
    """A scan measured through any 3D operator ``A`` (``mode="3d"`` only: the driver cannot
    cut an arbitrary operator into slices or patches)."""

    spec = SPECS["operator"]
    A: LinearOperator | None = None

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        y = cut(self.measured.array, region, None)  # the whole scan: the spec allows only 3d
        x = self.A.H(y)
        return Problem(self.A, y, tuple(x.shape[2:]))
