"""Provenance: the JSON sidecar beside every output, input checksums and library versions, so a
result can be traced and reproduced."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

from .._version import __version__
from ..io import atomic_write


def sidecar_of(output: Path) -> Path:
    """``out.nii.gz`` -> ``out.nii.gz.medip.json``; a DICOM folder ``out`` -> ``out.medip.json``."""
    return output.parent / f"{output.name}.medip.json"


def sha256(path: Path) -> str:
    """Checksum of a file, or of a folder's files in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """The versions of medip and of the libraries a result depends on."""
    import monai
    import nibabel
    import numpy
    import pydicom
    import torch

    return {"medip": __version__, "torch": torch.__version__, "monai": monai.__version__,
            "pydicom": pydicom.__version__, "nibabel": nibabel.__version__,
            "numpy": numpy.__version__, "python": platform.python_version()}


def write_sidecar(output: Path, record: dict, overwrite: bool = False) -> Path:
    """``record`` as the JSON sidecar of ``output`` (atomically)."""
    return atomic_write(sidecar_of(output),
                        lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=str)),
                        overwrite)
