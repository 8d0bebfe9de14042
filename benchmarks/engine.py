"""DIP engine benchmarks (issues 5 and 6), run on purpose, not in CI.

    python -m benchmarks.engine presets   # s/step, peak RSS, PSNR curve per preset (2D 256^2, 3D 64^3)
    python -m benchmarks.engine gap       # early-stopping gap on 6 cases: detected vs oracle PSNR
    python -m benchmarks.engine layout    # s/step of each preset in NCHW vs channels-last
    python -m benchmarks.engine batching  # members in one batched pass vs one at a time
    python -m benchmarks.engine volume    # warm vs cold slices on 16 brain slices
    python -m benchmarks.engine full-volume [3D_STEPS]   # 91x109x91 brain: slices vs one 3D fit
    python -m benchmarks.engine exact     # when inpainting's known voxels count as exact
    python -m benchmarks.engine brain-time   # the brain volume, default options: time vs estimate
    python -m benchmarks.engine chest-time   # the 16-slice chest CT at 512x512, the same
    python -m benchmarks.engine batch-workers   # 8 scans, 2 workers against one scan alone
    python -m benchmarks.engine step-times   # s/step of every preset, one member and 4 batched
    python -m benchmarks.engine poisson      # the README's low-dose CT recipe on held-out slices
    python -m benchmarks.engine refit TASK [PRESET [BUDGET]]  # a test-bed task, longer or another preset
    python -m benchmarks.engine ct-step-times [PRESETS]   # CT s/step per preset, 128^2 to 512^2
    python -m benchmarks.engine amp [TASK]     # CPU bf16 autocast against float32 on the test bed
    python -m benchmarks.engine amp-step-times # s/step in float32 and bf16, presets and sizes
    python -m benchmarks.engine optimizer-step-times   # Adam's per-tensor loop vs its fused kernel
    python -m benchmarks.engine precondition [PRESET]   # the test bed's CT, ramp-preconditioned loss

Each preset runs in its own process so that its peak RSS is its own. The stopping gap replays
the library's own stopper (``Stopper.replay``: its minimum step and patience) on the variance
history of a long run, so one run gives both the oracle (best PSNR anywhere) and the step the
shipped rule returns.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from functools import partial

import numpy as np
import torch

from .cases import SAMPLE, ct_slice, sigma_of
from .common import newest_rows, peak_rss_mb, write_results

import medip
from medip.engine.fitting import stop_rule
from medip.engine.metrics import psnr
from medip.engine.nets import PRESETS
from medip.operators import (Downsample, Fourier, Identity, Mask, Radon, acs_lines, cartesian_mask,
                             estimate_sensitivities, random_pixel_mask)
from medip.engine.stopping import ExponentialVariance, WindowedVariance
from medip.operators import gaussian, poisson
from medip.tasks import fit_defaults, hu_to_mu

NEVER = 10 ** 9


def brain_crop(edge: int) -> torch.Tensor:
    brain = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz").array
    c = [n // 2 for n in brain.shape]
    region = tuple(slice(m - edge // 2, m - edge // 2 + edge) for m in c)
    return torch.from_numpy(brain[region].copy())[None, None]


def area_plane(volume: medip.Volume, index: int, size: int) -> torch.Tensor:
    """Axial plane ``index`` of ``volume`` area-resampled to ``(1, 1, size, size)``."""
    plane = torch.from_numpy(np.ascontiguousarray(volume.array[:, :, index], np.float32))
    return torch.nn.functional.interpolate(plane[None, None], size=(size, size), mode="area")


def curve_summary(psnrs: list[float], seconds_per_step: float) -> dict:
    peak = int(np.argmax(psnrs))
    near = next(i for i, p in enumerate(psnrs) if p >= psnrs[peak] - 0.5)
    return {"peak_psnr": psnrs[peak], "peak_step": peak, "steps_to_0.5dB": near,
            "seconds_to_0.5dB": near * seconds_per_step}


def one_preset(preset: str, dims: int) -> dict:
    torch.manual_seed(0)
    if dims == 2:
        clean, steps = ct_slice(256), 600
    else:
        clean, steps = brain_crop(64), 20  # timing and memory; 3D curves: the gap benchmark
    noisy = gaussian(clean, sigma_of(clean), seed=0)
    res = medip.fit(Identity(), noisy, generator=preset, stopper=steps, reference=clean, seed=0)
    return {"preset": preset, "size": "x".join(map(str, clean.shape[2:])), "steps": steps,
            "s_per_step": res.seconds_per_step, "peak_rss_mb": peak_rss_mb(),
            "noisy_psnr": psnr(noisy, clean), **curve_summary(res.history["psnr"],
                                                                 res.seconds_per_step),
            "curve": res.history["psnr"][::10]}


def presets() -> None:
    rows = []
    for dims in (2, 3):
        for preset in PRESETS:
            out = subprocess.run([sys.executable, "-m", "benchmarks.engine", "one-preset", preset,
                                  str(dims)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1]["preset"], rows[-1]["size"], rows[-1]["s_per_step"], flush=True)
    write_results("presets", rows, ["preset", "size", "steps", "s_per_step", "peak_rss_mb",
                                    "noisy_psnr", "peak_psnr", "peak_step", "seconds_to_0.5dB"])


def gap_cases() -> dict:
    clean = ct_slice(128)
    cases = {}
    noisy = gaussian(clean, sigma_of(clean), seed=0)
    cases["denoise"] = (Identity(), noisy, clean, {}, psnr(noisy, clean))
    known = random_pixel_mask((128, 128), 0.5, seed=0)
    cases["inpaint 50%"] = (Mask(known), Mask(known)(clean), clean, {},
                            psnr(Mask(known)(clean), clean))
    down = Downsample(2)
    cases["superres x2"] = (down, down(clean), clean, fit_defaults("superres"),
                            psnr(down.pinv(down(clean)), clean))
    mu = hu_to_mu(clean).clamp(min=0)
    radon = Radon((128, 128), 60, pixel_size=1.92)  # the 0.48 mm slice at 128 px
    counts = poisson(radon(mu), photons=1e4, seed=0)
    cases["sparse CT 60 views"] = (radon, counts.sinogram, mu, {},
                                   psnr(radon.pinv(counts.sinogram), mu))
    k = torch.from_numpy(np.load(SAMPLE / "mr_kspace_gre_2coil.npy"))
    reference = Fourier((160, 160)).pinv(k[None])
    sampled = cartesian_mask((160, 160), 4, 0.08)
    maps = estimate_sensitivities(k * sampled.mask, acs_lines(sampled.mask))
    mri = Fourier((160, 160), sampled.mask, maps.sensitivities)
    y = k[None] * sampled.mask
    cases["MRI 4x"] = (mri, y, reference, {},
                       psnr(Fourier((160, 160), sampled.mask).pinv(y), reference))
    brain = brain_crop(32)
    noisy3 = gaussian(brain, sigma_of(brain), seed=0)
    cases["3D denoise 32^3"] = (Identity(), noisy3, brain, {}, psnr(noisy3, brain))
    return cases


def gap() -> None:
    rows = []
    for name, (A, y, clean, options, baseline) in gap_cases().items():
        three_d = clean.ndim == 5
        stopper = ExponentialVariance(patience=NEVER) if three_d else WindowedVariance(patience=NEVER)
        steps = 600 if three_d else 1500
        res = medip.fit(A, y, stopper=stopper, max_steps=steps, reference=clean, seed=0, **options)
        curve = res.history["psnr"]
        shipped = stop_rule("auto", clean.ndim - 2, residual=options.get("residual", False))
        stop = shipped.replay(res.history["variance"])  # the library's own rule
        rows.append({"case": name, "baseline_psnr": baseline, "detected_step": stop,
                     "detected_psnr": curve[stop], "oracle_step": int(np.argmax(curve)),
                     "oracle_psnr": max(curve), "gap_db": max(curve) - curve[stop],
                     "s_per_step": res.seconds_per_step})
        print(rows[-1], flush=True)
    gaps = [r["gap_db"] for r in rows]
    rows.append({"case": "median / worst gap", "baseline_psnr": "", "detected_step": "",
                 "detected_psnr": "", "oracle_step": "", "oracle_psnr": "",
                 "gap_db": f"{np.median(gaps):.2f} / {max(gaps):.2f}", "s_per_step": ""})
    write_results("stopping-gap", rows, list(rows[0]))


def layout() -> None:
    """Seconds per step of each preset in NCHW against channels-last (NHWC), same process,
    interleaved, median of the steps after a warm-up; 2D 128^2/256^2/512^2 and 3D 48^3."""
    rows = []
    for preset, shape, steps in [("fast", (128, 128), 30), ("fast", (256, 256), 20),
                                 ("fast", (512, 512), 10), ("fast", (48, 48, 48), 8),
                                 ("skip", (256, 256), 10), ("decoder", (256, 256), 10)]:
        times = {False: [], True: []}
        for _ in range(2):
            for last in (False, True):
                times[last].append(_step_time(preset, shape, last, steps))
        nchw, nhwc = min(times[False]), min(times[True])
        rows.append({"preset": preset, "size": "x".join(map(str, shape)), "nchw_s": nchw,
                     "channels_last_s": nhwc, "speedup": nchw / nhwc})
        print(rows[-1], flush=True)
    write_results("layout", rows, list(rows[0]))


def _step_time(preset: str, shape: tuple, channels_last: bool, steps: int, batch: int = 1,
               bf16: bool = False, fused: bool = False) -> float:
    """Median seconds per Adam step of one preset network; ``batch`` inputs share its weights
    (the most that batching members could gain); ``bf16``: CPU autocast; ``fused``: torch's
    fused Adam kernel (else its per-tensor loop)."""
    from medip.engine.nets import build_network

    torch.manual_seed(0)
    net = build_network(preset, len(shape), 1)
    if channels_last:
        net = net.to(memory_format=torch.channels_last if len(shape) == 2
                     else torch.channels_last_3d)
    gen = medip.engine.nets.Generator(net, shape, batch=batch)
    optimizer = torch.optim.Adam(gen.parameters(), lr=0.01, fused=fused)
    target, times = torch.randn(batch, 1, *shape), []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = gen(1 / 30).float()
        (out - target).square().mean().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def _vmap_step_time(preset: str, shape: tuple, members: int, steps: int) -> float:
    """Median seconds per step of ``members`` independent networks in one vmapped pass
    (``torch.func.stack_module_state``; batch norm without running statistics)."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    from medip.engine.nets import build_network

    nets = []
    for seed in range(members):
        torch.manual_seed(seed)
        nets.append(build_network(preset, len(shape), 1))
        for module in nets[-1].modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.track_running_stats, module.running_mean, module.running_var = \
                    False, None, None
    params, buffers = stack_module_state(nets)
    skeleton = copy.deepcopy(nets[0]).to("meta")
    gens = [medip.engine.nets.Generator(net, shape) for net in nets]
    z = torch.stack([g.z for g in gens])
    optimizer = torch.optim.Adam(list(params.values()), lr=0.01)
    target, times = torch.randn(1, 1, *shape), []
    run = vmap(lambda p, b, x: functional_call(skeleton, (p, b), (x,)))
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = medip.engine.nets.center_crop(run(params, buffers, z + torch.randn_like(z) / 30),
                                            shape)
        (out - target).square().mean(dim=(1, 2, 3, 4)).sum().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def batching() -> None:
    """Issue 21: can members (ensembles, slices) share one batched pass on this CPU? Per-step
    time of the default preset at 256^2 for one member, four inputs through one shared network
    (the upper bound of batching), four independent members through ``vmap``, and one member
    under bfloat16 autocast; interleaved twice, the faster of the two kept."""
    shape, preset = (256, 256), "fast"
    runs = {"1 member": lambda: _step_time(preset, shape, True, 12),
            "4 inputs, shared weights (batch 4)": lambda: _step_time(preset, shape, True, 8, 4),
            "4 members, vmap": lambda: _vmap_step_time(preset, shape, 4, 8),
            "1 member, bf16 autocast": lambda: _step_time(preset, shape, True, 12, bf16=True)}
    times = {name: [] for name in runs}
    for _ in range(2):
        for name, run in runs.items():
            times[name].append(run())
    one = min(times["1 member"])
    rows = [{"pass": name, "members": 4 if name.startswith("4") else 1, "s_per_step": min(t),
             "x_one_member": min(t) / one} for name, t in times.items()]
    write_results("batching", rows, list(rows[0]))


