"""Reading DICOM: series grouped by SeriesInstanceUID, sorted by position, in physical units.

Slices are sorted by ImagePositionPatient projected on the slice normal (the cross product of
the two ImageOrientationPatient direction cosines), never by file name or InstanceNumber.
Values get RescaleSlope/Intercept (CT in HU); MONOCHROME1 is inverted so that high is bright.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from .volume import LPS_TO_RAS, Volume

log = logging.getLogger("medip")

CT_AIR_HU = -1024.0
JPEG_EXTRA = "pip install 'medip[jpeg]'  (pylibjpeg with its libjpeg and openjpeg plugins)"


class DicomError(InputError):
    """A DICOM input that cannot be read as asked; the message names the file and the fix."""


@dataclass
class _Header:
    path: Path
    ds: "object"  # pydicom.Dataset, header only


def _dicom_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    return [path]


def scan_series(path: str | Path) -> tuple[dict[str, list[_Header]], list[str], int]:
    """Headers of every DICOM image file under ``path`` grouped by SeriesInstanceUID.

    Returns the groups, notes on skipped non-image objects or unreadable files, and the number
    of files that were not DICOM at all.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    groups: dict[str, list[_Header]] = defaultdict(list)
    notes: list[str] = []
    not_dicom = 0
    for f in _dicom_files(Path(path)):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except InvalidDicomError:
            not_dicom += 1
            continue
        except Exception as err:  # truncated or damaged header
            notes.append(f"{f}: unreadable DICOM header ({err}); the file is damaged or truncated")
            continue
        if "Rows" not in ds or "SeriesInstanceUID" not in ds:
            notes.append(f"{f}: skipped a non-image {ds.get('Modality', '?')} object "
                         f"({getattr(ds.get('SOPClassUID'), 'name', 'unknown SOP class')})")
            continue
        groups[str(ds.SeriesInstanceUID)].append(_Header(f, ds))
    return dict(groups), notes, not_dicom


def describe_series(uid: str, headers: list[_Header]) -> str:
    ds = headers[0].ds
    frames = sum(int(h.ds.get("NumberOfFrames", 1) or 1) for h in headers)
    return (f"{uid} '{ds.get('SeriesDescription', '')}' {ds.get('Modality', '?')}, "
            f"{frames} slice(s)")


def read_dicom(path: str | Path, series: str | int | None = None) -> Volume:
    """A DICOM file or folder (searched recursively) as a :class:`Volume` in physical units.

    ``series`` picks one series when several are present: its SeriesInstanceUID or its
    SeriesNumber.
    """
    path = Path(path)
    groups, notes, not_dicom = scan_series(path)
    for note in notes:
        log.info(note)
    if not groups:
        why = "; ".join(notes) if notes else f"{not_dicom} file(s), none of them DICOM"
        raise DicomError(f"{path}: no DICOM image series found ({why})")
    uid = _choose_series(path, groups, series)
    return _read_series(path, uid, groups[uid], notes)


def _choose_series(path: Path, groups: dict[str, list[_Header]], series: str | int | None) -> str:
    if series is None:
        if len(groups) == 1:
            return next(iter(groups))
        listing = "; ".join(describe_series(u, h) for u, h in groups.items())
        raise DicomError(f"{path} holds {len(groups)} image series: {listing}; choose one with "
                         f"series=UID or SeriesNumber (--series on the command line)")
    for uid, headers in groups.items():
        number = headers[0].ds.get("SeriesNumber")
        if str(series) == uid or (number is not None and str(series) == str(number)):
            return uid
    raise DicomError(f"{path}: no series {series!r}; present: "
                     + "; ".join(describe_series(u, h) for u, h in groups.items()))


def _read_pixels(header: _Header) -> np.ndarray:
    """The stored pixel values of one file, with clear errors for compression and truncation."""
    import pydicom

    ds = pydicom.dcmread(header.path)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_compressed and not decoder_available(syntax):
        raise DicomError(f"{header.path}: pixel data is compressed as {syntax.name} ({syntax}); "
                         f"no decoder is installed: {JPEG_EXTRA}")
    try:
        return ds.pixel_array
    except Exception as err:
        raise DicomError(f"{header.path}: cannot decode the pixel data ({err}); the file may be "
                         f"truncated or damaged: re-export it or remove it from the folder"
                         ) from None


