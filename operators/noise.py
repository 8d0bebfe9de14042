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

