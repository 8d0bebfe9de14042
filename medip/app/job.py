"""One job: read a measurement, reconstruct it through its task with the volume driver, write the
output and its JSON sidecar.

The command line and the batch runner both call :func:`run_job`; the sidecar records the command,
every resolved option, versions, seed, device, stop steps, wall time, input checksums and,
with a reference, PSNR/SSIM, so that a result can be traced and reproduced. Reading each task's
measurement (a scan, a mask, sinograms or a simulation, k-space) is the only place that knows
which files a task takes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..engine.device import fit_threads
from ..io import Volume, header_shape, load, load_sinogram, read_kspace, save, save_preview
from ..io.api import derived_path
from ..io.preview import default_window
from ..reconstruct import FitStart, VolumeResult, check_memory_for, reconstruct_volume
from ..tasks import CT, MRI, Task, make_task
from .options import JobOptions
from .provenance import sha256, sidecar_of, versions, write_sidecar


def _scan(source: Path, options: JobOptions) -> tuple[Task, list[Path]]:
    shape = header_shape(source)
    if options.mode == "3d" and shape is not None:  # refuse before reading gigabytes
        check_memory_for(options.generator(), shape, options.device, "3d", options.amp)
    volume = load(source, series=options.series, frame=options.frame)
    if options.task == "denoise":
        return make_task("denoise", volume), [source]
    if options.task == "superres":
        factors = options.factor
        factors = factors[0] if factors and len(factors) == 1 else factors
        return make_task("superres", volume, factors=factors, kernel=options.kernel), [source]
    if not options.mask:
        raise ValueError("inpaint needs --mask FILE (nonzero = known voxels)")
    mask = load(options.mask).array != 0
    return make_task("inpaint", volume, mask=mask), [source, Path(options.mask)]


def _ct(source: Path, options: JobOptions) -> tuple[Task, list[Path]]:
    if options.simulate_from:
        from .simulate import simulate_ct

        like = load(options.simulate_from, series=options.series, frame=options.frame)
        sinogram = simulate_ct(like, options.angles, options.photons, options.seed)
        return CT(sinogram, like), [Path(options.simulate_from)]
    return CT(load_sinogram(source, options.geometry)), [source]


def _mri(source: Path, options: JobOptions) -> tuple[Task, list[Path]]:
    inputs = [source]
    mask = None
    if options.mask and not options.acceleration:
        mask = np.load(options.mask, allow_pickle=False)
        inputs.append(Path(options.mask))
    task = MRI(read_kspace(source), mask=mask, acceleration=options.acceleration,
               center_fraction=options.center_fraction, seed=options.seed, maps=options.maps,
               coils=options.coils, prewhiten=options.prewhiten, part=options.part)
    return task, inputs


_OPEN: dict[str, Callable[[Path, JobOptions], tuple[Task, list[Path]]]] = {
    "denoise": _scan, "inpaint": _scan, "superres": _scan, "ct": _ct, "mri": _mri}


def open_task(source: Path, options: JobOptions) -> tuple[Task, list[Path]]:
    """The job's task bound to its measurement, and the input files it read."""
    if not options.simulate_from and not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return _OPEN[options.task](source, options)


def reconstruct(task: Task, options: JobOptions, reference: Volume | None = None,
                start: FitStart | None = None) -> VolumeResult:
    """:func:`medip.reconstruct_volume` with the job's options (``start``: its first fit starts
    from another scan's weights)."""
    return reconstruct_volume(
        task, mode=options.mode, axis=options.axis, slab=options.slab, patch=options.patch,
        generator=options.generator(), stopper=options.stopper_value(), max_steps=options.max_steps,
        warm_steps=options.warm_steps, lr=options.learning_rate(), tv=options.tv_strength(),
        detail=options.detail_strength(), wiener=options.wiener_refined(),
        noise_free=options.noise_free,
        seed=options.seed, ensemble=options.ensemble, device=options.device,
        threads=options.threads, amp=options.amp, progress=options.progress,
        reference=reference, method=options.method, start=start)


