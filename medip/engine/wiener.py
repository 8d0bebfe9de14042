"""Empirical Wiener refinement: the second stage of a two-stage denoiser, with a DIP as the first.

A denoised estimate (the *pilot*) says, patch by patch, which local frequencies of the image hold
signal. The refinement takes the noisy image's own coefficients in an orthonormal 2D DCT of every
overlapping ``patch x patch`` window and keeps each in the share ``P^2 / (P^2 + a sigma^2)``,
where ``P`` is the pilot's coefficient: the Wiener filter that the pilot's energies imply
(Ghael, Sayeed and Baraniuk 1997, empirical Wiener filtering; Dabov et al. 2007 run the same
weights on groups of matched patches in BM3D's second step). The windows are averaged back, each
weighted by the inverse of the noise it lets through (``1 / sum W^2``, as in BM3D).

A DIP's output is smoother than the image (it stops before the fit learns fine detail), so its
energies understate the signal and ``a = 1`` shrinks too much; the shrink ``a`` is chosen per
image from :data:`SHRINKS` by Stein's unbiased risk estimate with the noise level, which needs no
clean image: for a filter that is linear in the noisy image ``y`` (the pilot held fixed),
``E|g(y) - x|^2 / n = |g(y) - y|^2 / n - sigma^2 + 2 sigma^2 tr(dg/dy) / n``, and the trace is
summed exactly from the weights. On the stop test bed's 12 denoised 128^2 slices (4 scans, noise
10, 25 and 50/255), where it was designed, the refinement raised medip's result by a median
+0.55 dB (-0.11 to +1.63 dB), and on 12 held-out native-resolution slices by +0.22 dB (-0.46 to
+2.03 dB: gains at 10/255, losses at 50/255 on smooth CT); ``python -m benchmarks.wiener``,
benchmarks/results/2026-12-05-vm-wiener.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

#: The DCT window's side: BM3D's 8x8 (not tuned here).
PATCH = 8
#: The shrinks ``a`` Stein's estimate chooses from: powers of two from 1/16 to 4.
SHRINKS: tuple[float, ...] = tuple(2.0 ** k for k in range(-4, 3))
#: Voxels Stein's estimate reads to choose the shrink: whole planes spread evenly through a
#: stack until they hold this many (every plane of a smaller stack). The shrink is one number,
#: and a million voxels estimate its risk to about 0.1 %.
RISK_VOXELS = 1 << 20
#: Patch rows per strip: bounds the memory of a large plane (a strip of a 512-wide plane holds
#: about 33 k windows, 8 MB per coefficient array).
_STRIP_ROWS = 64


@dataclass(frozen=True)
class Refined:
    """The refined image, the shrink Stein's estimate chose and its estimated mean squared error
    per voxel (``risks``: the estimate for every shrink tried, in the order of ``shrinks``)."""

    image: torch.Tensor
    shrink: float
    risks: tuple[float, ...]

    @property
    def risk(self) -> float:
        return min(self.risks)


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix of size ``n`` (rows are the basis vectors)."""
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (k[None, :] + 0.5) * k[:, None] / n) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis.float()


def wiener_refine(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, *,
                  patch: int = PATCH, shrinks: Sequence[float] = SHRINKS) -> Refined:
    """Refine ``pilot``, a denoised estimate of ``noisy`` (white Gaussian noise of std
    ``sigma``), by the empirical Wiener filter it implies, with the shrink Stein's estimate
    picks (see the module docstring).

    ``noisy`` and ``pilot`` are real ``(..., H, W)`` tensors of one shape; every 2D plane is
    filtered on its own and one shrink serves them all (chosen on the summed risk of planes
    holding about :data:`RISK_VOXELS` voxels). Planes smaller than ``patch`` use windows of their smaller
    side. With ``sigma`` 0 there is no noise to weigh against: the pilot comes back unchanged
    (shrink and risk NaN).
    """
    if noisy.shape != pilot.shape:
        raise ValueError(f"wiener_refine: the pilot has shape {tuple(pilot.shape)} but the noisy "
                         f"image {tuple(noisy.shape)}")
    if noisy.is_complex() or pilot.is_complex() or noisy.ndim < 2:
        raise ValueError("wiener_refine: needs real images of at least 2 dimensions")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"wiener_refine: sigma must be a finite number >= 0, got {sigma}")
    if not shrinks:
        raise ValueError("wiener_refine: needs at least one shrink")
    size = min(patch, *noisy.shape[-2:])
    if sigma == 0 or size < 2:  # nothing to weigh the pilot against
        return Refined(pilot.clone(), float("nan"), (float("nan"),))
    shape = noisy.shape
    noisy_planes = noisy.detach().float().reshape(-1, *shape[-2:])
    pilot_planes = pilot.detach().float().reshape(-1, *shape[-2:])
    wanted = min(len(noisy_planes), math.ceil(RISK_VOXELS / noisy_planes[0].numel()))
    chosen = torch.linspace(0, len(noisy_planes) - 1, wanted)
    sums, count = [0.0] * len(shrinks), 0
    # the risk planes' windows one plane at a time; their images for every shrink are kept
    # (about len(shrinks) x RISK_VOXELS voxels), so that only the other planes are filtered again
    tried: dict[int, list[torch.Tensor]] = {}
    for index in chosen.round().long().unique().tolist():
        plane = _Plane(noisy_planes[index], pilot_planes[index], size)
        count += plane.noisy.numel()
        tried[index] = []
        for k, shrink in enumerate(shrinks):
            image, trace = plane.filtered(sigma, shrink)
            sums[k] += float(((image - plane.noisy).double() ** 2).sum()) + 2 * sigma ** 2 * trace
            tried[index].append(image)
    risks = tuple(total / count - sigma ** 2 for total in sums)
    best = min(range(len(shrinks)), key=risks.__getitem__)
    image = torch.stack([tried[i][best] if i in tried else
                         _Plane(y, p, size).filtered(sigma, shrinks[best])[0]
                         for i, (y, p) in enumerate(zip(noisy_planes, pilot_planes))])
    return Refined(image.reshape(shape).to(pilot.dtype), float(shrinks[best]), risks)