def volume() -> None:
    """16 brain slices: each from scratch (cold) vs the driver's warm starts, same budget.

    Steps per slice are the contention-free measure; seconds follow from them.
    """
    brain = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz")
    clean = brain.with_array(brain.array[:, :, 37:53].copy())  # 16 axial slices
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(clean.shape).astype(np.float32) * sigma_of(torch.from_numpy(clean.array))
    noisy = clean.with_array(clean.array + noise)
    ref = torch.from_numpy(clean.array)
    cold_psnr, cold_steps, cold_seconds = [], [], []
    for k in range(16):
        y = torch.from_numpy(noisy.array[:, :, k].copy())[None, None]
        res = medip.fit(Identity(), y, max_steps=1500, seed=0)
        cold_psnr.append(psnr(res.image[0, 0], ref[:, :, k]))
        cold_steps.append(res.steps_run)
        cold_seconds.append(res.elapsed)
    start = time.perf_counter()
    warm = medip.reconstruct_volume(noisy, "denoise", "slices", max_steps=1500, progress=False)
    warm_seconds = time.perf_counter() - start
    warm_psnr = [psnr(torch.from_numpy(warm.volume.array[:, :, k]), ref[:, :, k]) for k in range(16)]
    later = [n for k, n in enumerate(warm.steps_run) if k != 8]  # slice 8 is the cold start
    rows = [{"case": "16 slices cold", "seconds": sum(cold_seconds),
             "steps_per_slice_after_first": float(np.mean(cold_steps[:8] + cold_steps[9:])),
             "s_per_slice_after_first": float(np.mean(cold_seconds[:8] + cold_seconds[9:])),
             "mean_psnr": float(np.mean(cold_psnr)), "min_psnr": float(np.min(cold_psnr))},
            {"case": "16 slices warm", "seconds": warm_seconds,
             "steps_per_slice_after_first": float(np.mean(later)),
             "s_per_slice_after_first": warm_seconds * sum(later) / sum(warm.steps_run) / 15,
             "mean_psnr": float(np.mean(warm_psnr)), "min_psnr": float(np.min(warm_psnr))}]
    rows.append({"case": "cold / warm per later slice",
                 "seconds": rows[0]["seconds"] / rows[1]["seconds"],
                 "steps_per_slice_after_first": rows[0]["steps_per_slice_after_first"]
                 / rows[1]["steps_per_slice_after_first"],
                 "s_per_slice_after_first": rows[0]["s_per_slice_after_first"]
                 / rows[1]["s_per_slice_after_first"],
                 "mean_psnr": rows[1]["mean_psnr"] - rows[0]["mean_psnr"], "min_psnr": ""})
    write_results("warm-vs-cold", rows, list(rows[0]))


