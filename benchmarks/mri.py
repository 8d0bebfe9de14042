"""MRI from real raw data (issue 20): medip's default DIP against the classical methods a user
runs, on the same samples, in one run (not a CI test).

Cases: the real 2-coil GRE phantom (Cartesian, ``sample_data/mr_kspace_gre_2coil.npy``) at 4x
and 8x retrospective line undersampling with two mask seeds each, and the real 8-coil spiral
(``sample_data/mr_spiral_8coil.h5``, NUFFT) keeping every 2nd and every 4th interleave. The
reference is the least-squares (CG-SENSE run to convergence) image of the fully sampled data
through the same coil maps (so every method is compared in the same coil combination); PSNR
and SSIM are taken after the least-squares global scale of each image onto the reference (the
methods' intensity scales differ by design).

Rows: zero-filled / gridding (the task's measured volume), CG-SENSE, TV and L1-wavelet
compressed sensing with the weight from the discrepancy principle (what ``--method tv`` runs),
the same with the oracle weight (best PSNR on a x2 grid from 1/8 to 32 times it: an upper
bound no user has), and medip's DIP with its defaults. Run: ``python -m benchmarks.mri [case ...]``;
``python -m benchmarks.mri step`` times a DIP step on NUFFT against Fourier data and
``python -m benchmarks.mri volume`` runs a 24-slice raw file end to end;
``python -m benchmarks.mri consistency`` studies a data-consistency step after DIP.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from .cases import SAMPLE
from .common import peak_rss_mb, write_results

import medip
from medip.engine.metrics import psnr, ssim
from medip.engine.stopping import noise_floor
from medip.engine.solvers import (FLOOR_STALL, ITERATIONS, REGULARISED, conjugate_gradient,
                                  discrepancy_weight, operator_norm)
from medip.app.simulate import simulate_raw_mri
from medip.io import Volume, read_kspace
from medip.io.mrd import write_ismrmrd
from medip.tasks import MRI

CASES = {"gre-4x-s0": ("gre", 4, 0), "gre-4x-s1": ("gre", 4, 1), "gre-8x-s0": ("gre", 8, 0),
         "gre-8x-s1": ("gre", 8, 1), "spiral-2x": ("spiral", 2, 0), "spiral-4x": ("spiral", 4, 0)}
ORACLE_FACTORS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


def _stack(kind: str):
    if kind == "gre":
        return torch.from_numpy(np.load(SAMPLE / "mr_kspace_gre_2coil.npy"))
    return read_kspace(SAMPLE / "mr_spiral_8coil.h5")


def _scored(image: np.ndarray, reference: np.ndarray) -> dict:
    image = image.astype(np.float64)
    scale = float(image.ravel() @ reference.ravel() / max(image.ravel() @ image.ravel(), 1e-30))
    x, ref = torch.from_numpy(scale * image[None, None]), torch.from_numpy(reference[None, None])
    return {"psnr": psnr(x, ref, float(reference.max())),
            "ssim": ssim(x, ref, float(reference.max()))}


def _reference(measurement) -> np.ndarray:
    """The least-squares (CG-SENSE run to convergence) image of the fully sampled data through
    the task's own coil maps, in the measured volume's orientation."""
    full = MRI(measurement).problem((slice(0, 1),), 0)
    least_squares = conjugate_gradient(full.A, full.y, None, stall=FLOOR_STALL)[0]
    return full.to_image(least_squares).numpy()[0].T.astype(np.float64)


def case_rows(name: str) -> list[dict]:
    kind, acceleration, seed = CASES[name]
    measurement = _stack(kind)
    reference = _reference(measurement)
    task = MRI(measurement, acceleration=acceleration, seed=seed)
    rows = []

    def row(method: str, image: np.ndarray, seconds: float, **extra) -> None:
        rows.append({"case": name, "method": method, **_scored(image, reference),
                     "seconds": seconds, **extra})
        print(rows[-1], flush=True)

    row("zero-filled" if kind == "gre" else "gridding", task.measured.array[..., 0], 0.0)
    for method in ("sense", "tv", "wavelet"):
        started = time.perf_counter()
        result = medip.reconstruct_volume(task, method=method, progress=False)
        weight = result.histories[0].get("weight", [None])[0] if result.histories else None
        row(method, result.volume.array[..., 0], time.perf_counter() - started, weight=weight)
    problem = task.problem((slice(0, 1),), 0)
    A, y = problem.A, problem.y
    norm = operator_norm(A, A.adjoint(y))
    for method, solver in REGULARISED.items():
        _, chosen = discrepancy_weight(A, y, problem.sigma, method)
        best = None
        for factor in ORACLE_FACTORS:
            x = solver(A, y, chosen * factor, ITERATIONS, norm=norm)
            image = problem.to_image(x).numpy()[0].T
            score = _scored(image, reference)
            if best is None or score["psnr"] > best[0]["psnr"]:
                best = (score, factor)
        rows.append({"case": name, "method": f"{method} (oracle weight)", **best[0],
                     "weight_factor": best[1]})
        print(rows[-1], flush=True)
    started = time.perf_counter()
    dip = medip.reconstruct_volume(task, progress=False)
    row("medip dip (defaults)", dip.volume.array[..., 0], time.perf_counter() - started,
        stop_step=dip.stop_steps[0])
    return rows


def summary(rows: list[dict]) -> str:
    lines = ["| case | method | PSNR dB | SSIM | s | note |", "|---|---|---|---|---|---|"]
    for r in rows:
        note = (f"weight {r['weight']:.3g}" if r.get("weight") else
                f"x{r['weight_factor']} of the discrepancy weight" if "weight_factor" in r else
                f"stop step {r['stop_step']}" if "stop_step" in r else "")
        lines.append(f"| {r['case']} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                     f"{r.get('seconds', float('nan')):.1f} | {note} |")
    gains = {}
    for r in rows:
        gains.setdefault(r["case"], {})[r["method"]] = r["psnr"]
    lines += ["", "| case | DIP - zero-filled/gridding | DIP - best user-run method |",
              "|---|---|---|"]
    for case, by in gains.items():
        base = by.get("zero-filled", by.get("gridding"))
        user = max(by[m] for m in ("sense", "tv", "wavelet"))
        lines.append(f"| {case} | {by['medip dip (defaults)'] - base:+.2f} | "
                     f"{by['medip dip (defaults)'] - user:+.2f} |")
    return "\n".join(lines) + "\n"


def step_rows(steps: tuple[int, int] = (10, 40)) -> list[dict]:
    """DIP seconds per step on the spiral (NUFFT, 8 coils, 192x192) against a Cartesian 8-coil
    acquisition of the same matrix (simulated from the spiral's gridded image), from the
    difference of a short and a longer fixed-step run (so set-up cost cancels)."""
    spiral = MRI(_stack("spiral"), acceleration=4)
    image = Volume(np.abs(spiral.measured.array), spiral.measured.affine, modality="MR")
    cartesian = MRI(simulate_raw_mri(image, coils=8, sigma_fraction=0.01, acceleration=None)[0],
                    acceleration=4)
    rows = []
    for name, task in (("cartesian 192^2, 8 coils (Fourier)", cartesian),
                       ("spiral 192^2, 8 coils (NUFFT)", spiral)):
        times = []
        for n in steps:
            started = time.perf_counter()
            medip.reconstruct_volume(task, stopper=n, max_steps=n, progress=False)
            times.append(time.perf_counter() - started)
        rows.append({"case": name, "s_per_step": (times[1] - times[0]) / (steps[1] - steps[0])})
        print(rows[-1], flush=True)
    rows[1]["ratio_to_cartesian"] = rows[1]["s_per_step"] / rows[0]["s_per_step"]
    return rows


def volume_rows(first: int = 34, count: int = 24) -> list[dict]:
    """End to end from a raw file: ``count`` axial slices of the 2 mm T1 brain as a simulated
    8-coil ISMRMRD acquisition at 4x (noise 2 % of the range, with a noise scan), read back,
    reconstructed with medip's defaults (and TV for comparison) and written as NIfTI; time,
    peak memory, PSNR against the source slices and the geometry check."""
    import tempfile

    brain = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz")
    affine = brain.affine.copy()
    affine[:3, 3] = (brain.affine @ [0, 0, first, 1])[:3]
    source = Volume(brain.array[:, :, first:first + count], affine, modality="MR")
    truth = source.array.transpose(1, 0, 2).astype(np.float64)  # (phase, readout, slice)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        raw = write_ismrmrd(Path(folder) / "brain.h5",
                            simulate_raw_mri(source, sigma_fraction=0.02, acceleration=4)[0])
        for method in ("tv", "dip"):
            started = time.perf_counter()
            task = MRI(read_kspace(raw))
            result = medip.reconstruct_volume(task, method=method, progress=False)
            medip.save(result.volume, Path(folder) / f"{method}.nii.gz")
            seconds = time.perf_counter() - started
            geometry = float(np.abs(result.volume.affine - source.affine[:, [1, 0, 2, 3]]).max())
            rows.append({"case": f"brain {count} slices, 8 coils, 4x, from ISMRMRD",
                         "method": method, **_scored(result.volume.array, truth),
                         "zero_filled_psnr": _scored(task.measured.array, truth)["psnr"],
                         "seconds": seconds, "peak_rss_mb": peak_rss_mb(),
                         "affine_max_abs_error_mm": geometry})
            print(rows[-1], flush=True)
    return rows


def consistency_rows() -> list[dict]:
    """Issue 20, a study (not a default): does a data-consistency step after DIP help? DIP's
    complex image ``x`` (defaults), then CG on the residual ``y - A x`` started at zero and
    stopped by the discrepancy principle (none when the residual is already at the noise energy
    ``m sigma^2``), against one CG iteration always, and CG-SENSE. On the real GRE (reference: the
    least-squares image of all the data, which holds the same noise on the sampled lines) and on
    8-coil simulations of two 2 mm brain slices at 2 % and 5 % noise (reference: the clean
    slice), 4x and 8x, mask seed 0 (GRE: 0 and 1)."""
    brain, gre = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz"), _stack("gre")
    gre_reference = _reference(gre)
    cases = [(f"GRE {a}x seed {s}", gre, gre_reference, a, s) for a in (4, 8) for s in (0, 1)]
    for z in (40, 55):
        source = Volume(brain.array[:, :, z:z + 1], brain.affine, modality="MR")
        truth = source.array.transpose(1, 0, 2)[..., 0].astype(np.float64)
        for fraction in (0.02, 0.05):
            raw = simulate_raw_mri(source, sigma_fraction=fraction, acceleration=None)[0]
            cases += [(f"brain z={z} {fraction:.0%} noise {a}x", raw, truth, a, 0)
                      for a in (4, 8)]
    rows = []
    for name, measurement, truth, acceleration, seed in cases:
        task = MRI(measurement, acceleration=acceleration, seed=seed, part="complex")
        dip = medip.reconstruct_volume(task, progress=False)
        problem = task.problem((slice(0, 1),), 0)
        A, y = problem.A, problem.y
        x = torch.from_numpy(np.ascontiguousarray(dip.volume.array.transpose(2, 1, 0)))[None]
        residual = y - A.forward(x)
        ratio = float(residual.abs().square().mean()) / noise_floor(y, problem.sigma)
        step, iterations, _ = conjugate_gradient(A, residual, problem.sigma)
        images = {"dip (defaults)": x, f"dip + CG, discrepancy ({iterations} it.)": x + step,
                  "dip + 1 CG it.": x + conjugate_gradient(A, residual, None, 1, stall=0.0)[0],
                  "CG-SENSE": conjugate_gradient(A, y, problem.sigma)[0]}
        for method, image in images.items():
            magnitude = problem.to_image(image).abs().numpy()[0].T
            rows.append({"case": name, "method": method, **_scored(magnitude, truth),
                         "dip residual / noise energy": ratio, "dip stop": dip.stop_steps[0]})
            print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    torch.set_num_threads(2)
    chosen = sys.argv[1:] or list(CASES)
    if chosen == ["step"]:
        table = step_rows()
        write_results("mri-step", table, list(table[1]))
    elif chosen == ["consistency"]:
        table = consistency_rows()
        write_results("mri-consistency", table, list(table[0]))
    elif chosen == ["volume"]:
        table = volume_rows()
        write_results("mri-volume", table, list(table[0]))
    else:
        all_rows = [r for name in chosen for r in case_rows(name)]
        # a subset of the cases is stored apart, so it never replaces the day's full run
        name = "mri-raw" if set(chosen) == set(CASES) else "mri-raw-" + "-".join(chosen)
        write_results(name, all_rows, [], text=summary(all_rows))