class _Plane:
    """One plane's windows in the DCT, computed once for every shrink tried: the noisy image's
    coefficients and the pilot's energies, a strip of window rows at a time."""

    def __init__(self, noisy: torch.Tensor, pilot: torch.Tensor, size: int) -> None:
        self.noisy, self.size = noisy, size
        basis = dct_matrix(size)
        # the 2D DCT of a flattened window is one product with the Kronecker basis; the
        # Jacobian's diagonal of a window's filter sums the weights against the squared basis
        self.transform = torch.kron(basis, basis).T
        self.squared = self.transform ** 2
        self.box = torch.ones(1, 1, size, size)
        pad = size - 1
        padded_y = F.pad(noisy[None, None], (pad,) * 4, mode="reflect")[0, 0]
        padded_p = F.pad(pilot[None, None], (pad,) * 4, mode="reflect")[0, 0]
        self.padded_shape = padded_y.shape
        rows = padded_y.shape[0] - size + 1
        self.strips = []
        for top in range(0, rows, _STRIP_ROWS):
            bottom = min(top + _STRIP_ROWS, rows) + size - 1  # the strip's last pixel row + 1
            coefficients = self._windows(padded_y[top:bottom]) @ self.transform
            energy = (self._windows(padded_p[top:bottom]) @ self.transform) ** 2
            self.strips.append((top, bottom, coefficients, energy))

    def _windows(self, strip: torch.Tensor) -> torch.Tensor:
        return F.unfold(strip[None, None], self.size)[0].T  # (windows, size^2)

    def filtered(self, sigma: float, shrink: float) -> tuple[torch.Tensor, float]:
        """The filtered plane and the trace of the filter's Jacobian (the pilot held fixed)."""
        numerator = torch.zeros(self.padded_shape)
        denominator = torch.zeros(self.padded_shape)
        diagonal = torch.zeros(self.padded_shape)
        for top, bottom, coefficients, energy in self.strips:
            weights = energy / (energy + shrink * sigma ** 2)
            window_weight = 1 / (weights ** 2).sum(1).clamp_min(1e-12)
            # (size^2, windows), the layout fold takes: each window's estimate, and the
            # derivative of each of its pixels by the same noisy pixel (the pilot fixed)
            estimate = self.transform @ (weights * coefficients).T
            own = self.squared @ weights.T
            strip = (bottom - top, self.padded_shape[1])

            def fold(values: torch.Tensor) -> torch.Tensor:
                return F.fold((values * window_weight)[None], strip, self.size)[0, 0]

            numerator[top:bottom] += fold(estimate)
            diagonal[top:bottom] += fold(own)
            # every pixel's share of the window weights: their map summed over each window
            weight_map = window_weight.reshape(1, 1, bottom - top - self.size + 1, -1)
            denominator[top:bottom] += F.conv_transpose2d(weight_map, self.box)[0, 0]
        pad = self.size - 1
        inner = (slice(pad, pad + self.noisy.shape[0]), slice(pad, pad + self.noisy.shape[1]))
        image = numerator[inner] / denominator[inner]
        return image, float((diagonal[inner] / denominator[inner]).double().sum())
