"""The one table of file formats: what ``load`` reads, what ``save`` writes, what ``medip info``
describes and what batch runs discover as scans. It imports no reader, so the command line can
list the formats without loading them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    """``suffixes`` (lower case, the first one written); ``writes``: ``save`` can write it;
    ``scan``: batch runs treat such a file as one scan; ``extra``: the optional install it
    needs."""

    name: str
    suffixes: tuple[str, ...]
    writes: bool = True
    scan: bool = False
    extra: str | None = None


FORMATS: tuple[Format, ...] = (
    Format("nifti", (".nii.gz", ".nii"), scan=True),
    Format("nrrd", (".nrrd", ".nhdr"), scan=True, extra="pip install 'medip[nrrd]'  (pynrrd)"),
    Format("npy", (".npy",)),
    Format("png", (".png",)),
    Format("tiff", (".tif", ".tiff"), writes=False),
    Format("jpeg", (".jpg", ".jpeg"), writes=False),
    Format("dicom", (".dcm",)),  # also folders and files without a suffix
)
BY_NAME = {f.name: f for f in FORMATS}
#: What ``save(..., format=)`` and ``--format`` accept.
WRITABLE = tuple(f.name for f in FORMATS if f.writes)


def suffix_of(path: str | Path) -> str:
    """The file's format suffix, ``.nii.gz`` kept whole, lower case."""
    name = Path(path).name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else Path(name).suffix


def format_of(path: str | Path) -> Format | None:
    """The format a file's suffix names (None: no known suffix, e.g. DICOM without one)."""
    suffix = suffix_of(path)
    return next((f for f in FORMATS if suffix in f.suffixes), None)


def output_suffix(name: str | None) -> str:
    """The suffix a batch output of format ``name`` gets (default NIfTI; DICOM: a folder)."""
    if name in (None, "dicom"):
        return "" if name == "dicom" else BY_NAME["nifti"].suffixes[0]
    return BY_NAME[name].suffixes[0]
