"""8-bit PNG previews of volumes: one slice or a mosaic, in a window (level/width) or auto range."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .atomic import atomic_write
from .volume import Volume


def display_slice(volume: Volume, k: int) -> np.ndarray:
    """Slice ``k`` as a viewer shows it: rows ``j``, columns ``i``, anterior/superior up."""
    plane = volume.array[:, :, k].T
    j_axis = volume.affine[:3, 1]
    dominant = int(np.argmax(np.abs(j_axis)))
    if dominant > 0 and j_axis[dominant] > 0:  # j runs to Anterior or Superior: put that on top
        plane = plane[::-1]
    return plane


CT_WINDOW = (40.0, 400.0)  # soft-tissue level / width in HU


def default_window(volume: Volume) -> tuple[float, float] | None:
    """The soft-tissue window for HU volumes; None (percentiles) otherwise."""
    return CT_WINDOW if volume.units == "HU" else None


def window_to_uint8(images: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Map ``[level - width/2, level + width/2]`` (or the 0.5-99.5 percentiles) to 0-255."""
    if window is None:
        lo, hi = (float(v) for v in np.percentile(images, [0.5, 99.5]))
    else:
        level, width = window
        lo, hi = level - width / 2, level + width / 2
    scaled = np.clip((images - lo) / max(hi - lo, 1e-12), 0, 1)
    return (scaled * 255 + 0.5).astype(np.uint8)


def mosaic(planes: Sequence[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Tile equally sized planes row by row (blank tiles fill the last row)."""
    columns = columns or math.ceil(math.sqrt(len(planes)))
    rows = math.ceil(len(planes) / columns)
    h, w = planes[0].shape
    canvas = np.full((rows * h, columns * w), float(np.min(planes)), dtype=np.float32)
    for n, plane in enumerate(planes):
        r, c = divmod(n, columns)
        canvas[r * h:(r + 1) * h, c * w:(c + 1) * w] = plane
    return canvas


def save_preview(volumes: Volume | Sequence[Volume], path: str | Path, slice_index: int | None = None,
                 tiles: int = 0, window: tuple[float, float] | None = None,
                 overwrite: bool = False) -> Path:
    """PNG of one slice (default: the middle one), or a mosaic of ``tiles`` evenly spaced slices.

    Several volumes of one shape (e.g. input, result) are placed side by side in the same
    window, so that they compare fairly.
    """
    from PIL import Image

    volumes = [volumes] if isinstance(volumes, Volume) else list(volumes)
    depth = volumes[0].shape[2]
    if tiles:
        indices = np.unique(np.linspace(0, depth - 1, min(tiles, depth)).round().astype(int))
    else:
        k = depth // 2 if slice_index is None else slice_index
        if not 0 <= k < depth:
            raise ValueError(f"slice {k} is out of range: the volume has {depth} slices")
        indices = [k]
    panels = []
    for volume in volumes:
        planes = [display_slice(volume, int(k)) for k in indices]
        panels.append(mosaic(planes) if len(planes) > 1 else planes[0])
    if len({p.shape[0] for p in panels}) > 1:
        raise ValueError("side-by-side previews need volumes with the same slice size")
    row = np.concatenate(panels, axis=1)
    pixels = window_to_uint8(row, window)
    return atomic_write(path, lambda tmp: Image.fromarray(pixels).save(tmp), overwrite)
