"""The Task interface: what the volume driver asks of every task.

A Task is bound to one measurement (a scan, a sinogram stack, k-space). It keeps the measurement
as an array in its own *array order* (a scan: ``(i, j, k)``; a stack of 2D measurements: slices
first), and answers, for a region of that array, the fit problem that explains it: the
operator, the measured values and the loss. It turns each fit's image back into physical units
and the whole array into output volumes with geometry. The driver cuts regions (planes with
their neighbours as channels, patches, or everything) and never asks which task it is running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

import numpy as np
import torch

from ..engine.fitting import Result, robust_scale
from ..engine.losses import Loss
from ..engine.wiener import Refined
from ..errors import InputError
from ..io.volume import Volume
from ..operators import LinearOperator
from .specs import TaskSpec

Region = tuple[slice, ...]


def _first_channel(x: torch.Tensor) -> torch.Tensor:
    return x[0]


@dataclass
class Problem:
    """One fit: ``y`` ``(1, channels, *A.out_shape)`` measured through ``A``, with ``loss``.

    ``image_shape`` is the spatial shape of the fitted image; ``to_image`` and ``to_variance``
    map the fit's ``(1, C, ...)`` image and variance map to ``(C', *image_shape)`` tensors in
    the task's output units (real, except a complex MRI output).
    """

    A: LinearOperator
    y: torch.Tensor
    image_shape: tuple[int, ...]
    loss: str | Loss = "mse"
    to_image: Callable[[torch.Tensor], torch.Tensor] = _first_channel
    to_variance: Callable[[torch.Tensor], torch.Tensor] = _first_channel
    #: The measurement noise level per sample (``E|n|^2``'s root, in ``y``'s units) where the
    #: task knows or estimates it: the DIP stop waits for the loss it leaves (the noise floor,
    #: ``fit(noise_level=)``) and the classical methods set their weight from it.
    sigma: float | None = None

    def images(self, result: Result) -> tuple[torch.Tensor, torch.Tensor]:
        """The fit's image and variance (zeros without a variance map), real, on the CPU."""
        image = self.to_image(result.image.detach()).cpu()
        if result.variance_map is None:  # fixed-step stopping and classical methods keep none
            return image, torch.zeros(image.shape)
        return image, self.to_variance(result.variance_map.detach()).cpu()


class Task:
    """Base of the five tasks. Subclasses set :attr:`spec` and implement :attr:`shape` and
    :meth:`problem` and, where their array order, units or grid differ from the scan's,
    :meth:`to_volumes` and :meth:`fit_reference`."""

    spec: ClassVar[TaskSpec]
    #: The measurement's noise level, the root of ``E|n|^2`` per measured sample in its units,
    #: where the task knows or estimates it (every problem it makes carries it: ``Problem.sigma``).
    sigma: float | None = None
    #: Whether the measurement carries no measurable noise, as the task judges from the data
    #: where it can (inpainting): the driver then fits it noise-free unless told otherwise.
    exact: bool = False
    #: The measurement as a viewable volume (the scan itself, an FBP, a zero-filled image):
    #: what previews show beside the result, and the template for derived DICOM output.
    measured: Volume

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def shape(self) -> tuple[int, ...]:
        """The measurement's array shape in array order (the driver cuts regions of it)."""
        raise NotImplementedError

    def stack_axis(self, axis: int | None) -> int:
        """The array axis ``slices`` mode walks along; ``axis`` is the user's choice (scans:
        0, 1 or 2, default 2; stacks of 2D measurements: only their slice axis)."""
        if self.spec.fixed_axis:
            if axis not in (None, 0):
                raise InputError(f"{self.name} reconstructs the measured slices in order; axis="
                                 f"{axis} does not apply (leave it out)")
            return 0
        axis = 2 if axis is None else axis
        if axis not in (0, 1, 2):
            raise InputError(f"axis must be 0, 1 or 2, got {axis}")
        return axis

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        """The fit problem of ``region`` (slices of the array). With ``plane_axis`` the region's
        extent along that axis becomes channels of a 2D fit; without, it is one 3D fit."""
        raise NotImplementedError

    def refine(self, image: torch.Tensor, axis: int) -> Refined:
        """The reconstructed ``image`` (array order, output units) refined by the empirical Wiener
        filter it implies in the planes across ``axis`` (tasks whose spec has ``wiener``)."""
        raise NotImplementedError(f"{self.name} has no Wiener refinement")

    def scale(self) -> float:
        """One normalisation for every fit of this measurement, so warm starts carry over."""
        return robust_scale(torch.from_numpy(self.measured.array))

    def to_volumes(self, image: np.ndarray, variance: np.ndarray) -> tuple[Volume, Volume]:
        """Result and variance arrays (array order) -> volumes with the output geometry."""
        units = self.measured.units
        return (self.measured.with_array(image),
                self.measured.with_array(variance, units=f"({units})^2" if units else ""))

    def fit_reference(self, volume: Volume) -> torch.Tensor:
        """A clean volume on the result's grid, in array order and fit units (only for the
        PSNR/SSIM logged per step)."""
        return torch.from_numpy(volume.array)


def region_of(shape: Sequence[int], axis: int, start: int, count: int) -> Region:
    """The slices ``start`` to ``start + count`` along ``axis`` of an array of ``shape``."""
    return tuple(slice(start, start + count) if a == axis else slice(0, n)
                 for a, n in enumerate(shape))


def cut(array: np.ndarray | torch.Tensor, region: Region, plane_axis: int | None) -> torch.Tensor:
    """``array[region]`` as a fit's ``(1, C, *spatial)`` tensor: with ``plane_axis``, that axis
    becomes the channels of a 2D problem; without, one channel of a 3D problem."""
    part = torch.as_tensor(np.ascontiguousarray(array[region]))
    if plane_axis is None:
        return part[None, None]
    return part.movedim(plane_axis, 0).contiguous()[None]