def decoder_available(syntax: str) -> bool:
    """Whether pydicom has a working pixel decoder for this transfer syntax."""
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False


def _orientation(ds) -> np.ndarray:
    iop = ds.get("ImageOrientationPatient")
    if iop is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared and "PlaneOrientationSequence" in shared[0]:
            iop = shared[0].PlaneOrientationSequence[0].ImageOrientationPatient
    return np.array([float(v) for v in iop]) if iop is not None else np.array([1., 0, 0, 0, 1, 0])


def _pixel_spacing(ds) -> tuple[float, float]:
    spacing = ds.get("PixelSpacing")
    if spacing is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared and "PixelMeasuresSequence" in shared[0]:
            spacing = shared[0].PixelMeasuresSequence[0].get("PixelSpacing")
    return (float(spacing[0]), float(spacing[1])) if spacing else (1.0, 1.0)


def _rescale(ds) -> tuple[float, float]:
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None:
        shared = ds.get("SharedFunctionalGroupsSequence")
        if shared and "PixelValueTransformationSequence" in shared[0]:
            item = shared[0].PixelValueTransformationSequence[0]
            slope, intercept = item.get("RescaleSlope"), item.get("RescaleIntercept")
    return float(slope if slope is not None else 1), float(intercept if intercept is not None else 0)


def _frame_positions(ds) -> list[np.ndarray] | None:
    """Per-frame ImagePositionPatient of an enhanced multi-frame object, if present."""
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    if not frames or "PlanePositionSequence" not in frames[0]:
        return None
    return [np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient])
            for f in frames]


def _read_series(path: Path, uid: str, headers: list[_Header], notes: list[str]) -> Volume:
    first = headers[0].ds
    iop = _orientation(first)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    dy, dx = _pixel_spacing(first)
    slices: list[tuple[np.ndarray, _Header, int | None]] = []  # (position, file, frame)
    for h in headers:
        if not np.allclose(_orientation(h.ds), iop, atol=1e-4):
            raise DicomError(f"{h.path}: its ImageOrientationPatient differs from {headers[0].path}"
                             f" in the same series; mixed orientations cannot form one volume")
        if (h.ds.Rows, h.ds.Columns) != (first.Rows, first.Columns):
            raise DicomError(f"{h.path}: {h.ds.Rows}x{h.ds.Columns} pixels but "
                             f"{headers[0].path} has {first.Rows}x{first.Columns} in the same series")
        per_frame = _frame_positions(h.ds)
        if per_frame is not None:
            slices += [(p, h, n) for n, p in enumerate(per_frame)]
        else:
            ipp = h.ds.get("ImagePositionPatient")
            position = np.array([float(v) for v in ipp]) if ipp is not None else np.zeros(3)
            frames = int(h.ds.get("NumberOfFrames", 1) or 1)
            if frames > 1:  # multi-frame without per-frame geometry: frames stacked along normal
                step = float(h.ds.get("SpacingBetweenSlices", h.ds.get("SliceThickness", 1)) or 1)
                slices += [(position + n * step * normal, h, n) for n in range(frames)]
            else:
                slices.append((position, h, None))
    slices.sort(key=lambda s: float(s[0] @ normal))
    distances = np.array([float(s[0] @ normal) for s in slices])
    _check_spacing(distances, slices)

    pixels: dict[Path, tuple[np.ndarray, np.ndarray | None]] = {}
    planes, pads = [], []
    for _, h, frame in slices:
        if h.path not in pixels:
            slope, intercept = _rescale(h.ds)
            pixels[h.path] = _to_physical(_read_pixels(h).astype(np.float32), h, slope, intercept)
        data, pad = pixels[h.path]
        planes.append(data[frame] if frame is not None else data)
        pads.append(None if pad is None else pad[frame] if frame is not None else pad)
    array = np.stack([p.T for p in planes], axis=-1)  # (columns i, rows j, slices k)

    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * dx
    affine_lps[:3, 1] = col_dir * dy
    if len(slices) > 1:
        affine_lps[:3, 2] = (slices[-1][0] - slices[0][0]) / (len(slices) - 1)
    else:
        thickness = float(first.get("SpacingBetweenSlices", first.get("SliceThickness", 1)) or 1)
        affine_lps[:3, 2] = normal * thickness
    affine_lps[:3, 3] = slices[0][0]
    modality = str(first.get("Modality", "OT"))
    meta = {"format": "dicom", "dicom_template": first, "series_uid": uid,
            "dicom_files": [str(h.path) for _, h, _ in slices], "notes": notes,
            "transfer_syntax": str(first.file_meta.get("TransferSyntaxUID", ""))}
    if any(p is not None and p.any() for p in pads):
        mask = np.stack([np.zeros(q.shape, bool) if p is None else p for p, q in
                         zip(pads, planes)]).transpose(2, 1, 0)
        meta["padding_mask"] = mask  # (i, j, k): where the source had PixelPaddingValue
    array = _clip_outside_fov(array, modality, meta, path)
    return Volume(array, LPS_TO_RAS @ affine_lps, modality=modality,
                  units="HU" if modality == "CT" else "", source=path, meta=meta)


