"""Coil sensitivity maps estimated from the auto-calibration (ACS) region of measured k-space."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .fourier import centered_ifft, root_sum_of_squares


class CoilMaps(NamedTuple):
    """Sensitivities ``(coils, *shape)`` (zero outside ``support``) and the object ``support``."""

    sensitivities: torch.Tensor
    support: torch.Tensor


def acs_lines(mask: torch.Tensor) -> int:
    """The number of contiguous sampled phase-encode lines (last axis) around the k-space centre."""
    lines = mask.reshape(-1, mask.shape[-1]).any(0)
    centre = lines.numel() // 2
    if not bool(lines[centre]):
        return 0
    left = centre
    while left > 0 and bool(lines[left - 1]):
        left -= 1
    right = centre
    while right < lines.numel() - 1 and bool(lines[right + 1]):
        right += 1
    return right - left + 1


def estimate_sensitivities(kspace: torch.Tensor, calibration_lines: int, threshold: float = 0.05
                           ) -> CoilMaps:
    """Low-resolution ratio method: ``S_c = c_c / sqrt(sum_c |c_c|^2)`` from windowed ACS data.

    ``kspace`` is centred multi-coil k-space ``(coils, *shape)``; only its central
    ``calibration_lines`` phase-encode lines (last axis, all read-out samples) are used, under a
    Hann window so the low-resolution coil images ``c_c`` do not ring. The maps satisfy
    ``sum_c |S_c|^2 = 1`` where the low-resolution root-sum-of-squares exceeds ``threshold`` times
    its maximum (the object ``support``) and are zero elsewhere.
    """
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex():
        raise TypeError("estimate_sensitivities: kspace must be a complex tensor (coils, *shape)")
    if kspace.ndim not in (3, 4):
        raise ValueError(f"estimate_sensitivities: kspace must be (coils, H, W) or (coils, D, H, W), "
                         f"got {tuple(kspace.shape)}")
    n = kspace.shape[-1]
    if not 2 <= calibration_lines <= n:
        raise ValueError(f"estimate_sensitivities: calibration_lines must be in [2, {n}], got "
                         f"{calibration_lines}; the mask's fully sampled centre is too small")
    start = (n - calibration_lines + 1) // 2
    window = torch.zeros(n, dtype=kspace.real.dtype, device=kspace.device)
    window[start:start + calibration_lines] = torch.hann_window(
        calibration_lines + 2, periodic=False, dtype=kspace.real.dtype, device=kspace.device)[1:-1]
    low = centered_ifft(kspace * window, kspace.ndim - 1)
    rss = root_sum_of_squares(low, dim=0)
    support = rss[0] > threshold * rss.max()
    maps = torch.where(support, low / rss.clamp_min(torch.finfo(rss.dtype).tiny), 0)
    return CoilMaps(maps, support)
