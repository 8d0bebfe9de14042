"""Sinogram files: ``.npy`` or TIFF stacks, with the acquisition geometry in a JSON sidecar.

The sidecar sits beside the data with the same stem (``scan.npy`` -> ``scan.json``) and holds
:meth:`medip.operators.Radon.geometry_dict`: angles (rad), detector count and spacing, source and
detector distances and pixel size (mm). Sinograms are ``(..., n_angles, n_detectors)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..operators import Radon
from .atomic import atomic_write

SINOGRAM_SUFFIXES = (".npy", ".tif", ".tiff")


@dataclass
class Sinogram:
    """A stack of 2D sinograms ``(slices, n_angles, n_detectors)`` (log line integrals) and the
    acquisition geometry they were measured with (:meth:`Radon.geometry_dict`)."""

    data: np.ndarray
    geometry: dict
    source: Path | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data, dtype=np.float32)
        self.data = data.reshape(-1, *data.shape[-2:]) if data.ndim >= 2 else data
        where = self.source or "the sinogram"
        if not np.isfinite(self.data).all():
            raise ValueError(f"{where}: the sinogram contains NaN or infinite values")
        _check_against_geometry(self.data.shape, self.geometry, where)


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar beside a data file."""
    return Path(path).with_suffix(".json")


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SINOGRAM_SUFFIXES:
        raise ValueError(f"{path}: sinograms are stored as {', '.join(SINOGRAM_SUFFIXES)}, "
                         f"not {suffix or 'no extension'}")
    return suffix


def save_sinogram(path: str | Path, sinogram: np.ndarray | torch.Tensor, geometry: Radon | dict,
                  overwrite: bool = False) -> Path:
    """Write ``sinogram`` (float32) and its geometry sidecar; both atomically."""
    path = Path(path)
    suffix = _suffix(path)
    data = (sinogram.detach().cpu().numpy() if isinstance(sinogram, torch.Tensor)
            else np.asarray(sinogram)).astype(np.float32)
    geometry = geometry.geometry_dict() if isinstance(geometry, Radon) else dict(geometry)
    _check_against_geometry(data.shape, geometry, path)
    sidecar = sidecar_path(path)
    if sidecar.exists() and not overwrite:
        raise FileExistsError(f"{sidecar} exists; pass overwrite=True to replace it")

    def write_data(tmp: Path) -> None:
        if suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, data)
        else:
            import tifffile
            tifffile.imwrite(tmp, data.reshape(-1, *data.shape[-2:]),
                             metadata={"axes": "QYX"}, photometric="minisblack")

    atomic_write(path, write_data, overwrite)
    sidecar_doc = {"shape": list(data.shape), **geometry}
    atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(sidecar_doc, indent=1)), overwrite)
    return path


def load_sinogram(path: str | Path, geometry_file: str | Path | None = None) -> Sinogram:
    """Read a sinogram stack and its geometry (the sidecar, or ``geometry_file`` in the same
    JSON form); the shape must agree with the geometry."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sinogram file")
    sidecar = Path(geometry_file) if geometry_file else sidecar_path(path)
    if not sidecar.is_file():
        what = f"geometry file {sidecar}" if geometry_file else f"geometry sidecar {sidecar.name}"
        raise FileNotFoundError(f"{path}: the {what} is missing; write it with "
                                f"medip.io.save_sinogram or give one (--geometry FILE.json)")
    try:
        geometry = json.loads(sidecar.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{sidecar}: not valid JSON ({err})") from None
    if suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    else:
        import tifffile
        data = tifffile.imread(path)
        if "shape" in geometry:
            data = data.reshape(geometry["shape"])
    return Sinogram(data, {k: v for k, v in geometry.items() if k != "shape"}, path)


def _check_against_geometry(shape: tuple[int, ...], geometry: dict, path: object) -> None:
    try:
        expected = (len(geometry["angles"]), int(geometry["n_detectors"]))
    except (KeyError, TypeError):
        raise ValueError(f"{path}: the geometry lacks 'angles' or 'n_detectors'") from None
    if len(shape) < 2 or tuple(shape[-2:]) != expected:
        raise ValueError(f"{path}: sinogram shape {tuple(shape)} disagrees with its geometry "
                         f"({expected[0]} angles x {expected[1]} detectors)")
