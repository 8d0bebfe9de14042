"""Tasks by name: binding a task name and its options to a measurement, and the fit defaults."""

from __future__ import annotations

from typing import Any

from .. import defaults
from ..errors import InputError
from ..operators import LinearOperator
from .base import Task
from .ct import CT
from .mri import MRI
from .restore import Denoise, Inpaint, OperatorTask, SuperRes
from .specs import SPECS, spec_of

TASK_CLASSES: dict[str, type[Task]] = {"denoise": Denoise, "inpaint": Inpaint,
                                       "superres": SuperRes, "ct": CT, "mri": MRI}
# The Python options of each task's constructor (the command line's are in its spec).
_OPTIONS = {"denoise": (), "inpaint": ("mask",), "superres": ("factors", "kernel"),
            "ct": ("like",), "mri": ("mask", "acceleration", "center_fraction", "seed", "maps",
                                     "coils", "prewhiten", "part")}


def make_task(task: str | Task | LinearOperator, measurement: Any, **options: Any) -> Task:
    """``task`` bound to ``measurement``: a name with its options (a scan for the restoration
    tasks, a :class:`~medip.io.Sinogram` for ``ct``, :class:`~medip.io.KSpace` or a complex
    ``(coils, H, W)`` tensor for ``mri``), an operator (the scan measured through it), or a
    Task already bound (returned as it is)."""
    given = {k: v for k, v in options.items() if v is not None}
    if isinstance(task, Task):
        if given:
            raise InputError(f"options {sorted(given)} go to the task's constructor "
                             f"({type(task).__name__}(...)), not here")
        return task
    if isinstance(task, LinearOperator):
        return OperatorTask(measurement, A=task)
    spec_of(task)
    unknown = sorted(set(given) - set(_OPTIONS[task]))
    if unknown:
        takes = ", ".join(_OPTIONS[task]) or "none"
        raise InputError(f"task {task!r} takes no option {', '.join(unknown)} (its options: "
                         f"{takes})")
    return TASK_CLASSES[task](measurement, **given)


def fit_defaults(task: str | Task | LinearOperator) -> dict:
    """The options a task's 2D fits work best with (``lr``, ``residual``, ``tv``, ``detail``,
    ``generator``), from its spec; operators fit the image from scratch like denoising."""
    if isinstance(task, Task):
        spec = task.spec
    elif isinstance(task, LinearOperator):
        spec = SPECS["operator"]
    else:
        spec = spec_of(task)
    return {"lr": spec.lr, "residual": spec.residual, "tv": spec.tv, "detail": spec.detail,
            "generator": defaults.PRESET}
