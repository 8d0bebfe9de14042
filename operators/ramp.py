"""The ramp filter of filtered back-projection, and filtering along a sinogram's detectors.

The ramp filter is what makes back-projection an inverse (``A^T R A`` is the identity for the
continuous parallel-beam Radon transform), so its square root is the natural data-space
preconditioner of a fit through :class:`~medip.operators.Radon`: the weighted residual
``|R^(1/2) (A x - y)|^2`` has the normal operator ``A^T R A``, close to a multiple of the
identity, where the plain residual's ``A^T A`` damps each spatial frequency by ``1 / |w|`` and
leaves the fine detail to be learnt last (:meth:`Radon.preconditioner`).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .spectral import FrequencyFilter


def padded_size(n_detectors: int) -> int:
    """The FFT length that filters ``n_detectors`` samples without wrap-around (at least twice
    their count, a power of two)."""
    return max(64, 2 ** int(math.ceil(math.log2(2 * n_detectors))))


def ramp_response(size: int) -> torch.Tensor:
    """The frequency response (float64, ``size`` FFT bins) of the discrete ramp filter: the
    DFT of Kak and Slaney's spatial kernel (1/4 at 0, ``-1 / (pi k)^2`` at odd ``k``), which,
    unlike a sampled ``|w|``, keeps the right mean value of each filtered projection."""
    k = torch.arange(size, dtype=torch.float64)
    k = torch.where(k > size // 2, k - size, k)
    kernel = torch.where(k == 0, torch.full_like(k, 0.25),
                         torch.where(k % 2 == 1, -1 / (math.pi * k) ** 2, torch.zeros_like(k)))
    return torch.fft.fft(kernel).real


class DetectorFilter(FrequencyFilter):
    """Filtering along the last axis (a sinogram's detectors) by a real, even frequency
    ``response`` over :func:`padded_size` bins, zero-padded so that nothing wraps around.
    Self-adjoint (:class:`~medip.operators.spectral.FrequencyFilter`)."""

    def __init__(self, shape: Sequence[int], response: torch.Tensor) -> None:
        if len(response) != padded_size(int(shape[-1])):
            raise ValueError(f"DetectorFilter: the response has {len(response)} bins; "
                             f"{shape[-1]} detectors need {padded_size(int(shape[-1]))}")
        super().__init__(shape, response)

    @classmethod
    def sqrt_ramp(cls, shape: Sequence[int]) -> DetectorFilter:
        """The square root of the ramp filter for sinograms of ``shape`` (``(..., detectors)``),
        scaled so that its response has a mean square of one over the bins (white noise keeps
        about its power, so a weighted loss stays near the plain loss's magnitude)."""
        response = ramp_response(padded_size(int(shape[-1]))).clamp(min=0).sqrt()
        response = response / response.square().mean().sqrt()
        return cls(shape, response.float())
