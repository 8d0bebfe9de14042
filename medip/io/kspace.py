"""K-space files: ``.npy`` / ``.npz`` arrays, fastMRI-style and ISMRMRD HDF5, Siemens TWIX.

Convention: k-space is *centred* (DC in the middle of the array), so the image is
``fftshift(ifftn(ifftshift(k)))``, exactly :func:`medip.operators.centered_ifft`. Arrays are
``(coils, H, W)``, ``(H, W)`` (one coil) or ``(coils, D, H, W)``; fastMRI HDF5 files hold a
``kspace`` dataset ``(slices, coils, H, W)``; ISMRMRD files (``medip.io.mrd``) and TWIX files
(``medip.io.twix``) carry trajectories, noise scans and the scanner's geometry. A Cartesian array
whose energy peak is far from the centre triggers a warning (it is probably stored uncentred).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, MissingExtra
from .acquisition import KSpace

KSPACE_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".mrd", ".dat")


def read_kspace(path: str | Path) -> KSpace:
    """Every slice of a k-space file: fastMRI HDF5 ``(slices, coils, H, W)`` gives them all; an
    array file holds one acquisition ``(coils, H, W)``, ``(H, W)`` or 3D ``(coils, D, H, W)``;
    ISMRMRD and TWIX files give their image acquisitions with trajectory, noise and geometry."""
    path = _checked(Path(path))
    suffix = path.suffix.lower()
    if suffix == ".dat":
        from .twix import read_twix

        return read_twix(path)
    if suffix in (".h5", ".hdf5", ".mrd"):
        if _is_raw(path):
            from .mrd import read_ismrmrd

            return read_ismrmrd(path)
        data = _from_hdf5(path, slice_index=None, every_slice=True)
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
    """Read one Cartesian multi-coil acquisition as a complex64 tensor ``(coils, *shape)`` (of a
    multi-slice file, the middle slice or ``slice_index``)."""
    path = _checked(Path(path))
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _validate(np.asarray(np.load(path, allow_pickle=False)), path)
    if suffix == ".npz":
        return _validate(np.asarray(_from_npz(path)), path)
    if suffix in (".h5", ".hdf5") and not _is_raw(path):
        return _validate(np.asarray(_from_hdf5(path, slice_index)), path)
    stack = read_kspace(path)
    if not stack.cartesian:
        raise InputError(f"{path}: non-Cartesian k-space has no grid to load as an array; use "
                         f"read_kspace (it keeps the trajectory)")
    index = len(stack.data) // 2 if slice_index is None else slice_index
    if not 0 <= index < len(stack.data):
        raise InputError(f"{path}: slice {index} out of range (0..{len(stack.data) - 1})")
    return stack.data[index]


def _is_raw(path: Path) -> bool:
    from .mrd import is_ismrmrd

    return is_ismrmrd(path)


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
