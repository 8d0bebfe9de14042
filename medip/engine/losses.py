"""Data terms ``E(A x, y)`` and regularisers, as objects a task hands to :func:`medip.fit`.

A loss is bound once per fit to the data's normalisation ``scale`` (physical units per network
unit) and device, and is then called with the normalised prediction ``A x / scale`` and the
normalised measurement ``y / scale``. The engine never knows which modality a loss belongs to.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import InputError
from ..operators import LinearOperator, SpatialFilter, frequency_radius
from ..operators.noise import PhotonCounts
from .stopping import noise_floor

BoundLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Loss:
    """A data term. ``exact_ok``: it may be used with ``noise_free=True``; ``residual_ok``: with
    ``residual=True`` (the fit then sees ``y - A pinv(y)``)."""

    name = "loss"
    exact_ok = True
    residual_ok = True

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        raise NotImplementedError

    def floor(self, y: torch.Tensor, sigma: float | None, scale: float) -> float | None:
        """The loss (bound to ``scale``) that the noise alone leaves against the true image, or
        None where it is unknown: the stoppers take no variance minimum before the fit's loss
        has fallen to it (:class:`~medip.engine.stopping.LossWatch`). ``sigma``: the noise
        level where the caller knows it (the root of ``E|n|^2`` per measured sample)."""
        if sigma is not None:
            raise InputError(f"noise_level sets a noise floor for the mse loss; the {self.name} "
                             f"loss has no use for it: leave noise_level out")
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Mean squared error (Gaussian noise); complex data by their modulus. With ``weight`` (an
    operator on the measurements, e.g. an operator's
    :meth:`~medip.operators.LinearOperator.preconditioner`) the mean square of the weighted
    residual ``W (A x - y)``."""

    name = "mse"

    def __init__(self, weight: LinearOperator | None = None) -> None:
        self.weight = weight

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        weight = self.weight
        if weight is None:
            return lambda pred, y: (pred - y).abs().square().mean()
        return lambda pred, y: weight.forward(pred - y).abs().square().mean()

    def floor(self, y: torch.Tensor, sigma: float | None, scale: float) -> float | None:
        """``sigma^2`` over the measured fraction of ``y`` (:func:`noise_floor`), normalised;
        with a weight, times the power that the weight leaves of white noise on the measured
        samples (:func:`weighted_noise_power`)."""
        if sigma is None:
            return None
        if self.weight is None:
            return noise_floor(y, sigma) / scale ** 2
        return sigma ** 2 * weighted_noise_power(self.weight, y) / scale ** 2

    def __repr__(self) -> str:
        return "MSE()" if self.weight is None else f"MSE(weight={self.weight.name})"


def weighted_noise_power(weight: LinearOperator, y: torch.Tensor, probes: int = 4,
                         seed: int = 0) -> float:
    """``E mean|W n|^2`` for unit white noise ``n`` on the measured (nonzero) samples of ``y``:
    the mean of ``probes`` seeded draws (for a sinogram of 8000 samples about 1 % apart)."""
    generator = torch.Generator().manual_seed(seed)
    measured = (y != 0).cpu()
    powers = [float(weight.forward((torch.randn(y.shape, dtype=y.dtype, generator=generator)
                                    * measured).to(y.device)).abs().square().mean())
              for _ in range(probes)]
    return sum(powers) / probes


def preconditioned(loss: Loss, A: LinearOperator) -> Loss:
    """The plain mse ``loss`` weighted by ``A``'s preconditioner where ``A`` offers one
    (:meth:`~medip.operators.LinearOperator.preconditioner`); any other loss as it is (a
    likelihood, or an mse that already carries its weight, keeps its own)."""
    if type(loss) is not MSE or loss.weight is not None:
        return loss
    weight = A.preconditioner()
    return loss if weight is None else MSE(weight)