def full_volume() -> None:
    """The 91x109x91 brain: one 3D fit (step budget) against warm-started slices."""
    brain = medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz")
    clean = torch.from_numpy(brain.array)
    noisy = brain.with_array(gaussian(clean, sigma_of(clean), seed=0).numpy())
    rows = []
    for mode, steps in (("slices", 1500), ("3d", int(sys.argv[2]) if len(sys.argv) > 2 else 150)):
        start = time.perf_counter()
        res = medip.reconstruct_volume(noisy, "denoise", mode, max_steps=steps, progress=False)
        rows.append({"mode": mode, "max_steps": steps, "seconds": time.perf_counter() - start,
                     "noisy_psnr": psnr(torch.from_numpy(noisy.array), clean),
                     "psnr": psnr(torch.from_numpy(res.volume.array), clean),
                     "total_steps": sum(res.steps_run), "peak_rss_mb": peak_rss_mb()})
        print(rows[-1], flush=True)
    write_results("brain-3d-vs-slices", rows, list(rows[0]))


def exact() -> None:
    """Inpainting's judgement of exact data (``medip.tasks.restore.EXACT_NOISE``): the noise
    level of half the voxels of real scans as stored and with Gaussian noise of 5 and 10/255 of
    their range, over the task's scale; then, on clean 128^2 slices with half the pixels known,
    the fit that takes them as noisy (the estimated noise floor) against the noise-free one."""
    from medip.engine.fitting import robust_scale
    from medip.operators import estimate_sigma
    from medip.tasks.restore import EXACT_NOISE, scan_noise

    from .stopbed import DATA, SCANS

    rng = np.random.default_rng(0)
    rows = []
    for name in ("ct_chest_16slices.nii.gz", "ct_head_slice.dcm", "mr_brain_t1_2mm.nii.gz",
                 "mr_brain_t1_clinical.nii.gz", "mr_epi_example4d.nii.gz"):
        array = medip.load(DATA / name, frame=0 if "4d" in name else None).array
        array = array.astype(np.float32)
        known = rng.random(array.shape) > 0.5
        scale = robust_scale(torch.from_numpy(array))
        span = float(array.max() - np.quantile(array, 0.001))
        row = {"case": name, "stored": scan_noise(array, known) / scale}
        for level in (5, 10):
            noise = rng.standard_normal(array.shape).astype(np.float32) * level / 255 * span
            row[f"+{level}/255"] = scan_noise(array + noise, known) / scale
        rows.append(row)
    for name in ("chest CT", "T1 2mm"):
        clean = SCANS[name]()
        known = random_pixel_mask(clean.shape[-2:], 0.5, seed=0)
        A = Mask(known)
        y = A.forward(clean)
        sigma = estimate_sigma(y, known=known.expand_as(y))
        row = {"case": f"{name} 128^2, half known, 1500 steps", "stored": sigma / robust_scale(y)}
        for mode, how in (("noisy_psnr", {"noise_level": sigma}), ("exact_psnr", {"noise_free": True})):
            res = medip.fit(A, y, max_steps=1500, seed=0, **how)
            row[mode] = psnr(res.image, clean)
        rows.append(row)
        print(row, flush=True)
    write_results("exact", rows, ["case", "stored", "+5/255", "+10/255", "noisy_psnr", "exact_psnr"],
                  {"exact_noise": EXACT_NOISE})


