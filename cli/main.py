"""The ``medip`` command: argument parsing and printing over the library, nothing else.

Each reconstruction command offers the shared options and only its own task's (from the task's
spec). Options resolve in this order (:mod:`medip.app.options`): the defaults, then a
``--config FILE.toml`` (keys are the long option names), then the flags given on the line.
Only light modules are imported before parsing, so ``medip --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from medip import __version__, defaults
from medip.errors import MedipError
from medip.interrupt import stop_on_signal
from medip.io.registry import WRITABLE
from medip.tasks.specs import SPECS, TASKS, TaskSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# What the command line reports as one line (``--verbose`` shows the traceback instead).
FAILURES = (MedipError, OSError, ValueError, TypeError, ImportError, MemoryError, RuntimeError,
            FloatingPointError)
SCAN_TASKS = tuple(name for name in TASKS if not SPECS[name].fixed_axis)


def _factors(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"factors are integers like 2 or 2,2,1, got {text!r}")


# The flags of the tasks' own options (TaskSpec.options), each shown only where its task is.
TASK_FLAGS = {
    "mask": dict(metavar="FILE", help="inpaint: known voxels (nonzero); mri: sampled k-space "
                 "(.npy)"),
    "factor": dict(type=_factors, help=f"factor per axis, e.g. 2 or 1,1,2 (default "
                   f"{defaults.FACTOR} in-plane)"),
    "kernel": dict(help=f"anti-alias kernel: box, linear, bicubic, lanczos (default "
                   f"{defaults.KERNEL})"),
    "acceleration": dict(type=float, help="undersample retrospectively by this"),
    "center_fraction": dict(type=float, help=f"fully sampled centre fraction (default "
                            f"{defaults.CENTER_FRACTION})"),
    "angles": dict(type=int, help=f"--simulate-from: number of views (default "
                   f"{defaults.SIM_ANGLES})"),
    "photons": dict(type=float, help="--simulate-from: incident photons (Poisson noise; "
                    "default none)"),
    "simulate_from": dict(metavar="IMAGE", help="make the sinograms from this CT scan"),
    "geometry": dict(metavar="FILE.json", help="acquisition geometry (angles, detectors, "
                     "distances, pixel size; default: the sinogram's sidecar)"),
    "maps": dict(choices=defaults.MRI_MAPS, help=f"coil sensitivities (default "
                 f"{defaults.MRI_MAPS[0]})"),
    "coils": dict(type=int, metavar="N", help="compress to N virtual coils (SVD) first"),
    "prewhiten": dict(action=argparse.BooleanOptionalAction, help="prewhiten with the file's "
                      "noise scan (default: when it has one; --prewhiten requires it)"),
    "part": dict(choices=defaults.MRI_PARTS, help=f"the part of the complex image written "
                 f"(default {defaults.MRI_PARTS[0]}; complex needs .nii/.npy)"),
    "method": dict(choices=defaults.METHODS, help="dip (default), or a classical baseline: "
                   "sense (CG-SENSE), tv or wavelet (compressed sensing); their weights follow "
                   "the discrepancy principle"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _options(specs: Sequence[TaskSpec]) -> argparse.ArgumentParser:
    """The options of commands running ``specs``; absent flags stay absent (config may set)."""
    p = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    modes = tuple(m for m in defaults.MODES if any(m in s.modes for s in specs))
    g = p.add_argument_group("shared options")
    g.add_argument("--config", metavar="FILE.toml", help="read options from a TOML file; flags "
                   "on the command line override it")
    g.add_argument("--device", help="auto (default: CUDA if present), cpu, cuda, cuda:1")
    g.add_argument("--seed", type=int, help=f"random seed (default {defaults.SEED}); same seed, "
                   f"same output on CPU")
    g.add_argument("--ensemble", type=int, metavar="N", help=f"reconstruct N times (seeds seed.."
                   f"seed+N-1) and average: N times the time, steadier and on average better "
                   f"(default {defaults.ENSEMBLE})")
    g.add_argument("--preset", help=f"generator: {', '.join(defaults.PRESET_NAMES)} (default "
                   f"{defaults.PRESET})")
    g.add_argument("--max-steps", type=int, help=f"step budget per cold fit (default "
                   f"{defaults.MAX_STEPS})")
    g.add_argument("--warm-steps", type=int, help=f"budget of warm-started slices and patches "
                   f"(default {defaults.WARM_STEPS})")
    g.add_argument("--stopper", help="wmv, emv, auto (default: WMV in 2D, EMV in 3D) or a fixed "
                   "step count N")
    g.add_argument("--lr", type=float, help="Adam learning rate (default: the task's, " + ", ".join(
        f"{s.name} {s.lr:g}" for s in specs) + ")")
    g.add_argument("--tv", type=float, help="strength of the total-variation prior, weighted by "
                   "the estimated noise level; 0 turns it off (default: the task's, " + ", ".join(
                       f"{s.name} {s.tv:g}" for s in specs) + ")")
    g.add_argument("--detail", type=float, help="strength of the weight that lets the fit learn "
                   "fine detail sooner, where the scan's spectrum rises above its estimated noise; "
                   "0 turns it off (default: the task's, " + ", ".join(
                       f"{s.name} {s.detail:g}" for s in specs) + ")")
    if any(s.wiener for s in specs):
        g.add_argument("--wiener", action=argparse.BooleanOptionalAction, help="refine the "
                       "result by the empirical Wiener filter it implies with the estimated noise "
                       "level, its window and shrinks chosen by Stein's risk estimate, then, on a "
                       "single image, by the block-matched one (default: on for "
                       + ", ".join(s.name for s in specs if s.wiener) + ")")
    g.add_argument("--mode", choices=modes, help=f"volume strategy (default {defaults.MODE})")
    if any(not s.fixed_axis for s in specs):
        g.add_argument("--axis", type=int, help="slice axis for --mode slices (default 2 = k)")
        g.add_argument("--series", help="DICOM series to read (UID or SeriesNumber)")
        g.add_argument("--frame", type=int, help="volume of a 4D NIfTI to read")
    if any(s.voxelwise for s in specs):
        g.add_argument("--slab", type=int, help="slices each --mode slices fit sees, odd "
                       "(default " + ", ".join(f"{s.slab} for {s.name}" for s in specs
                                               if s.voxelwise) + ")")
    if "patches" in modes:
        g.add_argument("--patch", type=int, help=f"patch edge for --mode patches (default "
                       f"{defaults.PATCH})")
    g.add_argument("--start-from", metavar="FILE", help="start the first fit from the weights "
                   "another reconstruction saved with --save-start (a scan of the same "
                   "protocol, task, mode and matrix): on real scans about 0.6x the time for "
                   "the same PSNR (default: a cold start)")
    g.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, help="run the generator in "
                   "bfloat16: up to 1.5x faster per step in 2D and 1.8x in 3D on CPUs with AMX, "
                   "PSNR lower by up to 0.75 dB (default: float32)")
    g.add_argument("--format", choices=WRITABLE, help="output format (default: from the "
                   "extension)")
    g.add_argument("--reference", metavar="FILE", help="clean scan: adds PSNR/SSIM to the "
                   "sidecar")
    g.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    g.add_argument("--preview", action="store_true", help="write a PNG preview (input | result)")
    g.add_argument("--report", action="store_true", help="write loss/variance curves and a "
                   "before/after figure (PNG)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    g.add_argument("--verbose", action="store_true", help="debug log lines and full tracebacks")
    own = [o for o in TASK_FLAGS if any(o in s.options for s in specs)]
    if own or any(s.noise_free for s in specs):
        t = p.add_argument_group("task options")
        if any(s.noise_free for s in specs):
            t.add_argument("--noise-free", action=argparse.BooleanOptionalAction,
                           help="the measured values are exact (no noise): fit the whole step "
                           "budget without input noise and keep them; --no-noise-free: treat "
                           "them as noisy (default: inpainting judges from the data)")
        for name in own:
            t.add_argument(_flag(name), **TASK_FLAGS[name])
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medip", description="Deep Image Prior reconstruction of medical images and volumes.")
    parser.add_argument("--version", action="version", version=f"medip {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show full tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for task in TASKS:
        spec = SPECS[task]
        sub = commands.add_parser(task, help=spec.summary, description=spec.summary,
                                  parents=[_options([spec])])
        sub.add_argument("input", help=spec.input_help)
        sub.add_argument("-o", "--output", required=True, help="output file, or folder for DICOM")
        sub.add_argument("--save-start", metavar="FILE", default=argparse.SUPPRESS,
                         help="also write the first fit's weights to FILE, for --start-from on "
                         "the next scan of the same protocol")
        sub.set_defaults(run=_run_task, task=task)
    batch = commands.add_parser("batch", parents=[_options([SPECS[t] for t in SCAN_TASKS])],
                                help="run a task on every series under a folder",
                                description="Run a task on every image series under ROOT; "
                                "resumable through OUT/manifest.jsonl.")
    batch.add_argument("root", help="folder searched recursively for DICOM series, NIfTI, NRRD")
    batch.add_argument("--task", required=True, choices=SCAN_TASKS)
    batch.add_argument("-o", "--output", required=True, help="output folder (mirrors ROOT)")
    batch.add_argument("--workers", type=int, default=1, help="local worker processes (each gets "
                       "cores/N threads)")
    batch.add_argument("--scheduler", help="address of a Dask distributed scheduler to submit to")
    batch.add_argument("--shard", help="K/N: only the K-th of N parts (job arrays)")
    batch.add_argument("--retry-failed", action="store_true", help="rerun jobs that failed before")
    batch.add_argument("--chain", action="store_true", help="start each scan's first fit from "
                       "the weights of the last scan of the same shape its worker reconstructed "
                       "instead of cold (scans of one protocol: less time; a result then "
                       "depends on the scan before it, which the manifest names)")
    batch.set_defaults(run=_run_batch)
    simulate = commands.add_parser("simulate", help="make degraded data from a clean scan",
                                   description="Degrade a clean scan; writes the measurement "
                                   "and OUTPUT.medip.json describing exactly how.")
    simulate.add_argument("kind", choices=defaults.SIMULATIONS)
    simulate.add_argument("input", help="clean scan (or fully sampled k-space for mri)")
    # mri to .npy: one single-coil k-space slice and its mask; to .h5/.mrd: an ISMRMRD raw file
    simulate.add_argument("-o", "--output", required=True)
    simulate.add_argument("--seed", type=int, default=defaults.SEED)
    simulate.add_argument("--sigma", type=float, default=defaults.SIM_SIGMA,
                          help="noise: std as a fraction of the value range (default 25/255)")
    simulate.add_argument("--missing", type=float, default=defaults.SIM_MISSING,
                          help="mask: fraction removed (default %(default)s)")
    simulate.add_argument("--factor", type=_factors, default=[defaults.FACTOR],
                          help="downsample: per axis (default 2)")
    simulate.add_argument("--kernel", default=defaults.KERNEL,
                          help="downsample: anti-alias kernel (default %(default)s)")
    simulate.add_argument("--angles", type=int, default=defaults.SIM_ANGLES,
                          help="ct: number of views (default %(default)s)")
    simulate.add_argument("--photons", type=float, default=defaults.SIM_PHOTONS,
                          help="ct: photons (0 = none; default %(default)g)")
    simulate.add_argument("--acceleration", type=float, default=defaults.SIM_ACCELERATION,
                          help="mri: acceleration (default %(default)s)")
    simulate.add_argument("--center-fraction", type=float, default=defaults.CENTER_FRACTION,
                          help="mri: fully sampled centre fraction (default %(default)s)")
    simulate.add_argument("--coils", type=int, default=defaults.SIM_COILS,
                          help="mri to .h5/.mrd: receive coils of the simulated raw acquisition")
    simulate.add_argument("--overwrite", action="store_true")
    simulate.set_defaults(run=_run_simulate)
    info = commands.add_parser("info", help="describe what a path holds (series, shapes, spacing)")
    info.add_argument("path", help="a DICOM file or folder, NIfTI, NRRD, or a .npy/.npz array")
    info.set_defaults(run=_run_info)
    demo = commands.add_parser("demo", help="denoise the bundled CT slice; write previews and a "
                               "report")
    demo.add_argument("-o", "--output", default="medip-demo", help="output folder (default: "
                      "%(default)s)")
    demo.add_argument("--data", help="folder holding ct_head_slice.dcm (default: ./sample_data)")
    demo.add_argument("--seed", type=int, default=defaults.SEED, help="random seed (default: "
                      "%(default)s)")
    demo.add_argument("--max-steps", type=int, default=1500, help="step budget (default: "
                      "%(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(run=_run_demo)
    return parser


def resolve_options(args: argparse.Namespace, task: str):
    """JobOptions from defaults, then ``--config``, then the flags given."""
    from medip.app.options import resolve

    flags = vars(args)
    if getattr(args, "quiet", False):
        flags = {**flags, "progress": False}
    config = Path(args.config) if getattr(args, "config", None) else None
    return resolve(task, config, flags)


def _setup_logging(args: argparse.Namespace) -> None:
    level = (logging.WARNING if getattr(args, "quiet", False) else
             logging.DEBUG if getattr(args, "verbose", False) else logging.INFO)
    logging.basicConfig(level=level, format="medip: %(message)s", stream=sys.stderr)


def _run_task(args: argparse.Namespace) -> int:
    from medip.app.job import run_job
    from medip.app.provenance import sidecar_of

    options = resolve_options(args, args.task)
    record = run_job(args.input, args.output, options, command_line=["medip", *sys.argv[1:]])
    if options.progress is not False:
        metrics = record["metrics"]
        quality = f", PSNR {metrics['psnr_db']:.2f} dB" if metrics else ""
        print(f"{args.task}: wrote {record['output']} in {record['seconds']:.1f} s (stop steps "
              f"{_steps(record['stop_steps'])}{quality}); sidecar "
              f"{sidecar_of(Path(record['output']))}")
    return EXIT_OK


def _steps(steps: list[int]) -> str:
    return str(steps[0]) if len(steps) == 1 else f"{min(steps)}-{max(steps)}"


def _run_batch(args: argparse.Namespace) -> int:
    from medip.app.batch import run_batch, summary

    options = resolve_options(args, args.task)
    quiet = getattr(args, "quiet", False)

    def show(row: dict) -> None:
        if not quiet:
            error = f": {row['error']}" if row.get("error") else ""
            after = f" (started from {row['started_from']})" if row.get("started_from") else ""
            print(f"[{row['status']}] {row['job']}{error}{after}", file=sys.stderr)

    counts = run_batch(args.root, args.output, options, workers=args.workers,
                       scheduler=args.scheduler, shard_spec=args.shard,
                       retry_failed=args.retry_failed, on_row=show, chain=args.chain)
    print(f"batch: {summary(counts) or 'nothing to do'}; manifest "
          f"{Path(args.output) / 'manifest.jsonl'}")
    if counts.get("interrupted"):
        print("batch: interrupted; rerun the same command to resume", file=sys.stderr)
    if counts.get("worker died"):
        print("batch: a worker process died (killed or out of memory); its jobs were not "
              "recorded: rerun the same command to complete them", file=sys.stderr)
    failed = counts["failed"] or counts.get("interrupted") or counts.get("worker died")
    return EXIT_FAILED if failed else EXIT_OK


def _run_simulate(args: argparse.Namespace) -> int:
    from medip.app.simulate_files import SimulateOptions, simulate_to_files

    options = SimulateOptions(seed=args.seed, sigma=args.sigma, missing=args.missing,
                              factor=args.factor, kernel=args.kernel, angles=args.angles,
                              photons=args.photons, acceleration=args.acceleration,
                              center_fraction=args.center_fraction, coils=args.coils,
                              overwrite=args.overwrite)
    written = simulate_to_files(args.kind, Path(args.input), Path(args.output), options,
                                command_line=["medip", *sys.argv[1:]])
    print(f"simulate {args.kind}: wrote {', '.join(map(str, written))}")
    return EXIT_OK


def _run_info(args: argparse.Namespace) -> int:
    from medip.io.describe import describe

    for line in describe(args.path):
        print(line)
    return EXIT_OK


def _run_demo(args: argparse.Namespace) -> int:
    from medip.app.demo import run_demo

    report = run_demo(args.output, args.data, seed=args.seed, max_steps=args.max_steps,
                      overwrite=args.overwrite, progress=False if args.quiet else None)
    print(f"denoised {report['input']} in {report['seconds']} s (stopped at step "
          f"{report['stop_step']}): PSNR {report['psnr_noisy_db']:.2f} -> "
          f"{report['psnr_denoised_db']:.2f} dB, SSIM {report['ssim_noisy']:.3f} -> "
          f"{report['ssim_denoised']:.3f}; preview {report['preview']}")
    return EXIT_OK


def cli_reference() -> str:
    """The Markdown CLI reference (docs/cli.md), generated from the parser at a fixed width."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return _reference(build_parser())
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _reference(parser: argparse.ArgumentParser) -> str:
    parts = ["# medip command line\n", "Generated from the parser (`medip --markdown > "
             "docs/cli.md`); a test keeps it in sync.\n",
             "```text\n" + parser.format_help() + "```\n"]
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            parts.append(f"## medip {name}\n\n```text\n{sub.format_help()}```\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 success, 1 the work failed, 2 usage error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--markdown"]:
        print(cli_reference(), end="")
        return EXIT_OK
    # before the heavy imports: a stop (SIGTERM from a scheduler or kill, Ctrl-C) is clean anytime
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_on_signal)
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return EXIT_USAGE
        _setup_logging(args)
        return args.run(args)
    except FAILURES as err:
        if getattr(args, "verbose", False):
            raise
        print(f"medip: error: {' '.join(str(err).split())}", file=sys.stderr)  # one line
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("medip: interrupted", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
