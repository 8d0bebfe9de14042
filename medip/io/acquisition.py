"""What a k-space reader returns: :class:`KSpace` (samples, trajectory, noise scan, geometry) and
:func:`stack_affine`, the raw headers' geometry as a RAS+ affine. Kept apart from the readers
(``kspace``, ``mrd``, ``twix``) so that each of them imports it without importing another."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError


@dataclass
class KSpace:
    """Multi-coil k-space of a stack of 2D acquisitions or of one 3D acquisition.

    ``data``: complex ``(slices, coils, *shape)``. Cartesian (``trajectory`` None): ``shape`` is
    the centred k-space grid, equal to the image matrix (2D, one entry per slice, or one 3D
    entry). Non-Cartesian: ``shape`` is ``(shots, samples)`` and ``trajectory`` ``(shots,
    samples, ndim)`` gives each sample's position in cycles per pixel of the image ``matrix``.
    ``affine``: maps array indices ``(slice, row, column)`` of the reconstructed stack (for 3D,
    ``(d, h, w)``) to RAS+ millimetres, from the raw header (None: unknown, unit spacing).
    ``noise``: noise-only samples ``(coils, n)`` from the scan's noise adjustment, if any.
    ``header``: what the reader learnt that a sidecar should record (format, FOV, ...).
    """

    data: torch.Tensor
    source: Path | None = None
    trajectory: torch.Tensor | None = None
    matrix: tuple[int, ...] | None = None
    affine: np.ndarray | None = None
    noise: torch.Tensor | None = None
    header: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trajectory is None:
            self.matrix = tuple(self.data.shape[2:])
        elif self.matrix is None:
            raise InputError(f"{self.where}: non-Cartesian k-space needs the image matrix")
        elif tuple(self.trajectory.shape[:-1]) != tuple(self.data.shape[2:]):
            raise InputError(f"{self.where}: the trajectory has {tuple(self.trajectory.shape)} "
                             f"positions for k-space of shape {tuple(self.data.shape)}; it must "
                             f"be (shots, samples, ndim) matching the data's last two axes")

    @classmethod
    def of(cls, kspace: torch.Tensor, source: Path | None = None) -> KSpace:
        """One acquisition ``(coils, *shape)`` (2D or 3D) as a one-entry stack."""
        return cls(kspace[None], source)

    @property
    def where(self) -> str:
        return str(self.source) if self.source else "k-space"

    @property
    def coils(self) -> int:
        return int(self.data.shape[1])

    @property
    def cartesian(self) -> bool:
        return self.trajectory is None


def stack_affine(centres: np.ndarray, read: np.ndarray, phase: np.ndarray, normal: np.ndarray,
                 spacing: tuple[float, float, float], matrix: tuple[int, int]) -> np.ndarray:
    """The RAS+ affine of a reconstructed stack indexed ``(slice, readout, phase)`` from a raw
    header's geometry, which is in the scanner's LPS+ patient coordinates (DICOM's): slice
    ``centres`` ``(slices, 3)`` mm, unit ``read``/``phase``/``normal`` directions, ``spacing``
    ``(readout, phase, slice)`` mm and the image ``matrix`` ``(readout, phase)``. The FOV centre
    is at index ``n // 2`` of each in-plane axis (the centred FFT's convention)."""
    from .volume import LPS_TO_RAS

    centres = np.atleast_2d(np.asarray(centres, dtype=np.float64))
    step = ((centres[-1] - centres[0]) / (len(centres) - 1) if len(centres) > 1
            else spacing[2] * np.asarray(normal, dtype=np.float64))
    columns = [step, spacing[0] * np.asarray(read, np.float64),
               spacing[1] * np.asarray(phase, np.float64)]
    affine = np.eye(4)
    affine[:3, :3] = np.stack(columns, axis=1)
    affine[:3, 3] = centres[0] - matrix[0] // 2 * columns[1] - matrix[1] // 2 * columns[2]
    return LPS_TO_RAS @ affine