def brain_time(detail: str | None = None) -> None:
    """The 91x109x91 brain with noise of 25/255 of its range, denoised with the default options
    (``detail``: that fine-detail strength instead of the task's, results named after it):
    the time the driver expected before it started against the time it took, and peak RSS."""
    strength = None if detail is None else float(detail)
    options = {} if strength is None else {"detail": strength}
    case = "defaults" if strength is None else f"defaults but detail={strength:g}"
    volume_time(medip.load(SAMPLE / "mr_brain_t1_2mm.nii.gz"), f"brain 91x109x91 denoise, {case}",
                "brain-time" if strength is None else f"brain-time-detail-{strength:g}", options)


def chest_time() -> None:
    """The 16-slice chest CT at its full 512x512, noise of 25/255 of its range, denoised with
    the default options: time against the driver's estimate, and peak RSS (issue 21)."""
    from .stopbed import DATA

    volume_time(medip.load(DATA / "ct_chest_16slices.nii.gz"), "chest CT 512x512x16 denoise, "
                "defaults", "chest-time", {})


def volume_time(volume: medip.Volume, case: str, name: str, options: dict) -> None:
    """``volume`` with noise of 25/255 of its range through ``reconstruct_volume(..., "denoise",
    **options)``: the driver's estimate, the time taken, steps, PSNR and peak RSS."""
    import logging

    clean = torch.from_numpy(volume.array.astype(np.float32))
    noisy = volume.with_array(gaussian(clean, sigma_of(clean), seed=0).numpy())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    start = time.perf_counter()
    res = medip.reconstruct_volume(noisy, "denoise", progress=False, **options)
    seconds = time.perf_counter() - start
    rows = [{"case": case, "seconds": seconds,
             "expected_seconds": res.estimate.expected_seconds,
             "expected_over_measured": res.estimate.expected_seconds / seconds,
             "s_per_step_probe": res.estimate.seconds_per_step,
             "setup_s_probe": res.estimate.setup_seconds,
             "s_per_step_run": seconds / sum(res.steps_run), "steps": sum(res.steps_run),
             "cold_steps": max(res.steps_run), "noisy_psnr": psnr(torch.from_numpy(noisy.array), clean),
             "psnr": psnr(torch.from_numpy(res.volume.array), clean), "peak_rss_mb": peak_rss_mb()}]
    write_results(name, rows, list(rows[0]))


def batch_workers() -> None:
    """8 scans (128^2 slices of the 16-slice chest CT, noise of 25/255 of their range, 300 fixed
    steps each) through ``medip batch`` with 2 workers, against one scan alone with 1 and with 2
    threads: the target is at most 1.15 x (8 x one scan / 2), i.e. nothing lost to
    oversubscribed threads. Each worker's thread count comes from the manifest."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from medip.app.batch import read_manifest, run_batch
    from medip.app.options import JobOptions

    from .stopbed import DATA

    chest = medip.load(DATA / "ct_chest_16slices.nii.gz")
    options = JobOptions(task="denoise", stopper="300", max_steps=300, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        scans = Path(tmp) / "scans"
        scans.mkdir()
        for k in range(8):
            small = area_plane(chest, 2 * k, 128)[0, 0]
            noisy = gaussian(small, sigma_of(small), seed=k).numpy()[:, :, None]
            medip.save(chest.with_array(noisy), scans / f"scan{k}.nii.gz")
        rows = []
        for threads in (1, 2):
            one = Path(tmp) / f"one-{threads}"
            one.mkdir()
            (one / "scan0.nii.gz").symlink_to(scans / "scan0.nii.gz")
            start = time.perf_counter()
            run_batch(one, Path(tmp) / f"out-one-{threads}", replace(options, threads=threads),
                      workers=1)
            rows.append({"run": f"one scan, 1 worker, {threads} thread(s)",
                         "seconds": time.perf_counter() - start, "worker_threads": threads})
        start = time.perf_counter()
        run_batch(scans, Path(tmp) / "out-8", options, workers=2)
        seconds = time.perf_counter() - start
        manifest = read_manifest(Path(tmp) / "out-8")
        threads = sorted({row["threads"] for row in manifest.values()})
        rows.append({"run": "8 scans, 2 workers", "seconds": seconds,
                     "worker_threads": ",".join(map(str, threads))})
        for row in rows[:2]:
            row["8_scans_over_ideal"] = seconds / (8 * row["seconds"] / 2)
        write_results("batch-workers", rows, ["run", "seconds", "worker_threads",
                                              "8_scans_over_ideal"])


def _fit_step_time(preset: str, shape: tuple, steps: int, A=None, amp: bool = False) -> float:
    """Median seconds per step of a real ``medip.fit`` through ``A`` (default: denoising;
    stopper, loss and optimiser included), from the step callbacks' clock."""
    ticks: list[float] = []
    A = A or Identity()
    y = A(torch.rand(1, 1, *shape))
    medip.fit(A, y, generator=preset, stopper=steps, max_steps=steps, threads=2, amp=amp,
              callbacks=[lambda info: ticks.append(time.perf_counter())])
    return float(np.median(np.diff(ticks)[1:]))


