"""Siemens TWIX raw data (``.dat``, VB and VD/VE) through ``twixtools`` (the ``mri`` extra).

The last measurement of the file is read (a VD file's earlier ones are adjustment scans),
read-only; readout oversampling is removed by twixtools; lines are placed on the centred grid
by the header's k-space centre (``sKSpace``), partial Fourier stays zero-filled. Slices are
ordered along the slice normal; only the first echo, repetition, set and phase are read.
Geometry: field of view and thickness from ``sSliceArray``, each slice's centre from its
``sPosition``; the in-plane directions follow Siemens' rule for the main orientation of the
slice normal and its in-plane rotation (``dInPlaneRot``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingExtra
from .acquisition import KSpace, stack_affine


def _twixtools():
    try:
        import twixtools
    except ImportError:
        raise MissingExtra("reading Siemens TWIX raw data needs twixtools; install it with "
                           "pip install 'medip[mri]'") from None
    return twixtools


def read_twix(path: str | Path) -> KSpace:
    """Every slice of a TWIX file's image data as a Cartesian :class:`KSpace`."""
    twixtools = _twixtools()
    path = Path(path)
    try:
        measurement = twixtools.map_twix(str(path), verbose=False)[-1]
    except Exception as error:  # twixtools reports truncated or foreign files in many ways
        raise InputError(f"{path}: not a readable Siemens TWIX file ({error})") from None
    if "image" not in measurement:
        raise InputError(f"{path}: the last measurement holds no image data (found "
                         f"{sorted(k for k in measurement if k not in ('hdr', 'hdr_str'))})")
    image = measurement["image"]
    image.flags["remove_os"] = True
    image.flags["squeeze_singletons"] = False
    image.flags["average"]["Ave"] = True
    dims = list(image.dims)
    array = image[:]
    extra = [d for d in ("Eco", "Rep", "Set", "Phs", "Seg", "Ida", "Idb", "Idc", "Idd", "Ide")
             if array.shape[dims.index(d)] > 1]
    if extra:
        warnings.warn(f"{path}: reading only the first index of {', '.join(extra)}",
                      stacklevel=2)
    take = {d: 0 for d in dims if d not in ("Sli", "Par", "Lin", "Cha", "Col")}
    for d, index in take.items():
        array = np.take(array, [index], axis=dims.index(d))
    keep = ["Sli", "Par", "Lin", "Cha", "Col"]
    array = array.reshape([array.shape[dims.index(d)] for d in keep])  # (S, P, L, C, X)
    yaps = measurement["hdr"]["MeasYaps"]
    space = yaps["sKSpace"]
    lines = int(space.get("lPhaseEncodingLines", array.shape[2]))
    partitions = int(space.get("lPartitions", 1)) if int(space.get("ucDimension", 2)) == 4 else 1
    data = np.transpose(array, (0, 3, 4, 2, 1))  # (S, C, X, L, P)
    data = _centred_lines(data, lines, measurement)
    if partitions > 1 and data.shape[-1] > 1:
        data = data[:1]  # 3D: one entry (coils, X, L, P)
    else:
        data = data[..., 0]
    kspace = torch.from_numpy(np.ascontiguousarray(data).astype(np.complex64))
    slices = yaps["sSliceArray"]["asSlice"]
    first = slices[0]
    readout, phase = int(kspace.shape[2]), int(kspace.shape[3])
    spacing = (float(first["dReadoutFOV"]) / readout, float(first["dPhaseFOV"]) / phase,
               float(first.get("dThickness", 1.0)) / (partitions if partitions > 1 else 1))
    centres = np.array([_vector(s.get("sPosition", {})) for s in slices[:len(kspace)]])
    normal = _vector(first.get("sNormal", {"dTra": 1.0}))
    order = np.argsort(centres @ normal) if len(centres) == len(kspace) else np.arange(len(kspace))
    kspace, centres = kspace[torch.as_tensor(order)], centres[order]
    read, phase_dir = _inplane(normal, float(first.get("dInPlaneRot", 0.0)))
    affine = stack_affine(centres, read, phase_dir, normal, spacing, (readout, phase))
    if kspace.ndim == 5:
        affine = affine[:, [1, 2, 0, 3]]
    info = {"format": "Siemens TWIX", "trajectory": "cartesian", "matrix": [readout, phase],
            "fov_mm": [float(first["dReadoutFOV"]), float(first["dPhaseFOV"]),
                       float(first.get("dThickness", 0.0))], "coils": int(kspace.shape[1]),
            "slices": len(kspace), "protocol": yaps.get("tProtocolName")}
    return KSpace(kspace, path, None, None, affine, _noise(measurement), info)


def _centred_lines(data: np.ndarray, lines: int, measurement) -> np.ndarray:
    """Put the acquired lines on a grid of ``lines`` with the k-space centre in the middle."""
    acquired = data.shape[3]
    centre = None
    for mdb in measurement.get("mdb", []):
        if mdb.is_image_scan():
            centre = int(mdb.mdh.CenterLin)
            break
    if centre is None:
        centre = acquired // 2
    grid = np.zeros((*data.shape[:3], max(lines, acquired), data.shape[4]), data.dtype)
    offset = grid.shape[3] // 2 - centre
    if offset < 0 or offset + acquired > grid.shape[3]:
        offset = (grid.shape[3] - acquired) // 2
    grid[:, :, :, offset:offset + acquired] = data
    return grid


def _vector(position: dict) -> np.ndarray:
    """A Siemens ``(dSag, dCor, dTra)`` entry in LPS+ (Siemens' patient axes are DICOM's)."""
    return np.array([float(position.get(k, 0.0)) for k in ("dSag", "dCor", "dTra")])


def _inplane(normal: np.ndarray, rotation: float) -> tuple[np.ndarray, np.ndarray]:
    """Readout and phase directions of a slice (Siemens' convention for the main orientation
    of ``normal``, then rotated by ``rotation`` radians about it)."""
    normal = normal / np.linalg.norm(normal)
    sag, cor, tra = np.abs(normal)
    if tra >= cor and tra >= sag:
        phase = np.array([0.0, normal[2], -normal[1]])
    elif cor >= sag:
        phase = np.array([normal[1], -normal[0], 0.0])
    else:
        phase = np.array([-normal[1], normal[0], 0.0])
    phase /= np.linalg.norm(phase)
    read = np.cross(phase, normal)
    phase, read = (np.cos(rotation) * phase - np.sin(rotation) * read,
                   np.sin(rotation) * phase + np.cos(rotation) * read)
    return read, phase


def _noise(measurement) -> torch.Tensor | None:
    if "noise" not in measurement:
        return None
    noise = measurement["noise"]
    noise.flags["remove_os"] = False
    samples = np.asarray(noise[:])
    coils = samples.shape[list(noise.dims).index("Cha")]
    samples = np.moveaxis(samples, list(noise.dims).index("Cha"), 0).reshape(coils, -1)
    return torch.from_numpy(samples.astype(np.complex64))