def detail_weight(y: torch.Tensor, sigma: float, strength: float) -> SpatialFilter:
    """The weight of a denoising fit's residual that speeds up the learning of fine detail
    where the measurement ``y`` ``(batch, channel, *spatial)`` holds any above its noise.

    A DIP learns coarse structure long before fine detail (its spectral bias): at low noise a
    plain fit was still gaining at its last step. Weighing the residual's frequency ``k`` by
    ``1 + strength * (|k| / k_Nyquist) * g(k)`` (in power) lets detail in sooner, where ``g`` is
    the Wiener gain ``max(1 - sigma^2 / P(k), 0)`` of ``y``'s radially averaged power spectrum
    ``P`` (made non-increasing with ``|k|``, as the spectra of scans are, so that bins where
    noise scatters high do not count): frequencies that hold only noise keep weight one, so at
    high noise the fit is near the plain one. Normalised to a mean power of one, so white noise
    keeps its power and the loss its magnitude. ``sigma``: the noise level per sample."""
    spatial = tuple(y.shape[2:])
    dims = tuple(range(2, y.ndim))
    data = y.detach().cpu()
    data = data.to(torch.complex128 if data.is_complex() else torch.float64)
    power = torch.fft.fftn(data, dim=dims).abs().square().mean(dim=(0, 1)) / math.prod(spatial)
    radius = frequency_radius(spatial)
    bins = (radius * max(spatial)).round().long().flatten()
    profile = torch.bincount(bins, weights=power.flatten()) / torch.bincount(bins).clamp(min=1)
    profile = torch.cummin(profile, 0).values[bins].reshape(spatial)
    gain = torch.where(profile > 0, 1 - sigma ** 2 / profile.clamp(min=1e-300),
                       torch.zeros_like(profile)).clamp(min=0)
    response = 1 + strength * (radius / 0.5) * gain
    return SpatialFilter((response / response.mean()).sqrt().float())


class L1(Loss):
    """Mean absolute error (impulsive noise, outliers)."""

    name = "l1"

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        return lambda pred, y: (pred - y).abs().mean()


def poisson_nll(line_integrals: torch.Tensor, counts: torch.Tensor, photons: float
                ) -> torch.Tensor:
    """Mean Poisson negative log-likelihood of ``counts`` given predicted line integrals (up to a
    constant): ``sum(I0 exp(-p) + counts * p) / n``, the transmission model's likelihood in ``p``."""
    return (photons * torch.exp(-line_integrals) + counts * line_integrals).mean()


class TransmissionPoisson(Loss):
    """Low-dose transmission CT: the Poisson likelihood of the detected ``counts`` given line
    integrals, with ``photons`` (I0) per ray in the blank scan. The prediction is mapped back to
    physical line integrals (``scale * A x``) before the likelihood, so the operator must give
    line integrals in the units the counts were measured in (``Radon(pixel_size=...)``).

    Each ray weighs by its detected counts, hundreds of times apart across a body, so a DIP fit
    from a cold start learns the body's interior very slowly: on held-out chest slices it stayed
    below filtered back-projection after 1500 steps, where the post-log mse fit with the noise
    level of ``estimate_sigma_1d`` (what the CT task runs) beat TV
    (``benchmarks/results/2026-12-03-vm-poisson.md``). The post-log fit is the recipe."""

    name = "poisson"
    exact_ok = False
    residual_ok = False

    def __init__(self, counts: torch.Tensor, photons: float) -> None:
        if not photons > 0:
            raise InputError(f"TransmissionPoisson: photons (I0) must be > 0, got {photons}")
        self.counts, self.photons = counts, float(photons)

    @classmethod
    def of(cls, measurement: PhotonCounts) -> TransmissionPoisson:
        """The likelihood of a simulated or measured :class:`~medip.operators.PhotonCounts`."""
        return cls(measurement.counts, measurement.photons)

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        counts, photons = self.counts.to(device), self.photons  # moved once, not every step
        return lambda pred, y: poisson_nll(pred * scale, counts, photons) / photons

    def floor(self, y: torch.Tensor, sigma: float | None, scale: float) -> float | None:
        """The likelihood's own noise floor: the loss of the saturated model (each ray's line
        integral ``-log(counts / I0)``) plus half a unit of deviance per detected ray, the
        expected ``(loss(truth) - loss(saturated)) * I0`` for Poisson counts (the deviance of
        a Poisson count is about chi-squared with one degree of freedom)."""
        super().floor(y, sigma, scale)
        counts = self.counts.double()
        detected = counts > 0
        saturated = -torch.log(counts.clamp(min=1) / self.photons)
        per_ray = torch.where(detected, counts * (1 + saturated) + 0.5, torch.zeros_like(counts))
        return float(per_ray.mean()) / self.photons

    def __repr__(self) -> str:
        return f"TransmissionPoisson(photons={self.photons:g})"


LOSSES: dict[str, type[Loss]] = {"mse": MSE, "l1": L1}


def make_loss(loss: str | Loss) -> Loss:
    """A :class:`Loss` from a name (``"mse"``, ``"l1"``) or the object itself."""
    if isinstance(loss, Loss):
        return loss
    if loss == "poisson":
        raise InputError("the Poisson likelihood needs the photon counts: pass "
                         "loss=TransmissionPoisson.of(counts) and y=counts.sinogram")
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}; choose one of {tuple(LOSSES)} or pass a "
                         f"medip.engine.losses.Loss")
    return LOSSES[loss]()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation: mean absolute difference along each spatial axis."""
    return sum(x.diff(dim=d).abs().mean() for d in range(2, x.ndim))
