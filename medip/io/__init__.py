"""Reading and writing scans, sinograms and k-space; every write is atomic and never overwrites."""

from .api import load, save
from .atomic import atomic_write
from .dicom_read import DicomError
from .kspace import load_kspace
from .preview import save_preview
from .sinogram import load_sinogram, save_sinogram, sidecar_path
from .volume import Volume

__all__ = ["DicomError", "Volume", "atomic_write", "load", "load_kspace", "load_sinogram", "save",
           "save_preview", "save_sinogram", "sidecar_path"]
