"""``medip simulate``: write a degraded measurement and ``OUTPUT.medip.json`` saying how."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import defaults
from ..errors import InputError
from ..io import atomic_write, load, load_kspace, save, save_sinogram
from ..io.api import check_output_path, derived_path
from ..io.kspace import KSPACE_SUFFIXES
from .provenance import sha256, versions, write_sidecar
from ..io.mrd import write_ismrmrd
from .simulate import (add_noise, downsample, drop_voxels, image_kspace, simulate_ct,
                       simulate_raw_mri, undersample_kspace)

KINDS = defaults.SIMULATIONS
#: ``simulate mri`` to one of these writes an ISMRMRD raw acquisition (multi-coil, every slice,
#: noise scan, geometry); to ``.npy`` it writes one single-coil k-space slice and its mask.
RAW_SUFFIXES = (".h5", ".mrd")


@dataclass(frozen=True)
class SimulateOptions:
    """How to degrade a clean scan (each kind reads its own fields)."""

    seed: int = defaults.SEED
    sigma: float = defaults.SIM_SIGMA
    missing: float = defaults.SIM_MISSING
    factor: list[int] = field(default_factory=lambda: [defaults.FACTOR])
    kernel: str = defaults.KERNEL
    angles: int = defaults.SIM_ANGLES
    photons: float = defaults.SIM_PHOTONS
    acceleration: float = defaults.SIM_ACCELERATION
    center_fraction: float = defaults.CENTER_FRACTION
    coils: int = defaults.SIM_COILS
    overwrite: bool = False


def simulate_to_files(kind: str, source: Path, output: Path, options: SimulateOptions,
                      command_line: list[str]) -> list[Path]:
    """Run one simulation ``kind`` on ``source``; returns the files written."""
    if kind not in KINDS:
        raise InputError(f"unknown simulation {kind!r}; choose one of {KINDS}")
    overwrite, seed = options.overwrite, options.seed
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    written: list[Path] = []
    if kind == "mri" and output.suffix.lower() in RAW_SUFFIXES:  # a raw multi-coil acquisition
        volume = load(source)
        check_output_path(output, volume)
        stack, how = simulate_raw_mri(volume, options.coils, options.sigma,
                                      options.acceleration, options.center_fraction, seed)
        written.append(write_ismrmrd(output, stack, overwrite))
    elif kind == "mri":
        if source.suffix.lower() in KSPACE_SUFFIXES and source.is_file():
            kspace = load_kspace(source)
        else:
            kspace = image_kspace(load(source))
        sampled, mask, how = undersample_kspace(kspace, options.acceleration,
                                                options.center_fraction, seed)
        check_output_path(output)
        written.append(atomic_write(output, lambda tmp: np.save(tmp, sampled.numpy()), overwrite))
        mask_path = derived_path(output, "mask")
        written.append(atomic_write(mask_path, lambda tmp: np.save(tmp, mask.numpy()), overwrite))
    else:
        volume = load(source)
        check_output_path(output, volume)
        degraded = None
        if kind == "noise":
            degraded, how = add_noise(volume, options.sigma, seed)
        elif kind == "mask":
            degraded, known, how = drop_voxels(volume, options.missing, seed)
            written.append(save(known, derived_path(output, "mask"), overwrite=overwrite))
        elif kind == "downsample":
            factors = options.factor
            degraded, how = downsample(volume, factors[0] if len(factors) == 1 else factors,
                                       options.kernel)
        else:
            sinogram = simulate_ct(volume, options.angles, options.photons or None, seed)
            written.append(save_sinogram(output, sinogram.data, sinogram.geometry,
                                         overwrite=overwrite))
            how = {"kind": "parallel-beam CT", **sinogram.geometry["simulation"],
                   "angles": options.angles, "geometry_sidecar": str(output.with_suffix(".json"))}
        if degraded is not None:
            written.insert(0, save(degraded, output, like=volume, overwrite=overwrite,
                                   description=f"medip simulate {kind}"))
    record = {"command": command_line, "input": str(source), "input_sha256": sha256(source),
              "simulation": how, "outputs": [str(p) for p in written], "versions": versions()}
    written.append(write_sidecar(output, record, overwrite))
    return written
