"""Filtering over the spatial axes by a real, non-negative frequency response (periodic).

:class:`SpatialFilter` is the weight of a denoising fit's residual
(:func:`medip.engine.losses.detail_weight`): it multiplies each spatial frequency of the residual
by a response, so that a fit learns the frequencies it weighs up sooner.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .base import LinearOperator, real_dtype


def frequency_radius(shape: Sequence[int]) -> torch.Tensor:
    """The radius of each FFT bin of a grid of ``shape`` in cycles per sample (float64, 0.5 at
    the Nyquist frequency of each axis, up to ``0.5 * sqrt(len(shape))`` in the corners)."""
    grids = torch.meshgrid(*(torch.fft.fftfreq(int(n), dtype=torch.float64) for n in shape),
                           indexing="ij")
    return torch.sqrt(sum(g.square() for g in grids))


class SpatialFilter(LinearOperator):
    """``W y = IFFT(r * FFT(y))`` over the last ``response.ndim`` axes, ``r`` real and
    non-negative (FFT bin order). Self-adjoint: a circular convolution with a real, even kernel
    is symmetric (an ``r`` that depends on the frequency's radius only is even)."""

    def __init__(self, response: torch.Tensor) -> None:
        if response.is_complex() or not bool(torch.isfinite(response).all()) \
                or bool((response < 0).any()):
            raise ValueError("SpatialFilter: the response must be real, finite and non-negative")
        super().__init__(tuple(response.shape), tuple(response.shape))
        self.response = response

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(-self.response.ndim, 0))
        response = self.response.to(device=y.device, dtype=real_dtype(y))
        filtered = torch.fft.ifftn(torch.fft.fftn(y, dim=dims) * response, dim=dims)
        return filtered if y.is_complex() else filtered.real

    adjoint = forward
