"""The in-memory scan: a float32 voxel array with the affine that places it in the world.

Conventions, used everywhere in medip:

- ``array`` is indexed ``(i, j, k)`` like nibabel's: for a DICOM slice ``i`` is the column,
  ``j`` the row and ``k`` the slice (so ``array[:, :, k].T`` is slice ``k`` as a viewer shows it);
  a 2D picture is a volume with one slice (``k = 0``).
- ``affine`` maps ``(i, j, k, 1)`` to world millimetres in **RAS+**, NIfTI's convention (+x
  towards the patient's Right, +y Anterior, +z Superior). DICOM's LPS+ world (+x Left,
  +y Posterior) is converted on reading and writing with :data:`LPS_TO_RAS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """A scan: ``array`` (float32, or complex64 for a complex MRI result; ``(i, j, k)``),
    ``affine`` (4x4, voxel -> RAS+ mm) and metadata.

    ``modality`` is the DICOM modality (``"CT"``, ``"MR"``, ...) or ``"OT"``; ``units`` says what
    the values are (``"HU"`` for CT). ``source`` is the file or folder it came from; ``meta`` keeps
    what writing derived outputs needs (the DICOM template dataset, the NIfTI header, ...).
    """

    array: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    modality: str = "OT"
    units: str = ""
    source: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim == 2:
            array = array[:, :, None]
        if array.ndim != 3:
            raise ValueError(f"Volume: array must be 2D or 3D (i, j, k), got shape {array.shape}")
        self.array = np.ascontiguousarray(
            array, dtype=np.complex64 if np.iscomplexobj(array) else np.float32)
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4) or not np.isfinite(affine).all():
            raise ValueError(f"Volume: affine must be a finite 4x4 matrix, got {affine.shape}")
        if abs(np.linalg.det(affine[:3, :3])) < 1e-12:
            raise ValueError("Volume: the affine is singular (a zero voxel size or parallel axes)")
        self.affine = affine

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along ``i``, ``j`` and ``k``."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    def with_array(self, array: np.ndarray, affine: np.ndarray | None = None, **changes: Any
                   ) -> "Volume":
        """A derived volume: new voxels (and optionally geometry), the same identity/metadata."""
        return replace(self, array=array, affine=self.affine if affine is None else affine,
                       meta=dict(self.meta), **changes)

    def world(self, ijk: np.ndarray) -> np.ndarray:
        """RAS+ coordinates (mm) of voxel indices ``(..., 3)``."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def __repr__(self) -> str:
        spacing = " x ".join(f"{s:.3g}" for s in self.spacing)
        return (f"Volume(shape={self.shape}, spacing=({spacing}) mm, modality={self.modality!r}, "
                f"units={self.units!r}, source={str(self.source) if self.source else None!r})")
