"""Summaries of what a path holds (``medip info``): DICOM series, NIfTI volumes, arrays."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np


def describe(path: str | Path) -> list[str]:
    """One line per series, volume or array found at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return [_describe_nifti(path)]
    if name.endswith((".npy", ".npz")):
        return [_describe_array(path)]
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    lines = _describe_dicom(files)
    if not lines:
        raise ValueError(f"{path}: no DICOM, NIfTI or .npy data found")
    return lines


def _describe_nifti(path: Path) -> str:
    import nibabel as nib

    img = nib.load(path)
    zooms = ", ".join(f"{z:g}" for z in img.header.get_zooms())
    codes = f"qform {int(img.header['qform_code'])}, sform {int(img.header['sform_code'])}"
    return (f"{path}: NIfTI {tuple(img.shape)} {img.get_data_dtype()}, voxel ({zooms}) mm, "
            f"{codes}, orientation {''.join(nib.aff2axcodes(img.affine))}")


def _describe_array(path: Path) -> str:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return f"{path}: npz with " + ", ".join(
                f"{k} {data[k].shape} {data[k].dtype}" for k in data.files)
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    return f"{path}: array {data.shape} {data.dtype}"


def _describe_dicom(files: list[Path]) -> list[str]:
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, list] = defaultdict(list)
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError):
            continue
        series[str(ds.get("SeriesInstanceUID", "?"))].append(ds)
    lines = []
    for uid, items in series.items():
        ds = items[0]
        spacing = ds.get("PixelSpacing")
        pixel = f"{float(spacing[0]):g} x {float(spacing[1]):g} mm" if spacing else "unknown spacing"
        syntax = ds.file_meta.TransferSyntaxUID.name if "TransferSyntaxUID" in ds.file_meta else "?"
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        count = f"{len(items)} file(s)" + (f", {frames} frames" if frames > 1 else "")
        lines.append(f"series {uid}: {ds.get('Modality', '?')} '{ds.get('SeriesDescription', '')}', "
                     f"{count}, {ds.get('Rows', '?')}x{ds.get('Columns', '?')}, {pixel}, "
                     f"slice thickness {ds.get('SliceThickness', '?')} mm, {syntax}")
    return lines
