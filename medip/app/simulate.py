"""Degraded measurements from clean scans, for studies and demos (``medip simulate``).

Every function is seeded and returns what it made plus a ``how`` dict that the command line
stores beside the output, so a study can say exactly how its inputs were degraded.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import defaults

from ..io import KSpace, Sinogram, Volume
from ..operators import (Downsample, Radon, cartesian_mask, centered_fft, gaussian, poisson,
                         random_pixel_mask, simulated_sensitivities)
from ..tasks import hu_to_mu, normalise_factors, upsampled_affine


def add_noise(volume: Volume, sigma_fraction: float = 25 / 255, seed: int = 0
              ) -> tuple[Volume, dict]:
    """Gaussian noise of ``sigma_fraction`` of the volume's value range."""
    sigma = sigma_fraction * float(np.ptp(volume.array))
    noisy = gaussian(torch.from_numpy(volume.array), sigma, seed=seed).numpy()
    return volume.with_array(noisy), {"kind": "gaussian noise", "sigma": sigma,
                                      "sigma_fraction_of_range": sigma_fraction, "seed": seed}


def drop_voxels(volume: Volume, missing: float = 0.5, seed: int = 0
                ) -> tuple[Volume, Volume, dict]:
    """Zero a random ``missing`` fraction of voxels; returns the masked scan and the mask."""
    known = random_pixel_mask(volume.shape, missing, seed=seed).numpy()
    return (volume.with_array(volume.array * known), volume.with_array(known.astype(np.float32)),
            {"kind": "random voxel mask", "missing": missing, "seed": seed,
             "mask_meaning": "1 = known, 0 = missing"})


def downsample(volume: Volume, factors: int | list[int] = 2, kernel: str = "bicubic"
               ) -> tuple[Volume, dict]:
    """Anti-aliased downsampling by integer ``factors`` per axis, with the coarse grid's affine."""
    factors = normalise_factors(factors, 3)
    A = Downsample(factors, kernel)
    coarse = A(torch.from_numpy(volume.array)[None, None])[0, 0].numpy()
    affine = volume.affine @ np.linalg.inv(upsampled_affine(np.eye(4), factors))
    return volume.with_array(coarse, affine), {"kind": "downsample", "factors": list(factors),
                                               "kernel": kernel}


def simulate_ct(volume: Volume, angles: int = defaults.SIM_ANGLES,
                photons: float | None = defaults.SIM_PHOTONS, seed: int = defaults.SEED
                ) -> Sinogram:
    """Parallel-beam sinograms ``(slices, angles, detectors)`` of a CT volume in HU, as line
    integrals of attenuation (pixel size from the volume), with Poisson noise at ``photons``."""
    if volume.units != "HU" and volume.modality != "CT":
        raise ValueError(f"{volume.source}: CT simulation needs a CT volume in HU (modality "
                         f"{volume.modality!r}); convert it or pass a CT scan")
    spacing = volume.spacing
    if abs(spacing[0] - spacing[1]) > 1e-3 * spacing[0]:
        raise ValueError(f"{volume.source}: in-plane pixels of {spacing[0]:g} x {spacing[1]:g} mm; "
                         f"the CT model needs square pixels: resample first")
    planes = torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))[:, None]
    A = Radon(tuple(planes.shape[2:]), angles, pixel_size=spacing[0])
    sinograms = A(hu_to_mu(planes).clamp(min=0))
    if photons:
        sinograms = poisson(sinograms, photons, seed=seed).sinogram
    geometry = A.geometry_dict()
    geometry["simulation"] = {"photons": photons, "seed": seed, "source_units": "HU"}
    return Sinogram(sinograms[:, 0].numpy(), geometry, volume.source)


def undersample_kspace(kspace: torch.Tensor, acceleration: float = 4, center_fraction: float = 0.08,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Cartesian equispaced undersampling (fastMRI convention) of ``(coils, H, W)`` k-space."""
    sampled = cartesian_mask(tuple(kspace.shape[-2:]), acceleration, center_fraction, seed=seed)
    return kspace * sampled.mask, sampled.mask, {
        "kind": "cartesian undersampling", "acceleration": acceleration,
        "achieved_acceleration": sampled.acceleration, "center_fraction": center_fraction,
        "seed": seed}


def image_kspace(volume: Volume, slice_index: int | None = None) -> torch.Tensor:
    """Single-coil centred k-space ``(1, H, W)`` of one slice of a magnitude image."""
    k = volume.shape[2] // 2 if slice_index is None else slice_index
    plane = torch.from_numpy(np.ascontiguousarray(volume.array[:, :, k].T))
    return centered_fft(plane.to(torch.complex64), 2)[None]


#: The coil-to-coil noise correlation of :func:`simulate_raw_mri` (neighbouring receive loops
#: typically correlate by 0.1 to 0.3), and the length of its noise scan.
NOISE_CORRELATION = 0.2
NOISE_SAMPLES = 4096


def simulate_raw_mri(volume: Volume, coils: int = defaults.SIM_COILS,
                     sigma_fraction: float = defaults.SIM_SIGMA,
                     acceleration: float | None = defaults.SIM_ACCELERATION,
                     center_fraction: float = defaults.CENTER_FRACTION, seed: int = defaults.SEED
                     ) -> tuple[KSpace, dict]:
    """A multi-slice, multi-coil raw acquisition of a magnitude ``volume``: every slice along
    its third axis (readout along the first, phase encoding along the second) seen through
    :func:`~medip.operators.simulated_sensitivities`, with complex noise correlated between
    coils (:data:`NOISE_CORRELATION`) of ``sigma_fraction`` of the value range per coil image,
    a matching noise scan, Cartesian undersampling of the phase encodes when ``acceleration``,
    and the volume's geometry (for :func:`medip.io.mrd.write_ismrmrd`)."""
    gen = torch.Generator().manual_seed(seed)
    image = torch.from_numpy(volume.array).permute(2, 0, 1).to(torch.complex64)  # (S, R, P)
    maps = simulated_sensitivities(tuple(image.shape[1:]), coils)
    sigma = sigma_fraction * float(np.ptp(volume.array))
    covariance = torch.full((coils, coils), NOISE_CORRELATION, dtype=torch.float64)
    covariance.fill_diagonal_(1.0)
    mixing = torch.linalg.cholesky(covariance).to(torch.complex64) * sigma

    def noise(*leading: int, samples: int) -> torch.Tensor:  # (*leading, coils, samples)
        return mixing @ torch.randn(*leading, coils, samples, dtype=torch.complex64,
                                    generator=gen)

    kspace = centered_fft(image[:, None] * maps[None], 2)
    kspace = kspace + noise(len(kspace), samples=kspace[0, 0].numel()).reshape(kspace.shape)
    how = {"kind": "raw multi-coil MRI", "coils": coils, "sigma": sigma,
           "sigma_fraction_of_range": sigma_fraction, "noise_correlation": NOISE_CORRELATION,
           "seed": seed}
    if acceleration:
        sampled = cartesian_mask(tuple(kspace.shape[-2:]), acceleration, center_fraction,
                                 seed=seed)
        kspace = kspace * sampled.mask
        how.update(acceleration=acceleration, achieved_acceleration=sampled.acceleration,
                   center_fraction=center_fraction)
    stack = KSpace(kspace, volume.source, affine=volume.affine[:, [2, 0, 1, 3]],
                   noise=noise(samples=NOISE_SAMPLES), header={"format": "medip simulation", **how})
    return stack, how
