"""MONAI integration: Deep Image Prior restoration as a dictionary transform.

``DeepImagePriord(keys="image", task="denoise")`` fits a DIP to each channel of a channel-first
image (2D or 3D, e.g. from ``LoadImaged(..., ensure_channel_first=True)``) and replaces it with
the restored one, keeping MONAI's metadata (affine included); the per-voxel variance is stored
under ``"<key>_dip_variance"``.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import MapTransform

from ..io import Volume
from ..reconstruct import reconstruct_volume


class DeepImagePriord(MapTransform):
    """Restore ``keys`` with :func:`medip.reconstruct_volume` (``task``, ``mode`` and options).

    2D images always run as one slice; 3D images use ``mode`` (default ``"3d"``). Options such
    as ``max_steps``, ``generator``, ``seed`` or ``mask``/``factors`` go to the driver.
    """

    def __init__(self, keys: Hashable | Sequence[Hashable], task: str = "denoise",
                 mode: str = "3d", allow_missing_keys: bool = False, **options) -> None:
        super().__init__(keys, allow_missing_keys)
        self.task, self.mode, self.options = task, mode, options
        self.options.setdefault("progress", False)

    def _restore(self, image: torch.Tensor, affine: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        array = image.detach().cpu().numpy().astype(np.float32)
        if array.ndim not in (3, 4):
            raise ValueError(f"DeepImagePriord: expected a channel-first 2D or 3D image, got "
                             f"shape {array.shape}; add EnsureChannelFirstd before it")
        is_2d = array.ndim == 3
        outputs, variances = [], []
        for channel in array:
            volume = Volume(channel[..., None] if is_2d else channel, _affine_4x4(affine))
            result = reconstruct_volume(volume, self.task, "slices" if is_2d else self.mode,
                                        **self.options)
            restored, variance = result.volume.array, result.variance.array
            outputs.append(restored[..., 0] if is_2d else restored)
            variances.append(variance[..., 0] if is_2d else variance)
        return torch.from_numpy(np.stack(outputs)), torch.from_numpy(np.stack(variances))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            meta = dict(image.meta) if isinstance(image, MetaTensor) else {}
            meta.pop("affine", None)  # set explicitly below
            affine = image.affine if isinstance(image, MetaTensor) else np.eye(4)
            restored, variance = self._restore(torch.as_tensor(image), np.asarray(affine))
            d[key] = MetaTensor(restored, meta=meta, affine=affine)
            d[f"{key}_dip_variance"] = MetaTensor(variance, meta=dict(meta), affine=affine)
        return d


def _affine_4x4(affine: np.ndarray) -> np.ndarray:
    """MONAI keeps a 3x3 affine for 2D images: lift it to 4x4 with a unit third axis."""
    if affine.shape == (4, 4):
        return affine
    lifted = np.eye(4)
    lifted[:2, :2], lifted[:2, 3] = affine[:2, :2], affine[:2, 2]
    return lifted
