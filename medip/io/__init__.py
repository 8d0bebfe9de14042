"""Reading and writing scans, sinograms and k-space; every write is atomic and never overwrites."""

from .atomic import atomic_write
from .kspace import load_kspace
from .sinogram import load_sinogram, save_sinogram, sidecar_path

__all__ = ["atomic_write", "load_kspace", "load_sinogram", "save_sinogram", "sidecar_path"]
