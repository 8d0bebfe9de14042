"""``medip.load`` and ``medip.save``: any supported scan in, derived scans out, inputs untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dicom_read import read_dicom
from .dicom_write import write_dicom_series
from .formats import (read_npy, read_nifti, read_nrrd, read_picture, write_nifti, write_npy,
                      write_nrrd)
from .preview import save_preview
from .registry import WRITABLE, format_of
from .volume import Volume

_READERS = {"nifti": read_nifti, "nrrd": lambda path, frame: read_nrrd(path),
            "npy": lambda path, frame: read_npy(path), "png": lambda path, frame: read_picture(path),
            "tiff": lambda path, frame: read_picture(path),
            "jpeg": lambda path, frame: read_picture(path)}


def derived_path(output: Path, tag: str, suffix: str | None = None) -> Path:
    """A file beside ``output`` named after it: ``out.nii.gz`` + ``mask`` -> ``out_mask.nii.gz``
    (or ``out_mask.png`` with ``suffix=".png"``)."""
    stem = output.name.split(".")[0]
    return output.with_name(f"{stem}_{tag}{output.name[len(stem):] if suffix is None else suffix}")


def load(path: str | Path, series: str | int | None = None, frame: int | None = None) -> Volume:
    """Read a scan: a DICOM folder (recursive) or file, NIfTI, NRRD, ``.npy``, PNG or TIFF.

    ``series`` picks one DICOM series (SeriesInstanceUID or SeriesNumber) when a folder holds
    several; ``frame`` picks one volume of a 4D NIfTI.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    fmt = format_of(path) if path.is_file() else None
    if fmt is not None and fmt.name in _READERS:
        return _READERS[fmt.name](path, frame)
    return read_dicom(path, series)


def header_shape(path: str | Path) -> tuple[int, ...] | None:
    """The voxel grid of a NIfTI file from its header alone (no voxels read), else None: lets
    a job refuse a volume too large for its mode before loading gigabytes."""
    path = Path(path)
    fmt = format_of(path) if path.is_file() else None
    if fmt is None or fmt.name != "nifti":
        return None
    import nibabel as nib

    try:
        return tuple(int(n) for n in nib.load(path).shape[:3])
    except Exception:  # unreadable headers are reported by load() itself
        return None


def protected_folders(*volumes: Volume | None) -> list[Path]:
    """Folders medip never writes into: those holding a DICOM input series."""
    folders = []
    for volume in volumes:
        if volume is None or volume.meta.get("format") != "dicom" or volume.source is None:
            continue
        source = Path(volume.source).resolve()
        folders.append(source if source.is_dir() else source.parent)
        folders += [Path(f).resolve().parent for f in volume.meta.get("dicom_files", [])]
    return sorted(set(folders))


def check_output_path(path: Path, *volumes: Volume | None) -> None:
    """Refuse an output inside a DICOM input's folder or on top of an input file."""
    target = path.resolve()
    for volume in volumes:
        if volume is not None and volume.source is not None and target == Path(volume.source).resolve():
            raise ValueError(f"{path} is the input file itself; choose another output path")
    for folder in protected_folders(*volumes):
        if target == folder or folder in target.parents:
            raise ValueError(f"{path} is inside the input series' folder {folder}; medip never "
                             f"writes there: choose an output outside it")


def save(volume: Volume, path: str | Path, like: Volume | None = None, overwrite: bool = False,
         format: str | None = None, description: str = "medip derived") -> Path:
    """Write ``volume``; the format comes from the extension or ``format=`` (``"dicom"`` writes
    a series into the folder ``path``). Writes are atomic and never replace an existing output
    unless ``overwrite``; nothing is ever written into a DICOM input's folder."""
    path = Path(path)
    inferred = format_of(path)  # a DICOM series is written only when asked for by name
    fmt = format or (inferred.name if inferred and inferred.name != "dicom" else None)
    if fmt not in WRITABLE:
        raise ValueError(f"{path}: cannot tell the output format from the extension; use .nii, "
                         f".nii.gz, .nrrd, .npy or .png, or format= one of {WRITABLE}")
    check_output_path(path, volume, like)
    if np.iscomplexobj(volume.array) and fmt not in ("nifti", "npy"):
        raise ValueError(f"{path}: a complex volume is written as NIfTI (.nii, .nii.gz) or .npy, "
                         f"not {fmt}; or ask for the magnitude or phase")
    if fmt == "dicom":
        return write_dicom_series(volume, path, description, like=like, overwrite=overwrite)
    if fmt == "nifti":
        return write_nifti(volume, path, overwrite)
    if fmt == "nrrd":
        return write_nrrd(volume, path, overwrite)
    if fmt == "npy":
        return write_npy(volume, path, overwrite)
    return save_preview(volume, path, overwrite=overwrite)