def run_job(input_path: str | Path, output_path: str | Path, options: JobOptions,
            command_line: list[str] | None = None, save_interrupted: bool = True,
            starts: dict | None = None) -> dict:
    """Reconstruct ``input_path`` into ``output_path``; returns the sidecar's record.

    An interrupted 3D fit (Ctrl-C) still writes its best output so far, marked
    ``"interrupted": true``, unless ``save_interrupted`` is False (batch runs), when the
    interrupt propagates and nothing is written. ``starts`` (a batch's chain of scans): the
    first fit starts from the weights it holds for a scan of this one's shape, if any (recorded
    as ``started_from``), and this scan's weights replace them.
    """
    source, output = Path(input_path), Path(output_path)
    written = [output, sidecar_of(output)] + ([Path(options.save_start)] if options.save_start
                                              else [])
    for existing in written:
        if existing.exists() and not options.overwrite:
            raise FileExistsError(f"{existing} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    reference = load(options.reference) if options.reference else None  # fail before the work
    given = FitStart.load(options.start_from) if options.start_from else None
    task, inputs = open_task(source, options)
    kind = (task.shape, repr(replace(options, series=None)))  # scans whose fits match
    previous = (starts or {}).get(kind, given)
    result = reconstruct(task, options, reference, previous)
    if result.interrupted and not save_interrupted:
        raise KeyboardInterrupt
    if starts is not None and result.start is not None and not result.interrupted:
        starts[kind] = result.start
    metrics = _metrics(result.volume, reference, options.reference)
    steps = f"stopped at step {int(np.median(result.stop_steps))} (median)"
    how = f"DIP {result.generator}, {steps}" if options.method == "dip" else options.method
    save(result.volume, output, like=result.measured, overwrite=options.overwrite,
         format=options.format, description=f"medip {options.task} ({how})")
    if options.save_start and not result.interrupted:
        result.start.save(options.save_start, overwrite=options.overwrite)
    record = {
        "command": command_line if command_line is not None else sys.argv,
        "input": str(source), "output": str(output),
        "options": {**asdict(options), "preset": result.generator,
                    "tv": options.tv_strength(), "detail": options.detail_strength(),
                    "wiener": options.wiener_refined()},
        "wiener_shrink": result.wiener_shrink, "wiener_window": result.wiener_window,
        "wiener_matched": result.wiener_matched,
        "versions": versions(), "device": result.device, "seed": options.seed,
        "threads": fit_threads(options.threads),
        "noise_free": result.noise_free,
        "stop_steps": result.stop_steps, "steps_run": result.steps_run,
        "started_from": previous.source if previous is not None else None,
        "interrupted": result.interrupted,
        "seconds": round(time.perf_counter() - start, 3),
        # the fits' time as the driver expected it before they started (all members)
        "expected_seconds": (None if result.estimate is None
                             else round(result.estimate.expected_seconds, 1)),
        "input_sha256": {str(p): sha256(p) for p in inputs},
        "metrics": metrics,
    }
    if options.preview:
        record["preview"] = str(_preview(result, output, options.overwrite))
    if options.report:
        from .report import write_report

        record["report"] = [str(p) for p in write_report(result, output, options.overwrite)]
    write_sidecar(output, record, options.overwrite)
    return record


def _metrics(result: Volume, reference: Volume | None, name: str | None) -> dict:
    if reference is None:
        return {}
    from ..engine.metrics import psnr, ssim

    ref = reference.array
    if ref.shape != result.shape:
        raise ValueError(f"{name}: the reference has shape {ref.shape} but the result has "
                         f"{result.shape}")
    a, b = torch.from_numpy(result.array), torch.from_numpy(ref)
    return {"psnr_db": psnr(a, b), "ssim": ssim(a, b), "data_range": float(np.ptp(ref))}


def _preview(result: VolumeResult, output: Path, overwrite: bool) -> Path:
    volume = result.volume
    if np.iscomplexobj(volume.array):  # a complex result is previewed by its magnitude
        volume = volume.with_array(np.abs(volume.array))
    shown = [result.measured, volume] if result.measured.shape == volume.shape else [volume]
    return save_preview(shown, derived_path(output, "preview", ".png"),
                        window=default_window(volume), overwrite=overwrite)
