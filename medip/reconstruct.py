"""The volume driver, for every task: a whole measurement reconstructed slice by slice, in one 3D
fit, or in 3D patches, through the task's fit problems.

- ``slices``: 2D DIP per slice along the task's stack axis (a scan's ``axis``; the slices of a
  sinogram or k-space stack); the middle slice starts cold, then each next slice (outwards in
  both directions) starts from its neighbour's fitted weights with a smaller step budget
  (``warm_steps``), which is where most of the time goes away. With ``slab=k`` (voxel-wise tasks)
  each fit sees the ``k`` slices around its own as channels, and every slice is the mean of the
  estimates of all fits that saw it.
- ``3d``: one 3D generator over the whole measurement (ES-EMV stopping by default).
- ``patches``: overlapping 3D patches blended with linear ramps, for volumes too large for one
  fit; each patch warm-starts from the previous one. Voxel-wise tasks only (denoise, inpaint).

All fits of one measurement share one normalisation (:meth:`Task.scale`), so warm starts carry
over, and the task maps the result to its output units and geometry. The driver never asks which
task it runs: the task's spec says which modes and slabs apply.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import torch

from . import defaults
from .engine.device import pick_device
from .engine.estimate import PROBE_STEPS, Estimate, StepClock, estimate_fit
from .engine.fitting import Result, fit, member_seeds
from .engine.nets import build_generator
from .engine.progress import ProgressBar, progress_bar
from .engine.solvers import solve
from .engine.stopping import FinalMean, Fixed, Stopper, WindowedVariance
from .errors import InputError, OutOfMemory
from .io.atomic import atomic_write
from .io.volume import Volume
from .operators import LinearOperator
from .tasks import Problem, Task, fit_defaults, make_task
from .tasks.base import cut, region_of
from .tasks.specs import VOXELWISE

log = logging.getLogger("medip")
# What to do when a mode's fits do not fit in memory.
_HINTS = {"3d": "use mode='slices' or mode='patches'",
          "patches": "use a smaller patch= size or mode='slices'",
          "slices": "use a smaller generator preset (e.g. 'fast')"}


#: What :meth:`FitStart.save` writes in its file, so that :meth:`FitStart.load` knows one.
START_FORMAT = "medip fit start 1"


@dataclass(frozen=True)
class FitStart:
    """The fitted weights of a reconstruction's first fit (the cold one), to start another
    scan's first fit from (``reconstruct_volume(start=result.start)``): a scan of the same
    protocol (the next frame of a series, the next patient of a study) then needs
    :data:`START_STEPS` with the warm stopper instead of a cold fit: on real scans, a median
    0.58x the time for a median -0.01 dB. ``task``, ``mode``, ``generator`` and ``shape`` (the
    fits' image shape, channels first) say which reconstructions it can start; ``source``
    names the scan it was fitted on (for the record)."""

    task: str
    mode: str
    generator: str
    shape: tuple[int, ...]
    state: dict = field(repr=False)
    source: str = ""
    #: The file it was loaded from (:meth:`load`), for errors; empty if made in this process.
    file: str = ""

    def __str__(self) -> str:
        return f"the start in {self.file}" if self.file else "the start"

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the start to ``path`` (torch's format, weights and facts only; written
        atomically, an existing file kept unless ``overwrite``), for :meth:`load`."""
        facts = {"format": START_FORMAT, "task": self.task, "mode": self.mode,
                 "generator": self.generator, "shape": list(self.shape), "source": self.source}
        return atomic_write(path, lambda tmp: torch.save({**facts, "state": self.state}, tmp),
                            overwrite)

    @classmethod
    def load(cls, path: str | Path) -> FitStart:
        """A start written by :meth:`save` (``medip ... --save-start``); a clear error for a file
        that is not one. Loads tensors and plain values only (never code)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such start file (write one with --save-start, "
                                    f"or FitStart.save)")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # torch raises several kinds for a file that is not its format
            data = None
        if not isinstance(data, dict) or data.get("format") != START_FORMAT:
            raise InputError(f"{path}: not a medip start file (write one with --save-start, "
                             f"or FitStart.save)")
        return cls(data["task"], data["mode"], data["generator"], tuple(data["shape"]),
                   data["state"], data["source"], str(path))


@dataclass
class VolumeResult:
    """The reconstructed volume and its per-voxel variance (uncertainty), both with the output
    geometry; ``measured`` is the measurement as a volume (the scan, an FBP, a zero-filled
    image). ``stop_steps``, ``steps_run`` and ``histories`` have one entry per fit (slice,
    patch or volume), ensemble members one after another."""

    volume: Volume
    variance: Volume
    measured: Volume
    stop_steps: list[int]
    steps_run: list[int]
    elapsed: float
    mode: str
    device: str
    estimate: Estimate | None = None
    histories: list[dict] = field(default_factory=list)
    interrupted: bool = False
    #: Whether the fits took the measurement as exact (given, or judged by the task).
    noise_free: bool = False
    #: The generator preset the fits ran (given, or the task's for the mode).
    generator: str = defaults.PRESET
    #: The shrink factor of the empirical Wiener refinement (``reconstruct_volume(wiener=)``):
    #: the scale Stein's estimate chose for its shrink of each DCT frequency
    #: (:mod:`medip.engine.wiener`), None where the result was not refined.
    wiener_shrink: float | None = None
    #: The refinement's window, (depth across slices, side in the slice) (depth 1: each slice
    #: on its own), None where the result was not refined.
    wiener_window: tuple[int, int] | None = None
    #: Whether the block-matched collaborative Wiener filter followed the refinement (a single
    #: plane: :func:`medip.tasks.restore.refine_denoised`).
    wiener_matched: bool = False
    #: The first fit's weights (ensemble member 0's), to start the next scan of the same
    #: protocol from (``reconstruct_volume(start=)``); None for the classical methods.
    start: FitStart | None = None


class _Member(NamedTuple):
    """One reconstruction of the whole measurement (an ensemble averages several), in the
    task's array order."""

    image: torch.Tensor
    variance: torch.Tensor
    stops: list[int]
    runs: list[int]
    histories: list[dict]
    estimate: Estimate | None
    first: Result
    interrupted: bool = False

    @classmethod
    def of(cls, image: torch.Tensor, variance: torch.Tensor, results: Sequence[Result],
           estimate: Estimate | None, first: Result, interrupted: bool = False) -> _Member:
        return cls(image, variance, [r.stop_step for r in results],
                   [r.steps_run for r in results], [r.history for r in results], estimate,
                   first, interrupted)


def reconstruct_volume(measurement: Any, task: str | Task | LinearOperator = "denoise",
                       mode: str = defaults.MODE, *, axis: int | None = None,
                       slab: int | None = None, patch: int = defaults.PATCH,
                       overlap: int = defaults.OVERLAP, generator: str | None = None,
                       stopper: str | int = defaults.STOPPER, max_steps: int = defaults.MAX_STEPS,
                       warm_steps: int | None = None, lr: float | None = None,
                       residual: bool | None = None, tv: float | None = None,
                       detail: float | None = None, wiener: bool | None = None,
                       noise_free: bool | None = None, seed: int = defaults.SEED,
                       ensemble: int = defaults.ENSEMBLE,
                       device: str = defaults.DEVICE, threads: int | None = None,
                       amp: bool = False, progress: bool | None = None,
                       check_memory: bool = True,
                       reference: Volume | None = None, method: str = "dip",
                       start: FitStart | None = None, **task_options: Any) -> VolumeResult:
    """Reconstruct ``measurement`` through ``task`` and return it in the task's output units and
    geometry.

    ``task`` is a name from :data:`medip.tasks.TASKS` with its options as keywords (``mask=``
    for inpainting, ``factors=``/``kernel=`` for super-resolution, ``like=`` for CT,
    ``mask=``/``acceleration=``/``center_fraction=`` for MRI) or a 3D operator (``mode="3d"``);
    a :class:`~medip.tasks.Task` already bound to its measurement is passed as the first
    argument alone. The measurement is a :class:`~medip.io.Volume` for the
    restoration tasks, a :class:`~medip.io.Sinogram` stack for ``ct`` and
    :class:`~medip.io.KSpace` (or a complex ``(coils, H, W)`` tensor) for ``mri``.

    ``residual``, ``lr``, ``tv`` (the total-variation prior's strength) and ``detail`` (the
    fine-detail weight's; both see :func:`medip.fit` and need the noise level the task
    estimates) default to the task's
    :func:`medip.tasks.fit_defaults`, the
    ``generator`` preset to :data:`medip.defaults.PRESET`. ``axis``
    (``slices`` mode): the scan axis to walk (default 2); stacks of 2D measurements walk their
    slices. ``slab`` (``slices`` mode, voxel-wise tasks): each fit sees that many neighbouring
    slices as channels and each slice is the mean of the fits that saw it (default: the task's
    spec, 3 for denoising). ``noise_free`` (exact measurements: inpainting, box-kernel
    super-resolution, single-coil k-space) runs every fit's full budget without input noise and
    keeps the measured values (see :func:`medip.fit`); None (the default) lets the task judge
    from the data (:attr:`medip.tasks.Task.exact`: inpainting whose known voxels carry no
    measurable noise). ``ensemble=N`` reconstructs N times,
    seeded ``seed`` to ``seed + N - 1``, and returns the mean (and mean variance), at N times the
    time. ``amp``: the generators run under bfloat16 autocast (see :func:`medip.fit`: faster per
    step on CPUs with AMX, slightly lower PSNR). ``reference`` (a clean volume on the result's
    grid) only adds PSNR/SSIM to each fit's history. ``wiener`` (default: the task's spec,
    on for denoising): refine the DIP result by the empirical Wiener filter it implies with the
    task's noise level (:func:`medip.tasks.restore.refine_denoised`: windows within each slice
    or across neighbouring ones, as Stein's estimate picks, then on a single plane the
    block-matched Wiener filter; the variance map stays the fits'). ``method`` (tasks that
    offer classical methods, see :attr:`medip.tasks.TaskSpec.methods`): ``"dip"`` (the default)
    or a classical reconstruction of :mod:`medip.engine.solvers` (``"sense"``, ``"tv"``,
    ``"wavelet"``), run through the same slices and geometry so the two compare on the same
    data. ``start`` (another reconstruction's :attr:`VolumeResult.start`, of the same task,
    mode, generator and image size): the first fit starts from its weights, with the warm
    stopper and a budget of :data:`START_STEPS`, instead of cold; for the next scan of a
    protocol (see :class:`FitStart`). Raises ``MemoryError`` before starting when the estimated
    need exceeds the memory available, naming the mode that would fit.
    """
    bound = make_task(measurement if isinstance(measurement, Task) else task, measurement,
                      **task_options)
    spec = bound.spec
    if mode not in defaults.MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {defaults.MODES}")
    if mode not in spec.modes:
        if mode == "patches":
            raise InputError(f"mode='patches' needs a voxel-wise task ({', '.join(VOXELWISE)});"
                             f" use mode='slices' or '3d' for {spec.name!r}")
        raise InputError(f"mode={mode!r} does not apply to {spec.name!r}; use one of "
                         f"{spec.modes}")
    if noise_free is None:
        noise_free = bound.exact
        if noise_free:
            log.info("%s: no measurable noise in the measured values (%.3g): they are kept and "
                     "fitted noise-free (noise_free=False to treat them as noisy)", spec.name,
                     bound.sigma)
    if noise_free and not spec.noise_free:
        raise InputError(f"noise_free=True: {spec.name!r} measurements are not exact; leave it "
                         f"off")
    if method not in spec.methods:
        raise InputError(f"method={method!r} does not apply to {spec.name!r}; choose one of "
                         f"{', '.join(spec.methods)}")
    if method != "dip":
        ensemble = 1  # deterministic: members would be identical
    if start is not None:
        _check_start(start, spec.name, mode, generator or defaults.PRESET, method, ensemble)
    if wiener and not spec.wiener:
        raise InputError(f"wiener=True refines a denoised scan by its noise level; "
                         f"{spec.name!r} has no such refinement (leave wiener off)")
    wiener = spec.wiener if wiener is None else wiener
    seeds = member_seeds(seed, ensemble)
    dev = pick_device(device)
    fit_options = fit_defaults(bound)
    residual = fit_options["residual"] if residual is None else residual
    tv = fit_options["tv"] if tv is None else tv
    detail = fit_options["detail"] if detail is None else detail
    for name, value in (("tv", tv), ("detail", detail)):
        if value and bound.sigma is None and method == "dip":
            raise InputError(f"{name}={value:g} is weighted by the noise level, which "
                             f"{spec.name!r} does not estimate; leave {name} at 0")
    generator = generator or defaults.PRESET
    options = dict(generator=generator, lr=fit_options["lr"] if lr is None else lr, device=dev,
                   threads=threads, amp=amp and method == "dip",
                   scale=None if residual else bound.scale(),
                   residual=residual, tv=tv, detail=detail, noise_free=noise_free, method=method)
    if bound.sigma is not None and method == "dip" and not noise_free:
        log.info("%s: noise level %.4g per measured sample (the task's estimate); each fit's "
                 "stop waits for the loss it leaves", spec.name, bound.sigma)
    budget = _Budget(stopper, max_steps, warm_steps)
    ref = bound.fit_reference(reference) if reference is not None else None
    began = time.perf_counter()
    members: list[_Member] = []
    for member_seed in seeds:
        run = {**options, "seed": member_seed}
        check = check_memory and not members and method == "dip"  # the same for every member
        try:
            if mode == "3d":
                members.append(_whole(bound, budget, check, progress, run, ref, start))
            elif mode == "slices":  # an interrupt inside a stack propagates (no partial volume)
                members.append(_by_slices(bound, axis, slab, budget, check, progress, run, ref,
                                          start))
            else:
                members.append(_by_patches(bound, patch, overlap, budget, check, progress, run,
                                           ref, start))
        except (torch.OutOfMemoryError, MemoryError) as err:
            if isinstance(err, OutOfMemory):
                raise
            cause = (str(err).splitlines() or [type(err).__name__])[0]
            raise OutOfMemory(f"ran out of memory on {dev} in {mode} mode ({cause}); "
                              f"{_HINTS[mode]}") from None
        if members[-1].interrupted:
            break
    image = sum(m.image for m in members) / len(members)
    variance = sum(m.variance for m in members) / len(members)
    shrink = window = None
    matched = False
    if wiener and method == "dip" and bound.sigma:  # a scan without noise keeps the fits'
        refined = bound.refine(image, bound.stack_axis(axis))
        image, shrink, window, matched = (refined.image, refined.shrink, refined.window,
                                          refined.matched)
        log.info("%s: result refined by its empirical Wiener filter (%dx%dx%d windows, a shrink "
                 "per frequency scaled by %g, chosen by Stein's risk estimate)%s; wiener=False "
                 "to skip", spec.name, window[0], window[1], window[1], shrink,
                 ", then by the block-matched one" if matched else "")
    stops, runs, histories = ([v for m in members for v in getattr(m, name)]
                              for name in ("stops", "runs", "histories"))
    volume, variance_volume = bound.to_volumes(image.numpy(), variance.numpy())
    estimate = members[0].estimate  # checked once: every member fits the same problems
    if estimate is not None:
        estimate = replace(estimate, expected_seconds=estimate.expected_seconds * len(seeds))
    first = members[0].first
    fitted = None if first.generator_state is None else FitStart(
        spec.name, mode, generator, (_channels(first), *first.image.shape[2:]),
        first.generator_state, str(bound.measured.source or ""))
    return VolumeResult(volume, variance_volume, bound.measured, stops, runs,
                        time.perf_counter() - began, mode, str(dev), estimate,
                        histories, members[-1].interrupted, noise_free, generator, shrink,
                        window, matched, fitted)


@dataclass(frozen=True)
class _Budget:
    """The stopping rule and step budgets of a cold fit and of a warm-started one (default
    :data:`medip.defaults.WARM_STEPS`, at most ``max_steps``)."""

    stopper: str | int
    max_steps: int
    warm_steps: int | None

    @property
    def warm(self) -> int:
        return self.warm_steps or min(defaults.WARM_STEPS, self.max_steps)

    @property
    def fixed(self) -> bool:
        """Whether the stopper is a step count (every fit runs exactly its budget)."""
        return isinstance(self.stopper, int) and not isinstance(self.stopper, bool)

    @property
    def cold(self) -> int:
        """The step budget of a cold fit."""
        return min(self.stopper, self.max_steps) if self.fixed else self.max_steps

    def started(self) -> _Budget:
        """The budget of a first fit started from another scan's weights: it runs the warm
        stopper with :data:`START_STEPS` (at most a cold fit's budget, at least a warm one's)."""
        return replace(self, warm_steps=max(self.warm, min(START_STEPS, self.cold)))

    def warm_stopper(self, noise_free: bool) -> Stopper:
        """A started fit is near its optimum: a shorter window and patience find it sooner
        (noise-free data have nothing to overfit: all warm steps run, the last 16 outputs
        averaged)."""
        if self.fixed:
            return Fixed(self.warm)
        if noise_free:
            return FinalMean(self.warm, window=16)
        return WindowedVariance(window=WARM_WINDOW, patience=max(self.warm // WARM_PATIENCE_SHARE,
                                                                 20))


#: The warm stopper's window, and its patience as a share of the warm budget (1/4: 125 steps).
#: A patience of 50 cut the warm steps by 0.6x on three real 15-slice chunks (three scans, noise
#: 10, 25 and 50/255) and lost 0.26 to 1.60 dB (``python -m benchmarks.slabs``,
#: benchmarks/results/2026-12-04-vm-slabs.md): the warm fits were still improving. With the
#: Wiener refinement that now follows, the shorter settings still lose after it: patience 50
#: 0.09 to 0.31 dB, a budget of 200 steps 0.03 to 0.83 dB, of 100 steps 0.28 to 1.10 dB, stride 3
#: -0.07 to 0.54 dB (benchmarks/results/2026-12-05-vm-slabs.md).
WARM_WINDOW = 16
WARM_PATIENCE_SHARE = 4
#: Slices between the centres of neighbouring slabs: 1 fits a slab around every slice. Tiling the
#: volume (3, a third of the fits) was 0.6 and 2.8 dB worse on the 2 mm brain and the chest CT
#: chunks and 0.5 dB better on the clinical T1's 6.5 mm slices (the same benchmark): a fit
#: warm-started from a slab shifted by one slice starts near its optimum, one shifted by three
#: does not, and every slice averages three estimates.
SLAB_STRIDE = 1
#: Step budget of a first fit started from another scan's weights (``reconstruct_volume(start=)``),
#: with the warm stopper: such a start is further from the scan's optimum than a neighbouring
#: slab's. On eight pairs of 7-slice chunks of four real scans (the next EPI frame; slices 4.5
#: to 6 cm further on in a chest CT, a 2 mm T1 and a clinical T1; noise 10 to 50/255), a whole
#: denoised chunk came out -0.12 to +0.09 dB from its cold-started result (median -0.01) in
#: 0.47-0.70x the time (median 0.58x); with the warm budget, 500, -0.22 to +0.03 dB (median
#: -0.07) in a median 0.50x. 1000 was chosen on a first run of two of the pairs
#: (benchmarks/results/2026-12-05-vm-starts.md, ``python -m benchmarks.starts``).
START_STEPS = 1000


def slab_starts(depth: int, slab: int, stride: int) -> list[int]:
    """First slices of the slabs of ``slab`` slices that ``slices`` mode fits along ``depth``:
    centred every ``stride`` slices from the middle slice outwards (so the cold fit's slab is
    the same for every stride), each slice covered at least once, none fitted twice."""
    middle = depth // 2
    centres = range(middle % stride, depth, stride)
    starts = {min(max(t - slab // 2, 0), depth - slab) for t in centres} | {0, depth - slab}
    return sorted(starts)


def _fit(problem: Problem, state: dict | None, channels: int, budget: _Budget, options: dict,
         reference: torch.Tensor | None = None, callbacks: Sequence = ()) -> Result:
    """One fit: cold with the full budget when ``state`` is None, else started from ``state``
    (a neighbour's weights, or another scan's for a first fit) with the warm budget."""
    if options.get("method", "dip") != "dip":
        return solve(options["method"], problem.A, problem.y, problem.sigma)
    options = {**options, "loss": problem.loss, "reference": reference, "callbacks": callbacks,
               "keep_generator": True, "noise_level": problem.sigma}
    options.pop("method", None)
    if state is None:
        return fit(problem.A, problem.y, stopper=budget.stopper, max_steps=budget.max_steps,
                   **options)
    gen = build_generator(options["generator"], problem.image_shape, channels,
                          seed=options["seed"])
    gen.load_state_dict(state)
    return fit(problem.A, problem.y, stopper=budget.warm_stopper(options["noise_free"]),
               max_steps=budget.warm, **{**options, "generator": gen})


def check_memory_for(preset: str, shape: Sequence[int], device: str | torch.device, mode: str,
                     amp: bool = False) -> Estimate:
    """Estimate the memory of one fit of ``preset`` on ``shape`` (``amp``: as ``fit`` takes it)
    and raise :class:`~medip.errors.OutOfMemory` (naming the mode that would fit) when it needs
    more than ``device`` has."""
    estimate = estimate_fit(preset, shape, device=pick_device(device), amp=amp)
    log.info("%s mode: one fit of %s needs about %.2f GB (%.1f GB available)", mode,
             tuple(shape), estimate.bytes_needed / 1e9, estimate.bytes_available / 1e9)
    if not estimate.fits:
        raise OutOfMemory(f"{mode} mode needs about {estimate.bytes_needed / 1e9:.1f} GB for "
                          f"{tuple(shape)} but {estimate.bytes_available / 1e9:.1f} GB are "
                          f"available; {_HINTS[mode]}")
    return estimate


#: Steps a cold fit with a variance stopper typically runs, and the share of its budget a
#: warm-started one runs, for the time estimate logged before a volume starts (denoising's
#: defaults, the TV prior and the fine-detail weight in them): the 12 cold 128^2 fits of the stop
#: test bed stopped at steps 1300 to 2999, median 2218
#: (benchmarks/results/2026-12-04-vm-denoise-detail.md), the cold slabs of three 15-slice chunks
#: at 2210, 2213 and 3000, and those chunks' warm fits ran 0.52, 0.54 and 0.93 of their 500
#: steps (benchmarks/results/2026-12-04-vm-slabs.md): the medians of the 15 and of the 3.
TYPICAL_COLD_STEPS = 2213
TYPICAL_WARM_SHARE = 0.54


def expected_steps(fits: int, budget: _Budget, noise_free: bool, started: bool = False
                   ) -> tuple[float, int]:
    """Typical and largest step count of ``fits`` fits, the first cold (``started``: from
    another scan's weights, :meth:`_Budget.started`) and the rest warm-started (exact data and
    fixed step counts run their whole budgets)."""
    first = budget.started().warm if started else budget.cold
    most = first + (fits - 1) * budget.warm
    if budget.fixed or noise_free:
        return float(most), most
    typical_first = TYPICAL_WARM_SHARE * first if started else min(TYPICAL_COLD_STEPS, first)
    return typical_first + (fits - 1) * TYPICAL_WARM_SHARE * budget.warm, most


def _check_budget(problem: Problem, options: dict, check: bool, mode: str, fits: int,
                  budget: _Budget, started: bool = False) -> Estimate | None:
    """The memory check and, from a short probe fit of ``problem`` (its seconds per step and
    set-up, :class:`~medip.engine.estimate.StepClock`), the time the fits will take (logged
    before they start, and kept in the estimate)."""
    if not check:
        return None
    estimate = check_memory_for(options["generator"], problem.image_shape, options["device"],
                                mode, options["amp"])
    clock = StepClock()
    probe = _Budget(PROBE_STEPS + 1 if budget.fixed else budget.stopper, PROBE_STEPS + 1, None)
    _fit(problem, None, 0, probe, options, callbacks=[clock])
    estimate = clock.timed(estimate)
    typical, most = expected_steps(fits, budget, options["noise_free"], started)
    estimate = replace(estimate, expected_seconds=estimate.seconds(typical, fits))
    fastest, slowest = estimate.seconds_range
    log.info("%s mode: %d fit(s), expected about %.0f s (%.0f steps at %.3f s, probe steps "
             "%.3f-%.3f s, and %.1f s to set up each fit; at most %.0f s if every fit runs "
             "its whole budget)", mode, fits, estimate.expected_seconds, typical,
             estimate.seconds_per_step, fastest, slowest, estimate.setup_seconds,
             estimate.seconds(most, fits))
    return estimate


def _check_start(start: FitStart, task: str, mode: str, generator: str, method: str,
                 ensemble: int) -> None:
    """A clear error where ``start`` cannot start this reconstruction's first fit."""
    if method != "dip":
        raise InputError(f"{start} holds a generator's weights; method {method!r} fits none: "
                         f"leave the start off")
    if ensemble > 1:
        raise InputError(f"{start} with ensemble > 1 would start every member from the same "
                         f"weights; use ensemble 1 or leave the start off")
    for name, given, here in (("task", start.task, task), ("mode", start.mode, mode),
                              ("generator", start.generator, generator)):
        if given != here:
            raise InputError(f"{start} was fitted with {name} {given!r} but this reconstruction "
                             f"runs {here!r}; start from a reconstruction with the same {name}")


def _first_state(start: FitStart | None, problem: Problem) -> tuple[dict | None, int]:
    """The weights and channel count the first fit starts from: ``start``'s, or none (cold)."""
    if start is None:
        return None, 0
    if tuple(start.shape[1:]) != tuple(problem.image_shape):
        raise InputError(f"{start} was fitted on images of {tuple(start.shape[1:])} voxels but "
                         f"this reconstruction's fits are {tuple(problem.image_shape)}; start "
                         f"from a scan of the same matrix and slab, or leave the start off")
    return start.state, start.shape[0]


def _whole(task: Task, budget: _Budget, check_memory: bool, progress: bool | None,
           options: dict, ref: torch.Tensor | None, start: FitStart | None = None) -> _Member:
    """``mode="3d"``: one fit over everything (an interrupt keeps the best output so far)."""
    problem = task.problem(tuple(slice(0, n) for n in task.shape), None)
    state, channels = _first_state(start, problem)
    estimate = _check_budget(problem, options, check_memory, "3d", 1, budget, state is not None)
    if state is not None:
        budget = budget.started()
    bar = ProgressBar(budget.max_steps if state is None else budget.warm, "3d fit", progress)
    result = _fit(problem, state, channels, budget, options,
                  None if ref is None else ref[None, None], [bar])
    bar.close()
    image, variance = problem.images(result)
    return _Member.of(image[0], variance[0], [result], estimate, result, result.interrupted)


def _by_slices(task: Task, axis: int | None, slab: int | None, budget: _Budget,
               check_memory: bool, progress: bool | None, options: dict,
               ref: torch.Tensor | None, start: FitStart | None = None) -> _Member:
    axis = task.stack_axis(axis)
    depth = task.shape[axis]
    spec = task.spec
    if slab is None:
        slab = spec.slab if depth >= spec.slab else 1
    if slab > 1 and not spec.voxelwise:
        raise InputError(f"slab={slab} needs a voxel-wise task ({', '.join(VOXELWISE)}), not "
                         f"{spec.name!r}; use slab=1")
    if slab < 1 or slab % 2 == 0 or slab > depth:
        raise InputError(f"slab must be an odd number of slices between 1 and {depth}, got "
                         f"{slab}")
    starts = slab_starts(depth, slab, SLAB_STRIDE)
    problems = [task.problem(region_of(task.shape, axis, s, slab), axis) for s in starts]
    plane = problems[0].image_shape
    middle = problems[len(problems) // 2]
    first = _first_state(start, middle)
    estimate = _check_budget(middle, options, check_memory, "slices", len(problems), budget,
                             start is not None)
    references = None if ref is None else [cut(ref, region_of(ref.shape, axis, s, slab), axis)
                                           for s in starts]
    results = fit_stack(problems, budget, progress, options, references, first)
    parts = [problem.images(result) for problem, result in zip(problems, results)]
    image, variance, seen = (torch.zeros(depth, *plane, dtype=parts[0][0].dtype),
                             torch.zeros(depth, *plane), torch.zeros(depth, *[1] * len(plane)))
    for s, (part, part_variance) in zip(starts, parts):  # mean over the fits that saw it
        image[s:s + slab] += part
        variance[s:s + slab] += part_variance
        seen[s:s + slab] += 1
    return _Member.of((image / seen).movedim(0, axis), (variance / seen).movedim(0, axis),
                      results, estimate, results[len(results) // 2])


def fit_stack(problems: Sequence[Problem], budget: _Budget, progress: bool | None = None,
              options: dict | None = None, references: Sequence[torch.Tensor] | None = None,
              first: tuple[dict | None, int] = (None, 0)) -> list[Result]:
    """Fit a stack of 2D problems: the middle one cold (or, with ``first``'s weights and
    channel count, warm-started from another scan's), then outwards in both directions, each
    warm-started from its neighbour's weights. ``options`` go to :func:`medip.fit`
    (``generator`` a preset name); ``references`` (clean slices) only add metrics.
    An interrupt propagates, so no partial stack is ever returned."""
    options = {"generator": defaults.PRESET, "seed": defaults.SEED, "noise_free": False,
               **(options or {})}
    depth = len(problems)
    middle = depth // 2
    order = list(range(middle, depth)) + list(range(middle - 1, -1, -1))
    results: list = [None] * depth
    bar = progress_bar(depth, "slices", progress, unit="fit")
    for t in order:
        neighbour = None if t == middle else (t - 1 if t > middle else t + 1)
        before = None if neighbour is None else results[neighbour]
        state, channels = first if before is None else (before.generator_state,
                                                        _channels(before))
        result = _fit(problems[t], state, channels,
                      budget.started() if before is None else budget, options,
                      None if references is None else references[t])
        if result.interrupted:
            raise KeyboardInterrupt
        results[t] = result
        bar.set_postfix(slice=t, stop=result.stop_step)
        bar.update()
    bar.close()
    return results


def _channels(result: Result | None) -> int:
    if result is None:
        return 0
    return result.image.shape[1] * (2 if result.image.is_complex() else 1)


def _starts(n: int, size: int, overlap: int) -> list[int]:
    step = max(size - overlap, 1)
    starts = list(range(0, max(n - size, 0) + 1, step))
    if starts[-1] + size < n:
        starts.append(n - size)
    return starts


def _ramp(size: int, overlap: int) -> torch.Tensor:
    """Blending weights along one axis: rising over ``overlap`` voxels at both ends, never 0."""
    x = torch.arange(size, dtype=torch.float32) + 0.5
    return torch.minimum(torch.ones(size), torch.minimum(x, size - x) / max(overlap, 1))


def _by_patches(task: Task, patch: int, overlap: int, budget: _Budget, check_memory: bool,
                progress: bool | None, options: dict, ref: torch.Tensor | None,
                start: FitStart | None = None) -> _Member:
    shape = task.shape
    size = [min(patch, n) for n in shape]
    if overlap >= min(size):
        raise InputError(f"overlap {overlap} must be smaller than the patch size {min(size)}")
    corners = [(a, b, c) for a in _starts(shape[0], size[0], overlap)
               for b in _starts(shape[1], size[1], overlap)
               for c in _starts(shape[2], size[2], overlap)]
    regions = [tuple(slice(a, a + n) for a, n in zip(corner, size)) for corner in corners]
    first = task.problem(regions[0], None)
    state, channels = _first_state(start, first)
    estimate = _check_budget(first, options, check_memory, "patches", len(regions), budget,
                             start is not None)
    weight = _ramp(size[0], overlap)[:, None, None] * _ramp(size[1], overlap)[None, :, None] \
        * _ramp(size[2], overlap)[None, None, :]
    total, var_total, weights = (torch.zeros(shape) for _ in range(3))
    results, previous = [], None
    bar = progress_bar(len(regions), "patches", progress, unit="fit")
    for region in regions:
        problem = task.problem(region, None)
        if previous is not None:
            state, channels = previous.generator_state, 1
        result = _fit(problem, state, channels,
                      budget if previous is not None else budget.started(), options,
                      None if ref is None else ref[region][None, None].contiguous())
        if result.interrupted:
            raise KeyboardInterrupt
        image, variance = problem.images(result)
        total[region] += weight * image[0]
        var_total[region] += weight * variance[0]
        weights[region] += weight
        results.append(result)
        previous = result
        bar.update()
    bar.close()
    return _Member.of(total / weights, var_total / weights, results, estimate, results[0])
