"""``medip simulate``: write a degraded measurement and ``OUTPUT.medip.json`` saying how."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .io import atomic_write, load, load_kspace, save, save_sinogram
from .io.api import check_output_path, derived_path
from .io.kspace import KSPACE_SUFFIXES
from .jobs import sha256, sidecar_of, versions
from .simulate import add_noise, downsample, drop_voxels, image_kspace, simulate_ct, undersample_kspace



def simulate_to_files(kind: str, source: Path, output: Path, options: dict,
                      command_line: list[str]) -> list[Path]:
    """Run one simulation ``kind`` on ``source``; returns the files written."""
    overwrite, seed = options.get("overwrite", False), options.get("seed", 0)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    written: list[Path] = []
    if kind == "mri":
        if source.suffix.lower() in KSPACE_SUFFIXES and source.is_file():
            kspace = load_kspace(source)
        else:
            kspace = image_kspace(load(source))
        sampled, mask, how = undersample_kspace(kspace, options["acceleration"],
                                                options["center_fraction"], seed)
        check_output_path(output)
        written.append(atomic_write(output, lambda tmp: np.save(tmp, sampled.numpy()), overwrite))
        mask_path = derived_path(output, "mask")
        written.append(atomic_write(mask_path, lambda tmp: np.save(tmp, mask.numpy()), overwrite))
    else:
        volume = load(source)
        check_output_path(output, volume)
        if kind == "noise":
            degraded, how = add_noise(volume, options["sigma"], seed)
        elif kind == "mask":
            degraded, known, how = drop_voxels(volume, options["missing"], seed)
            written.append(save(known, derived_path(output, "mask"), overwrite=overwrite))
        elif kind == "downsample":
            factors = options["factor"]
            degraded, how = downsample(volume, factors[0] if len(factors) == 1 else factors,
                                       options["kernel"])
        elif kind == "ct":
            sinograms, geometry = simulate_ct(volume, options["angles"],
                                              options["photons"] or None, seed)
            written.append(save_sinogram(output, sinograms, geometry, overwrite=overwrite))
            how = {"kind": "parallel-beam CT", **geometry["simulation"],
                   "angles": options["angles"], "geometry_sidecar": str(output.with_suffix(".json"))}
            degraded = None
        else:
            raise ValueError(f"unknown simulation {kind!r}")
        if degraded is not None:
            written.insert(0, save(degraded, output, like=volume, overwrite=overwrite,
                                   description=f"medip simulate {kind}"))
    record = {"command": command_line, "input": str(source), "input_sha256": sha256(source),
              "simulation": how, "outputs": [str(p) for p in written], "versions": versions()}
    sidecar = sidecar_of(output)
    written.append(atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(record, indent=1)),
                                overwrite))
    return written
