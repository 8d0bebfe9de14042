"""What each task is, without loading torch: its name and help, the options it takes, its fit
defaults, and what the volume driver may do with it. The command line builds each command's
options from here, the job options check against it, and the Task objects read their defaults
from it, so each fact has one owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import defaults


@dataclass(frozen=True)
class TaskSpec:
    """The static facts of one task.

    ``options``: the task's own options (beyond the driver's shared ones); ``voxelwise``: its
    operator acts voxel by voxel, so a volume can be cut into patches and slabs of slices;
    ``modes``: the volume strategies it supports; ``lr``/``residual``/``tv``/``detail``: the fit
    defaults the benchmarks chose (``tv``: :func:`medip.fit`'s total-variation prior;
    ``detail``: its fine-detail weight on the residual); ``wiener``: the result is refined by the
    empirical Wiener filter that it and the task's noise level imply
    (:func:`medip.engine.wiener.wiener_refine`; tasks without it refuse the option); ``slab``: slices
    per fit in ``slices`` mode; ``noise_free``: whether its measurements can be exact
    (``noise_free=True`` accepted). Every task's fits run the generator preset
    :data:`medip.defaults.PRESET`.
    """

    name: str
    summary: str
    input_help: str
    options: tuple[str, ...] = ()
    voxelwise: bool = False
    modes: tuple[str, ...] = ("slices", "3d")
    lr: float = 0.01
    residual: bool = False
    tv: float = 0.0
    detail: float = 0.0
    wiener: bool = False
    slab: int = 1
    noise_free: bool = False
    fixed_axis: bool = False  # the measurement is a stack of 2D measurements along its first axis
    methods: tuple[str, ...] = ("dip",)  # reconstruction methods offered (medip.defaults.METHODS)


_SCAN = "scan (DICOM folder/file, NIfTI, NRRD, npy, PNG/TIFF)"

# Denoising slab: on 25 slices of the 2 mm T1 brain (noise 25/255 of the range) 3 slices per fit
# gave +1.2 dB over 1 in the same time, 5 gave +0.6 dB (benchmarks/results/2026-11-23-vm.md).
DENOISE_SLAB = 3
# Denoising's TV prior (fit(tv=)): its weight follows the noise power, so one strength serves
# every noise level. On the stop test bed's 12 images (4 scans, noise 10/25/50 of 255), the stop
# live, it raised what the default returns by a median +0.33 dB (-0.34 to +1.62: gains at 25 and
# 50/255, small losses at 10/255), stopping 1.3-2.9x as many steps in at 25 and 50/255
# (benchmarks/results/2026-12-03-vm-denoise-tv.md); the 256^2 demo went from 31.21 to 33.14 dB.
DENOISE_TV = 4.0
# Denoising's fine-detail weight on the residual (fit(detail=), medip.engine.losses.detail_weight):
# on the stop test bed's 12 images, the stop live, with the TV prior in both, it raised what the
# default returns by a median +0.11 dB (-0.28 to +0.98; +0.17 to +0.98 at 10/255, where a plain
# fit is still learning detail when its budget ends and medip was furthest behind BM3D), in a
# median 0.96x the time (benchmarks/results/2026-12-04-vm-denoise-detail.md). Screened first on
# five of those images: lr 0.02 (+0.13 dB at 10/255, -0.5 on another) and a fixed high-pass
# weight (+0.85 dB at 10/255, -1.6 dB at 50/255: it fits the noise's frequencies) lost. The
# strength, 4, was set before the run and not tuned on it.
DENOISE_DETAIL = 4.0
# Denoising's result is refined by the empirical Wiener filter it implies, its window and shrinks
# chosen by Stein's unbiased risk estimate: see medip.engine.wiener for the measurement.
DENOISE_WIENER = True
# Super-resolution fits the correction to the interpolated scan at lr 0.02: x2 on the benchmark's
# CT slice it beat bicubic within a few hundred steps where a cold fit at 0.01 needs thousands.
SUPERRES_LR = 0.02
# CT's fits run the default preset (fast). With the plain residual, skip had won at equal time
# (benchmarks/results/2026-12-03-vm-ct-skip.md); with the ramp-weighted residual that fit runs
# now (Radon.preconditioner), fast returned more on 11 of the stop test bed's 12 sparse-view
# images (median +0.76 dB, -0.28 to +1.35) in 1.06x the total time, the shipped stop live:
# benchmarks/results/2026-12-03-vm-ct-precondition-fast.md against -ct-precondition.md.

SPECS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    TaskSpec("denoise", "remove noise from a scan", _SCAN, voxelwise=True,
             modes=("slices", "3d", "patches"), slab=DENOISE_SLAB, tv=DENOISE_TV,
             detail=DENOISE_DETAIL, wiener=DENOISE_WIENER),
    TaskSpec("inpaint", "fill unknown voxels (--mask FILE: nonzero = known)", _SCAN,
             options=("mask",), voxelwise=True, modes=("slices", "3d", "patches"),
             noise_free=True),
    TaskSpec("superres", "super-resolve by integer factors (--factor 2 or 2,2,1 per axis)", _SCAN,
             options=("factor", "kernel"), lr=SUPERRES_LR, residual=True, noise_free=True),
    TaskSpec("ct", "reconstruct CT slices from sinograms (+ JSON geometry) or --simulate-from a "
             "CT scan", "sinogram stack (.npy/.tif, (slices,) angles, detectors)",
             options=("geometry", "simulate_from", "angles", "photons"), fixed_axis=True),
    TaskSpec("mri", "reconstruct MRI from multi-coil raw data (ISMRMRD, TWIX, fastMRI HDF5, "
             "npy; Cartesian or non-Cartesian; all slices)",
             "raw data: ISMRMRD .h5/.mrd, Siemens TWIX .dat, fastMRI .h5 (slices, coils, H, W), "
             "or .npy (coils, H, W) / (coils, D, H, W)",
             options=("mask", "acceleration", "center_fraction", "maps", "coils", "prewhiten",
                      "part", "method"), noise_free=True, fixed_axis=True,
             methods=defaults.METHODS),
)}
#: The named tasks (the command line's commands).
TASKS = tuple(SPECS)
#: The tasks whose volumes may be cut into patches and slabs.
VOXELWISE = tuple(name for name in TASKS if SPECS[name].voxelwise)
#: A scan measured through a user's own operator (``reconstruct_volume(scan, A, mode="3d")``).
SPECS["operator"] = TaskSpec("operator", "a scan measured through a given operator", _SCAN,
                             modes=("3d",))


def spec_of(task: str) -> TaskSpec:
    """The spec of a task name; a clear error naming the choices otherwise."""
    from ..errors import InputError

    if task not in SPECS:
        raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    return SPECS[task]
