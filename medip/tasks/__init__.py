"""One Task per task (denoise, inpaint, superres, ct, mri): each builds its fit problems from its
measurement and options, knows its fit defaults, its output geometry and units, and whether it
is voxel-wise. :func:`make_task` binds a task name to a measurement. The static facts are in
:mod:`medip.tasks.specs`, which loads without torch: the names below load on first use.
"""

from __future__ import annotations

from .._lazy import lazy_attributes

_WHERE = {"Problem": "base", "Task": "base", "CT": "ct", "MU_WATER_70KEV": "ct",
          "hu_to_mu": "ct", "mu_to_hu": "ct", "MRI": "mri", "Denoise": "restore",
          "Inpaint": "restore", "OperatorTask": "restore", "SuperRes": "restore",
          "normalise_factors": "restore", "upsampled_affine": "restore", "SPECS": "specs",
          "TASKS": "specs", "TaskSpec": "specs", "spec_of": "specs", "TASK_CLASSES": "registry",
          "fit_defaults": "registry", "make_task": "registry"}
__all__ = sorted(_WHERE)

__getattr__ = lazy_attributes(__name__, _WHERE, globals())
