"""Forward operators with exact adjoints (installed as ``medip.operators``; pure torch, no I/O).

Every operator maps ``(batch, channel, *spatial)`` tensors (2 or 3 spatial dims), has an adjoint
``A.H`` that passes the dot-product test, a cheap direct reconstruction ``A.pinv(y)``, and
composes with ``@`` and scalars.
"""

from .base import Diagonal, Identity, LinearOperator
from .coils import (CoilMaps, acs_lines, compression, espirit, espirit_is_determined,
                    estimate_sensitivities, mix_coils, simulated_sensitivities, whitening)
from .downsample import KERNELS, Downsample
from .fourier import (Fourier, centered_fft, centered_ifft, channels_to_complex,
                      complex_to_channels, root_sum_of_squares)
from .mask import Mask
from .nufft import NUFFT, pipe_menon_dcf
from .noise import PhotonCounts, estimate_sigma, estimate_sigma_1d, gaussian, poisson
from .sampling import (SamplingMask, cartesian_mask, radial_mask, random_pixel_mask, scribble_mask,
                    text_mask, variable_density_mask)
from .radon import FILTERS, Radon
from .ramp import DetectorFilter
from .spectral import SpatialFilter, frequency_radius
from .trajectories import golden_angle_radial, keep_shots, variable_density_spiral

__all__ = [
    "LinearOperator", "Identity", "Diagonal", "Mask", "Downsample", "KERNELS", "Radon", "FILTERS",
    "DetectorFilter", "SpatialFilter", "frequency_radius", "Fourier",
    "centered_fft", "centered_ifft", "complex_to_channels", "channels_to_complex",
    "root_sum_of_squares", "CoilMaps", "acs_lines", "estimate_sensitivities", "SamplingMask",
    "cartesian_mask", "variable_density_mask", "radial_mask", "random_pixel_mask",
    "scribble_mask", "text_mask", "PhotonCounts", "gaussian", "poisson", "estimate_sigma",
    "estimate_sigma_1d", "NUFFT", "pipe_menon_dcf", "espirit", "espirit_is_determined", "simulated_sensitivities",
    "whitening", "compression", "mix_coils", "golden_angle_radial", "variable_density_spiral",
    "keep_shots",
]
