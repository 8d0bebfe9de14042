"""Inpainting: keep the known pixels/voxels, zero the missing ones."""

from __future__ import annotations

import torch

from .base import LinearOperator, check_tensor, real_dtype


class Mask(LinearOperator):
    """``A x = m * x`` with a binary mask ``m`` (nonzero/True = known), broadcastable to the image.

    The mask may be ``(H, W)``, ``(D, H, W)`` or any shape that broadcasts to ``(B, C, *spatial)``.
    ``A`` is self-adjoint; ``pinv`` returns the masked data (missing values zero).
    """

    def __init__(self, mask: torch.Tensor) -> None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"Mask: mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.is_complex():
            raise TypeError("Mask: mask must be boolean or real 0/1 values, got a complex tensor")
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("Mask: mask must hold only 0 and 1 (or be boolean); "
                                 "threshold it first, e.g. mask > 0")
            mask = mask != 0
        if mask.ndim < 2 or mask.ndim > 5:
            raise ValueError(f"Mask: mask has shape {tuple(mask.shape)}; expected 2 to 5 dimensions")
        super().__init__()
        self.mask = mask

    @property
    def known_fraction(self) -> float:
        """The fraction of entries that are measured."""
        return float(self.mask.float().mean())

    def _mask_like(self, x: torch.Tensor) -> torch.Tensor:
        try:
            shape = torch.broadcast_shapes(self.mask.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape != x.shape:
            raise ValueError(f"Mask: mask of shape {tuple(self.mask.shape)} does not broadcast to the "
                             f"image shape {tuple(x.shape)}")
        return self.mask.to(device=x.device, dtype=real_dtype(x))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", self.name)
        return self.forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self._mask_like(x)

    adjoint = forward

    def row_gram(self, x: torch.Tensor) -> float | None:
        return 1.0

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The measured values where known, ``x`` elsewhere (bit-exact, unlike ``x + A(y - x)``)."""
        return torch.where(self._mask_like(x) != 0, y, x)
