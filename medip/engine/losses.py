"""Data terms ``E(A x, y)`` and regularisers, as objects a task hands to :func:`medip.fit`.

A loss is bound once per fit to the data's normalisation ``scale`` (physical units per network
unit) and device, and is then called with the normalised prediction ``A x / scale`` and the
normalised measurement ``y / scale``. The engine never knows which modality a loss belongs to.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputError
from ..operators.noise import PhotonCounts

BoundLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Loss:
    """A data term. ``exact_ok``: it may be used with ``noise_free=True``; ``residual_ok``: with
    ``residual=True`` (the fit then sees ``y - A pinv(y)``)."""

    name = "loss"
    exact_ok = True
    residual_ok = True

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MSE(Loss):
    """Mean squared error (Gaussian noise); complex data by their modulus."""

    name = "mse"

    def bind(self, scale: float, device: torch.device) -> BoundLoss:
        return lambda pred, y: (pred - y).abs().square().mean()


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
    line integrals in the units the counts were measured in (``Radon(pixel_size=...)``)."""

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