def step_times() -> None:
    """The per-step time of every preset (the README's table): one member as ``fit`` runs it,
    and 4 independent members in one vmapped pass (per step of all 4), 2D 256^2 and 3D 48^3."""
    rows = []
    for shape in ((256, 256), (48, 48, 48)):
        for preset in PRESETS:
            steps = 4 if preset == "skip-paper" or len(shape) == 3 else 10
            one = _fit_step_time(preset, shape, steps + 2)
            four = _vmap_step_time(preset, shape, 4, steps)
            rows.append({"preset": preset, "size": "x".join(map(str, shape)),
                         "one_member_s": one, "4_members_vmap_s": four,
                         "4_members_x_one": four / one})
            print(rows[-1], flush=True)
    write_results("step-times", rows, list(rows[0]))


def _taking_turns(measures: dict, rounds: int) -> dict:
    """The median of each measure (a call returning seconds), the measures taking turns
    ``rounds`` times so that a drift of the machine's speed touches all alike."""
    times = {key: [] for key in measures}
    for _ in range(rounds):
        for key, measure in measures.items():
            times[key].append(measure())
    return {key: float(np.median(values)) for key, values in times.items()}


def ct_step_times(presets: str = "fast,skip", rounds: int = 3) -> None:
    """Seconds per step of sparse-view CT fits (45 views, the stop test bed's geometry) per
    preset at 128^2 to 512^2, the presets taking turns ``rounds`` times so that a drift of the
    machine's speed touches all alike: the step ratios behind comparisons at equal time."""
    names = presets.split(",")
    rows = []
    for edge in (128, 256, 512):
        A = Radon((edge, edge), 45)
        steps = 12 if edge < 512 else 6
        times = _taking_turns({name: partial(_fit_step_time, name, (edge, edge), steps, A)
                               for name in names}, rounds)
        row = {"size": f"{edge}x{edge}", **{f"{n} s/step": times[n] for n in names}}
        row.update({f"{n} / {names[0]}": row[f"{n} s/step"] / row[f"{names[0]} s/step"]
                    for n in names[1:]})
        rows.append(row)
        print(row, flush=True)
    write_results("ct-step-times", rows, list(rows[0]))


#: Held-out slices of the 16-slice chest CT for the Poisson recipe (the stop test bed uses 8).
POISSON_SLICES = (3, 13)
#: Photons per ray in the blank scan: the README's low dose, and ten times lower.
POISSON_PHOTONS = (1e4, 1e3)
#: Steps of each cold fit, and of the likelihood's phase after the first post-log steps.
POISSON_STEPS, POISSON_PHASE = 1500, 500


def _trace(A, y, mu, **options) -> tuple[medip.Result, int]:
    """A fit with the stop disabled, and the step the rule ``fit`` builds (``stop_rule``, with
    the loss's noise floor) returns on its loss and variance history."""
    res = medip.fit(A, y, stopper=WindowedVariance(patience=NEVER), max_steps=POISSON_STEPS,
                    reference=mu, seed=0, **options)
    shipped = stop_rule("auto", 2, loss=options.get("loss", "mse"), measured=y,
                        noise_level=options.get("noise_level"), scale=res.scale)
    return res, shipped.replay(res.history["variance"], res.history["loss"])


