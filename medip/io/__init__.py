"""Reading and writing scans, sinograms and k-space; every write is atomic and never overwrites.

Names are imported on first use, so that ``medip.io.registry`` (the format table the command line
reads) loads without the readers' dependencies.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_WHERE = {"load": "api", "save": "api", "header_shape": "api", "atomic_write": "atomic", "DicomError": "dicom_read",
          "KSpace": "acquisition", "load_kspace": "kspace", "read_kspace": "kspace",
          "save_preview": "preview", "Sinogram": "sinogram", "load_sinogram": "sinogram",
          "save_sinogram": "sinogram", "sidecar_path": "sinogram", "Volume": "volume"}
__all__ = sorted(_WHERE)

__getattr__ = lazy_attributes(__name__, _WHERE, globals())
