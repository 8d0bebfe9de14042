"""Readers and writers for NIfTI, NRRD, ``.npy`` and 2D pictures (PNG/TIFF), as :class:`Volume`.

NIfTI keeps its affine, header and qform/sform codes; NRRD (optional ``nrrd`` extra) is read and
written in LPS as 3D Slicer does; ``.npy`` holds the ``(i, j, k)`` array without geometry (an
identity affine); a picture's rows are ``j`` and its columns ``i`` (``array[:, :, 0].T`` is the
picture as displayed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .atomic import atomic_write
from .volume import LPS_TO_RAS, Volume

NRRD_EXTRA = "pip install 'medip[nrrd]'  (pynrrd)"


def read_nifti(path: Path, frame: int | None = None) -> Volume:
    import nibabel as nib

    try:
        img = nib.load(path)
        data = img.get_fdata(dtype=np.float32)
    except Exception as err:
        raise ValueError(f"{path}: not a readable NIfTI file ({err})") from None
    if data.ndim > 3 and any(n > 1 for n in data.shape[3:]):
        frames = int(np.prod(data.shape[3:]))
        if frame is None:
            raise ValueError(f"{path} is 4D with {frames} volumes of {data.shape[:3]}; choose one "
                             f"with frame=N (--frame N), 0 <= N < {frames}")
        if not 0 <= frame < frames:
            raise ValueError(f"{path}: frame {frame} is out of range, it has {frames} volumes")
        data = data.reshape(*data.shape[:3], frames)[..., frame]
    elif data.ndim > 3:
        data = data.reshape(data.shape[:3])
    header = img.header
    meta = {"format": "nifti", "nifti_header": header.copy(), "frame": frame,
            "qform_code": int(header["qform_code"]), "sform_code": int(header["sform_code"])}
    return Volume(data, img.affine, source=path, meta=meta)


def write_nifti(volume: Volume, path: Path, overwrite: bool = False) -> Path:
    """NIfTI-1 in float32 (complex64 for a complex volume) with the volume's affine in both
    qform and sform.

    The codes are kept from a NIfTI source; otherwise 1 (scanner anatomical) for both.
    """
    import nibabel as nib

    header = volume.meta.get("nifti_header")
    img = nib.Nifti1Image(volume.array, volume.affine,
                          header=header.copy() if header is not None else None)
    img.set_data_dtype(volume.array.dtype)
    img.header.set_slope_inter(None, None)
    img.set_qform(volume.affine, code=volume.meta.get("qform_code") or 1)
    img.set_sform(volume.affine, code=volume.meta.get("sform_code") or 1)
    return atomic_write(path, lambda tmp: nib.save(img, tmp), overwrite)


def _nrrd():
    try:
        import nrrd
    except ImportError:
        raise ImportError(f"NRRD files need the optional pynrrd package: {NRRD_EXTRA}") from None
    return nrrd


def read_nrrd(path: Path) -> Volume:
    nrrd = _nrrd()
    data, header = nrrd.read(str(path), index_order="F")
    if data.ndim != 3:
        raise ValueError(f"{path}: NRRD with {data.ndim} dimensions; medip reads 3D scalar NRRD")
    space = str(header.get("space", "left-posterior-superior")).lower()
    directions = np.asarray(header.get("space directions", np.eye(3)), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = directions.T
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if space in ("left-posterior-superior", "lps"):
        affine = LPS_TO_RAS @ affine
    elif space not in ("right-anterior-superior", "ras"):
        raise ValueError(f"{path}: NRRD space {space!r} is not supported (use LPS or RAS)")
    return Volume(data, affine, source=path, meta={"format": "nrrd"})


def write_nrrd(volume: Volume, path: Path, overwrite: bool = False) -> Path:
    nrrd = _nrrd()
    lps = np.linalg.inv(LPS_TO_RAS) @ volume.affine
    header = {"space": "left-posterior-superior", "space directions": lps[:3, :3].T,
              "space origin": lps[:3, 3], "kinds": ["domain"] * 3}
    return atomic_write(path, lambda tmp: nrrd.write(str(tmp), volume.array, header,
                                                     index_order="F"), overwrite)


def read_npy(path: Path) -> Volume:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None
    if data.ndim not in (2, 3) or np.iscomplexobj(data):
        raise ValueError(f"{path}: a real 2D or 3D array is needed, got {data.shape} {data.dtype}")
    return Volume(data, source=path, meta={"format": "npy"})


def write_npy(volume: Volume, path: Path, overwrite: bool = False) -> Path:
    return atomic_write(path, lambda tmp: np.save(tmp, volume.array), overwrite)


def read_picture(path: Path) -> Volume:
    """PNG / TIFF: a 2D picture (grey levels kept, 16-bit included) or a TIFF page stack."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        data = tifffile.imread(path)
    else:
        from PIL import Image

        with Image.open(path) as img:
            if img.mode not in ("L", "I", "I;16", "F"):
                img = img.convert("L")
            data = np.asarray(img)
    if data.ndim not in (2, 3):
        raise ValueError(f"{path}: a grey-level picture or page stack is needed, got {data.shape}")
    return Volume(data.T.astype(np.float32), source=path, meta={"format": "picture"})