def poisson_recipe() -> None:
    """Issue 19: low-dose CT with the Poisson likelihood, on held-out 128^2 chest slices with
    physical line integrals (60 views). Three DIP fits of the same budget, each replaying the
    rule ``fit`` builds: the likelihood from a cold start (``loss=TransmissionPoisson.of(counts)``),
    the post-log fit the CT task runs (mse on the log sinogram, noise level from
    ``estimate_sigma_1d``), and that post-log fit for the budget less ``POISSON_PHASE`` steps
    continued with the likelihood (its generator and scale kept). Beside them the scoreboard's
    CT baselines on the log sinogram (FBP with every filter, TV with the discrepancy weight and
    with the oracle weight)."""
    from medip.engine.losses import TransmissionPoisson
    from medip.engine.nets import build_generator
    from medip.operators import estimate_sigma_1d

    from .scoreboard import BASELINES
    from .stopbed import DATA, Image
    from .stopbed_report import returned_psnr

    chest = medip.load(DATA / "ct_chest_16slices.nii.gz")
    size = 128
    radon = Radon((size, size), 60, pixel_size=float(chest.spacing[0]) * chest.shape[0] / size)
    rows = []
    for index in POISSON_SLICES:
        mu = hu_to_mu(area_plane(chest, index, size))
        for photons in POISSON_PHOTONS:
            counts = poisson(radon(mu), photons=photons, seed=index)
            sino, likelihood = counts.sinogram, TransmissionPoisson.of(counts)
            sigma = estimate_sigma_1d(sino)
            row = {"case": f"chest slice {index}, I0 {photons:g}"}
            cold, stop = _trace(radon, sino, mu, loss=likelihood)
            curve = np.array(cold.history["psnr"])
            row.update(poisson_cold=returned_psnr(curve, stop),
                       poisson_cold_peak=float(curve.max()))
            post_log, stop = _trace(radon, sino, mu, noise_level=sigma)
            curve = np.array(post_log.history["psnr"])
            row.update(post_log=returned_psnr(curve, stop), post_log_stop=stop,
                       post_log_peak=float(curve.max()))
            first = POISSON_STEPS - POISSON_PHASE
            short = medip.fit(radon, sino, stopper=first, max_steps=first, seed=0,
                              noise_level=sigma, keep_generator=True)
            generator = build_generator("fast", (size, size), 1, seed=0)
            generator.load_state_dict(short.generator_state)
            phase = medip.fit(radon, sino, generator=generator, loss=likelihood,
                              stopper=POISSON_PHASE, max_steps=POISSON_PHASE, scale=short.scale,
                              reference=mu, seed=0)
            row.update(post_log_then_poisson=phase.history["psnr"][-1],
                       post_log_then_poisson_peak=max(phase.history["psnr"]),
                       s_per_step=post_log.seconds_per_step)
            row.update(BASELINES["ct"](Image(row["case"], "ct", radon, sino, mu, sigma), sigma))
            rows.append(row)
            print(row, flush=True)
    write_results("poisson", rows, list(rows[0]))


def refit(task: str = "ct", preset: str = medip.defaults.PRESET, budget: str = "1") -> None:
    """Issue 19: the stop test bed's 12 images of ``task`` (4 scans, 3 noise levels, 128^2)
    fitted with ``preset`` and the task's other defaults for ``budget`` times the recorded
    trace's length, the shipped rule replayed (``stopbed_report.shipped_rule``) on the first
    1500, 2250, ... steps (the image a fit with that step budget returns: ``fit``'s default
    budget is 3000, the recorded traces stop at 1500; and comparisons at equal time), against
    the recorded trace and the scoreboard's best user-runnable baseline (its newest stored
    JSON in ``results/``, named by date)."""
    from .stopbed import estimated_sigma
    from .stopbed_report import MIN_STEPS, returned_psnr, shipped_rule, traces

    best = {image: (row["best user-runnable"], row["its psnr"])
            for image, row in newest_rows("scoreboard").items()}
    rows = []
    for image, scale, loss, variance, psnrs in traces():
        if image.task != task:
            continue
        steps, sigma = round(float(budget) * len(psnrs)), estimated_sigma(image)
        res = medip.fit(image.operator, image.y, max_steps=steps,
                        stopper=WindowedVariance(patience=NEVER, min_steps=MIN_STEPS),
                        reference=image.clean, noise_level=sigma,
                        **{**fit_defaults(task), "generator": preset})
        curve, history = np.array(res.history["psnr"]), res.history
        rule = shipped_rule(image, res.scale, sigma)
        at = {n: returned_psnr(curve[:n], rule.replay(history["variance"][:n],
                                                      history["loss"][:n]))
              for n in sorted({*range(len(psnrs), steps, 750), steps})}
        default = returned_psnr(psnrs, shipped_rule(image, scale, sigma).replay(variance, loss))
        name, baseline = best[image.name]
        rows.append({"image": image.name, "recorded": default,
                     **{f"{preset} at {n}": value for n, value in at.items()},
                     f"{preset} - recorded": at[steps] - default,
                     f"{preset} peak": float(curve.max()), "best user-runnable": name,
                     "its psnr": baseline, f"{preset} - it": at[steps] - baseline,
                     "recorded - it": default - baseline, "s/step": res.seconds_per_step})
        print(rows[-1], flush=True)
    gains = np.array([r[f"{preset} - it"] for r in rows])
    write_results(f"{task}-{preset}" + (f"-x{budget}" if float(budget) != 1 else ""), rows,
                  list(rows[0]), {"median vs best user-runnable": float(np.median(gains)),
                                  "ahead": int((gains > 0).sum()),
                                  "ahead by 1 dB": int((gains > 1).sum())})


def precondition(preset: str | None = None) -> None:
    """Issue 19: the stop test bed's 12 sparse-view CT images (4 scans, 3 noise levels, 128^2)
    fitted as ``fit`` runs them by default, now with the ramp-preconditioned data term (the
    shipped stop live, the noise level the task estimates; ``preset`` in place of the task's):
    the returned PSNR against the plain data term's (the newest ``ct-skip`` results: the same
    fit with 1500 steps, replayed) and the scoreboard's best user-runnable and oracle-tuned
    baselines."""
    from .stopbed import images

    board, plain = newest_rows("scoreboard"), newest_rows("ct-skip")
    rows = []
    for image in images():
        if image.task != "ct":
            continue
        live = _live(image, **({"generator": preset} if preset else {}))
        best = board[image.name]
        rows.append({"image": image.name, "preconditioned": live["psnr"],
                     "stop": live["stop"], "steps": live["steps"],
                     "peak before the stop": live["peak"],
                     "plain (1500 steps)": plain[image.name]["skip"],
                     "best user-runnable": best["best user-runnable"],
                     "its psnr": best["its psnr"],
                     "preconditioned - it": live["psnr"] - best["its psnr"],
                     "best oracle": best["best oracle"], "oracle psnr": best["oracle psnr"],
                     "preconditioned - oracle": live["psnr"] - best["oracle psnr"],
                     "seconds": live["seconds"]})
        print(rows[-1], flush=True)
    gains = np.array([r["preconditioned - it"] for r in rows])
    write_results("ct-precondition" + (f"-{preset}" if preset else ""), rows, list(rows[0]),
                  {"median vs best user-runnable": float(np.median(gains)),
                   "worst": float(gains.min()), "ahead": int((gains > 0).sum()),
                   "ahead by 1 dB": int((gains > 1).sum())})


