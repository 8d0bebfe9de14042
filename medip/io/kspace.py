"""K-space files: ``.npy`` / ``.npz`` arrays and fastMRI-style HDF5.

Convention: k-space is *centred* (DC in the middle of the array), so the image is
``fftshift(ifftn(ifftshift(k)))``, exactly :func:`medip.operators.centered_ifft`. Arrays are
``(coils, H, W)``, ``(H, W)`` (one coil) or ``(coils, D, H, W)``; HDF5 files hold a ``kspace``
dataset ``(slices, coils, H, W)`` of which one slice is read. A file whose energy peak is far from
the centre triggers a warning (it is probably stored uncentred).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import MissingExtra

KSPACE_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")


@dataclass
class KSpace:
    """Centred multi-coil k-space ``(slices, coils, *shape)``: a stack of 2D acquisitions
    (``shape`` 2D, one entry per slice) or one 3D acquisition (one entry, ``shape`` 3D)."""

    data: torch.Tensor
    source: Path | None = None

    @classmethod
    def of(cls, kspace: torch.Tensor, source: Path | None = None) -> KSpace:
        """One acquisition ``(coils, *shape)`` (2D or 3D) as a one-entry stack."""
        return cls(kspace[None], source)


def read_kspace(path: str | Path) -> KSpace:
    """Every slice of a k-space file: HDF5 ``(slices, coils, H, W)`` gives them all; an array
    file holds one acquisition ``(coils, H, W)``, ``(H, W)`` or 3D ``(coils, D, H, W)``."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        data = _from_hdf5(_checked(path), slice_index=None, every_slice=True)
        if data.ndim == 4:
            return KSpace(torch.stack([_validate(s, path) for s in data]), path)
    return KSpace.of(load_kspace(path), path)


def _checked(path: Path) -> Path:
    suffix = path.suffix.lower()
    if suffix not in KSPACE_SUFFIXES:
        raise ValueError(f"{path}: k-space is read from {', '.join(KSPACE_SUFFIXES)}, not "
                         f"{suffix or 'no extension'}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such k-space file")
    return path


def load_kspace(path: str | Path, slice_index: int | None = None) -> torch.Tensor:
    """Read one multi-coil acquisition as a complex64 tensor ``(coils, *shape)`` (of an HDF5
    stack, the middle slice or ``slice_index``)."""
    path = _checked(Path(path))
    suffix = path.suffix.lower()
    if suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        data = _from_npz(path)
    else:
        data = _from_hdf5(path, slice_index)
    return _validate(np.asarray(data), path)


def _from_npz(path: Path) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        if "kspace" in archive.files:
            return archive["kspace"]
        if len(archive.files) == 1:
            return archive[archive.files[0]]
        raise ValueError(f"{path}: holds {archive.files}; name the k-space array 'kspace'")


def _from_hdf5(path: Path, slice_index: int | None, every_slice: bool = False) -> np.ndarray:
    try:
        import h5py
    except ImportError:
        raise MissingExtra(f"{path}: reading HDF5 k-space needs h5py; install it with "
                           f"pip install 'medip[hdf5]'") from None
    with h5py.File(path, "r") as f:
        if "kspace" not in f:
            raise ValueError(f"{path}: no 'kspace' dataset (found {sorted(f.keys())}); expected "
                             f"fastMRI layout (slices, coils, H, W)")
        dataset = f["kspace"]
        if dataset.ndim == 4 and not every_slice:
            index = dataset.shape[0] // 2 if slice_index is None else slice_index
            if not 0 <= index < dataset.shape[0]:
                raise ValueError(f"{path}: slice {index} out of range (0..{dataset.shape[0] - 1})")
            return dataset[index]
        return dataset[()]


def _validate(data: np.ndarray, path: Path) -> torch.Tensor:
    if not np.iscomplexobj(data):
        raise TypeError(f"{path}: k-space must be complex, got {data.dtype}; real arrays are "
                        f"images, not measurements")
    if data.ndim == 2:
        data = data[None]
    if data.ndim not in (3, 4):
        raise ValueError(f"{path}: k-space of shape {data.shape}; expected (coils, H, W), (H, W) "
                         f"or (coils, D, H, W)")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: k-space contains NaN or infinite values")
    energy = (np.abs(data) ** 2).sum(0)
    peak = np.unravel_index(np.argmax(energy), energy.shape)
    off = max(abs(p - n // 2) / n for p, n in zip(peak, energy.shape))
    if off > 0.25:
        warnings.warn(f"{path}: the k-space energy peaks at {tuple(map(int, peak))}, far from the "
                      f"centre; medip expects centred k-space (apply np.fft.fftshift over the "
                      f"spatial axes)", stacklevel=3)
    return torch.from_numpy(data.astype(np.complex64))
