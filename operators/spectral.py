"""Filtering by a real, even frequency response over the last axes (:class:`FrequencyFilter`).

:class:`SpatialFilter` is the weight of a denoising fit's residual
(:func:`medip.engine.losses.detail_weight`): it multiplies each spatial frequency of the residual
by a response, so that a fit learns the frequencies it weighs up sooner. The sinogram's
:class:`~medip.operators.ramp.DetectorFilter` (FBP's filters, CT's preconditioner) is the same
filter along the detectors, zero-padded against wrap-around.
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


class FrequencyFilter(LinearOperator):
    """Filtering of the last ``response.ndim`` axes of inputs of ``shape``: zero-padded to
    ``response.shape`` (so that a longer response filters without wrap-around), multiplied by
    the real, even ``response`` over the FFT bins, cropped back. Self-adjoint: cropping is the
    transpose of zero-padding, and a circular convolution with a real, even kernel is symmetric.

    The response is copied to each device and dtype once, not per call. Real inputs take the
    full complex FFT: the real FFT over half the spectrum was no faster at the sizes fits run
    (``python -m benchmarks.operators filters``, benchmarks/results/2026-12-04-vm-filters.md)."""

    def __init__(self, shape: Sequence[int], response: torch.Tensor) -> None:
        shape = tuple(int(n) for n in shape)
        sizes = tuple(response.shape)
        if len(shape) < len(sizes) or any(n > m for n, m in zip(shape[-len(sizes):], sizes)):
            raise ValueError(f"{type(self).__name__}: a response of {sizes} bins cannot filter "
                             f"inputs of {shape}")
        super().__init__(shape, shape)
        self.response = response
        self._copies: dict[tuple, torch.Tensor] = {}

    def _response_for(self, y: torch.Tensor) -> torch.Tensor:
        key = (y.device, real_dtype(y))
        if key not in self._copies:
            self._copies[key] = self.response.to(device=y.device, dtype=real_dtype(y))
        return self._copies[key]

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        sizes = tuple(self.response.shape)
        dims = tuple(range(-len(sizes), 0))
        # one axis: fft, which rounds unlike fftn there (stored CT figures came from fft)
        spectrum = torch.fft.fft(y, n=sizes[0], dim=-1) if len(sizes) == 1 \
            else torch.fft.fftn(y, s=sizes, dim=dims)
        filtered = torch.fft.ifftn(spectrum * self._response_for(y), dim=dims)
        filtered = filtered[(..., *(slice(0, n) for n in y.shape[-len(sizes):]))]
        return filtered if y.is_complex() else filtered.real

    adjoint = forward


class SpatialFilter(FrequencyFilter):
    """``W y = IFFT(r * FFT(y))`` over the last ``response.ndim`` axes, ``r`` real and
    non-negative (FFT bin order) and a function of the frequency's radius (so even: see
    :class:`FrequencyFilter`). Self-adjoint."""

    def __init__(self, response: torch.Tensor) -> None:
        if response.is_complex() or not bool(torch.isfinite(response).all()) \
                or bool((response < 0).any()):
            raise ValueError("SpatialFilter: the response must be real, finite and non-negative")
        super().__init__(tuple(response.shape), response)
