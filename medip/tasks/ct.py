"""CT: Hounsfield units to linear attenuation and back, and the CT reconstruction task."""

from __future__ import annotations

import numpy as np
import torch

from ..engine.fitting import robust_scale
from ..errors import InputError
from ..io.sinogram import Sinogram
from ..io.volume import Volume
from ..operators import Radon, estimate_sigma_1d
from .base import Problem, Region, Task, cut
from .specs import SPECS

#: Linear attenuation of water in 1/mm at 70 keV, the effective energy of a 120 kVp spectrum
#: (NIST XCOM: mu/rho = 0.1929 cm^2/g at 70 keV, density 1 g/cm^3).
MU_WATER_70KEV = 0.01929


def hu_to_mu(hu: torch.Tensor, mu_water: float = MU_WATER_70KEV, air_hu: float = -1000.0
             ) -> torch.Tensor:
    """Hounsfield units -> attenuation in 1/mm: ``mu_water (1 + HU / 1000)``.

    Values below ``air_hu`` (e.g. the -3000 HU padding outside a scanner's field of view) are
    clipped to air, because negative attenuation does not exist.
    """
    return mu_water * (1 + hu.clamp(min=air_hu) / 1000)


def mu_to_hu(mu: torch.Tensor, mu_water: float = MU_WATER_70KEV) -> torch.Tensor:
    """Attenuation in 1/mm -> Hounsfield units: ``1000 (mu / mu_water - 1)``."""
    return 1000 * (mu / mu_water - 1)


class CT(Task):
    """CT reconstruction from a stack of sinograms: ``A`` is :class:`~medip.operators.Radon`
    of the measured geometry, the fit is in attenuation (1/mm) and the result in HU.

    The array order is ``(slices, rows, columns)`` (``(k, j, i)`` of the output volume). With a
    ``like`` volume (the scan a sinogram was simulated from) the result takes its geometry and
    DICOM identity; otherwise the pixel size from the geometry and a slice spacing of the same.
    """

    spec = SPECS["ct"]

    def __init__(self, sinogram: Sinogram, like: Volume | None = None) -> None:
        self.sinogram, self.like = sinogram, like
        self.A = Radon.from_geometry(sinogram.geometry)
        if like is not None and (like.shape[2], like.shape[1], like.shape[0]) != (
                len(sinogram.data), *self.A.image_shape):
            raise InputError(f"{like.source}: a volume of {like.shape} cannot hold "
                             f"{len(sinogram.data)} slices of {tuple(self.A.image_shape)}")
        # the noise floor the fit's stop waits for (fit(noise_level=)): the log sinogram's noise
        self.sigma = estimate_sigma_1d(torch.from_numpy(sinogram.data))
        fbp = self.A.pinv(torch.from_numpy(sinogram.data)[:, None])[:, 0]
        self._fbp_mu = fbp
        self.measured = self._volume(mu_to_hu(fbp).numpy(), units="HU")

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.sinogram.data), *self.A.image_shape)

    def scale(self) -> float:
        return robust_scale(self._fbp_mu)

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        y = cut(self.sinogram.data, region[:1] + (slice(None), slice(None)), plane_axis)
        image_shape = tuple(self.A.image_shape) if plane_axis is not None else (
            y.shape[2], *self.A.image_shape)
        return Problem(self.A, y, image_shape, to_image=_mu_to_hu_first,
                       to_variance=_mu_to_hu_variance, sigma=self.sigma)

    def _volume(self, array: np.ndarray, units: str) -> Volume:
        array = np.ascontiguousarray(array.transpose(2, 1, 0))
        if self.like is not None:
            return self.like.with_array(array, modality="CT", units=units)
        pixel = float(self.sinogram.geometry.get("pixel_size", 1.0))
        return Volume(array, np.diag([pixel, pixel, pixel, 1.0]), modality="CT", units=units,
                      source=self.sinogram.source)

    def to_volumes(self, image: np.ndarray, variance: np.ndarray) -> tuple[Volume, Volume]:
        return self._volume(image, "HU"), self._volume(variance, "HU^2")

    def fit_reference(self, volume: Volume) -> torch.Tensor:
        return hu_to_mu(torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0))))


def _mu_to_hu_first(image: torch.Tensor) -> torch.Tensor:
    return mu_to_hu(image[0])


def _mu_to_hu_variance(variance: torch.Tensor) -> torch.Tensor:
    return variance[0] * (1000 / MU_WATER_70KEV) ** 2
