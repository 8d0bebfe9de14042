"""Empirical Wiener refinement: the second stage of a two-stage denoiser, with a DIP as the first.

A denoised estimate (the *pilot*) says, window by window, which local frequencies of the image
hold signal. The refinement takes the noisy image's own coefficients in an orthonormal DCT of
every overlapping window (``side x side`` in a plane; ``depth x side x side`` across the
neighbouring planes of a stack, whose slices share structure) and keeps each in the share
``P^2 / (P^2 + a sigma^2)``, where ``P`` is the pilot's coefficient: the Wiener filter that the
pilot's energies imply (Ghael, Sayeed and Baraniuk 1997, empirical Wiener filtering; Dabov et al.
2007 run the same weights on groups of matched patches in BM3D's second step). The windows are
averaged back, each weighted by the inverse of the noise it lets through (``1 / sum W^2``, as in
BM3D).

A DIP's output is smoother than the image (it stops before the fit learns fine detail), so its
energies understate the signal, the more so the finer the frequency, and ``a = 1`` shrinks too
much. Each of the window's DCT frequencies therefore gets its own shrink (its *profile*, from
:data:`PROFILE_SHRINKS`): the one that minimises Stein's risk of that coefficient over the
windows (every :data:`PROFILE_EVERY`-th), each coefficient its own estimate. Averaging the
overlapping windows changes the risk of the image, so the profile is then scaled as a whole (by
a factor from :data:`SHRINKS`), and the scale and the window (from :data:`WINDOWS`) are chosen
per scan by Stein's unbiased risk estimate of the image with the noise level, which needs no
clean image: for a filter that is linear in the noisy image ``y`` (the pilot held fixed),
``E|g(y) - x|^2 / n = |g(y) - y|^2 / n - sigma^2 + 2 sigma^2 tr(dg/dy) / n``, and the trace is
summed exactly from the weights, over the voxels whose mirror image in the border padding never
shares a window with them (all but a band at most 3 voxels wide inside the edges).

On the stop test bed's 12 denoised 128^2 slices (4 scans, noise 10, 25 and 50/255), where it was
designed, the refinement raised medip's result by a median +0.55 dB (-0.11 to +1.63 dB), and on
12 held-out native-resolution slices by +0.22 dB (-0.46 to +2.03 dB: gains at 10/255, losses at
50/255 on smooth CT); ``python -m benchmarks.wiener``, benchmarks/results/2026-12-05-vm-wiener.md,
measured with one shrink for every frequency. On volumes see :data:`WINDOWS`; for the shrink
per frequency, :data:`PROFILE_SHRINKS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

#: The windows Stein's estimate chooses from, as (depth across a stack's planes, side in the
#: plane): BM3D's 8x8 in each plane on its own, and three windows across neighbouring planes,
#: which see what a volume's slices share. Windows deeper than the stack are left out (a 2D
#: image has only the 8x8). On six real 15-slice chunks of four scans (2 mm T1 at 10 and
#: 50/255, clinical T1 with 6.5 mm slices at 25/255, chest CT with 5 mm slices at 10 and
#: 50/255, an EPI frame at 25/255), Stein's choice among these four came within 0.08 dB of the
#: best of seven fixed windows on every chunk and raised the DIP result by +0.63 to +2.18 dB
#: (the 8x8 alone: -0.51 to +1.85 dB); it took the 3x8x8 on the 6.5 mm slices and the 4x4x4
#: or 4x6x6 on the others.
#: ``python -m benchmarks.wiener_windows``, benchmarks/results/2026-12-05-vm-wiener-windows.md.
WINDOWS: tuple[tuple[int, int], ...] = ((1, 8), (3, 8), (4, 4), (4, 6))
#: The shrinks ``a`` Stein's estimate chooses from: factors on each frequency's shrink, powers of
#: sqrt(2) from 1/4 to 4 (with ``frequencies=False``: one shrink for every frequency, powers of
#: two from 1/16 to 4). The chosen factor lay between 1/2 and sqrt(2) on the stop test bed's 12
#: denoised slices and between 1/sqrt(8) and sqrt(2) on six volume chunks.
SHRINKS: tuple[float, ...] = tuple(2.0 ** (k / 2) for k in range(-4, 5))
UNIFORM_SHRINKS: tuple[float, ...] = tuple(2.0 ** k for k in range(-4, 3))
#: The shrinks each frequency's own is chosen from: powers of sqrt(2) from 1/64 to 16. Against
#: one shrink for every frequency, the refinement of medip's result rose by a median +0.06 dB
#: (-0.04 to +0.17 dB, ahead on 9) on the stop test bed's 12 slices, where it was designed,
#: and by +0.03 to +0.10 dB (median +0.07) on all six 15-slice chunks of four scans it had not
#: seen, in 1.38x the refinement's time (``python -m benchmarks.wiener_frequencies``,
#: benchmarks/results/2026-12-05-vm-wiener-frequencies.md).
PROFILE_SHRINKS: tuple[float, ...] = tuple(2.0 ** (k / 2) for k in range(-12, 9))
#: The windows each frequency's shrink is read from: every so many of a row strip's windows
#: (thousands per frequency remain on a 91x109 plane). Reading a quarter of them cut the
#: profile's time 4x (a 15-slice chunk's whole refinement from 21.8 to 18.4 s) and moved the
#: gains above by at most 0.03 dB on the designing images.
PROFILE_EVERY = 4
#: Voxels Stein's estimate reads to choose the window and shrink: whole planes spread evenly
#: through a stack until they hold this many (every plane of a smaller stack). A million voxels
#: estimate each risk to about 0.1 %.
RISK_VOXELS = 1 << 20
#: Voxels of the planes filtered together: bounds the memory of a large stack's accumulators
#: (16 planes of 512^2: about 60 MB), at the cost of refiltering the windows that straddle two
#: groups.
_GROUP_VOXELS = 1 << 22
#: Window rows per strip: bounds the memory of a large plane (a strip of a 512-wide plane holds
#: about 33 k windows, 8 MB per coefficient array and window plane).
_STRIP_ROWS = 64


@dataclass(frozen=True)
class Refined:
    """The refined image, the window (depth, side) and shrink Stein's estimate chose, and its
    estimated mean squared error per voxel for every ``(depth, side, shrink)`` tried
    (``risks``). ``profile``: the chosen window's shrink of each DCT frequency, ``(depth, side,
    side)``, which ``shrink`` scales (None where one shrink serves every frequency)."""

    image: torch.Tensor
    shrink: float
    window: tuple[int, int]
    risks: dict[tuple[int, int, float], float]
    profile: torch.Tensor | None = None
    #: Whether the block-matched collaborative Wiener filter followed, with this refinement as
    #: its pilot (:func:`medip.tasks.restore.refine_denoised`: single planes).
    matched: bool = False

    @property
    def risk(self) -> float:
        return min(self.risks.values())


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix of size ``n`` (rows are the basis vectors)."""
    k = torch.arange(n, dtype=torch.float64)
    basis = torch.cos(math.pi * (k[None, :] + 0.5) * k[:, None] / n) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis.float()


