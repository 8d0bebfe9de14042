"""Summaries of what a path holds (``medip info``): DICOM series, NIfTI volumes, arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .registry import format_of


def describe(path: str | Path) -> list[str]:
    """One line per series, volume or array found at ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    fmt = format_of(path) if path.is_file() else None
    if fmt is not None and fmt.name == "nifti":
        return [_describe_nifti(path)]
    if path.suffix.lower() in (".npy", ".npz"):
        return [_describe_array(path)]
    if fmt is not None and fmt.name != "dicom":
        from .api import load

        return [f"{path}: {fmt.name} {load(path)!r}"]
    lines = _describe_dicom(path)
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


def _describe_dicom(path: Path) -> list[str]:
    from .dicom_read import scan_series

    groups, notes, _ = scan_series(path)
    lines = []
    for uid, headers in groups.items():
        ds = headers[0].ds
        spacing = ds.get("PixelSpacing")
        pixel = f"{float(spacing[0]):g} x {float(spacing[1]):g} mm" if spacing else "unknown spacing"
        syntax = ds.file_meta.TransferSyntaxUID.name if "TransferSyntaxUID" in ds.file_meta else "?"
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        count = f"{len(headers)} file(s)" + (f", {frames} frames" if frames > 1 else "")
        lines.append(f"series {uid}: {ds.get('Modality', '?')} '{ds.get('SeriesDescription', '')}', "
                     f"{count}, {ds.get('Rows', '?')}x{ds.get('Columns', '?')}, {pixel}, "
                     f"slice thickness {ds.get('SliceThickness', '?')} mm, {syntax}")
    return lines + notes
