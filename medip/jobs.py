"""One job: read a scan or measurement, reconstruct it, write the output with its JSON sidecar.

The command line and the batch runner both call :func:`run_job`; the sidecar records the command,
every resolved option, versions, seed, device, stop steps, wall time, input checksums and,
with a reference, PSNR/SSIM, so that a result can be traced and reproduced.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .io import Volume, atomic_write, load, save, save_preview
from .io.api import derived_path
from .io.preview import default_window
from .tasks import TASKS, fit_defaults

ALL_TASKS = (*TASKS, "ct", "mri")


@dataclass
class JobOptions:
    """Every option of a reconstruction job (the CLI's flags, a TOML config's keys)."""

    task: str = "denoise"
    mode: str = "slices"
    preset: str = "fast"
    max_steps: int = 2000
    warm_steps: int | None = None
    slab: int | None = None
    stopper: str = "auto"
    lr: float | None = None
    seed: int = 0
    ensemble: int = 1
    device: str = "auto"
    threads: int | None = None
    series: str | None = None
    frame: int | None = None
    axis: int = 2
    patch: int = 64
    mask: str | None = None
    noise_free: bool = False
    factor: list[int] | None = None
    kernel: str = "bicubic"
    acceleration: float | None = None
    center_fraction: float = 0.08
    angles: int = 60
    photons: float | None = None
    simulate_from: str | None = None
    geometry: str | None = None
    reference: str | None = None
    format: str | None = None
    overwrite: bool = False
    preview: bool = False
    report: bool = False
    progress: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def stopper_value(self) -> str | int:
        return int(self.stopper) if str(self.stopper).isdigit() else self.stopper

    def learning_rate(self) -> float:
        """The given ``lr``, else the task's default (:func:`medip.tasks.fit_defaults`)."""
        return self.lr if self.lr is not None else fit_defaults(self.task)["lr"]


def sidecar_of(output: Path) -> Path:
    """``out.nii.gz`` -> ``out.nii.gz.medip.json``; a DICOM folder ``out`` -> ``out.medip.json``."""
    return output.parent / f"{output.name}.medip.json"


def sha256(path: Path) -> str:
    """Checksum of a file, or of a folder's files in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    import monai
    import nibabel
    import pydicom

    return {"medip": __version__, "torch": torch.__version__, "monai": monai.__version__,
            "pydicom": pydicom.__version__, "nibabel": nibabel.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def run_job(input_path: str | Path, output_path: str | Path, options: JobOptions,
            command_line: list[str] | None = None, save_interrupted: bool = True) -> dict:
    """Reconstruct ``input_path`` into ``output_path``; returns the sidecar's record.

    An interrupted 3D fit (Ctrl-C) still writes its best output so far, marked
    ``"interrupted": true``, unless ``save_interrupted`` is False (batch runs), when the
    interrupt propagates and nothing is written.
    """
    from .reconstruct_jobs import reconstruct

    if options.task not in ALL_TASKS:
        raise ValueError(f"unknown task {options.task!r}; choose one of {ALL_TASKS}")
    source, output = Path(input_path), Path(output_path)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    sidecar = sidecar_of(output)
    for existing in (output, sidecar):
        if existing.exists() and not options.overwrite:
            raise FileExistsError(f"{existing} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    reference = load(options.reference) if options.reference else None  # fail before the work
    outcome = reconstruct(source, options, reference)
    if outcome.interrupted and not save_interrupted:
        raise KeyboardInterrupt
    metrics = _metrics(outcome.result, reference, options.reference)
    description = f"medip {options.task} (DIP {options.preset}, {outcome.summary})"
    save(outcome.result, output, like=outcome.measured, overwrite=options.overwrite,
         format=options.format, description=description)
    record = {
        "command": command_line if command_line is not None else sys.argv,
        "input": str(source), "output": str(output), "options": asdict(options),
        "versions": versions(), "device": outcome.device, "seed": options.seed,
        "stop_steps": outcome.stop_steps, "steps_run": outcome.steps_run,
        "interrupted": outcome.interrupted,
        "seconds": round(time.perf_counter() - start, 3),
        "input_sha256": {str(p): sha256(p) for p in outcome.inputs},
        "metrics": metrics,
    }
    if options.preview:
        record["preview"] = str(_preview(outcome, output, options.overwrite))
    if options.report:
        from .report import write_report

        record["report"] = [str(p) for p in write_report(outcome, output, options.overwrite)]
    atomic_write(sidecar, lambda tmp: tmp.write_text(json.dumps(record, indent=1, default=str)),
                 options.overwrite)
    return record


def _metrics(result: Volume, reference: Volume | None, name: str | None) -> dict:
    if reference is None:
        return {}
    from .metrics import psnr, ssim

    ref = reference.array
    if ref.shape != result.shape:
        raise ValueError(f"{name}: the reference has shape {ref.shape} but the result has "
                         f"{result.shape}")
    a, b = torch.from_numpy(result.array), torch.from_numpy(ref)
    return {"psnr_db": psnr(a, b), "ssim": ssim(a, b), "data_range": float(np.ptp(ref))}


def _preview(outcome, output: Path, overwrite: bool) -> Path:
    shown = [outcome.measured, outcome.result] if outcome.measured.shape == outcome.result.shape \
        else [outcome.result]
    return save_preview(shown, derived_path(output, "preview", ".png"),
                        window=default_window(outcome.result), overwrite=overwrite)