def wiener_refine(noisy: torch.Tensor, pilot: torch.Tensor, sigma: float, *,
                  windows: Sequence[tuple[int, int]] = WINDOWS,
                  shrinks: Sequence[float] | None = None,
                  frequencies: bool = True) -> Refined:
    """Refine ``pilot``, a denoised estimate of ``noisy`` (white Gaussian noise of std
    ``sigma``), by the empirical Wiener filter it implies, with the window and shrink Stein's
    estimate picks (see the module docstring).

    ``frequencies``: each DCT frequency of a window gets its own shrink, which ``shrinks``
    (default :data:`SHRINKS`) scale; False: each of ``shrinks`` (default
    :data:`UNIFORM_SHRINKS`) serves every frequency.

    ``noisy`` and ``pilot`` are real ``(H, W)`` images or ``(D, H, W)`` stacks of one shape,
    with any leading dimensions of size 1 (a fit's ``(1, 1, H, W)`` image is one plane).
    ``windows``: ``(depth, side)`` pairs, a window spanning ``depth`` neighbouring planes and
    ``side x side`` voxels in each (those deeper than the stack are left out; sides larger than
    a plane shrink to its smaller side). One window and shrink serve the whole stack, chosen on
    the summed risk of planes holding about :data:`RISK_VOXELS` voxels. With ``sigma`` 0 there
    is no noise to weigh against: the pilot comes back unchanged (shrink NaN, no risks).
    """
    if noisy.shape != pilot.shape:
        raise ValueError(f"wiener_refine: the pilot has shape {tuple(pilot.shape)} but the noisy "
                         f"image {tuple(noisy.shape)}")
    if (noisy.is_complex() or pilot.is_complex() or noisy.ndim < 2
            or any(n != 1 for n in noisy.shape[:-3])):
        raise ValueError("wiener_refine: needs real (H, W) images or (D, H, W) stacks (leading "
                         f"dims of size 1 allowed), got {tuple(noisy.shape)} {noisy.dtype}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"wiener_refine: sigma must be a finite number >= 0, got {sigma}")
    if shrinks is None:
        shrinks = SHRINKS if frequencies else UNIFORM_SHRINKS
    if not shrinks or not windows or min(min(window) for window in windows) < 1:
        raise ValueError("wiener_refine: needs at least one shrink and windows of sides >= 1")
    shape = noisy.shape
    noisy_stack = noisy.detach().float().reshape(-1, *shape[-2:])
    pilot_stack = pilot.detach().float().reshape(-1, *shape[-2:])
    planes, smaller = len(noisy_stack), min(shape[-2:])
    candidates = sorted({(depth, min(side, smaller)) for depth, side in windows
                         if depth <= planes})
    if not candidates:
        raise ValueError(f"wiener_refine: every window of {tuple(windows)} is deeper than the "
                         f"{planes} plane(s) given; add a window of depth 1")
    if sigma == 0 or smaller < 2:  # nothing to weigh the pilot against
        return Refined(pilot.clone(), float("nan"), candidates[0], {})
    chosen = torch.linspace(0, planes - 1, min(planes, math.ceil(
        RISK_VOXELS / noisy_stack[0].numel()))).round().long().unique().tolist()
    group = max(1, _GROUP_VOXELS // noisy_stack[0].numel())
    # Stein's estimate needs the exact Jacobian diagonal, which the windows give for every
    # voxel but those whose mirror image in the padding shares a window with them; every
    # window's risk is read on the same voxels
    deepest, widest = (max(extents) for extents in zip(*candidates))
    exact = [_unmirrored(n, extent) for n, extent in zip(noisy_stack.shape,
                                                         (deepest, widest, widest))]
    # the risk planes' images for every window and shrink are kept (about len(windows) x
    # len(shrinks) x RISK_VOXELS voxels), so that only the other planes are filtered again
    tried: dict[tuple[int, int, float], dict[int, torch.Tensor]] = {}
    sums: dict[tuple[int, int, float], float] = {}
    profiles: dict[tuple[int, int], torch.Tensor | float] = {}
    risk_runs = _runs(chosen, group)
    for depth, side in candidates:
        stack = _Stack(noisy_stack, pilot_stack, depth, side)
        profile = profiles[depth, side] = (stack.profile(risk_runs, sigma)
                                           if frequencies else 1.0)
        for lo, hi in risk_runs:
            mask = exact[0][lo:hi, None, None] & exact[1][:, None] & exact[2]
            for shrink, (images, diagonal) in zip(shrinks, stack.filtered(
                    lo, hi, sigma, [factor * profile for factor in shrinks])):
                key = (depth, side, float(shrink))
                error = ((images - noisy_stack[lo:hi]).double() ** 2)[mask].sum()
                risk = float(error + 2 * sigma ** 2 * diagonal.double()[mask].sum())
                sums[key] = sums.get(key, 0.0) + risk
                tried.setdefault(key, {}).update(zip(range(lo, hi), images))
    count = int(exact[0][chosen].sum() * exact[1].sum() * exact[2].sum())
    risks = {key: total / count - sigma ** 2 for key, total in sums.items()}
    depth, side, shrink = best = min(risks, key=risks.__getitem__)
    image = torch.empty_like(noisy_stack)
    for index, plane in tried[best].items():
        image[index] = plane
    rest = [index for index in range(planes) if index not in tried[best]]
    if rest:
        stack = _Stack(noisy_stack, pilot_stack, depth, side)
        for lo, hi in _runs(rest, group):
            image[lo:hi] = stack.filtered(lo, hi, sigma, (shrink * profiles[depth, side],),
                                          diagonal=False)[0][0]
    profile = profiles[depth, side]
    return Refined(image.reshape(shape).to(pilot.dtype), shrink, (depth, side), risks,
                   profile.reshape(depth, side, side) if frequencies else None)


def _unmirrored(n: int, extent: int) -> torch.Tensor:
    """Which of ``n`` indices along an axis padded by reflection for windows of ``extent`` share
    no window with their own mirror image: all but ``1 .. (extent - 1) // 2`` from either end
    (the edge itself is not mirrored)."""
    index = torch.arange(n)
    near = torch.minimum(index, n - 1 - index)
    return (near == 0) | (near > (extent - 1) // 2)


def _runs(indices: Sequence[int], longest: int) -> list[tuple[int, int]]:
    """Sorted plane indices as ``[lo, hi)`` runs of neighbours, each at most ``longest``."""
    runs: list[tuple[int, int]] = []
    for index in sorted(indices):
        if runs and runs[-1][1] == index and index - runs[-1][0] < longest:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


class _Stack:
    """A stack's ``depth x size x size`` windows in the DCT: the noisy stack and the pilot,
    padded by reflection so that every voxel is seen by as many windows."""

    def __init__(self, noisy: torch.Tensor, pilot: torch.Tensor, depth: int, size: int) -> None:
        self.depth, self.size, self.shape = depth, size, noisy.shape
        basis = dct_matrix(depth) if depth > 1 else torch.ones(1, 1)
        square = dct_matrix(size)
        # the DCT of a flattened window (depth-major) is one product with the Kronecker basis;
        # the Jacobian's diagonal of a window's filter sums the weights against its square
        self.transform = torch.kron(basis, torch.kron(square, square)).T
        self.squared = self.transform ** 2
        self.box = torch.ones(1, 1, size, size)
        pad = (size - 1,) * 4 + (depth - 1,) * 2
        self.noisy = F.pad(noisy[None, None], pad, mode="reflect")[0, 0]
        self.pilot = F.pad(pilot[None, None], pad, mode="reflect")[0, 0]

    def _windows(self, stack: torch.Tensor, first: int, top: int, bottom: int) -> torch.Tensor:
        """The windows starting on padded plane ``first`` whose rows lie in ``[top, bottom)``:
        ``(windows, depth * size^2)``."""
        slab = stack[first:first + self.depth, top:bottom]
        tiles = slab.unfold(1, self.size, 1).unfold(2, self.size, 1)  # (depth, r, c, k, k)
        return tiles.permute(1, 2, 0, 3, 4).reshape(-1, self.transform.shape[0])

    def _strips(self, lo: int, hi: int, every: int = 1
                ) -> Iterator[tuple[int, int, int, torch.Tensor, torch.Tensor]]:
        """The windows that touch planes ``[lo, hi)``, a strip of rows at a time: ``(first,
        top, bottom, coefficients, energy)``, the windows' first padded plane and rows, the noisy
        stack's DCT coefficients and the pilot's energies ``(windows, depth * size^2)``;
        ``every``: only every so many windows of a strip."""
        rows = self.noisy.shape[1] - self.size + 1
        for first in range(lo, hi + self.depth - 1):
            for top in range(0, rows, _STRIP_ROWS):
                bottom = min(top + _STRIP_ROWS, rows) + self.size - 1  # the strip's last row + 1
                noisy, pilot = (self._windows(stack, first, top, bottom)[::every]
                                for stack in (self.noisy, self.pilot))
                yield first, top, bottom, noisy @ self.transform, (pilot @ self.transform) ** 2

    def profile(self, runs: Sequence[tuple[int, int]], sigma: float,
                grid: Sequence[float] = PROFILE_SHRINKS) -> torch.Tensor:
        """Each DCT frequency's shrink from ``grid``: the one with the least Stein risk of that
        coefficient, summed over every :data:`PROFILE_EVERY`-th window touching the planes of
        ``runs``, each coefficient its own estimate. For an orthonormal transform,
        ``E|w Y - X|^2 = E[(1 - w)^2 Y^2] - 2 (1 - w) sigma^2 + sigma^2``, and ``1 - w`` is
        ``a sigma^2 / (P^2 + a sigma^2)``."""
        risks = torch.zeros(len(grid), self.transform.shape[1], dtype=torch.float64)
        for lo, hi in runs:
            for *_, coefficients, energy in self._strips(lo, hi, PROFILE_EVERY):
                squared = coefficients ** 2
                for risk, shrink in zip(risks, grid):
                    kept_out = shrink * sigma ** 2 / (energy + shrink * sigma ** 2)  # 1 - w
                    risk += (kept_out * (kept_out * squared - 2 * sigma ** 2)).sum(0)
        return torch.tensor(grid, dtype=torch.float32)[risks.argmin(0)]

    def filtered(self, lo: int, hi: int, sigma: float,
                 shrinks: Sequence[float | torch.Tensor], diagonal: bool = True
                 ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Planes ``[lo, hi)`` filtered with each shrink (a number, or one per DCT frequency),
        and (``diagonal``) each filter's derivative of every voxel by the same noisy voxel at
        the same place (the pilot held fixed; the Jacobian's diagonal, but for the mirrored
        voxels of :func:`_unmirrored`)."""
        k, depth = self.size, self.depth
        spans = hi - lo + 2 * (depth - 1)  # the padded planes the windows of [lo, hi) touch
        accumulators = torch.zeros(len(shrinks), 3, spans, *self.noisy.shape[1:])
        for first, top, bottom, coefficients, energy in self._strips(lo, hi):
            strip = (bottom - top, self.noisy.shape[2])
            for accumulator, shrink in zip(accumulators, shrinks):
                weights = energy / (energy + shrink * sigma ** 2)
                window_weight = 1 / (weights ** 2).sum(1).clamp_min(1e-12)
                # (voxels, windows), the layout fold takes: each window's estimate, and
                # the derivative of each of its voxels by the same noisy voxel
                parts = [(self.transform @ (weights * coefficients).T, accumulator[0])]
                if diagonal:
                    parts.append((self.squared @ weights.T, accumulator[2]))
                planes = slice(first - lo, first - lo + depth)
                for values, target in parts:
                    target[planes, top:bottom] += F.fold(
                        (values * window_weight).reshape(depth, k * k, -1), strip, k)[:, 0]
                # every voxel's share of the window weights: their map summed over a window
                weight_map = window_weight.reshape(1, 1, bottom - top - k + 1, -1)
                accumulator[1, planes, top:bottom] += F.conv_transpose2d(weight_map,
                                                                         self.box)[0, 0]
        inner = (slice(depth - 1, depth - 1 + hi - lo), slice(k - 1, k - 1 + self.shape[1]),
                 slice(k - 1, k - 1 + self.shape[2]))
        return [(numerator[inner] / denominator[inner],
                 own[inner] / denominator[inner] if diagonal else None)
                for numerator, denominator, own in accumulators]