def tv_prior(task: str = "denoise") -> None:
    """Issue 19: the stop test bed's 12 ``task`` images (4 scans, noise 10/25/50 of 255,
    128^2) fitted as ``fit`` runs them by default, now with the noise-weighted TV prior (the
    shipped stop live, the noise level the task estimates), against the same fit without it
    (the newest ``{task}-fast-x2`` results: the shipped rule replayed on a 3000-step trace, the
    image the 3000-step default returns; its stop step replayed on the recorded trace) and the
    scoreboard's best user-runnable and oracle-tuned baselines (BM3D for denoising)."""
    from .stopbed import images
    from .stopbed_report import shipped_rule, traces

    board, plain = newest_rows("scoreboard"), newest_rows(f"{task}-fast-x2")
    plain_stops = {image.name: shipped_rule(image, scale).replay(variance, loss)
                   for image, scale, loss, variance, _ in traces() if image.task == task}
    rows = []
    for image in images():
        if image.task != task:
            continue
        live, best = _live(image), board[image.name]
        without = plain[image.name]["fast at 3000"]
        rows.append({"image": image.name, "tv": fit_defaults(task)["tv"],
                     "with prior": live["psnr"], "stop": live["stop"],
                     "peak before the stop": live["peak"], "without (3000-step default)": without,
                     "without: stop (1500-step trace)": plain_stops[image.name],
                     "prior - without": live["psnr"] - without,
                     "best user-runnable": best["best user-runnable"], "its psnr": best["its psnr"],
                     "prior - it": live["psnr"] - best["its psnr"],
                     "oracle psnr": best["oracle psnr"],
                     "prior - oracle": live["psnr"] - best["oracle psnr"],
                     "seconds": live["seconds"], "s/step": live["s/step"]})
        print(rows[-1], flush=True)
    gains, wins = (np.array([r[k] for r in rows]) for k in ("prior - without", "prior - it"))
    write_results(f"{task}-tv", rows, list(rows[0]),
                  {"median prior - without": float(np.median(gains)), "worst": float(gains.min()),
                   "median vs best user-runnable": float(np.median(wins)),
                   "worst vs best user-runnable": float(wins.min()),
                   "ahead": int((wins > 0).sum())})


def detail(task: str = "denoise") -> None:
    """Issue 19: the stop test bed's 12 ``task`` images fitted as ``fit`` runs them by default
    (the shipped stop live, the noise level the task estimates), now with the fine-detail weight
    on the residual (``fit(detail=)``), and in the same run, image after image, without it
    (``detail=0``, the default before it: the TV prior alone), against the scoreboard's best
    user-runnable and oracle-tuned baselines (BM3D for denoising)."""
    from .stopbed import images

    board, rows = newest_rows("scoreboard"), []
    for image in images():
        if image.task != task:
            continue
        weighted, plain, best = _live(image), _live(image, detail=0.0), board[image.name]
        rows.append({"image": image.name, "detail": fit_defaults(task)["detail"],
                     "with detail": weighted["psnr"], "stop": weighted["stop"],
                     "peak before the stop": weighted["peak"], "seconds": weighted["seconds"],
                     "without (detail=0)": plain["psnr"], "its stop": plain["stop"],
                     "its seconds": plain["seconds"],
                     "detail - without": weighted["psnr"] - plain["psnr"],
                     "time / without": weighted["seconds"] / plain["seconds"],
                     "best user-runnable": best["best user-runnable"], "its psnr": best["its psnr"],
                     "detail - it": weighted["psnr"] - best["its psnr"],
                     "oracle psnr": best["oracle psnr"],
                     "detail - oracle": weighted["psnr"] - best["oracle psnr"]})
        print(rows[-1], flush=True)
    gains, wins, ratios = (np.array([r[k] for r in rows])
                           for k in ("detail - without", "detail - it", "time / without"))
    write_results(f"{task}-detail", rows, list(rows[0]),
                  {"median detail - without": float(np.median(gains)),
                   "worst": float(gains.min()), "best": float(gains.max()),
                   "median vs best user-runnable": float(np.median(wins)),
                   "worst vs best user-runnable": float(wins.min()),
                   "ahead": int((wins > 0).sum()),
                   "median time / without": float(np.median(ratios))})


def _live(image, **options) -> dict:
    """A test-bed image fitted as its task's fit runs by default (the shipped rule live, with
    the noise level the task estimates; ``fit``'s step budget): what the user gets, timed."""
    from .stopbed import estimated_sigma

    start = time.perf_counter()
    res = medip.fit(image.operator, image.y, reference=image.clean,
                    noise_level=estimated_sigma(image), **{**fit_defaults(image.task), **options})
    image_psnr = psnr(res.image.abs(), image.clean.abs()) if res.image.is_complex() else \
        psnr(res.image, image.clean)
    return {"psnr": image_psnr, "stop": res.stop_step, "steps": res.steps_run,
            "peak": max(res.history["psnr"]),
            "s/step": res.seconds_per_step, "seconds": time.perf_counter() - start}


