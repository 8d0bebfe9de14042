"""CT physics: Hounsfield units to linear attenuation and back."""

from __future__ import annotations

import torch

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