def _to_physical(stored: np.ndarray, h: _Header, slope: float, intercept: float
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """Stored values -> physical ones, and where the pixels are padding (None: no padding).

    Padding pixels (``PixelPaddingValue``: no data there) keep the padding's own rescaled value
    when it is at or below every real value (an MR series padded with 0 keeps a background of
    0), else they get the smallest real value, so padding never looks like bright data.
    """
    padding = h.ds.get("PixelPaddingValue")
    pad_mask = stored == float(padding) if padding is not None else None
    if str(h.ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        # invert over the stored range, the same for every slice: high values become bright
        bits = int(h.ds.get("BitsStored", 16))
        stored = (-1 - stored) if h.ds.get("PixelRepresentation", 0) else (2 ** bits - 1 - stored)
    values = stored * slope + intercept
    if pad_mask is not None and pad_mask.any():
        real = values[~pad_mask]
        own = float(values[pad_mask].flat[0])
        values[pad_mask] = own if not real.size or own <= real.min() else real.min()
    return values, pad_mask


def _clip_outside_fov(array: np.ndarray, modality: str, meta: dict, path: Path) -> np.ndarray:
    """CT stores values far below air (often about -3000 HU) outside the scanner's field of view;
    they are set to air (-1024 HU) so they neither look like data nor skew normalisation."""
    if modality != "CT":
        return array
    outside = array < CT_AIR_HU
    count = int(outside.sum())
    if count:
        meta["outside_fov_voxels"] = count
        log.info("%s: %d voxel(s) below %g HU (outside the field of view) set to air", path, count,
                 CT_AIR_HU)
        array = np.where(outside, np.float32(CT_AIR_HU), array)
    return array


def _check_spacing(distances: np.ndarray, slices: Sequence) -> None:
    if len(distances) < 2:
        return
    gaps = np.diff(distances)
    duplicate = np.flatnonzero(gaps < 1e-3)
    if duplicate.size:
        a, b = slices[duplicate[0]][1].path, slices[duplicate[0] + 1][1].path
        raise DicomError(f"{b}: duplicate slice position {distances[duplicate[0]]:.3f} mm (also "
                         f"{a}); remove the duplicate file or choose the series explicitly")
    step = float(np.median(gaps))
    if np.allclose(gaps, step, rtol=0.01, atol=0.01):
        return
    missing = np.flatnonzero(gaps > 1.5 * step)
    if missing.size:
        where = ", ".join(f"{distances[m]:.2f}->{distances[m + 1]:.2f} mm" for m in missing)
        warnings.warn(f"{slices[0][1].path.parent}: missing slice(s) between positions {where} "
                      f"(usual spacing {step:.2f} mm); the volume's geometry assumes even spacing",
                      stacklevel=3)
    else:
        spacings = ", ".join(f"{g:.3f}" for g in gaps)
        warnings.warn(f"{slices[0][1].path.parent}: non-uniform slice spacing ({spacings} mm); "
                      f"the volume uses the mean spacing", stacklevel=3)
