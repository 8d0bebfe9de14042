"""Writing a derived DICOM series: one file per slice, new UIDs, the source's identity and geometry.

Values are stored as int16 with one RescaleSlope/Intercept for the whole series, chosen to keep
the volume's range (slope 1 when the values are integers that fit, as CT in HU usually are).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._version import __version__
from .atomic import current_umask, writing
from .volume import LPS_TO_RAS, Volume

SOP_CLASSES = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
IDENTITY_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
                 "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
                 "ReferringPhysicianName", "StudyDescription", "FrameOfReferenceUID",
                 "BodyPartExamined", "PatientPosition")


def int16_rescale(array: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` so that ``stored * slope + intercept`` covers ``array`` in int16."""
    lo, hi = float(array.min()), float(array.max())
    if np.array_equal(array, np.round(array)) and lo >= -32768 and hi <= 32767:
        return 1.0, 0.0
    slope = float(f"{max(hi - lo, 1e-6) / 65000 * 1.001:.6g}")  # DS strings hold <= 16 chars
    return slope, float(f"{(hi + lo) / 2:.6g}")


def write_dicom_series(volume: Volume, folder: str | Path, description: str,
                       like: Volume | None = None, overwrite: bool = False) -> Path:
    """Write ``volume`` as a derived series into ``folder`` (created; replaced only if
    ``overwrite``). Patient and study identity come from ``like`` or the volume's own DICOM
    source; a volume from NIfTI gets a new study with geometry from its affine."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty; pass overwrite=True "
                              f"(or --overwrite) to replace it")
    template = (like or volume).meta.get("dicom_template")
    with writing(folder):
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700
        _write_series(volume, folder, tmp, template, description, like)
    return folder


def _write_series(volume: Volume, folder: Path, tmp: Path, template, description: str,
                  like: Volume | None) -> None:
    """The slices into ``tmp``, then ``tmp`` renamed to ``folder`` (removed on any failure)."""
    try:
        for k, ds in enumerate(_slice_datasets(volume, template, description, like)):
            ds.save_as(tmp / f"{k + 1:04d}.dcm", enforce_file_format=True)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _padding(volume: Volume, source: Volume | None) -> np.ndarray | None:
    """Where the source series had padding (PixelPaddingValue), on the volume's grid."""
    mask = (source or volume).meta.get("padding_mask")
    return mask if mask is not None and mask.shape == volume.shape else None


def _slice_datasets(volume: Volume, template, description: str,
                    template_volume: Volume | None = None):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    affine = np.linalg.inv(LPS_TO_RAS) @ volume.affine  # RAS -> DICOM's LPS
    col_step, row_step, slice_step = affine[:3, 0], affine[:3, 1], affine[:3, 2]
    row_dir, col_dir = col_step / np.linalg.norm(col_step), row_step / np.linalg.norm(row_step)
    normal = np.cross(row_dir, col_dir)
    thickness = abs(float(slice_step @ normal))
    array, pad = volume.array, _padding(volume, template_volume)
    if pad is not None:  # the source's padded voxels keep its background and are marked again
        array = array.copy()
        array[pad] = volume.array[pad].min() if template_volume is None else \
            template_volume.array[pad].min()
    slope, intercept = int16_rescale(array)
    stored = np.clip(np.round((array - intercept) / slope), -32768, 32767).astype(np.int16)
    sop_class = SOP_CLASSES.get(volume.modality, SECONDARY_CAPTURE)
    series_uid = generate_uid()
    now = _dt.datetime.now()
    study = {"StudyInstanceUID": generate_uid(), "FrameOfReferenceUID": generate_uid(),
             "PatientName": "medip^derived", "PatientID": "", "StudyDate": now.strftime("%Y%m%d"),
             "StudyTime": now.strftime("%H%M%S")}
    if template is not None:
        study = {tag: template.get(tag) for tag in IDENTITY_TAGS if tag in template}
    series_number = int(template.get("SeriesNumber", 0) or 0) + 1000 if template else 1000
    for k in range(volume.shape[2]):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        for tag, value in study.items():
            setattr(ds, tag, value)
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = volume.modality if volume.modality else "OT"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = series_uid, series_number, k + 1
        ds.SeriesDescription = description[:64]
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.DerivationDescription = description[:1024]
        ds.SoftwareVersions = f"medip {__version__}"
        ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        position = affine[:3, 3] + k * slice_step
        ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.8g}" for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [f"{np.linalg.norm(row_step):.8g}", f"{np.linalg.norm(col_step):.8g}"]
        ds.SliceThickness = ds.SpacingBetweenSlices = f"{thickness:.8g}"
        ds.SliceLocation = f"{float(position @ normal):.6g}"
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{intercept:.10g}"
        if volume.units == "HU":
            ds.RescaleType = "HU"
        if pad is not None:
            ds.PixelPaddingValue = int(stored[pad].flat[0])
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).tobytes()
        yield ds