def amp(task: str = "denoise") -> None:
    """Issue 21: bfloat16 autocast on this CPU. Each of the stop test bed's ``task`` images is
    fitted with the task's defaults and the shipped stop, in float32 and under autocast one
    after the other (so a drift of the machine's speed touches both alike): the returned PSNR,
    the stop step and the time per step of each."""
    from .stopbed import images

    rows = []
    for image in images():
        if image.task != task:
            continue
        f32, bf16 = _live(image, amp=False), _live(image, amp=True)
        rows.append({"image": image.name, **{f"{k} f32": v for k, v in f32.items()},
                     **{f"{k} bf16": v for k, v in bf16.items()},
                     "bf16 - f32 dB": bf16["psnr"] - f32["psnr"],
                     "step time bf16 / f32": bf16["s/step"] / f32["s/step"]})
        print(rows[-1], flush=True)
    diffs = np.array([r["bf16 - f32 dB"] for r in rows])
    ratios = np.array([r["step time bf16 / f32"] for r in rows])
    write_results(f"amp-{task}", rows, list(rows[0]),
                  {"median bf16 - f32 dB": float(np.median(diffs)), "worst": float(diffs.min()),
                   "median step time ratio": float(np.median(ratios)),
                   "cpu": amp_cpu_label()})


def amp_cpu_label() -> str:
    """The CPU's bfloat16 capabilities as torch reports them (AMX, AVX-512 BF16)."""
    return (f"AMX tiles {torch.cpu._is_amx_tile_supported()}, "
            f"AVX-512 BF16 {torch.cpu._is_avx512_bf16_supported()}")


def amp_step_times(rounds: int = 3) -> None:
    """Issue 21: seconds per step of real fits in float32 and under CPU bfloat16 autocast,
    taking turns ``rounds`` times: ``fast`` and ``skip`` at 128^2 to 512^2 (denoising; ``skip``
    also through the 45-view Radon, CT's fit) and ``fast`` at 48^3."""
    cases = [(p, (e, e), None) for e in (128, 256, 512) for p in ("fast", "skip")]
    cases += [("skip", (e, e), Radon((e, e), 45)) for e in (128, 256, 512)]
    cases += [("fast", (48, 48, 48), None)]
    rows = []
    for preset, shape, A in cases:
        steps = 12 if math.prod(shape) <= 256 ** 2 else 6
        times = _taking_turns({bf16: partial(_fit_step_time, preset, shape, steps, A, amp=bf16)
                               for bf16 in (False, True)}, rounds)
        f32, bf16 = times[False], times[True]
        rows.append({"preset": preset, "size": "x".join(map(str, shape)),
                     "operator": "Radon 45 views" if A is not None else "Identity",
                     "f32 s/step": f32, "bf16 s/step": bf16, "speedup": f32 / bf16})
        print(rows[-1], flush=True)
    write_results("amp-step-times", rows, list(rows[0]), {"cpu": amp_cpu_label()})


def _update_time(preset: str, fused: bool, steps: int = 50) -> float:
    """Median seconds of one Adam update of a preset's weights (gradients given)."""
    from medip.engine.nets import build_network

    torch.manual_seed(0)
    parameters = list(build_network(preset, 2, 1).parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    optimizer, times = torch.optim.Adam(parameters, lr=0.01, fused=fused), []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return float(np.median(times[2:]))


def optimizer_step_times(rounds: int = 6) -> None:
    """Issue 21: torch's per-tensor Adam loop against its fused kernel (what ``fit`` runs,
    :func:`medip.engine.fitting.adam`): the update alone, and a whole 2D step of ``fast`` and
    ``skip`` at 128^2 and 256^2, the two taking turns ``rounds`` times (a few milliseconds
    per step: 3 rounds of 15 steps gave ratios of 0.87 to 1.06 on this VM)."""
    rows = []
    for preset in ("fast", "skip"):
        loop, fused = _update_time(preset, False), _update_time(preset, True)
        rows.append({"preset": preset, "what": "Adam update alone", "loop s": loop,
                     "fused s": fused, "fused / loop": fused / loop})
        print(rows[-1], flush=True)
        for edge in (128, 256):
            steps = 40 if edge == 128 else 20
            times = _taking_turns({kind: partial(_step_time, preset, (edge, edge),
                                                 preset == "fast", steps, fused=kind)
                                   for kind in (False, True)}, rounds)
            loop, fused = times[False], times[True]
            rows.append({"preset": preset, "what": f"step at {edge}x{edge}", "loop s": loop,
                         "fused s": fused, "fused / loop": fused / loop})
            print(rows[-1], flush=True)
    write_results("optimizer-step-times", rows, list(rows[0]))


if __name__ == "__main__":
    torch.set_num_threads(2)
    command = sys.argv[1] if len(sys.argv) > 1 else "presets"
    if command == "one-preset":
        print(json.dumps(one_preset(sys.argv[2], int(sys.argv[3]))))
    else:
        {"presets": presets, "gap": gap, "volume": volume, "full-volume": full_volume,
         "layout": layout, "batching": batching, "exact": exact,
         "brain-time": lambda: brain_time(*sys.argv[2:3]), "chest-time": chest_time,
         "batch-workers": batch_workers,
         "step-times": step_times, "poisson": poisson_recipe,
         "refit": lambda: refit(*sys.argv[2:5]),
         "ct-step-times": lambda: ct_step_times(*sys.argv[2:3]),
         "amp": lambda: amp(*sys.argv[2:3]), "amp-step-times": amp_step_times,
         "optimizer-step-times": optimizer_step_times,
         "precondition": lambda: precondition(*sys.argv[2:3]),
         "tv": lambda: tv_prior(*sys.argv[2:3]),
         "detail": lambda: detail(*sys.argv[2:3])}[command]()
