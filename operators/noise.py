"""Measurement noise models shared by every modality, deterministic with a seed."""

from __future__ import annotations

from typing import NamedTuple

import torch


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


def gaussian(y: torch.Tensor, sigma: float, seed: int | None = 0) -> torch.Tensor:
    """``y + sigma * n`` with standard normal ``n`` (complex ``y``: each part gets ``sigma / sqrt 2``)."""
    if sigma < 0:
        raise ValueError(f"gaussian: sigma must be >= 0, got {sigma}")
    noise = torch.randn(y.shape, generator=_generator(seed, y.device), device=y.device,
                        dtype=y.dtype)  # complex dtypes draw each part with variance 1/2
    return y + sigma * noise


class PhotonCounts(NamedTuple):
    """A low-dose CT measurement: the log sinogram, the raw ``counts`` and the blank-scan ``photons``."""

    sinogram: torch.Tensor
    counts: torch.Tensor
    photons: float


def poisson(sinogram: torch.Tensor, photons: float, seed: int | None = 0) -> PhotonCounts:
    """Low-dose CT: counts ``~ Poisson(I0 exp(-p))``, logged back as ``p = -log(counts / I0)``.

    Rays with zero counts (photon starvation) are given half a count before the log, the usual
    bias-limited fix, so the sinogram stays finite. The counts and ``I0`` are returned too: they are
    what the Poisson likelihood (``medip.engine.losses.TransmissionPoisson``) needs.
    """
    if not photons > 0:
        raise ValueError(f"poisson: photons (I0) must be > 0, got {photons}")
    if sinogram.is_complex() or not bool(torch.isfinite(sinogram).all()):
        raise ValueError("poisson: the sinogram must be real and finite")
    expected = photons * torch.exp(-sinogram.double())
    counts = torch.poisson(expected, generator=_generator(seed, sinogram.device))
    logged = -torch.log(counts.clamp(min=0.5) / photons)
    return PhotonCounts(logged.to(sinogram.dtype), counts.to(sinogram.dtype), float(photons))


# Donoho's MAD rule: the median absolute value of noise-only wavelet coefficients over this is
# their standard deviation (the 0.75 quantile of the standard normal).
_MAD_TO_STD = 0.6744897501960817


def estimate_sigma(image: torch.Tensor, known: torch.Tensor | None = None) -> float:
    """The std of white Gaussian noise in ``image`` (``(..., H, W)``, 2D planes or a stack),
    by Donoho's rule: the median absolute finest-scale diagonal Haar coefficient over 0.6745.

    The diagonal detail of a 2x2 block, ``(a - b - c + d) / 2``, has the noise's std and almost
    none of a smooth image's signal, and the median ignores the edges that do carry signal
    (scikit-image's ``estimate_sigma`` applies the same rule to Daubechies-2 coefficients). Every
    block counts, overlapping ones too, which steadies the median where few blocks are known.
    ``known``: a boolean map of the measured pixels (inpainting); only blocks
    whose four pixels are all known count. Complex images: the root of ``E|n|^2`` (both parts'
    noise), the convention of ``gaussian`` and of the noise levels medip's tasks carry.
    """
    if image.ndim < 2 or min(image.shape[-2:]) < 2:
        raise ValueError(f"estimate_sigma: needs planes of at least 2x2, got {tuple(image.shape)}")
    parts = torch.view_as_real(image).movedim(-1, 0) if image.is_complex() else image[None]
    x = parts.double()
    detail = (x[..., :-1, :-1] - x[..., :-1, 1:] - x[..., 1:, :-1] + x[..., 1:, 1:]) / 2
    if known is not None:
        k = torch.broadcast_to(known.bool(), image.shape)
        whole = k[..., :-1, :-1] & k[..., :-1, 1:] & k[..., 1:, :-1] & k[..., 1:, 1:]
        detail = detail[torch.broadcast_to(whole, detail.shape)]
        if detail.numel() == 0:
            raise ValueError("estimate_sigma: no 2x2 block of known pixels")
    parts_per_sample = 2 if image.is_complex() else 1
    return float(detail.abs().flatten().median()) / _MAD_TO_STD * parts_per_sample ** 0.5


def estimate_sigma_1d(data: torch.Tensor, dim: int = -1) -> float:
    """The std of white Gaussian noise in data that are smooth along ``dim`` (a sinogram along
    its detector axis, whose neighbouring angles may be far apart), by the MAD rule on the
    normalised second difference ``(a - 2 b + c) / sqrt 6``, which has the noise's std and
    cancels any locally linear signal. It reads high where the signal curves sharply from one
    sample to the next (+3 to +64 % on 45-view sinograms of 128^2 slices at 2 % to 0.5 % noise,
    benchmarks/results/2026-12-02-vm-stopbed.md)."""
    x = data.double().movedim(dim, -1)
    if x.shape[-1] < 3:
        raise ValueError(f"estimate_sigma_1d: needs at least 3 samples along dim {dim}, got "
                         f"{tuple(data.shape)}")
    second = (x[..., :-2] - 2 * x[..., 1:-1] + x[..., 2:]) / 6 ** 0.5
    return float(second.abs().flatten().median()) / _MAD_TO_STD
