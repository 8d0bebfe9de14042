"""Image quality metrics: PSNR with an explicit data range, SSIM in 2D and 3D.

SSIM follows scikit-image's default (uniform 7-pixel window, sample covariance, valid region), the
convention papers report; MONAI's ``compute_ssim_and_cs`` drops the sample-covariance factor and
computes in float32, which moves SSIM by a few thousandths, so it is not used here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _as_batch(x: torch.Tensor) -> torch.Tensor:
    """Accept ``(H, W)``, ``(D, H, W)`` or ``(B, C, *spatial)`` real tensors."""
    if x.is_complex():
        raise TypeError("metrics compare real images; take .abs() of complex ones first")
    return x[None, None] if x.ndim in (2, 3) else x


def data_range_of(reference: torch.Tensor) -> float:
    return float(reference.max() - reference.min())


def psnr(x: torch.Tensor, reference: torch.Tensor, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB; ``data_range`` defaults to the reference's max - min."""
    x, reference = _as_batch(x).double(), _as_batch(reference).double()
    if x.shape != reference.shape:
        raise ValueError(f"psnr: shapes differ: {tuple(x.shape)} vs {tuple(reference.shape)}")
    data_range = data_range if data_range is not None else data_range_of(reference)
    mse = float(((x - reference) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def _slices(t: torch.Tensor, axis: int) -> torch.Tensor:
    """``(B, C, ...)`` volumes -> a batch of 2D slices along ``axis``: ``(B * n, C, a, b)``."""
    moved = t.movedim(axis, 1)
    return moved.reshape(-1, *moved.shape[2:])


def ssim(x: torch.Tensor, reference: torch.Tensor, data_range: float | None = None,
         win_size: int = 7) -> float:
    """Mean structural similarity over the valid region (scikit-image's default convention).

    A volume thinner than the window along one axis is scored slice by slice along that axis
    (the mean of the 2D SSIMs).
    """
    x, reference = _as_batch(x).double(), _as_batch(reference).double()
    if x.shape != reference.shape:
        raise ValueError(f"ssim: shapes differ: {tuple(x.shape)} vs {tuple(reference.shape)}")
    data_range = data_range if data_range is not None else data_range_of(reference)
    spatial = x.shape[2:]
    thin = [axis for axis, n in enumerate(spatial) if n < win_size]
    if len(spatial) == 3 and len(thin) == 1:
        return ssim(_slices(x, 2 + thin[0]), _slices(reference, 2 + thin[0]), data_range,
                    win_size)
    if thin:
        raise ValueError(f"ssim: images of {tuple(spatial)} are smaller than the {win_size}-sample "
                         f"window; use a smaller win_size")
    pool = F.avg_pool2d if x.ndim == 4 else F.avg_pool3d
    mean = lambda t: pool(t, win_size, stride=1)  # noqa: E731 - local window mean
    cov_norm = win_size ** (x.ndim - 2) / (win_size ** (x.ndim - 2) - 1)
    mx, my = mean(x), mean(reference)
    vx = cov_norm * (mean(x * x) - mx * mx)
    vy = cov_norm * (mean(reference * reference) - my * my)
    vxy = cov_norm * (mean(x * reference) - mx * my)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(ssim_map.mean())
